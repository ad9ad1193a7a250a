"""Tests of the pattern-novelty detector: running distances against a brute-force matrix profile, and its behaviour."""
import numpy as np
import pytest

from detectors.pattern import BLOCK_STEP, RESYNC, PatternDetector
from detectors.registry import REGISTRY, make


def block_means(x, block, first):
    """Block means of ``x`` (T, d) with a first block of ``first`` points, then blocks of ``block``."""
    ends = list(range(first, len(x) + 1, block))
    starts = [0] + ends[:-1]
    return np.array([x[a:b].mean(axis=0) for a, b in zip(starts, ends)]), np.array(ends) - 1


def winsorised(means, m):
    """Block means as the detector learns them: from block 2m on, at most BLOCK_STEP ranges beyond the range so far."""
    learned = means.astype(float).copy()
    for k in range(2 * m, len(learned)):
        low, high = learned[:k].min(axis=0), learned[:k].max(axis=0)
        reach = BLOCK_STEP * (high - low)
        learned[k] = np.where(reach > 0, np.clip(learned[k], low - reach, high + reach), learned[k])
    return learned


def brute_distances(means, m, lags):
    """Left matrix profile of block means: after each block, the range-scaled RMS distance to the nearest match."""
    means = winsorised(means, m)
    out = np.zeros(len(means))
    for k in range(1, len(means) + 1):
        seen = means[:k]
        span = np.maximum(seen.max(axis=0) - seen.min(axis=0), 1e-9 * (np.abs(seen.max(axis=0)) + 1))
        newest = seen[k - m:k] / span if k >= m else None
        best = np.inf
        for lag in range(m, min(lags, k - m) + 1):
            other = seen[k - m - lag:k - lag] / span
            best = min(best, ((newest - other) ** 2).sum())
        out[k - 1] = np.sqrt(best / m) if np.isfinite(best) else 0.0
    return out


def run(det, x):
    """Step ``x`` (T, d) through a one-stream detector; return the scores and the distance after every point."""
    det.reset(1, x.shape[1])
    scores, distances = [], []
    for row in x:
        scores.append(det.step(row[None, :])[0])
        distances.append(det.distance_[0])
    return np.array(scores), np.array(distances)


def test_registered():
    assert REGISTRY["pattern"] is PatternDetector


@pytest.mark.parametrize("block, d", [(1, 1), (4, 1), (4, 3)])
def test_running_distances_equal_a_brute_force_matrix_profile(block, d):
    rng = np.random.default_rng(block + d)
    t = np.arange(700)[:, None]
    # Fields of very different size and offset: each is compared in units of its own range.
    size, offset = np.array([1, 1000, 0.01][:d]), np.array([0, 5e4, -3][:d])
    x = (np.sin(2 * np.pi * t / 37) + rng.normal(0, 0.2, (700, d))) * size + offset
    x[400:410] += 3 * size
    det = PatternDetector(length=4 * block, block=block, history=60 * block)
    _, distances = run(det, x)
    means, ends = block_means(x, block, first=1)  # row 0 closes its first block after one point
    expected = brute_distances(means, 4, 60)
    np.testing.assert_allclose(distances[ends], expected, rtol=2e-3, atol=2e-4)


def test_exact_resync_keeps_long_runs_accurate():
    """Past several resyncs, on a stream with a large offset and a huge spike, the sums stay exact."""
    rng = np.random.default_rng(3)
    n = (RESYNC * 2 + 50) * 2
    x = (1e6 + np.sin(np.arange(n) / 5.0) + rng.normal(0, 0.1, n))[:, None]
    x[300] += 1e5
    det = PatternDetector(length=6, block=2, history=80)
    _, distances = run(det, x)
    means, ends = block_means(x, 2, first=1)
    expected = brute_distances(means, 3, 40)
    np.testing.assert_allclose(distances[ends][-200:], expected[-200:], rtol=1e-2, atol=1e-4)


def test_a_repeating_pattern_is_familiar_and_a_new_one_is_not():
    t = np.arange(1600)
    x = np.sin(2 * np.pi * t / 50) + np.random.default_rng(0).normal(0, 0.05, 1600)
    x[1300:1325] = -0.3  # the wave stalls half a period
    scores = make("pattern").score_series(x)
    assert scores[1300:1340].max() > 2 * scores[600:1290].max()
    assert int(np.argmax(scores)) in range(1300, 1345)


def test_a_spike_counts_on_its_own_tick_whatever_the_block_phase():
    rng = np.random.default_rng(1)
    for where in (500, 501, 502, 503):
        x = np.sin(np.arange(800) / 8.0) + rng.normal(0, 0.05, 800)
        x[where] += 3.0
        scores = make("pattern").score_series(x)
        assert scores[where] > scores[100:where].max()


def test_streams_take_turns_to_close_their_blocks():
    det = PatternDetector(block=4).reset(10, 1)
    closing = []
    for _ in range(12):
        before = det.blocks_.copy()
        det.step(np.zeros((10, 1)))
        closing.append(int((det.blocks_ > before).sum()))
    assert max(closing) <= 3 and sum(closing) == 30


@pytest.mark.parametrize("params", [dict(length=10, block=4), dict(length=4, block=4), dict(history=30, length=20),
                                    dict(history=1022)])
def test_bad_geometry_is_a_clear_error(params):
    with pytest.raises(ValueError):
        PatternDetector(**params).reset(1, 1)
