"""The reference lines: rolling Hotelling T² against a direct computation, HalfSpaceTrees' scaling, quantile flags."""
from __future__ import annotations

import numpy as np
import pytest

from detectors.evaluation.references import half_space_trees, rolling_t2, train_quantile_flags


def direct_t2(x: np.ndarray, window: int, ridge: float) -> np.ndarray:
    """T² of each row against the mean and covariance of the rows before it, computed afresh per row."""
    d = x.shape[1]
    min_history = min(window, max(30, 2 * d))
    scores = np.zeros(len(x))
    for t in range(min_history, len(x)):
        past = x[max(0, t - window) : t]
        mean = past.mean(axis=0)
        cov = np.atleast_2d(np.cov(past, rowvar=False, ddof=1))
        cov = cov + (ridge * np.trace(cov) / d + 1e-12) * np.eye(d)
        delta = x[t] - mean
        scores[t] = delta @ np.linalg.solve(cov, delta)
    return scores


@pytest.mark.parametrize("d", [1, 3])
def test_rolling_t2_equals_the_direct_computation_for_every_series_of_a_bank(d):
    rng = np.random.default_rng(d)
    # Different lengths (one ends early), a far-off level, a nearly constant stretch, and more
    # ticks than several windows, so running sums are refreshed and rows leave the window.
    a = rng.normal(size=(230, d)) * 3 + 1e4
    b = rng.normal(size=(150, d))
    b[60:100] = 0.5 + 0.01 * rng.normal(size=(40, d))
    c = np.cumsum(rng.normal(size=(200, d)), axis=0)
    got = rolling_t2([a, b, c], window=40, ridge=1e-3)
    for series, scores in zip((a, b, c), got):
        assert scores.shape == (len(series),)
        expected = direct_t2(series, 40, 1e-3)
        assert np.allclose(scores, expected, rtol=1e-6, atol=1e-6)


def test_rolling_t2_scores_a_change_after_a_constant_window_high_but_finite():
    x = np.r_[np.random.default_rng(4).normal(size=60), np.full(40, 0.5), [1.5]][:, None]
    score = rolling_t2([x], window=40)[0][-1]
    assert 1e9 < score < np.inf


def test_rolling_t2_counts_only_a_series_own_rows_and_refuses_mixed_fields():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    alone = rolling_t2([x], window=50)[0]
    beside_longer = rolling_t2([x, rng.normal(size=(300, 2))], window=50)[0]
    assert np.array_equal(alone, beside_longer)
    with pytest.raises(ValueError, match="same number of fields"):
        rolling_t2([x, rng.normal(size=(50, 3))])


def test_half_space_trees_scales_by_the_warmup_rows_only():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(700, 2))
    x[600] = [9.0, -9.0]
    scores = half_space_trees(x, warmup=400)
    # Min/max scaling on the warm-up rows makes the scores blind to units and offsets.
    assert np.array_equal(half_space_trees(x * 250.0 + 3e4, warmup=400), scores)
    assert scores[:250].max() == 0  # River's first window
    assert scores[600] >= np.quantile(scores[400:], 0.99)


def test_quantile_flags_skip_the_references_own_warmup():
    scores = np.r_[np.zeros(50), np.linspace(0.0, 1.0, 51), [0.99, 1.5]]
    flags, threshold = train_quantile_flags(scores, warmup=101, alpha=0.02, skip=50)
    assert threshold == pytest.approx(0.98)
    assert np.flatnonzero(flags).tolist() == [100, 101, 102]
    # Nothing to learn the quantile from: no flags at all.
    flags, threshold = train_quantile_flags(scores, warmup=0)
    assert not flags.any() and threshold == float("inf")
    # The skip cannot eat every warm-up row.
    assert train_quantile_flags(np.array([0.0, 0.0, 5.0]), warmup=2, alpha=0.5, skip=10)[1] == 0.0
    with pytest.raises(ValueError):
        train_quantile_flags(scores, warmup=10, alpha=0.0)
