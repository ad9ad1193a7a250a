"""Median absolute deviation: a robust z-score that a few outliers in the window cannot inflate."""
from __future__ import annotations

import numpy as np

from .base import Detector
from .registry import register
from .stats import chi2_score, floored, z_multiplier
from .window import RollingWindow, SortedWindow

#: MAD of a standard Gaussian; dividing by it makes the MAD estimate sigma.
MAD_TO_SIGMA = 0.6744897501960817


@register
class MADDetector(Detector):
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

    def __init__(self, *, window: int = 100, warmup: int = 30, threshold: float = 0.5):
        super().__init__(warmup=warmup, threshold=threshold)
        self.window = int(window)

    def _allocate(self, n_streams, n_features):
        self.ring_ = RollingWindow(n_streams, self.window, n_features)
        self.sorted_ = SortedWindow(n_streams * n_features, self.window)

    def _centre_spread(self):
        return self._per_tick("_centre_spread", self._compute_centre_spread)

    def _compute_centre_spread(self):
        S, d = self.n_streams_, self.n_features_
        median = self.sorted_.quantile(0.5).reshape(S, d)
        vals = self.sorted_.values.reshape(S, d, -1)
        dev = np.abs(vals - median[:, :, None])
        n = self.sorted_.count.reshape(S, d)
        # The (lower) median of the finite deviations; unfilled slots are +inf and sort last.
        if (n == self.window).all():
            k = (self.window - 1) // 2
            mad = np.partition(dev, k, axis=2)[:, :, k]
        else:
            dev.sort(axis=2)
            mad = np.take_along_axis(dev, (np.maximum(n - 1, 0) // 2)[:, :, None], 2)[:, :, 0]
        return median, floored(mad / MAD_TO_SIGMA, median)

    def _score_and_learn(self, X, present):
        median, sigma = self._centre_spread()
        z2 = np.nansum(((X - median) / sigma) ** 2, axis=1)
        leaving = self.ring_.push(X, present)
        self.sorted_.push(X.ravel(), leaving.ravel(), np.repeat(present, self.n_features_))
        return chi2_score(z2, self.n_features_)

    def expected_range(self):
        median, sigma = self._centre_spread()
        k = z_multiplier(self.threshold, 1)
        return median - k * sigma, median + k * sigma
