"""Per-stream sliding windows for a whole bank: a chronological ring buffer and a sorted twin.

Both keep the last ``size`` points of each of ``S`` streams and are updated
for every stream of a tick at once, with a fixed number of numpy operations.

For the fast path (a block of ``n`` points of one stream), :func:`trailing`
gives the window each of those points is scored against, all at once, and
:meth:`RollingWindow.extend` / :meth:`SortedWindow.refill` leave the state
that ``n`` pushes would.
"""
from __future__ import annotations

import numpy as np

from .streaming import compiled_steps


class RollingWindow:
    """The last ``size`` points of each stream, in arrival order, as a ring buffer ``(S, W, d)``.

    Unfilled slots hold NaN.

    >>> w = RollingWindow(n_streams=2, size=3)
    >>> for t in range(4):
    ...     _ = w.push(np.array([[t], [10.0 * t]]), np.array([True, t % 2 == 0]))
    >>> np.sort(w.buffer[0, :, 0]).tolist()
    [1.0, 2.0, 3.0]
    >>> w.count.tolist(), w.last()[:, 0].tolist()
    ([3, 2], [3.0, 20.0])
    """

    def __init__(self, n_streams: int, size: int, n_features: int = 1, dtype=np.float64):
        if size < 1:
            raise ValueError("window size must be at least 1")
        self.size = int(size)
        self.buffer = np.full((n_streams, self.size, n_features), np.nan, dtype=dtype)
        self.count = np.zeros(n_streams, dtype=np.int64)
        self.next_slot = np.zeros(n_streams, dtype=np.int64)

    def push(self, X: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Append ``X[i]`` for every present stream ``i``; return the evicted points ``(S, d)`` (NaN if none)."""
        if compiled_steps():
            from .bank_kernels import window_pushes

            evicted = np.empty((len(self.count), self.buffer.shape[2]))
            window_pushes(self.buffer, self.count, self.next_slot, np.ascontiguousarray(X, dtype=self.buffer.dtype),
                          np.ascontiguousarray(present, dtype=bool), evicted)
            return evicted
        rows = np.flatnonzero(present)
        slots = self.next_slot[rows]
        evicted = np.full((len(self.count), self.buffer.shape[2]), np.nan)
        evicted[rows] = self.buffer[rows, slots]
        self.buffer[rows, slots] = X[rows]
        self.next_slot[rows] = (slots + 1) % self.size
        self.count[rows] = np.minimum(self.count[rows] + 1, self.size)
        return evicted

    def last(self) -> np.ndarray:
        """Return ``(S, d)``: each stream's most recent point (NaN if none)."""
        return self.buffer[np.arange(len(self.count)), (self.next_slot - 1) % self.size]

    def mean(self, power: int = 1) -> np.ndarray:
        """Return ``(S, d)``: the mean of each stream's filled slots raised to ``power`` (NaN if empty)."""
        from .bank_kernels import PAIRWISE_BLOCK

        if compiled_steps() and self.buffer.dtype == np.float64 and self.size <= PAIRWISE_BLOCK:
            from .bank_kernels import window_means

            out = np.empty((len(self.count), self.buffer.shape[2]))
            window_means(self.buffer, int(power), out)
            return out
        return window_mean(self.buffer, bool((self.count == self.size).all()), power)

    def history(self, row: int) -> np.ndarray:
        """Return ``(count, d)``: the row's points, oldest first."""
        n = self.count[row]
        return self.buffer[row, (self.next_slot[row] - n + np.arange(n)) % self.size]

    def extend(self, row: int, points: np.ndarray) -> None:
        """Append ``points`` ``(m, d)`` to one row, leaving the state of ``m`` calls of :meth:`push`."""
        m = len(points)
        last = points[-self.size:]
        self.buffer[row, (self.next_slot[row] + m - len(last) + np.arange(len(last))) % self.size] = last
        self.next_slot[row] = (self.next_slot[row] + m) % self.size
        self.count[row] = min(self.count[row] + m, self.size)

    def ordered(self) -> np.ndarray:
        """Return ``(S, W, d)``: each window from oldest to newest (NaN slots first while filling)."""
        idx = (self.next_slot[:, None] + np.arange(self.size)) % self.size
        return np.take_along_axis(self.buffer, idx[:, :, None], axis=1)


def window_mean(values: np.ndarray, full: bool, power: int = 1) -> np.ndarray:
    """Return ``(R, d)``: the mean over axis 1 of ``values`` ``(R, W, d)`` raised to ``power``, skipping NaN slots.

    ``full`` says that no slot is NaN (the cheaper formula).
    """
    values = values if power == 1 else values**power
    if full:
        return values.mean(axis=1)
    filled = ~np.isnan(values)
    with np.errstate(all="ignore"):
        return np.where(filled, values, 0.0).sum(axis=1) / filled.sum(axis=1)


def trailing(history: np.ndarray, points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The window each of ``n`` new points of one stream is scored against: the ``size`` points before it.

    ``history`` ``(h, d)`` holds the stream's window before the first new
    point, oldest first.  Returns ``(windows, counts)``: ``(n, size, d)``
    windows, oldest first with NaN in front while a window fills, and the
    points ``(n,)`` in each.

    >>> windows, counts = trailing(np.array([[1.0]]), np.array([[2.0], [3.0], [4.0]]), 2)
    >>> windows[:, :, 0].tolist(), counts.tolist()
    ([[nan, 1.0], [1.0, 2.0], [2.0, 3.0]], [1, 2, 2])
    """
    from numpy.lib.stride_tricks import sliding_window_view

    padded, counts = _trailing_series(history, points, size)
    return sliding_window_view(padded, size, axis=0).transpose(0, 2, 1), counts


def _trailing_series(history: np.ndarray, points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The series whose ``size``-long slices ending before each point are its trailing windows
    (NaN-padded in front while the history is shorter), and each window's count of values."""
    n, d = points.shape
    past = history[-size:]
    padded = np.concatenate([np.full((size - len(past), d), np.nan), past, points[:-1]])
    return padded, np.minimum(len(past) + np.arange(n), size)


def trailing_mean(history: np.ndarray, points: np.ndarray, size: int, power: int = 1):
    """:func:`window_mean` of the windows :func:`trailing` gives, by a compiled kernel; returns ``(means, counts)``.

    >>> means, counts = trailing_mean(np.array([[1.0]]), np.array([[2.0], [3.0], [4.0]]), 2, power=2)
    >>> means[:, 0].tolist(), counts.tolist()
    ([1.0, 2.5, 6.5], [1, 2, 2])
    """
    from .kernels import trailing_means

    n, d = points.shape
    padded, counts = _trailing_series(history, points, size)
    means = np.empty((n, d))
    if n:
        trailing_means(np.ascontiguousarray(padded, dtype=float), size, power, bool((counts == size).all()), means)
    return means, counts


class SortedWindow:
    """The last ``size`` values of each of ``R`` rows, kept sorted, so rolling quantiles cost O(R).

    Each push removes the value leaving the window and inserts the new one
    with a handful of ``(R, W)`` array operations; unfilled slots hold +inf
    at the end of each row.

    >>> s = SortedWindow(n_rows=1, size=4)
    >>> ring = RollingWindow(n_streams=1, size=4)
    >>> for v in [5.0, 1.0, 3.0, 2.0, 4.0]:
    ...     leaving = ring.push(np.array([[v]]), np.array([True]))
    ...     s.push(np.array([v]), leaving[:, 0], np.array([True]))
    >>> s.values[0].tolist()
    [1.0, 2.0, 3.0, 4.0]
    >>> float(s.quantile(0.5)[0])
    2.5
    """

    def __init__(self, n_rows: int, size: int):
        if size < 2:
            raise ValueError("a sorted window needs at least 2 slots")
        self.size = int(size)
        self.values = np.full((n_rows, self.size), np.inf)
        self.count = np.zeros(n_rows, dtype=np.int64)

    def push(self, new: np.ndarray, leaving: np.ndarray, present: np.ndarray) -> None:
        """Insert ``new[r]`` and drop ``leaving[r]`` (NaN when nothing leaves) for every present row."""
        if compiled_steps():
            from .bank_kernels import sorted_pushes

            sorted_pushes(self.values, self.count, np.ascontiguousarray(new, dtype=float),
                          np.ascontiguousarray(leaving, dtype=float), np.ascontiguousarray(present, dtype=bool))
            return
        rows = np.flatnonzero(present)
        if rows.size == 0:
            return
        every = rows.size == len(self.count)
        srt = self.values if every else self.values[rows]
        x = (new if every else new[rows])[:, None]
        old = leaving if every else leaving[rows]
        old = np.where(np.isnan(old), np.inf, old)[:, None]
        remove_at = np.count_nonzero(srt < old, axis=1)[:, None]
        insert_at = np.count_nonzero(srt < x, axis=1)[:, None] - (old < x)
        j = np.arange(self.size)[None, :]
        merged = srt.copy()
        # Values between the removed and the inserted slot move one place towards the gap.
        np.copyto(merged[:, 1:], srt[:, :-1], where=(j[:, 1:] > insert_at) & (j[:, 1:] <= remove_at))
        np.copyto(merged[:, :-1], srt[:, 1:], where=(j[:, :-1] >= remove_at) & (j[:, :-1] < insert_at))
        np.copyto(merged, x, where=j == insert_at)
        if every:
            self.values = merged
        else:
            self.values[rows] = merged
        self.count[rows] = np.minimum(self.count[rows] + 1, self.size)

    def quantile(self, q: float) -> np.ndarray:
        """Return the q-quantile (linear interpolation) of each row's filled values (NaN if empty)."""
        return sorted_quantile(self.values, self.count, q)

    def refill(self, rows: np.ndarray, last: np.ndarray) -> None:
        """Set ``rows`` to hold ``last`` ``(r, k)``, their last ``k <= size`` values (NaN slots unused), sorted."""
        filled = np.full((len(rows), self.size), np.inf)
        filled[:, : last.shape[1]] = np.where(np.isnan(last), np.inf, last)
        filled.sort(axis=1)
        self.values[rows] = filled
        self.count[rows] = (~np.isnan(last)).sum(axis=1)


def sorted_trailing(history: np.ndarray, points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The windows :func:`trailing` gives, sorted, and their counts: rows ``(n * d, size)`` laid out as :class:`SortedWindow`'s.

    Row ``i * d + j`` holds window ``i``'s field ``j`` sorted, unused slots
    +inf at the end: the same rows as sorting every window, found by sliding
    one sorted window along (a compiled kernel, O(size) per point and field
    instead of a sort of each window).

    >>> rows, counts = sorted_trailing(np.array([[3.0]]), np.array([[1.0], [2.0], [0.5]]), 2)
    >>> rows.tolist(), counts.tolist()
    ([[3.0, inf], [1.0, 3.0], [1.0, 2.0]], [1, 2, 2])
    """
    from .kernels import sorted_slides

    n, d = points.shape
    padded, counts = _trailing_series(history, points, size)
    rows = np.empty((n * d, size))
    if n:
        sorted_slides(np.ascontiguousarray(padded, dtype=float), size, rows)
    return rows, counts


def trailing_order_stats(history: np.ndarray, points: np.ndarray, size: int, levels: tuple, centre: int,
                         with_deviation: bool):
    """Order statistics of the windows :func:`sorted_trailing` gives, read in place by a compiled kernel.

    For finite ``history`` and ``points`` only (the caller falls back on
    :func:`sorted_trailing` otherwise).  Returns ``(quantiles, deviation,
    mean_deviation, counts)``, rows laid out as :func:`sorted_trailing`'s:
    ``quantiles`` ``(n * d, len(levels))`` as :func:`sorted_quantile`
    gives them; ``mean_deviation`` ``(n * d,)`` the mean absolute deviation
    around quantile ``levels[centre]``; ``deviation`` ``(n * d,)`` the lower
    median of those deviations (None unless ``with_deviation``).  No
    ``(n * d, size)`` array is written: a block of 38 fields costs the
    statistics, not the sorted copies of every window.

    >>> q, mad, mean, counts = trailing_order_stats(np.array([[3.0]]), np.array([[1.0], [2.0], [0.5]]), 2,
    ...                                             (0.5,), 0, True)
    >>> q[:, 0].tolist(), mad.tolist(), mean.tolist(), counts.tolist()
    ([3.0, 2.0, 1.5], [0.0, 1.0, 0.5], [0.0, 1.0, 0.5], [1, 2, 2])
    """
    from .kernels import sorted_window_stats

    n, d = points.shape
    padded, counts = _trailing_series(history, points, size)
    quantiles = np.empty((n * d, len(levels)))
    deviation = np.empty(n * d) if with_deviation else np.empty(0)
    mean_deviation = np.empty(n * d)
    if n:
        sorted_window_stats(np.ascontiguousarray(padded, dtype=float), size, counts, np.asarray(levels, dtype=float),
                            centre, with_deviation, quantiles, deviation, mean_deviation)
    return quantiles, deviation if with_deviation else None, mean_deviation, counts


def sorted_quantile(values: np.ndarray, count: np.ndarray, q: float) -> np.ndarray:
    """Return the q-quantile (linear interpolation) of rows of sorted ``values`` holding ``count`` values each."""
    if compiled_steps() and values.dtype == np.float64 and count.dtype == np.int64 and len(count):
        # One pass over the rows, instead of a dozen array operations holding the GIL between them.
        from .bank_kernels import sorted_quantiles

        out = np.empty(len(count))
        sorted_quantiles(np.ascontiguousarray(values), count, float(q), out)
        return out
    last = np.maximum(count - 1, 0)
    pos = q * last
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, last)
    r = np.arange(len(count))
    a, b = values[r, lo], values[r, hi]
    with np.errstate(invalid="ignore"):
        gap = np.where(np.isfinite(b - a), b - a, 0.0)
    return np.where(count > 0, a + (pos - lo) * gap, np.nan)
