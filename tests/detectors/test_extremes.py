"""The learned record tail: the scale from the top block maxima, its use by the record tracker, the stated rate."""
import copy
import sys
from pathlib import Path

import numpy as np
import pytest

from detectors.ensemble import FALSE_ALARM_RATE
from detectors.extremes import log_excess_probability, top_spacing_scale
from detectors.novelty import RecordTracker

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_null_rate import null_alert_rate, null_streams  # noqa: E402


def block_maxima(draw, rows, blocks, size, seed):
    rng = np.random.default_rng(seed)
    return draw(rng, (rows, blocks, size)).max(axis=2)


def test_top_spacings_recover_the_exponential_tail_scale():
    """Exponential points of scale 2: block maxima are Gumbel of scale 2, and so is the spacing estimate."""
    maxima = block_maxima(lambda rng, shape: rng.exponential(2.0, size=shape), 2000, 64, 63, 0)
    scale = top_spacing_scale(maxima, 10)
    assert 1.7 < np.median(scale) < 2.3


def test_a_seasonal_swing_does_not_widen_the_scale():
    """Block maxima that follow a cycle: the top ones are the peaks, spread by the noise there only."""
    rng = np.random.default_rng(1)
    t = np.arange(64 * 63)
    values = 10.0 * np.sin(2 * np.pi * t / 288) + rng.exponential(1.0, (200, len(t)))
    maxima = values.reshape(200, 64, 63).max(axis=2)
    noise_only = top_spacing_scale(block_maxima(lambda r, shape: r.exponential(1.0, size=shape), 200, 64, 63, 2), 10)
    assert np.median(top_spacing_scale(maxima, 10)) < 2 * np.median(noise_only)
    assert np.median(maxima.std(axis=1)) > 5           # while the maxima themselves swing widely


def test_one_anomalous_block_hardly_moves_the_scale():
    maxima = block_maxima(lambda rng, shape: rng.normal(size=shape), 200, 64, 63, 3)
    spiked = maxima.copy()
    spiked[:, 5] = 40.0                                # an anomaly owns one block per row
    clean, dirty = top_spacing_scale(maxima, 10), top_spacing_scale(spiked, 10)
    assert np.median(dirty) < 1.5 * np.median(clean)


def test_unfilled_blocks_sort_last_and_equal_maxima_fall_back_to_the_floor():
    maxima = np.full((2, 12), -np.inf)
    maxima[0, :8] = np.arange(8.0)
    maxima[1, :8] = 5.0                                # quantised values: every block's maximum the same
    scale = top_spacing_scale(maxima, 7)
    assert scale[0] == pytest.approx(4.0 / np.log(2.0)) and scale[1] == 0   # spacings 2..6 below 7: median 4
    logp = log_excess_probability(scale, np.array([1.0, 1.0]), np.array([0.5, 0.5]))
    np.testing.assert_allclose(logp, [-np.log(2.0) / 4.0, -2.0])


def test_learned_tail_is_never_more_alarming_than_the_fixed_scale():
    """The floor keeps the tail no steeper than ``scale`` ranges: a learned record is at most n+1/n as rare."""
    rng = np.random.default_rng(4)
    u = rng.normal(size=(3000, 1, 1))
    fixed, learned = RecordTracker(4000, 0.01, n_blocks=64), RecordTracker(4000, 0.01, n_blocks=64, tail_blocks=10)
    fixed.reset(1, 1), learned.reset(1, 1)
    for t in range(3000):
        a = fixed.update(u[t], np.array([True]))
        b = learned.update(u[t], np.array([True]))
        assert b[0, 0] >= a[0, 0] - np.log1p(1.0 / max(t, 1)) - 1e-9
    assert (b <= 0).all()


@pytest.mark.parametrize("step", [0.25, np.inf])
def test_learned_tail_kernel_equals_updates(step):
    rng = np.random.default_rng(5)
    T, S, C = 1200, 3, 4
    U = rng.standard_t(3, (T, S, C))
    U[:, :, 2] = np.round(U[:, :, 2] / 4)          # quantised values: equal block maxima
    U[700, 1, 2] = 1e300
    present = rng.random((T, S)) > 0.1
    U[~present] = np.nan
    stepped = present.any(axis=1) | (np.arange(T) % 7 == 0)
    reference = RecordTracker(window=400, scale=0.02, warmup=5, mature=50, n_blocks=32, step=step,
                              tail_blocks=6).reset(S, C)
    for t in range(200):
        reference.update(U[t], present[t])
    compiled = copy.deepcopy(reference)
    expected = np.zeros((T - 200, S, C))
    for k, t in enumerate(range(200, T)):
        if stepped[t]:
            expected[k] = reference.update(U[t], present[t])
    logp, _ = compiled.update_ticks(U[200:], present[200:], stepped[200:])
    np.testing.assert_allclose(logp, expected, rtol=1e-12, atol=1e-12)
    assert (logp < 0).sum() > 20
    np.testing.assert_allclose(compiled.maxima_, reference.maxima_)


def test_learned_tail_alert_rate_on_gaussian_noise_is_near_the_stated_rate():
    """30 streams of 2,500 points, judged from 1,000 (the fixed scale alerts on 6.6e-4 of such points)."""
    values = null_streams("gaussian", 30, 2500, seed=1)
    alerts, _, judged = null_alert_rate(values, 1000, novelty_tail="learned")
    assert alerts / judged <= 20 * FALSE_ALARM_RATE  # at most 9 of 45,000 points: wide for chance, not for 6.6e-4


def test_learned_tail_ensemble_block_equals_steps():
    """The compiled block path of an ensemble with learned tails gives what its steps give, alerts included."""
    from detectors.ensemble import EnsembleDetector

    rng = np.random.default_rng(6)
    x = rng.standard_t(3, 1600)
    x[1200] += 40.0                                     # a spike far past the window's maximum
    stepped = EnsembleDetector(novelty_tail="learned").reset(1, 1)
    blocked = EnsembleDetector(novelty_tail="learned").reset(1, 1)
    expected = np.array([stepped.step(np.array([[v]]))[0] for v in x])
    block = blocked.step_block(x[:, None])
    np.testing.assert_allclose(block.scores, expected, rtol=0, atol=1e-9)
    assert block.alert[1200]
    np.testing.assert_allclose(blocked.value_records_.maxima_, stepped.value_records_.maxima_)


def test_spread_tail_ensemble_block_equals_steps():
    """With ``novelty_tail="spread"`` the compiled block path gives what the steps give, alerts included."""
    from detectors.ensemble import EnsembleDetector

    rng = np.random.default_rng(7)
    x = np.cumsum(rng.normal(0, 0.1, 1600)) + rng.normal(0, 1.0, 1600)   # a wander under the noise
    x[1200] += 40.0
    stepped = EnsembleDetector(novelty_tail="spread").reset(1, 1)
    blocked = EnsembleDetector(novelty_tail="spread").reset(1, 1)
    expected = np.array([stepped.step(np.array([[v]]))[0] for v in x])
    block = blocked.step_block(x[:, None])
    np.testing.assert_allclose(block.scores, expected, rtol=0, atol=1e-9)
    assert block.alert[1200]


def test_spread_tail_is_never_more_alarming_than_the_fixed_scale():
    """The spread tail only widens the scale: no record gets rarer, and a random walk alerts less often."""
    from detectors.ensemble import NOVELTY_SCALE, EnsembleDetector

    rng = np.random.default_rng(8)
    detector = EnsembleDetector(novelty_tail="spread").reset(4, 1)
    n = np.array([10, 400, 4000, 9000])
    width, sigma = rng.uniform(0.5, 5.0, (4, 2)), rng.uniform(0.001, 2.0, (4, 1))
    logp = np.where(rng.random((4, 2)) < 0.7, -np.log(np.minimum(n, 4000))[:, None]
                    - rng.uniform(0, 2, (4, 2)) / NOVELTY_SCALE, 0.0)
    wider = detector._spread_tail(logp, width, n, sigma)
    assert (wider >= logp).all() and (wider[logp == 0] == 0).all()
    assert (wider[logp < 0] < 0).all()                   # a record stays a record, only less rare

    alerts = {"range": 0, "spread": 0}
    for _ in range(10):
        x = np.cumsum(rng.normal(0, 1.0, 3000))          # a random walk sets records all along
        for tail in alerts:
            alerts[tail] += int(EnsembleDetector(novelty_tail=tail).reset(1, 1).step_block(x[:, None]).alert.sum())
    assert 0 < alerts["spread"] < alerts["range"]


def test_recent_records_block_equals_steps_and_catch_a_shift_inside_the_long_range():
    """``short_records=True``: the compiled block path gives what the steps give, and a level shift well inside the
    range of the last 4,000 points (but past the last 400 points' by several noise spreads) alerts."""
    from detectors.ensemble import EnsembleDetector

    rng = np.random.default_rng(11)
    x = rng.normal(0, 1.0, 1600)
    x[300:340] += 12.0                                   # an earlier incident widens the long window's range
    x[1200:1230] += 6.0                                  # a shift inside that range
    for kwargs in ({"short_records": True}, {"short_records": True, "novelty_tail": "spread"}):
        stepped = EnsembleDetector(**kwargs).reset(1, 1)
        blocked = EnsembleDetector(**kwargs).reset(1, 1)
        expected = np.array([stepped.step(np.array([[v]]))[0] for v in x])
        block = blocked.step_block(x[:, None])
        np.testing.assert_allclose(block.scores, expected, rtol=0, atol=1e-9)
        np.testing.assert_allclose(blocked.short_records_.maxima_, stepped.short_records_.maxima_)
        assert block.alert[1200:1205].any()
    assert not EnsembleDetector().reset(1, 1).step_block(x[:, None]).alert[1200:1230].any()


def test_gaussian_record_scale_matches_the_spacing_of_gaussian_maxima():
    """The mean excess of the maximum of 2n Gaussian points over that of n is about b_n ln 2 (Gumbel)."""
    from detectors.extremes import gaussian_record_scale

    rng = np.random.default_rng(9)
    n = 2000
    first, second = rng.normal(size=(2, 4000, n)).max(axis=2)
    gain = np.maximum(first, second) - first               # the excess of doubling the points seen
    expected = float(gaussian_record_scale(1.0, n)) * np.log(2.0)
    assert abs(gain.mean() - expected) < 0.35 * expected


def test_a_snapshot_from_before_learned_tails_restores():
    """A snapshot without ``novelty_tail`` and ``tail_blocks`` (written before them) restores into the default."""
    from detectors.ensemble import EnsembleDetector
    from detectors.snapshot import flatten, restore_into

    x = np.random.default_rng(7).normal(size=(300, 1))
    det = EnsembleDetector(members=("zscore", "pattern")).reset(1, 1)
    det.step_block(x)
    structure, scalars, arrays = flatten(det)
    for path in [p for p in structure if p.endswith(("novelty_tail", "tail_blocks"))]:
        del structure[path], scalars[path]
    for path, kind in structure.items():
        if kind[0] == "object":
            kind[2] = [name for name in kind[2] if name not in ("novelty_tail", "tail_blocks")]
    twin = EnsembleDetector(members=("zscore", "pattern")).reset(1, 1)
    restore_into(twin, structure, scalars, arrays)
    np.testing.assert_array_equal(twin.value_records_.maxima_, det.value_records_.maxima_)
    assert twin.novelty_tail == "range" and twin.pattern_records_.tail_blocks == 0
