"""Moving-average deviation: how far a point departs from the average of the few points before it."""
from __future__ import annotations

import numpy as np

from .base import Detector
from .registry import register
from .stats import chi2_score, floored, z_multiplier
from .window import RollingWindow, trailing_mean


@register
class MovingAverageDetector(Detector):
    """Deviation from the mean of the last ``span`` points, in units of the usual deviation.

    The residual ``x_t - mean(x_{t-span..t-1})`` follows trends and cycles
    that a long-window z-score mistakes for anomalies; its spread is the
    root-mean-square residual over the last ``window`` points.

    Parameters
    ----------
    span : int
        Points in the short moving average the value is compared with.
    window : int
        Number of past residuals the usual deviation is estimated from.
    warmup : int
        Points a stream must have learned before it may score above 0.
    threshold : float
        Default flag threshold on the score.

    Examples
    --------
    >>> t = np.arange(400.0)
    >>> x = 0.05 * t + np.random.default_rng(3).normal(0, 0.2, 400); x[300] += 3
    >>> s = MovingAverageDetector(span=5, window=100).score_series(x)
    >>> int(np.argmax(s)), bool(s[300] > 0.5)
    (300, True)
    """

    name = "moving_average"

    def __init__(self, *, span: int = 5, window: int = 100, warmup: int = 30, threshold: float = 0.5):
        super().__init__(warmup=warmup, threshold=threshold)
        self.span = int(span)
        self.window = int(window)

    def _allocate(self, n_streams, n_features):
        self.recent_ = RollingWindow(n_streams, self.span, n_features)
        self.residuals_ = RollingWindow(n_streams, self.window, n_features)

    def _average(self):
        return self.recent_.mean()

    def _spread(self, centre):
        ms = self.residuals_.mean(power=2)
        return floored(np.sqrt(np.nan_to_num(ms)), centre)

    def _score_and_learn(self, X, present):
        average = self._average()
        resid = X - average
        z2 = np.nansum((resid / self._spread(average)) ** 2, axis=1)
        has_average = self.recent_.count > 0
        self.residuals_.push(resid, present & has_average)
        self.recent_.push(X, present)
        return np.where(self.residuals_.count > 1, chi2_score(z2, self.n_features_), 0.0)

    def expected_range(self):
        average = self._average()
        half = z_multiplier(self.threshold, 1) * self._spread(average)
        return average - half, average + half

    def _score_block(self, row, points, with_range):
        average, recent_count = trailing_mean(self.recent_.history(row), points, self.span)
        resid = points - average
        # A point's residual is learned once the stream has a previous point to average.
        learned = recent_count > 0
        before = np.cumsum(learned) - learned  # residuals of this block learned before each point
        square, past_count = trailing_mean(self.residuals_.history(row), np.concatenate([resid[learned], resid[:1]]),
                                           self.window, power=2)
        square, past_count = square[before], past_count[before]
        spread = floored(np.sqrt(np.nan_to_num(square)), average)
        z2 = np.nansum((resid / spread) ** 2, axis=1)
        raw = np.where(np.minimum(past_count + learned, self.window) > 1, chi2_score(z2, self.n_features_), 0.0)
        self.residuals_.extend(row, resid[learned])
        self.recent_.extend(row, points)
        if not with_range:
            return raw, None
        half = z_multiplier(self.threshold, 1) * spread
        return raw, (average - half, average + half)

    def _block_width(self):
        return 4  # the kernel's means: no window is copied

    def _points_to_fill(self, row):
        return self.window + 1 - int(self.residuals_.count[row])
