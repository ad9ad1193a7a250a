"""Median absolute deviation: a robust z-score that a few outliers in the window cannot inflate."""
from __future__ import annotations

import numpy as np

from .registry import register
from .streaming import compiled_steps
from .stats import chi2_score, floored, z_multiplier
from .robust_window import SortedWindowDetector, deviation_floor
from .window import sorted_quantile

#: MAD of a standard Gaussian; dividing by it makes the MAD estimate sigma.
MAD_TO_SIGMA = 0.6744897501960817
def sorted_mad(values: np.ndarray, median: np.ndarray) -> np.ndarray:
    """Return the lower median of ``|values - median|`` for full sorted rows, without sorting the deviations.

    Left of the median the deviations fall, right of it they rise: two sorted
    runs, whose k-th smallest element a binary search finds in O(log W)
    vectorised steps instead of a partition of every row.

    >>> v = np.sort(np.random.default_rng(0).normal(size=(4, 9)), axis=1)
    >>> m = v[:, 4]
    >>> bool(np.allclose(sorted_mad(v, m), np.sort(np.abs(v - m[:, None]), axis=1)[:, 4]))
    True
    """
    rows, width = values.shape
    half = width // 2
    a, b, k = half, width - half, (width - 1) // 2 + 1  # k: how many smallest deviations to take
    r = np.arange(rows)

    def left(j):  # j-th smallest deviation left of the median (j < a)
        return median - values[r, half - 1 - np.clip(j, 0, a - 1)]

    def right(j):  # j-th smallest deviation right of the median (j < b)
        return values[r, half + np.clip(j, 0, b - 1)] - median

    lo = np.full(rows, max(0, k - b))
    hi = np.full(rows, min(k, a))
    for _ in range(int(np.ceil(np.log2(a + 1))) + 1):
        i = (lo + hi) // 2
        too_many_left = (i > 0) & (k - i < b) & (left(i - 1) > right(k - i))
        too_few_left = (i < a) & (k - i > 0) & (right(k - i - 1) > left(i))
        hi = np.where(too_many_left, i - 1, hi)
        lo = np.where(too_few_left, i + 1, lo)
        lo = np.where(too_many_left | too_few_left, lo, i)
        hi = np.where(too_many_left | too_few_left, hi, i)
    i = lo
    from_left = np.where(i > 0, left(i - 1), -np.inf)
    from_right = np.where(k - i > 0, right(k - i - 1), -np.inf)
    return np.maximum(from_left, from_right)


def compiled_mad(values: np.ndarray, median: np.ndarray) -> np.ndarray:
    """:func:`sorted_mad` for the many rows of a block or a bank, by a compiled bisection of the two runs (the same values).

    >>> v = np.sort(np.random.default_rng(0).normal(size=(4, 9)), axis=1)
    >>> bool((compiled_mad(v, v[:, 4]) == sorted_mad(v, v[:, 4])).all())
    True
    """
    if not np.isfinite(values).all():  # an infinite value: deviations may be NaN, leave them to numpy
        return sorted_mad(values, median)
    from .bank_kernels import median_deviations

    out = np.empty(len(values))
    median_deviations(np.ascontiguousarray(values, dtype=float), np.ascontiguousarray(median, dtype=float), out)
    return out


@register
class MADDetector(SortedWindowDetector):
    """Robust z-score ``(x - median) / (1.4826 * MAD)`` per field over the last ``window`` points.

    Several fields are combined as a sum of squared robust z-scores, read
    against a chi-square law.

    Parameters
    ----------
    window : int
        Number of past points the median and MAD are computed from.
    warmup : int
        Points a stream must have learned before it may score above 0.
    threshold : float
        Default flag threshold on the score.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(0, 1, 300); x[200:203] = [7, -8, 9]
    >>> s = MADDetector(window=60).score_series(x)
    >>> sorted(np.argsort(s)[-3:].tolist())
    [200, 201, 202]
    """

    name = "mad"

    def _block_stats_of(self, values, count):
        return self._stats_of(values, count, mad_of=compiled_mad)

    LEVELS, CENTRE, READS_DEVIATION = (0.5,), 0, True

    def _stats_of(self, values, count, mad_of=None):
        if mad_of is None:
            mad_of = compiled_mad if compiled_steps() else sorted_mad
        median = sorted_quantile(values, count, 0.5)
        # The (lower) median of the finite deviations; unfilled slots are +inf and sort last.
        if (count == self.window).all():
            mad = mad_of(values, median)
        else:
            dev = np.abs(values - median[:, None])
            dev.sort(axis=1)
            mad = np.take_along_axis(dev, (np.maximum(count - 1, 0) // 2)[:, None], 1)[:, 0]
        return self._stats_from([median], mad, deviation_floor(values, median))

    def _stats_from(self, quantiles, deviation, floor):
        shape = (len(floor) // self.n_features_, self.n_features_)
        median, mad = quantiles[0].reshape(shape), deviation.reshape(shape)
        return median, floored(np.maximum(mad / MAD_TO_SIGMA, floor.reshape(shape)), median)

    def _score_from(self, X, stats):
        median, sigma = stats
        return chi2_score(np.nansum(((X - median) / sigma) ** 2, axis=1), self.n_features_)

    def _range_from(self, stats):
        median, sigma = stats
        k = z_multiplier(self.threshold, 1)
        return median - k * sigma, median + k * sigma
