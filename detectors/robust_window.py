"""Base of the detectors that read rolling order statistics (quantiles, medians) of each field."""
from __future__ import annotations

import numpy as np

from .base import Detector
from .window import RollingWindow, SortedWindow


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
