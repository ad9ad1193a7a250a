"""Base of the detectors that read rolling order statistics (quantiles, medians) of each field, and their spread floor."""
from __future__ import annotations

import numpy as np

from .base import Detector
from .window import RollingWindow, SortedWindow

#: Mean absolute deviation of a standard Gaussian, sqrt(2 / pi).
MEAN_DEVIATION_TO_SIGMA = 0.7978845608028654
#: Share of the mean-absolute-deviation estimate of sigma that a spread may not fall below.
#: A window with more than half its values equal (counts, idle CPU, quantised sensors) has
#: MAD = 0, and every other value would be infinitely far out; the mean absolute deviation
#: is 0 only when the window is constant.  On Gaussian data the floor (0.5 sigma) stays
#: below the MAD estimate, so the MAD decides.
DEVIATION_FLOOR_SHARE = 0.5


def deviation_floor(values: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Return the spread floor ``(R,)`` of rows of sorted ``values`` (+inf marks unused slots) around their median ``centre``.

    >>> deviation_floor(np.array([[0.0, 0.0, 0.0, 4.0, np.inf]]), np.array([0.0])).round(3).tolist()
    [0.627]
    """
    width = values.shape[1]
    if np.isfinite(values[:, -1]).all():
        # Full sorted rows: the lower half lies below the median, the upper half above.
        half = width // 2
        total = values[:, half:].sum(axis=1) - values[:, :half].sum(axis=1) - centre * (width - 2 * half)
        mean = total / width
    else:
        dev = np.abs(values - centre[:, None])
        finite = np.isfinite(dev)
        mean = np.where(finite, dev, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)
    return DEVIATION_FLOOR_SHARE * mean / MEAN_DEVIATION_TO_SIGMA


class SortedWindowDetector(Detector):
    """Keep each field's last ``window`` values twice: in arrival order (to know what leaves) and sorted.

    Subclasses read ``self.sorted_`` (one row per stream and field, stream
    ``i`` field ``j`` at row ``i * d + j``) and call :meth:`_learn` after scoring.
    """

    def __init__(self, *, window: int = 100, warmup: int = 30, threshold: float = 0.5):
        super().__init__(warmup=warmup, threshold=threshold)
        self.window = int(window)

    def _allocate(self, n_streams, n_features):
        self.ring_ = RollingWindow(n_streams, self.window, n_features)
        self.sorted_ = SortedWindow(n_streams * n_features, self.window)

    def _learn(self, X: np.ndarray, present: np.ndarray) -> None:
        leaving = self.ring_.push(X, present)
        self.sorted_.push(X.ravel(), leaving.ravel(), np.repeat(present, self.n_features_))
