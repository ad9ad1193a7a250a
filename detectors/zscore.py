"""Rolling z-score: distance of a point from the mean of its stream's recent window."""
from __future__ import annotations

import numpy as np

from .base import Detector
from .registry import register
from .stats import chi2_score, floored, z_multiplier
from .window import RollingWindow

#: Relative ridge added to the variances before inverting the covariance.
RIDGE = 1e-6


@register
class ZScoreDetector(Detector):
    """Rolling z-score (Mahalanobis distance for several fields) over the last ``window`` points.

    The mean and covariance come from the ``window`` points before the one
    scored; the squared distance is read against a chi-square law, so the
    score is ``1 - p`` of a Gaussian stream.

    Parameters
    ----------
    window : int
        Number of past points the mean and spread are estimated from.
    warmup : int
        Points a stream must have learned before it may score above 0.
    threshold : float
        Default flag threshold on the score.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(10, 1, 200); x[150] = 18
    >>> s = ZScoreDetector(window=50).score_series(x)
    >>> int(np.argmax(s)), bool(s[150] > 0.75), float(s[:30].max())
    (150, True, 0.0)
    """

    name = "zscore"

    def __init__(self, *, window: int = 100, warmup: int = 30, threshold: float = 0.5):
        super().__init__(warmup=warmup, threshold=threshold)
        self.window = int(window)

    def _allocate(self, n_streams, n_features):
        self.window_ = RollingWindow(n_streams, self.window, n_features)

    def _moments(self):
        return self._per_tick("moments", self._compute_moments)

    def _compute_moments(self):
        mean = self.window_.mean()
        n = np.maximum(self.window_.count - 1, 1)[:, None, None]
        if self.n_features_ == 1:
            unbiased = (self.window_.count / n[:, 0, 0])[:, None, None]
            cov = (self.window_.mean(power=2) - mean**2)[:, :, None] * unbiased
            return mean, np.maximum(cov, 0.0)
        with np.errstate(all="ignore"):
            dev = np.nan_to_num(self.window_.buffer - mean[:, None, :])
            cov = np.einsum("swi,swj->sij", dev, dev) / n
        return mean, cov

    def _score_and_learn(self, X, present):
        mean, cov = self._moments()
        cov = cov.copy()
        d = self.n_features_
        diag = np.arange(d)
        # A small ridge keeps perfectly correlated (or flat) fields invertible.
        var = floored(cov[:, diag, diag], mean)
        cov[:, diag, diag] = var * (1.0 + RIDGE)
        resid = np.nan_to_num(X - mean)
        if d == 1:
            z2 = resid[:, 0] ** 2 / cov[:, 0, 0]
        else:
            z2 = np.einsum("si,si->s", resid, np.linalg.solve(cov, resid[:, :, None])[:, :, 0])
        self.window_.push(X, present)
        return chi2_score(z2, d)

    def expected_range(self):
        mean, cov = self._moments()
        spread = np.sqrt(floored(np.diagonal(cov, axis1=1, axis2=2), mean))
        k = z_multiplier(self.threshold, 1)
        return mean - k * spread, mean + k * spread
