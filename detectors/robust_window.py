"""Base of the detectors that read rolling order statistics (quantiles, medians) of each field, and their spread floor."""
from __future__ import annotations

import numpy as np

from .bank_kernels import PAIRWISE_BLOCK, full_mean_deviations
from .base import Detector
from .shared_windows import order_stats
from .streaming import compiled_steps
from .window import RollingWindow, SortedWindow, sorted_trailing

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
        if compiled_steps() and width - half <= PAIRWISE_BLOCK and len(values):
            # One pass over the rows (numpy's reduction of each short half row costs a pass per row).
            mean = np.empty(len(values))
            full_mean_deviations(np.ascontiguousarray(values, dtype=float),
                                 np.ascontiguousarray(centre, dtype=float), mean)
            return floor_of_mean_deviation(mean)
        total = values[:, half:].sum(axis=1) - values[:, :half].sum(axis=1) - centre * (width - 2 * half)
        mean = total / width
    else:
        dev = np.abs(values - centre[:, None])
        finite = np.isfinite(dev)
        mean = np.where(finite, dev, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)
    return floor_of_mean_deviation(mean)


def floor_of_mean_deviation(mean: np.ndarray) -> np.ndarray:
    """The spread floor of :func:`deviation_floor` from a window's mean absolute deviation."""
    return DEVIATION_FLOOR_SHARE * mean / MEAN_DEVIATION_TO_SIGMA


class SortedWindowDetector(Detector):
    """Keep each field's last ``window`` values twice: in arrival order (to know what leaves) and sorted.

    Subclasses read ``self.sorted_`` (one row per stream and field, stream
    ``i`` field ``j`` at row ``i * d + j``) and call :meth:`_learn` after scoring.
    A block of finite points reads only the order statistics a subclass
    names (:attr:`LEVELS`, :attr:`READS_DEVIATION`) from a compiled kernel
    and turns them into its statistics with :meth:`_stats_from`, as its
    :meth:`_stats_of` does for the streaming path.
    """

    #: Quantile levels :meth:`_stats_from` reads, and which of them is the centre deviations are measured from.
    LEVELS: tuple = (0.5,)
    CENTRE = 0
    #: Whether :meth:`_stats_from` reads the lower median absolute deviation around the centre.
    READS_DEVIATION = False

    def __init__(self, *, window: int = 100, warmup: int = 30, threshold: float = 0.5):
        super().__init__(warmup=warmup, threshold=threshold)
        self.window = int(window)

    def _allocate(self, n_streams, n_features):
        self.ring_ = RollingWindow(n_streams, self.window, n_features)
        self.sorted_ = SortedWindow(n_streams * n_features, self.window)

    def _learn(self, X: np.ndarray, present: np.ndarray) -> None:
        leaving = self.ring_.push(X, present)
        self.sorted_.push(X.ravel(), leaving.ravel(), np.repeat(present, self.n_features_))

    def _window_stats(self):
        """Statistics of every stream's window ``(S, d)`` tuples, from :meth:`_stats_of`, once per tick."""
        return self._per_tick("window_stats", lambda: self._stats_of(self.sorted_.values, self.sorted_.count))

    def _stats_of(self, values: np.ndarray, count: np.ndarray):
        """Statistics ``(R, d)`` of sorted window rows ``values`` ``(R * d, W)`` holding ``count`` values each."""
        raise NotImplementedError

    def _block_stats_of(self, values: np.ndarray, count: np.ndarray):
        """:meth:`_stats_of` of a block's windows (a subclass may use a compiled kernel there, same values)."""
        return self._stats_of(values, count)

    def _stats_from(self, quantiles: list, deviation, floor: np.ndarray):
        """Statistics ``(R, d)`` from flat ``(R * d,)`` order statistics: one array per level of :attr:`LEVELS`,
        the lower median absolute deviation (when :attr:`READS_DEVIATION`) and the spread floor."""
        raise NotImplementedError

    def _block_stats_from(self, quantiles: list, deviation, floor: np.ndarray):
        """:meth:`_stats_from` of a block's order statistics (a subclass may use a compiled kernel there, same values)."""
        return self._stats_from(quantiles, deviation, floor)

    def _score_block(self, row, points, with_range):
        history = self.ring_.history(row)
        if np.isfinite(points).all() and np.isfinite(history).all():
            quantiles, deviation, mean_deviation, _ = order_stats(
                history, points, self.window, self.LEVELS, self.CENTRE, self.READS_DEVIATION)
            stats = self._block_stats_from(list(quantiles.T), deviation, floor_of_mean_deviation(mean_deviation))
        else:  # an infinite value: the sorted rows and numpy's handling of inf - inf
            rows, counts = sorted_trailing(history, points, self.window)
            stats = self._block_stats_of(rows, np.repeat(counts, self.n_features_))
        raw = self._score_from(points, stats)
        self.ring_.extend(row, points)
        d = self.n_features_
        last = self.ring_.history(row)
        self.sorted_.refill(np.arange(row * d, row * d + d), last.T)
        return raw, self._range_from(stats) if with_range else None

    def _block_width(self):
        return self.window

    def _points_to_fill(self, row):
        return self.window - int(self.ring_.count[row])

    def _score_and_learn(self, X, present):
        raw = self._score_from(X, self._window_stats())
        self._learn(X, present)
        return raw

    def expected_range(self):
        return self._range_from(self._window_stats())
