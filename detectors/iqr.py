"""Interquartile range: distance beyond the quartiles, in units of each half's own spread."""
from __future__ import annotations

import numpy as np

from .registry import register
from .stats import SPREAD_FLOOR, chi2_score, floored, z_multiplier
from .robust_window import SortedWindowDetector, deviation_floor
from .window import sorted_quantile

#: Upper quartile of a standard Gaussian: Q3 - median = 0.6745 sigma.
QUARTILE_Z = 0.6744897501960817


@register
class IQRDetector(SortedWindowDetector):
    """Quartile-based robust z-score per field over the last ``window`` points.

    Above the median a point is measured against the upper quartile and
    below it against the lower one, so a skewed stream (transaction amounts,
    request counts) gets a wider range on its long side:
    ``z = 0.6745 * (x - median) / (Q3 - median)`` for ``x > median``.

    Parameters
    ----------
    window : int
        Number of past points the quartiles are computed from.
    warmup : int
        Points a stream must have learned before it may score above 0.
    threshold : float
        Default flag threshold on the score.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> x = rng.lognormal(3, 0.5, 300); x[250] = 400
    >>> s = IQRDetector(window=100).score_series(x)
    >>> int(np.argmax(s))
    250
    """

    name = "iqr"

    LEVELS, CENTRE, READS_DEVIATION = (0.25, 0.5, 0.75), 1, False

    def _stats_of(self, values, count):
        quartiles = [sorted_quantile(values, count, q) for q in self.LEVELS]
        return self._stats_from(quartiles, None, deviation_floor(values, quartiles[self.CENTRE]))

    def _stats_from(self, quantiles, deviation, floor):
        shape = (len(floor) // self.n_features_, self.n_features_)
        q1, med, q3 = (q.reshape(shape) for q in quantiles)
        both = floored(0.5 * (q3 - q1), med)
        # A half with no spread (many equal values) borrows the other half's.
        lower = floored(np.where(med - q1 > 0, med - q1, both), med)
        upper = floored(np.where(q3 - med > 0, q3 - med, both), med)
        # Both halves empty (most values equal): fall back on the mean absolute deviation.
        floor = floor.reshape(shape)
        return med, np.maximum(lower / QUARTILE_Z, floor), np.maximum(upper / QUARTILE_Z, floor)

    def _block_stats_from(self, quantiles, deviation, floor):
        """:meth:`_stats_from` in one compiled pass (:func:`detectors.kernels.quartile_spreads`, the same values)."""
        from .kernels import quartile_spreads

        shape = (len(floor) // self.n_features_, self.n_features_)
        q1, med, q3 = (np.ascontiguousarray(q, dtype=float) for q in quantiles)
        low, high = np.empty(len(floor)), np.empty(len(floor))
        quartile_spreads(q1, med, q3, np.ascontiguousarray(floor, dtype=float), SPREAD_FLOOR, QUARTILE_Z, low, high)
        return med.reshape(shape), low.reshape(shape), high.reshape(shape)

    def _score_from(self, X, stats):
        med, sigma_low, sigma_high = stats
        z = np.where(X >= med, (X - med) / sigma_high, (med - X) / sigma_low)
        return chi2_score(np.nansum(z**2, axis=1), self.n_features_)

    def _range_from(self, stats):
        med, sigma_low, sigma_high = stats
        k = z_multiplier(self.threshold, 1)
        return med - k * sigma_low, med + k * sigma_high
