"""Pattern novelty: how far the latest stretch of a stream lies from every earlier stretch of its history.

The detector keeps, per stream, the distance from the newest stretch of
``length`` points to the stretch that ended ``lag`` points earlier, for every
lag up to ``history`` (a "left matrix profile" of the stream), and reports
the smallest: a stretch nothing in the history resembles is new.

Two devices keep this cheap enough for thousands of streams per tick:

* **Running distances.**  The squared distance between the stretches ending
  at ``t`` and ``t - lag`` is the one for ``t - 1`` plus the newest term
  minus the oldest, so each update costs O(history) per stream, not
  O(history * length).
* **Blocks.**  Points are averaged in blocks of ``block`` points
  (piecewise aggregate approximation); the distances move once per block,
  and each stream closes its blocks on its own phase, so a tick updates
  about one stream in ``block`` and the work per tick stays flat.  Between
  block ends the unfinished block is compared with the few best matches of
  the last block only.

Block means are compared in units of their range so far, so fields of
different size weigh alike.  They are stored as float32 offsets from each
stream's first block, which halves the memory traffic; the running sums are
recomputed exactly every :data:`RESYNC` blocks, so rounding cannot pile up.

A block mean is learned winsorised (at most :data:`BLOCK_STEP` ranges beyond
the range so far) once the stream has a range, after ``2 * length / block``
blocks; until then its blocks are learned as they come, and then judged
(:meth:`PatternDetector._judge_youth`): the highest and the lowest young block
are read against the range of the others, and one so far beyond it that it
would own the range (:data:`YOUNG_TOLERANCE`) is learned as winsorising
would have learned it.  Without that, an absurd *first* value (a 1e300
before ordinary tens) would own the range for good, so every later distance
would be nil, and as the origin of the offsets it would leave them nothing
but rounding (or overflow to infinity).  The young blocks' means are kept in
float64 until they are judged, so a cut first block hands the origin on
without loss.

A stream's blocks close on a phase set by its row in the bank (row ``i``
closes its first block after ``1 + i % block`` points), which spreads the
work; its scores depend on that phase only through the block boundaries.

Averaging hides a lone spike, so the score also asks how far each new point
lies from what the nearest earlier stretch did next (the block that followed
it): a forecast error, in units of the stream's usual forecast error.
"""
from __future__ import annotations

import numpy as np

from .base import Detector
from .registry import register
from .streaming import compiled_steps
from .stats import SPREAD_FLOOR, chi2_logp, score_from_logp

__all__ = ["PatternDetector"]

#: Smallest typical distance, as a fraction of the range: exact repeats (square waves, flat lines)
#: must not make the faintest change infinitely surprising.
DISTANCE_FLOOR = 0.01
#: Weight of the newest distance in the running typical distance (about the last 64 blocks).
TYPICAL_RATE = 1.0 / 64.0
#: Lags a stream follows between block ends: its nearest match and the neighbouring lags.
CANDIDATE_OFFSETS = np.array([0, -1, 1, 2])
#: Weight of the newest point in the running mean squared forecast error (about the last 256 points).
ERROR_RATE = 1.0 / 256.0
#: Blocks between exact recomputations of a stream's running distances.
RESYNC = 256
#: Robust learning: a block mean is learned at most this many ranges beyond the range so far, a
#: squared forecast error at most this many times the usual one, and a distance at most this many
#: times the typical one, so one absurd point cannot blind a stream for its whole history.
BLOCK_STEP, ERROR_CLIP, DISTANCE_CLIP = 0.25, 100.0, 10.0
#: Young blocks, in patterns (``length / block`` blocks): a stream learns this many block means as they
#: come, then judges them (:meth:`PatternDetector._judge_youth`) and winsorises every later one.  The
#: first distance is known at the same block (a match at least a pattern back needs two patterns),
#: so nothing is read against a range the judgment will change.
YOUNG_PATTERNS = 2
#: A young extreme is judged absurd when it lies beyond the other young blocks by more than this many of
#: their ranges: then they all fit within DISTANCE_FLOOR of the range it would own, so the stream could no
#: longer tell its ordinary stretches apart (and past ~1e7 ranges float32 offsets from it hold nothing
#: but rounding).  Ten young block means of ordinary data lie within a few ranges of each other; a
#: startup value a little off is harmless and is left as it came, bit for bit.
YOUNG_TOLERANCE = 1.0 / DISTANCE_FLOOR


@register
class PatternDetector(Detector):
    """Distance from the last ``length`` points to the nearest earlier stretch within ``history`` points.

    The distance is the root-mean-square difference of the block means, in
    units of each field's range so far, read against the stream's typical
    distance ``mu`` (a running mean) as an exponential tail,
    ``p = exp(-distance / mu)``.  The forecast error of the newest point is
    read as a chi-square with one degree of freedom per field; the score is
    the rarer of the two.  :attr:`distance_` holds every stream's distance at
    its last block end, for the ensemble's novelty stage.

    Parameters
    ----------
    length : int
        Points in a pattern; a multiple of ``block``, at least two blocks.
    block : int
        Points averaged into one block.
    history : int
        How far back (in points) an earlier match is searched; a multiple of
        ``block`` and at least twice ``length``.
    warmup : int
        Points a stream must have learned before it may score above 0.
    threshold : float
        Default flag threshold on the score.

    Examples
    --------
    >>> t = np.arange(1200)
    >>> x = np.sin(2 * np.pi * t / 50) + np.random.default_rng(5).normal(0, 0.05, 1200)
    >>> x[1000:1012] = 0.0                       # the wave stalls for 12 points
    >>> det = PatternDetector(length=16, block=4, history=400)
    >>> s = det.score_series(x)
    >>> round(float(s[600:990].max()), 2), round(float(s[1000:1030].max()), 2)
    (0.13, 0.5)
    """

    name = "pattern"
    snapshot_added = ("young_blocks_",)

    def __init__(self, *, length: int = 20, block: int = 4, history: int = 1024, warmup: int = 60,
                 threshold: float = 0.5):
        super().__init__(warmup=warmup, threshold=threshold)
        self.length = int(length)
        self.block = int(block)
        self.history = int(history)

    def _allocate(self, n_streams, n_features):
        if self.block < 1 or self.length % self.block or self.length < 2 * self.block:
            raise ValueError("length must be a multiple of block and hold at least two blocks")
        if self.history % self.block or self.history < 2 * self.length:
            raise ValueError("history must be a multiple of block and at least twice length")
        m, lags = self.length // self.block, self.history // self.block
        S, d = n_streams, n_features
        self.block_sum_ = np.zeros((S, d))
        self.block_fill_ = np.zeros(S, dtype=np.int64)
        self.block_size_ = 1 + np.arange(S, dtype=np.int64) % self.block
        self.blocks_ = np.zeros(S, dtype=np.int64)
        #: Each stream's first block mean: blocks are stored as offsets from it.
        self.origin_ = np.zeros((S, d))
        #: Block means minus the origin, newest first: column j is the block j + 1 blocks before the newest.
        self.lagged_ = np.zeros((S, d, lags + m + 1), dtype=np.float32)
        #: Running squared distance per field between the newest stretch and the one ``lag`` blocks back.
        self.sqdist_ = np.zeros((S, d, lags + 1), dtype=np.float32)
        self.low_ = np.full((S, d), np.inf)
        self.high_ = np.full((S, d), -np.inf)
        self.span_ = np.ones((S, d))
        #: The lags followed between block ends: the nearest at the last block end and its neighbours (0 = none).
        self.candidates_ = np.zeros((S, len(CANDIDATE_OFFSETS)), dtype=np.int64)
        #: What the nearest earlier stretch did next: the forecast of the unfinished block.
        self.forecast_ = np.full((S, d), np.nan)
        #: Running mean squared forecast error per field.
        self.forecast_error_ = np.zeros((S, d))
        self.distance_ = np.zeros(S)
        self.typical_ = np.zeros(S)
        #: A young stream's block means (not offsets), oldest first, until they are judged (NaN: not
        #: seen here, as in a stream restored from a snapshot that lacked them: it is not judged).
        self.young_blocks_ = np.full((S, d, YOUNG_PATTERNS * m), np.nan)

    def _score_and_learn(self, X, present):
        if compiled_steps():  # the block kernel over one tick of every row: the same arithmetic
            return self._compiled(X[None], slice(0, self.n_streams_), 0)[0][0]
        rows = np.flatnonzero(present)
        at = _as_slice(rows)
        surprise = self._forecast_surprise(X, rows)
        self.block_sum_[at] += X[at]
        self.block_fill_[at] += 1
        closes = self.block_fill_[at] >= self.block_size_[at]
        closed, opened = rows[closes], rows[~closes]
        distance = self.distance_.copy()
        if closed.size:
            distance[closed] = self._close_blocks(closed)
        if opened.size:
            distance[opened] = self._provisional_distance(opened)
        ready = self.blocks_ > YOUNG_PATTERNS * (self.length // self.block)
        logp = np.minimum(-distance / np.maximum(self.typical_, DISTANCE_FLOOR), surprise)
        scores = np.where(ready, score_from_logp(logp), 0.0)
        # The typical distance learns a block once the block has been scored against it.
        old = self.typical_[closed]
        learned = np.minimum(distance[closed], np.where(old > 0, DISTANCE_CLIP * old, np.inf))
        self.typical_[closed] = np.where(old > 0, old + TYPICAL_RATE * (learned - old), learned)
        return scores

    def _score_block(self, row, points, with_range):
        """A block of stream ``row``: :meth:`_score_and_learn` point after point, in one compiled kernel."""
        raw, _ = self._compiled(points[:, None, :], slice(row, row + 1), row)
        nothing = np.full(points.shape, np.nan)
        return raw[:, 0], ((nothing, nothing) if with_range else None)

    def step_ticks(self, ticks):
        """``T`` calls of :meth:`step` (without times) over ``ticks`` ``(T, S, d)``, in one compiled kernel.

        Returns the ``(T, S)`` scores and :attr:`distance_` after each tick
        ``(T, S)`` (what the ensemble's novelty reads); leaves the state
        ``T`` steps would, the default episodes included.
        """
        T, S, _ = ticks.shape
        if T == 0:
            return np.zeros((0, S)), np.zeros((0, S))
        present = ~np.isnan(ticks).any(axis=2)
        raw, distance = self._compiled(ticks, slice(0, S), 0)
        seen_before = self.seen_ + np.concatenate([np.zeros((1, S), dtype=np.int64), np.cumsum(present, axis=0)[:-1]])
        ready = present & (seen_before >= self.warmup)
        scores = np.where(ready, np.clip(np.nan_to_num(raw, nan=0.0), 0.0, 1.0), 0.0)
        self.seen_ += present.sum(axis=0)
        self.never_negative_ &= ~(present[:, :, None] & (ticks < 0)).any(axis=0)
        self.never_positive_ &= ~(present[:, :, None] & (ticks > 0)).any(axis=0)
        # The default episodes: a run of present points at or over the threshold (Detector._update_episodes).
        flagged = present & (scores >= self.threshold)
        last = np.maximum.accumulate(np.where(present, np.arange(T)[:, None], -1), axis=0)
        runs = np.concatenate([self.episode_open_[None], flagged])
        open_before = np.take_along_axis(runs, np.concatenate([np.zeros((1, S), dtype=np.int64), last[:-1] + 1]), 0)
        self.episode_open_ = np.take_along_axis(runs, last[-1:] + 1, 0)[0].copy()
        self.is_anomaly_, self.alert_ = flagged[-1].copy(), (flagged[-1] & ~open_before[-1]).copy()
        self.time_ = np.full(S, np.nan)
        self.ticks_ += T
        self._cache_ = {}
        return scores, distance

    def _compiled(self, ticks, rows, first_row):
        """Raw scores ``(T, r)`` of the ``rows`` (a slice) over ``ticks`` ``(T, r, d)``, and the distances after each."""
        from .kernels import pattern_ticks

        T, S, d = ticks.shape
        present = ~np.isnan(ticks).any(axis=2)
        ratio, z2 = np.zeros((T, S)), np.zeros((T, S))
        surprising, ready = np.zeros((T, S), dtype=bool), np.zeros((T, S), dtype=bool)
        distance = np.zeros((T, S))
        state = (getattr(self, name)[rows] for name in (
            "block_sum_", "block_fill_", "block_size_", "blocks_", "origin_", "lagged_", "sqdist_", "low_", "high_",
            "span_", "candidates_", "forecast_", "forecast_error_", "distance_", "typical_", "young_blocks_"))
        pattern_ticks(np.ascontiguousarray(ticks), present, present.any(axis=1), first_row, self.length, self.block,
                      self.history, RESYNC, CANDIDATE_OFFSETS, DISTANCE_FLOOR, TYPICAL_RATE, ERROR_RATE, BLOCK_STEP,
                      ERROR_CLIP, DISTANCE_CLIP, SPREAD_FLOOR, YOUNG_TOLERANCE, *state,
                      ratio, z2, surprising, ready, distance)
        surprise = np.zeros((T, S))
        surprise[surprising] = chi2_logp(z2[surprising], d)
        raw = np.where(ready & present, score_from_logp(np.minimum(ratio, surprise)), 0.0)
        return raw, distance

    def _forecast_surprise(self, X, rows):
        """Log tail probability ``(S,)`` of each new point's forecast error; then learn the errors."""
        logp = np.zeros(self.n_streams_)
        at = _as_slice(rows)
        error = (X[at] - self.forecast_[at]) ** 2
        known = ~np.isnan(error).any(axis=1)
        if not known.all():
            rows, error = rows[known], error[known]
        at = _as_slice(rows) if rows.size else rows
        usual = self.forecast_error_[at]
        scale = np.maximum(usual, (SPREAD_FLOOR * (np.abs(self.forecast_[at]) + 1.0)) ** 2)
        logp[at] = np.where((usual > 0).all(axis=1), chi2_logp((error / scale).sum(axis=1), self.n_features_), 0.0)
        learned = np.minimum(error, np.where(usual > 0, ERROR_CLIP * usual, np.inf))
        self.forecast_error_[at] = np.where(usual > 0, usual + ERROR_RATE * (learned - usual), error)
        return logp

    def _summary(self, rows):
        """The means ``(r, d)`` of the rows' current (possibly unfinished) blocks, minus their origins."""
        return self.block_sum_[rows] / self.block_fill_[rows][:, None] - self.origin_[rows]

    def _provisional_distance(self, rows):
        """Distance of the stretch ending with the unfinished block, to the last block's nearest matches.

        Shifting a match by one block changes its squared distance by the
        newest term in and the oldest term out, as in :meth:`_close_blocks`,
        but only for the few lags that matched best at the last block end:
        an upper bound that follows every point.
        """
        m = self.length // self.block
        c, width, lags1 = self.n_features_, self.lagged_.shape[2], self.sqdist_.shape[2]
        fill = self.block_fill_[rows]
        # A summary of fewer points is noisier: weigh its term so its noise matches a full block's.
        weight = (2.0 * fill / (self.block + fill))[:, None, None]
        lag = self.candidates_[rows]                                     # (r, K)
        base = (rows[:, None] * c + np.arange(c)[None, :])[:, :, None]   # (r, c, 1)
        lagged, sqdist = self.lagged_.reshape(-1), self.sqdist_.reshape(-1)
        partner = lagged[base * width + (lag - 1)[:, None, :]]
        leaving = lagged[base * width + (m - 1)] - lagged[base * width + (m - 1 + lag)[:, None, :]]
        entering = self._summary(rows)[:, :, None] - partner
        moved = sqdist[base * lags1 + lag[:, None, :]] + weight * entering**2 - leaving**2
        total = np.einsum("rck,rc->rk", moved, 1.0 / self.span_[rows] ** 2)
        nearest = np.where(lag > 0, total, np.inf).min(axis=1)
        return np.where(np.isfinite(nearest), np.sqrt(np.maximum(nearest, 0.0) / m), self.distance_[rows])

    def _winsorised(self, at, summary):
        """Block means clipped to ``BLOCK_STEP`` ranges beyond the range so far, once a stream has a range."""
        low, high = self.low_[at], self.high_[at]
        reach = BLOCK_STEP * (high - low)
        grown = self.blocks_[at] >= YOUNG_PATTERNS * (self.length // self.block)
        known = grown[:, None] & np.isfinite(reach) & (reach > 0)
        with np.errstate(invalid="ignore", over="ignore"):
            clipped = np.clip(summary, low - reach, high + reach)  # all offsets from the stream's origin
        return np.where(known, clipped, summary)

    def _close_blocks(self, rows):
        """Add the rows' finished blocks to their distances; return the rows' new distances."""
        m, lags = self.length // self.block, self.history // self.block
        at = _as_slice(rows)  # a bank stepping in lock-step closes every block-th row: views, no copies
        first = np.flatnonzero(self.blocks_[at] == 0)
        if first.size:
            fresh = rows[first]
            self.origin_[fresh] = self.block_sum_[fresh] / self.block_fill_[fresh][:, None]
        summary = self._winsorised(at, self._summary(at))
        lagged, sqdist = self.lagged_[at], self.sqdist_[at]
        # Newest term in, oldest term out, for every lag at once (columns 1..lags).
        entering = summary.astype(np.float32)[:, :, None] - lagged[:, :, :lags]
        entering *= entering
        leaving = lagged[:, :, m - 1:m] - lagged[:, :, m:m + lags]
        leaving *= leaving
        entering -= leaving
        sqdist[:, :, 1:] += entering
        lagged[:, :, 1:] = lagged[:, :, :-1]
        lagged[:, :, 0] = summary
        blocks = self.blocks_[at] + 1
        young = np.flatnonzero(blocks <= self.young_blocks_.shape[2])
        if young.size:  # the block mean itself, not the offset, kept until it is judged
            self.young_blocks_[rows[young], :, blocks[young] - 1] = (
                self.block_sum_[rows[young]] / self.block_fill_[rows[young]][:, None])
        # Streams take turns (by row) to recompute their sums exactly.
        due = np.flatnonzero((blocks + rows) % RESYNC == 0)
        if due.size:
            sqdist[due] = _exact_sqdist(lagged[due], m, lags)
        low, high = np.minimum(self.low_[at], summary), np.maximum(self.high_[at], summary)
        judged = np.flatnonzero(blocks == self.young_blocks_.shape[2])
        if judged.size:  # before anything is read against the range
            self._judge_youth(rows, judged, lagged, sqdist, low, high)
        span = np.maximum(high - low, SPREAD_FLOOR * (np.abs(high) + 1.0))
        # Matches must not overlap the newest stretch (lag >= m) and must lie wholly in the past.
        if self.n_features_ == 1:
            total = sqdist[:, 0, m:] / (span**2)
        else:
            total = np.einsum("rcl,rc->rl", sqdist[:, :, m:], 1.0 / span**2)
        short = np.flatnonzero(blocks < lags + m)
        if short.size:
            total[short] = np.where(np.arange(m, lags + 1)[None, :] + m <= blocks[short, None], total[short], np.inf)
        best = np.argmin(total, axis=1)
        nearest = total[np.arange(len(best)), best]
        best += m
        known = np.isfinite(nearest)
        distance = np.where(known, np.sqrt(np.maximum(nearest, 0.0) / m), 0.0)
        # Follow the nearest match and its neighbours between block ends.
        candidates = best[:, None] + CANDIDATE_OFFSETS[None, :]
        followed = known[:, None] & (candidates >= m) & (candidates <= np.minimum(lags, blocks - m)[:, None])
        candidates = np.where(followed, candidates, 0)
        # The block that followed the nearest match (lag l) sits at column l - 1 after the shift.
        forecast = np.take_along_axis(lagged, (best - 1)[:, None, None], axis=2)[:, :, 0] + self.origin_[at]
        if not isinstance(at, slice):  # a slice gave views, already updated in place
            self.lagged_[at], self.sqdist_[at] = lagged, sqdist
        self.low_[at], self.high_[at], self.span_[at], self.blocks_[at] = low, high, span, blocks
        self.candidates_[at] = candidates
        self.forecast_[at] = np.where(known[:, None], forecast, np.nan)
        self.distance_[at] = distance
        self.block_sum_[at] = 0.0
        self.block_fill_[at] = 0
        self.block_size_[at] = self.block
        return distance

    def _judge_youth(self, rows, judged, lagged, sqdist, low, high):
        """Judge the young blocks of ``rows[judged]`` (entries ``judged`` of ``lagged``, ``sqdist``, ``low``,
        ``high``, updated in place), now that they have a range.

        A young stream learns its block means as they come: its range is not
        known yet, so nothing can be cut.  Once it has learned
        :data:`YOUNG_PATTERNS` patterns of blocks, its highest and its lowest
        block, field by field, are judged against the range of the others:
        beyond it by more than :data:`YOUNG_TOLERANCE` of those ranges it
        would own the range, so it is learned as winsorising would have
        learned it later (:data:`BLOCK_STEP` ranges past the others' extreme),
        in the range and in the stored blocks, and as one such point is when
        it comes later.  A cut first block hands the origin on at its cut
        value, so the offsets are again those of ordinary values; the field's
        stored blocks are rewritten from the kept means and its running sums
        recomputed exactly.  A field with nothing to cut is left as it is, bit
        for bit.
        """
        m, lags = self.length // self.block, self.history // self.block
        where = rows[judged]
        young = self.young_blocks_[where]                                  # (r, d, n), oldest first
        ordered = np.sort(young, axis=2)
        second_low, second_high = ordered[:, :, 1], ordered[:, :, -2]
        with np.errstate(invalid="ignore", over="ignore"):
            others = second_high - second_low
            reach = BLOCK_STEP * others
            bottom = np.where(ordered[:, :, 0] < second_low - YOUNG_TOLERANCE * others, second_low - reach, -np.inf)
            top = np.where(ordered[:, :, -1] > second_high + YOUNG_TOLERANCE * others, second_high + reach, np.inf)
            cut = (np.isfinite(reach) & (reach > 0) & ~np.isnan(young).any(axis=2)
                   & (np.isfinite(bottom) | np.isfinite(top)))
        self.young_blocks_[where] = np.nan  # judged once: not needed again
        r, f = np.nonzero(cut)
        if not r.size:
            return
        means = np.clip(young[r, f], bottom[r, f, None], top[r, f, None])  # (k, n)
        origin = means[:, 0]  # the first block as learned now (itself, unless it was cut)
        offsets = means - origin[:, None]
        i = judged[r]
        self.origin_[where[r], f] = origin
        lagged[i, f, :offsets.shape[1]] = offsets[:, ::-1]  # newest first
        sqdist[i, f] = _exact_sqdist(lagged[i, f][:, None], m, lags)[:, 0]
        low[i, f], high[i, f] = offsets.min(axis=1), offsets.max(axis=1)


def _exact_sqdist(lagged: np.ndarray, m: int, lags: int) -> np.ndarray:
    """Squared distances ``(r, d, lags + 1)`` between the newest ``m`` blocks and those ``lag`` blocks back."""
    exact = np.zeros(lagged.shape[:2] + (lags + 1,), dtype=lagged.dtype)
    for j in range(m):
        diff = lagged[:, :, j:j + 1].astype(np.float64) - lagged[:, :, j:j + lags + 1]
        exact += diff * diff
    return exact


def _as_slice(rows: np.ndarray):
    """Return ``rows`` as a slice when they are evenly spaced (so indexing gives views), else unchanged."""
    if rows.size == 1:
        return slice(int(rows[0]), int(rows[0]) + 1)
    step = int(rows[1] - rows[0])
    if step > 0 and (np.diff(rows) == step).all():
        return slice(int(rows[0]), int(rows[-1]) + 1, step)
    return rows
