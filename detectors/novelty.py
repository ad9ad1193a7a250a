"""Novelty relative to a stream's own past (record strength of a few channels), and anomalous episodes.

A point-wise surprise (a 4-sigma value, an unusual shape) happens every few
thousand points of any long stream; what an operator wants flagged is what
the stream has *not* done lately.  :class:`RecordTracker` measures, for each
channel of each stream (a field's value, its negation, a pattern distance),
how far the newest value rises above the highest value of the last
``window`` points, in units of the channel's whole range so far::

    strength = (u - max(recent u)) / (max(all u) - min(all u))

Dividing by the range makes one strength mean the same on every stream, so
one threshold fits streams of any scale, and a stream that often sets new
highs (a noisy one) has a wide range and needs a bigger jump to count.

A positive strength is a *record*.  Among ``n`` exchangeable values the
newest is the highest with probability ``1 / n``, so a record against ``n``
recent values gets the tail probability ``p = exp(-strength / scale) / n``:
records are common while a stream is young and rare once it has a history,
and each ``scale`` of range beyond the record makes one ``e`` times rarer.
The range of a young stream is still narrow, so until a stream has learned
``mature`` points its strengths are shrunk in proportion, and before it has
learned ``counts_after`` none counts at all.

**Robust learning.**  A record and a range are maxima, which one absurd
value (a submitted 1e300) would own for thousands of points, hiding every
later anomaly.  So a value is *scored* as it is but *learned* winsorised: it
may move the stream's recent record and its range by at most ``step``
ranges beyond them.  A real change of level still gets through in a few
points (each one widens the range by up to ``step``), one point cannot.  An
excursion that recurs is learned at once: a value that comes back to the
peak of an earlier excursion cut back so is learned up to that peak
(:meth:`RecordTracker._winsorised`), so a daily peak is a record on its
first two days, not on every day until the steps have climbed to it.  A
young stream (fewer than :data:`STEP_AFTER` points) learns values as they
come, its range not known yet; then its extremes are judged against the range
of its other points (:meth:`RecordTracker._judge_youth`), so an absurd *first*
value is cut back as a later one would be.

**Accepted values.**  When an operator says "not an anomaly",
:meth:`RecordTracker.accept` puts a *floor* under a stream's recent maximum:
the marked values (plus a margin) count as seen lately, so the same values
set no record, for a stated number of the stream's own points rather than
for the sliding window (which would forget the verdict as soon as the
marked points left it).

:class:`EpisodeState` turns alerts into anomalous *episodes*: a stream is in
an episode from the alert until it is back to normal (hysteresis), so every
point of an incident is marked, and the incident raises one alert.
"""
from __future__ import annotations

import math

import numpy as np

from .extremes import log_excess_probability, top_spacing_scale
from .stats import chi2_logp

__all__ = ["RecordTracker", "EpisodeState"]

#: Points a stream learns as they are before winsorised learning starts (its range needs a few points).
STEP_AFTER = 30
#: An excursion recurs when it comes within a learning step of an earlier one's peak and rises at most
#: this many times as high above the record as that one did (a larger one is another incident).
RECUR_HEIGHT = 2.0


class RecordTracker:
    """Records of ``C`` channels of ``S`` streams against their last ``window`` points.

    The recent maximum is kept as the maxima of ``n_blocks`` blocks of
    ``ceil(window / n_blocks)`` points plus the block being filled, so it
    covers between ``window - block`` and ``window`` points at a cost of
    ``n_blocks`` numbers per channel.

    Parameters
    ----------
    window : int
        Points the recent maximum covers.
    scale : float
        Record strength that makes a record ``e`` times rarer.
    warmup : int
        Points each stream skips entirely before it learns (its first values
        are often unrepresentative, e.g. distances to a still short history).
    mature : int
        Learned points before a record counts in full.
    counts_after : int
        Learned points before a record counts at all (its range is not
        known from fewer).
    n_blocks : int
        Blocks the window is split into.
    step : float
        Most a learned value may move the recent record, and the range, per
        point, in units of the range (``inf``: learn values as they are).
        Applies once a stream has learned ``STEP_AFTER`` points.
    tail_blocks : int
        Highest block maxima a channel's records' tail is learned from once
        that many blocks are filled (:mod:`detectors.extremes`): then
        ``p = P(beats the record by this much | beats it) / (n + 1)``, the
        tail never steeper than ``scale`` ranges.  0 (or too few blocks):
        the fixed ``scale`` of range units.  At least 3 when not 0.

    Examples
    --------
    >>> tracker = RecordTracker(window=8, scale=0.5, n_blocks=4).reset(n_streams=1, n_channels=1)
    >>> strengths, logps = [], []
    >>> for u in [1.0, 3.0, 2.0, 2.5, 5.0, 4.0]:
    ...     logps.append(round(float(tracker.update(np.array([[u]]), np.array([True]))[0, 0]), 3))
    ...     strengths.append(float(tracker.strength_[0, 0]))
    >>> strengths                      # 5.0 beats the recent high 3.0 by the whole range 1..3
    [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    >>> logps                          # log p = -log(4) - 1.0 / 0.5
    [0.0, 0.0, 0.0, 0.0, -3.386, 0.0]
    """

    #: Learned state and parameters added after snapshots were first written (see
    #: detectors/snapshot.py): an older snapshot is restored without them, as if nothing had been
    #: accepted, with the tail_blocks given here.
    snapshot_added = ("accepted_", "accepted_until_", "tail_blocks", "holding_", "held_", "held_until_", "cutting_",
                      "cut_", "cut_until_", "counts_after", "second_high_", "second_low_")
    #: How young a record still counts in part, how its excess is scaled and how far a point is
    #: learned past it: a snapshot saved with other values is restored with the running ones.
    snapshot_tunable = ("warmup", "mature", "counts_after", "scale", "step")

    def __init__(self, window: int, scale: float, warmup: int = 0, mature: int = 1, n_blocks: int = 16,
                 step: float = math.inf, tail_blocks: int = 0, counts_after: int = 1):
        self.step = float(step)
        self.tail_blocks = int(tail_blocks)
        self.window = int(window)
        self.scale = float(scale)
        self.warmup = int(warmup)
        self.mature = int(mature)
        self.counts_after = int(counts_after)
        self.n_blocks = int(n_blocks)

    def reset(self, n_streams: int, n_channels: int) -> "RecordTracker":
        """Forget everything; allocate state for ``n_streams`` streams of ``n_channels`` channels."""
        if self.window < 2 or self.n_blocks < 1 or self.warmup < 0 or self.mature < 1 or not self.scale > 0 \
                or not self.step > 0 or self.tail_blocks < 0 or 0 < self.tail_blocks < 3:
            raise ValueError("need window >= 2, scale > 0, step > 0, n_blocks >= 1, warmup >= 0, mature >= 1"
                             " and tail_blocks 0 or >= 3")
        self.block_ = max(1, math.ceil(self.window / self.n_blocks))
        self.maxima_ = np.full((n_streams, n_channels, self.n_blocks), -np.inf)
        self.partial_ = np.full((n_streams, n_channels), -np.inf)
        self.low_ = np.full((n_streams, n_channels), np.inf)
        self.high_ = np.full((n_streams, n_channels), -np.inf)
        self.fill_ = np.zeros(n_streams, dtype=np.int64)
        self.slot_ = np.zeros(n_streams, dtype=np.int64)
        self.seen_ = np.zeros(n_streams, dtype=np.int64)
        #: Record strengths of the last update, ``(S, C)``; 0 where no record.
        self.strength_ = np.zeros((n_streams, n_channels))
        #: Values accepted as normal (see :meth:`accept`): a floor under the recent maximum ...
        self.accepted_ = np.full((n_streams, n_channels), -np.inf)
        #: ... in force while the stream has seen fewer points than this.
        self.accepted_until_ = np.zeros(n_streams, dtype=np.int64)
        #: Held back (see :meth:`learn`): the highest value held back in the current episode, and in
        #: earlier ones (a value reached again in a later episode recurs: it is learned) ...
        self.holding_ = np.full((n_streams, n_channels), -np.inf)
        self.held_ = np.full((n_streams, n_channels), -np.inf)
        #: ... which counts while the stream has seen fewer points than this.
        self.held_until_ = np.zeros(n_streams, dtype=np.int64)
        #: Winsorised learning's cuts (see :meth:`_winsorised`): the highest value of each channel cut
        #: back to the step's reach in its current excursion (points cut in a row), and in earlier ones ...
        self.cutting_ = np.full((n_streams, n_channels), -np.inf)
        self.cut_ = np.full((n_streams, n_channels), -np.inf)
        #: ... remembered while the stream has seen fewer points than this (a window after the cut).
        self.cut_until_ = np.zeros((n_streams, n_channels), dtype=np.int64)
        #: A young channel's second highest and second lowest value (see :meth:`_judge_youth`).
        self.second_high_ = np.full((n_streams, n_channels), -np.inf)
        self.second_low_ = np.full((n_streams, n_channels), np.inf)
        return self

    def accept(self, row: int, U: np.ndarray, margin: float, lifetime: int) -> None:
        """Take the values ``U`` ``(k, C)`` of stream ``row`` as normal for its next ``lifetime`` points.

        Each channel's recent maximum is held at least at the highest accepted
        value plus ``margin`` ranges of that channel (the unit strengths are
        measured in), so a repeat of the marked values, or one a little
        larger, sets no record; NaN values accept nothing.  The margin is in
        ranges rather than in the marked excursion because by now the marked
        points have been learned: their excess over the recent maximum is gone.
        A new acceptance adds to one still in force and restarts its lifetime.

        >>> tracker = RecordTracker(window=8, scale=0.5, n_blocks=4).reset(n_streams=1, n_channels=1)
        >>> for u in [1.0, 3.0, 2.0, 2.5]:
        ...     _ = tracker.update(np.array([[u]]), np.array([True]))
        >>> tracker.accept(0, np.array([[5.0]]), margin=0.25, lifetime=100)
        >>> float(tracker.accepted_[0, 0])            # 5 + 0.25 * (3 - 1)
        5.5
        >>> _ = tracker.update(np.array([[5.4]]), np.array([True])); float(tracker.strength_[0, 0])
        0.0
        """
        U = np.asarray(U, dtype=float).reshape(-1, self.accepted_.shape[1])
        seen = np.isfinite(U).any(axis=0)
        if not seen.any():
            return
        peak = np.max(np.where(np.isfinite(U), U, -np.inf), axis=0)
        spread = self.high_[row] - self.low_[row]
        reach = margin * np.where(np.isfinite(spread), spread, 0.0)
        floor = self.accepted_[row] if self.seen_[row] < self.accepted_until_[row] else -np.inf
        self.accepted_[row] = np.where(seen, np.maximum(floor, peak + reach), floor)
        self.accepted_until_[row] = self.seen_[row] + int(lifetime)

    def acceptance(self, row: int) -> tuple[np.ndarray, int]:
        """Stream ``row``'s accepted floors and the points they still hold for (to carry them over)."""
        return self.accepted_[row].copy(), int(max(self.accepted_until_[row] - self.seen_[row], 0))

    def set_acceptance(self, row: int, floors: np.ndarray, left: int) -> None:
        """Give stream ``row`` floors from :meth:`acceptance`, holding for ``left`` more points."""
        self.accepted_[row] = floors
        # Nothing left to hold: the row is as if never taught (0), not "held until now".
        self.accepted_until_[row] = self.seen_[row] + left if left > 0 else 0

    def update(self, U: np.ndarray, present: np.ndarray, hold=None) -> np.ndarray:
        """Return the ``(S, C)`` natural-log tail probabilities of ``U`` (0 where no record), then learn it.

        ``hold`` ``(S,)``, optional: streams whose point is scored but not
        learned (see :meth:`learn`).
        """
        logp = self.score(U, present)
        self.learn(U, present, hold)
        return logp

    def score(self, U: np.ndarray, present: np.ndarray) -> np.ndarray:
        """The ``(S, C)`` log tail probabilities of ``U`` (0 where no record), sets :attr:`strength_`; learns nothing.

        :meth:`learn` with the same ``U`` and ``present`` must follow before
        the next point (together they are :meth:`update`).
        """
        learning, learned, recent, spread = self._before(present)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            strength = (U - recent) / spread
        ok = learning[:, None] & (spread > 0) & np.isfinite(strength)
        grown = np.where(learned >= self.counts_after, np.minimum(1.0, learned / self.mature), 0.0)
        strength = np.where(ok, np.maximum(strength, 0.0), 0.0) * grown[:, None]
        self.strength_ = strength
        logp = np.where(strength > 0, -np.log(np.minimum(learned, self.window))[:, None] - strength / self.scale, 0.0)
        if self.tail_blocks:
            self._learned_tail(logp, strength, recent, spread, learned)
        return logp

    def learn(self, U: np.ndarray, present: np.ndarray, hold=None) -> None:
        """Learn the point :meth:`score` just scored; on the streams ``hold`` marks, hold back its excursion.

        A held stream is in an anomalous episode: a value of its point above
        the recent record is *held back*: it moves the range (winsorised) but
        not the record, so the points of one incident do not become the record that
        the next, smaller incident of the same kind would have to beat.  A
        value the stream already reached in an earlier episode (held back
        then, within the last ``window`` points) is learned: an excursion
        seen twice recurs, and is normal (a false alarm's, a daily peak's).
        The current episode's excursion becomes an earlier one at the
        stream's next point outside an episode.
        """
        learning, learned, recent, spread = self._before(present)
        learn = learning[:, None]
        record = learn
        if hold is not None:
            # Judged and remembered as they came, not winsorised: a held excursion is the level the
            # stream reached (an absurd value held back only makes later excursions recur, as without hold).
            hold = np.asarray(hold, dtype=bool) & learning
            seen_before = np.where((self.seen_ < self.held_until_)[:, None], self.held_, -np.inf)
            with np.errstate(invalid="ignore"):
                back = hold[:, None] & (U > np.maximum(recent, seen_before))
            record = learn & ~back
            self.holding_ = np.where(back, np.maximum(self.holding_, U), self.holding_)
            free = learning & ~hold & np.isfinite(self.holding_).any(axis=1)
            if free.any():
                self.held_[free] = np.maximum(seen_before[free], self.holding_[free])
                self.held_until_[free] = self.seen_[free] + self.window
                self.holding_[free] = -np.inf
        U = self._winsorised(U, learning, recent, spread, learned)
        young = learn & (self.seen_ - self.warmup < STEP_AFTER)[:, None]
        if young.any():
            with np.errstate(invalid="ignore"):
                self.second_high_ = np.where(young, np.where(U > self.high_, self.high_,
                                                             np.maximum(self.second_high_, U)), self.second_high_)
                self.second_low_ = np.where(young, np.where(U < self.low_, self.low_,
                                                            np.minimum(self.second_low_, U)), self.second_low_)
        self.partial_ = np.where(record, np.maximum(self.partial_, U), self.partial_)
        self.low_ = np.where(learn, np.minimum(self.low_, U), self.low_)
        self.high_ = np.where(learn, np.maximum(self.high_, U), self.high_)
        grown_up = learning & (self.seen_ - self.warmup == STEP_AFTER - 1)  # this point ends their youth
        if grown_up.any() and math.isfinite(self.step):
            self._judge_youth(np.flatnonzero(grown_up))
        self.fill_ += learning
        full = np.flatnonzero(self.fill_ >= self.block_)
        if full.size:
            self.maxima_[full, :, self.slot_[full]] = self.partial_[full]
            self.slot_[full] = (self.slot_[full] + 1) % self.n_blocks
            self.partial_[full] = -np.inf
            self.fill_[full] = 0
        self.seen_ += present

    def _judge_youth(self, rows):
        """Learn the extremes of ``rows``' first :data:`STEP_AFTER` points as winsorising would have.

        A young stream learns its values as they come: its range is not known
        yet, so nothing can be cut.  Once it has learned ``STEP_AFTER``, its
        highest and its lowest value are judged against the range of the
        others: beyond it by more than ``step`` ranges, the value is learned
        as if it had come now (``step`` ranges past the others' extreme), in
        the range and in the records.  So an absurd *first* value (a 1e6
        before ordinary tens) does not own the range for good nor the record
        for the window, as it owns neither when it comes later.
        """
        high, low = self.second_high_[rows], self.second_low_[rows]
        with np.errstate(invalid="ignore", over="ignore"):
            reach = self.step * (high - low)
            judged = np.isfinite(reach) & (reach > 0)
            top = np.where(judged & (self.high_[rows] > high + reach), high + reach, np.inf)
            bottom = np.where(judged & (self.low_[rows] < low - reach), low - reach, -np.inf)
        self.high_[rows] = np.minimum(self.high_[rows], top)
        self.low_[rows] = np.maximum(self.low_[rows], bottom)
        self.partial_[rows] = np.minimum(self.partial_[rows], top)
        self.maxima_[rows] = np.minimum(self.maxima_[rows], top[:, :, None])

    def _before(self, present):
        """What a point is judged and learned against: who learns, points learned, recent record, range."""
        learning = present & (self.seen_ >= self.warmup)
        learned = np.maximum(self.seen_ - self.warmup, 1)
        # The blocks' maxima a block at a time: numpy's reduction over a short last axis costs a
        # pass per row (1.3 against 0.2 ms for 4,096 rows of 2 x 16 blocks), and maxima are exact.
        recent = self.partial_.copy()
        for block in range(self.maxima_.shape[2]):
            np.maximum(self.maxima_[:, :, block], recent, out=recent)
        accepting = self.seen_ < self.accepted_until_
        if accepting.any():
            recent = np.maximum(recent, np.where(accepting[:, None], self.accepted_, -np.inf))
        return learning, learned, recent, self.high_ - self.low_

    def update_ticks(self, U: np.ndarray, present: np.ndarray, stepped: np.ndarray, spread_channels: int = 0):
        """:meth:`update` on each stepped tick of ``U`` ``(T, S, C)``, as one compiled kernel (the fast path).

        ``present`` ``(T, S)``; ``stepped`` ``(T,)`` marks the ticks on which
        :meth:`update` would be called (the others change nothing).  Returns
        the ``(T, S, C)`` log tail probabilities (0 on ticks not stepped) and
        the range ``high_ - low_`` of the first ``spread_channels`` channels
        before each tick, ``(T, S, spread_channels)``.
        """
        from .kernels import record_ticks

        T, S, C = U.shape
        logp = np.zeros((T, S, C))
        spread = np.zeros((T, S, spread_channels))
        record_ticks(np.ascontiguousarray(U, dtype=float), np.ascontiguousarray(present, dtype=bool),
                     np.ascontiguousarray(stepped, dtype=bool), self.window, self.scale, self.warmup, self.mature,
                     self.counts_after, self.step, STEP_AFTER, RECUR_HEIGHT, self.block_, self.tail_blocks,
                     self.maxima_, self.partial_, self.low_, self.high_, self.fill_, self.slot_, self.seen_,
                     self.accepted_, self.accepted_until_, self.cutting_, self.cut_, self.cut_until_,
                     self.second_high_, self.second_low_, self.strength_, logp, spread)
        return logp, spread

    def _learned_tail(self, logp, strength, recent, spread, learned):
        """Overwrite ``logp`` of the records of channels with ``tail_blocks`` filled blocks by their learned tail."""
        rows, cols = np.nonzero(strength > 0)
        if rows.size == 0:
            return
        maxima = self.maxima_[rows, cols]
        enough = np.isfinite(maxima).sum(axis=1) >= self.tail_blocks
        rows, cols, maxima = rows[enough], cols[enough], maxima[enough]
        if rows.size == 0:
            return
        width = spread[rows, cols]
        excess = log_excess_probability(top_spacing_scale(maxima, self.tail_blocks),
                                        strength[rows, cols] * width, self.scale * width)
        logp[rows, cols] = -np.log(np.minimum(learned[rows], self.window) + 1.0) + excess

    def _winsorised(self, U, learning, recent, spread, learned):
        """``U`` clipped to at most ``step`` ranges above the recent record and below the lowest value so far.

        Keeps each channel's excursions (``cutting_``, ``cut_``, ``cut_until_``)
        as it goes.  An *excursion* is a run of a channel's points cut back so.  A value
        that comes within ``step`` ranges of the peak of an earlier excursion
        of the channel (within its last ``window`` points), and rises at most
        :data:`RECUR_HEIGHT` times as high above the record as that peak, is
        learned up to that peak: an excursion seen twice recurs (a daily
        peak), so it sets the record the second time it comes, while one
        absurd value, or one long incident, moves the record by ``step``
        ranges a point.
        """
        if not math.isfinite(self.step):
            return U
        reach = self.step * spread
        record = np.where(np.isfinite(recent), recent, self.high_)
        # Young streams and flat channels learn values as they are: their range is not known yet.
        clip = learning[:, None] & (learned >= STEP_AFTER)[:, None] & (spread > 0) & np.isfinite(spread)
        seen = self.seen_[:, None]
        earlier = np.where(seen < self.cut_until_, self.cut_, -np.inf)
        with np.errstate(invalid="ignore", over="ignore"):
            recurs = (U >= earlier - reach) & (U - record <= RECUR_HEIGHT * (earlier - record))
            upper = np.where(recurs, np.maximum(record + reach, earlier), record + reach)
            cut = clip & (U > upper)
            ended = clip & ~cut & np.isfinite(self.cutting_)
            self.cut_ = np.where(ended, np.maximum(earlier, self.cutting_), self.cut_)
            self.cut_until_ = np.where(ended, seen + self.window, self.cut_until_)
            self.cutting_ = np.where(cut, np.maximum(self.cutting_, U), np.where(ended, -np.inf, self.cutting_))
            return np.where(clip, np.clip(U, self.low_ - reach, upper), U)


class EpisodeState:
    """Which streams are in an anomalous episode: opened by an alert, closed when the stream is back to normal.

    An *alert* opens an episode on a stream that is not in one (one alert per
    incident).  While the episode lasts, a point is *abnormal* when it sets a
    record past the release level (``release``, as a tail probability, much
    laxer than an alert's), or when it lies outside the range the stream was
    expected in just before the alert *and* the point-wise evidence still
    finds it unusual at the release level.  The reference range is frozen at
    the alert, because the members adapt to a long anomaly and would soon
    take it for normal; requiring the evidence as well ends the episode of a
    stream that merely wandered on (a random walk after a false alarm).  A
    frozen range is trusted for ``memory`` points; a level held that long is
    the stream's new normal.  The episode ends at the ``settle``-th normal
    point in a row (hysteresis: entering takes an alert, leaving takes a run
    of normal points, so noise inside an incident does not split it).

    Examples
    --------
    >>> state = EpisodeState(settle=2, memory=100, release=1e-2).reset(1, 1)
    >>> centre, scale = np.zeros((1, 1)), np.ones((1, 1))
    >>> marks = []
    >>> for x, alert in [(0.1, False), (9.0, True), (8.0, False), (0.2, False), (7.0, True), (0.1, False), (0.0, False)]:
    ...     opened, episode = state.update(np.array([[x]]), np.array([alert]), np.array([0.0]), np.array([-9.0]),
    ...                                    np.array([True]), centre, scale)
    ...     marks.append((bool(opened[0]), bool(episode[0])))
    >>> marks   # the second alert falls inside the episode: no new alert; two normal points end it
    [(False, False), (True, True), (False, True), (False, True), (False, True), (False, True), (False, False)]
    """

    #: How long an episode waits for calm, how long it trusts its reference and what counts as calm:
    #: a snapshot saved with other values is restored with the running ones (detectors/snapshot.py).
    snapshot_tunable = ("settle", "memory", "release")

    def __init__(self, settle: int = 3, memory: int = 500, release: float = 1e-2):
        self.settle = int(settle)
        self.memory = int(memory)
        self.release = float(release)

    def reset(self, n_streams: int, n_features: int) -> "EpisodeState":
        """Forget all episodes; allocate state for ``n_streams`` streams of ``n_features`` fields."""
        if self.settle < 1 or self.memory < 1 or not 0.0 < self.release < 1.0:
            raise ValueError("need settle >= 1, memory >= 1 and 0 < release < 1")
        #: Whether each stream is in an episode after its last point.
        self.open_ = np.zeros(n_streams, dtype=bool)
        #: Normal points in a row inside the open episode, and points since the episode's alert.
        self.calm_ = np.zeros(n_streams, dtype=np.int64)
        self.age_ = np.zeros(n_streams, dtype=np.int64)
        #: The range expected just before the alert: its centre and spread per field.
        self.centre_ = np.zeros((n_streams, n_features))
        self.scale_ = np.ones((n_streams, n_features))
        return self

    def update(self, X, alert, novelty_logp, evidence_logp, present, centre, scale):
        """Advance every present stream by one point; return ``(alert, in_episode)``, each ``(S,)``.

        ``alert`` marks the points that reach the alert threshold,
        ``novelty_logp`` and ``evidence_logp`` are each point's log tail
        probability as a record and point-wise, ``centre`` and ``scale`` the
        ``(S, d)`` range expected for this point before it was learned.
        """
        was_open = self.open_ & present
        opens = present & alert & ~self.open_
        if was_open.any():
            rows = np.flatnonzero(was_open)
            self.age_[rows] += 1
            z = (X[rows] - self.centre_[rows]) / self.scale_[rows]
            with np.errstate(invalid="ignore", over="ignore"):
                z2 = np.nan_to_num(np.sum(z * z, axis=1), nan=np.inf, posinf=np.inf)
            level = np.log(self.release)
            outside = (chi2_logp(z2, X.shape[1]) < level) & (self.age_[rows] <= self.memory)
            abnormal = (outside & (evidence_logp[rows] < level)) | (novelty_logp[rows] < level) | alert[rows]
            self.calm_[rows] = np.where(abnormal, 0, self.calm_[rows] + 1)
            self.open_[rows] = self.calm_[rows] < self.settle
        if opens.any():
            rows = np.flatnonzero(opens)
            self.open_[rows] = True
            self.calm_[rows] = 0
            self.age_[rows] = 0
            self.centre_[rows] = centre[rows]
            self.scale_[rows] = scale[rows]
        return opens, self.open_ & present

    def leave_limit(self, n_features: int) -> float:
        """The squared standardised distance past which a point lies outside the frozen range.

        ``chi2_logp(z2, d) < log(release)`` exactly when ``z2`` exceeds it: the
        compiled episode kernel compares with it instead of calling scipy.
        """
        from scipy import special

        return float(special.chdtri(n_features, self.release))

    def close(self, rows) -> None:
        """End the episodes of ``rows`` now (an operator said they were not anomalies)."""
        self.open_[rows] = False
        self.calm_[rows] = 0
