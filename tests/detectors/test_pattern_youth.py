"""The pattern member judges a young stream's blocks: an absurd first value does not own its range for good.

A young stream learns its block means as they come (its range is not known
yet), so one absurd block among its first ones would own the range the
distances are read in, and, as the first block, the origin its float32
offsets are stored from.  Once it has ``YOUNG_PATTERNS`` patterns of blocks,
a young extreme that would own the range is learned as winsorising would have
learned it; an ordinary one is left as it came, bit for bit.
"""
import copy

import numpy as np
import pytest

import detectors.pattern as pattern
from detectors.pattern import PatternDetector
from detectors.registry import make
from detectors.streaming import numpy_steps
from same_paths import assert_block_equals_steps, assert_same_state


def wave(n=800, seed=0, spike=500):
    """A noisy wave about 10 (range about 2, as the contract's stream) with a 10 sigma spike at ``spike``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 10 + np.sin(2 * np.pi * t / 50) + rng.normal(0, 0.3, n)
    x[spike] = x[:300].mean() + 10 * x[:300].std()
    return x


def stalled(n=1600, seed=0):
    """A wave that stalls for half a period at 1300: a pattern anomaly (no lone point stands out)."""
    t = np.arange(n)
    x = np.sin(2 * np.pi * t / 50) + np.random.default_rng(seed).normal(0, 0.05, n)
    x[1300:1325] = -0.3
    return x


@pytest.mark.parametrize("absurd", [1e300, -1e300, 1e6, np.inf])
@pytest.mark.parametrize("at", [0, 6])
def test_an_absurd_young_value_does_not_blind_the_stream(absurd, at):
    clean = wave()
    x = clean.copy()
    x[at] = absurd
    expected = make("pattern").score_series(clean)
    det = make("pattern")
    with np.errstate(all="ignore"):
        scores, anomalous, _ = det.label_series(x)
    assert np.isfinite(scores).all()
    assert scores[500] >= 0.8 * expected[500] and anomalous[500]
    # The range the distances are read in is the wave's, not the absurd value's, and the origin is ordinary.
    assert det.span_[0, 0] < 4.0
    assert abs(det.origin_[0, 0] - 10) < 3.0
    assert np.isfinite(det.lagged_).all() and np.isfinite(det.sqdist_).all()


@pytest.mark.parametrize("absurd", [1e6, -1e300])
def test_an_absurd_first_value_leaves_a_pattern_anomaly_seen_by_its_distance(absurd):
    """Not only the forecast error: the distance itself, which the ensemble's pattern records read."""
    clean = stalled()
    x = clean.copy()
    x[0] = absurd

    def distances(series):
        det = make("pattern").reset(1, 1)
        return det.step_ticks(series[:, None, None])[1][:, 0]

    with np.errstate(all="ignore"):
        got, expected = distances(x), distances(clean)
        scores = make("pattern").score_series(x)
    assert got[1300:1340].max() > 2 * got[600:1290].max()
    np.testing.assert_allclose(got[1100:], expected[1100:], rtol=0.2)
    assert int(np.argmax(scores)) in range(1300, 1345)


@pytest.mark.parametrize("first", [13.0, 20.0, 3.0, -10.0])
def test_an_ordinary_high_or_low_first_value_is_learned_as_it_came(first, monkeypatch):
    """A first value a few ranges off (a startup value) is no absurdity: nothing is cut, bit for bit."""
    x = wave()
    x[0] = first
    det = make("pattern")
    scores = det.score_series(x)
    assert det.origin_[0, 0] == first  # row 0's first block is its first point
    monkeypatch.setattr(pattern, "YOUNG_TOLERANCE", np.inf)  # no judgment at all
    np.testing.assert_array_equal(make("pattern").score_series(x), scores)
    with numpy_steps():
        np.testing.assert_array_equal(make("pattern").score_series(x), scores)


def test_a_field_with_nothing_to_cut_keeps_its_blocks_bit_for_bit():
    rng = np.random.default_rng(4)
    x = np.c_[wave(600), 1e4 + 50 * np.sin(np.arange(600) / 9.0) + rng.normal(0, 5, 600)]
    absurd = x.copy()
    absurd[0, 0] = 1e300
    clean, judged = make("pattern"), make("pattern")
    clean.score_series(x)
    with np.errstate(all="ignore"):
        judged.score_series(absurd)
    np.testing.assert_array_equal(judged.lagged_[:, 1], clean.lagged_[:, 1])
    np.testing.assert_array_equal(judged.origin_[:, 1], clean.origin_[:, 1])
    assert abs(judged.origin_[0, 0] - 10) < 3.0


def test_numpy_steps_and_the_kernel_judge_alike():
    """Streams of every block phase, some with absurd young values in some fields: the same scores and state."""
    rng = np.random.default_rng(2)
    series = []
    for k in range(6):
        x = np.c_[wave(400, seed=k, spike=350), 5 + np.cos(np.arange(400) / 7.0) + rng.normal(0, 0.1, 400)]
        x[k % 3, k % 2] = (1e300, -1e6, 1e5)[k % 3]
        if k == 4:
            x[9, 1] = -1e300  # a later young block, in the other field
        series.append(x)
    compiled, stepped = make("pattern"), make("pattern")
    with np.errstate(all="ignore"):
        got = compiled.score_many(series)
        with numpy_steps():
            expected = stepped.score_many(series)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-9)
    assert_same_state(stepped, compiled)
    assert np.isfinite(np.concatenate(got)).all()
    assert all(g[350] > 0.5 for g in got)


def test_a_block_of_one_stream_judges_as_its_steps():
    base = PatternDetector().reset(3, 1)
    x = wave()[:, None]
    x[0] = 1e300
    with np.errstate(all="ignore"):
        alerts, _, blocked = assert_block_equals_steps(base, x, row=1)
    assert alerts[500]
    assert blocked.span_[1, 0] < 4.0


def test_a_stream_restored_without_its_young_blocks_is_not_judged(monkeypatch):
    """A snapshot from before the young blocks were kept restores them as NaN: that stream learns as before."""
    x = wave()
    x[0] = 25.0
    old = PatternDetector().reset(1, 1)
    new = copy.deepcopy(old)
    for det in (old, new):
        for v in x[:20]:
            det.step(np.array([[v]]))
    new.young_blocks_[:] = np.nan  # what a restore of such a snapshot leaves
    monkeypatch.setattr(pattern, "YOUNG_TOLERANCE", 0.0)  # judge everything that can be judged
    scores = [[det.step(np.array([[v]]))[0] for v in x[20:]] for det in (old, new)]
    assert np.isfinite(scores[1]).all()
    assert new.origin_[0, 0] == 25.0  # not judged: its first block kept
    assert old.origin_[0, 0] != 25.0  # judged: cut back
