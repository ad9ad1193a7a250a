"""Novelty relative to a stream's own past: record strength of a few channels, and an alarm hold-off.

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
``mature`` points its strengths are shrunk in proportion.

:class:`HoldOff` keeps one event from raising a burst of alarms: after an
alarm, a stream's novelty is ignored for a few points.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["RecordTracker", "HoldOff"]


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
    n_blocks : int
        Blocks the window is split into.

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

    def __init__(self, window: int, scale: float, warmup: int = 0, mature: int = 1, n_blocks: int = 16):
        self.window = int(window)
        self.scale = float(scale)
        self.warmup = int(warmup)
        self.mature = int(mature)
        self.n_blocks = int(n_blocks)

    def reset(self, n_streams: int, n_channels: int) -> "RecordTracker":
        """Forget everything; allocate state for ``n_streams`` streams of ``n_channels`` channels."""
        if self.window < 2 or self.n_blocks < 1 or self.warmup < 0 or self.mature < 1 or not self.scale > 0:
            raise ValueError("need window >= 2, scale > 0, n_blocks >= 1, warmup >= 0 and mature >= 1")
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
        return self

    def update(self, U: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Return the ``(S, C)`` natural-log tail probabilities of ``U`` (0 where no record), then learn it."""
        learning = present & (self.seen_ >= self.warmup)
        learned = np.maximum(self.seen_ - self.warmup, 1)
        recent = np.maximum(self.maxima_.max(axis=2), self.partial_)
        spread = self.high_ - self.low_
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            strength = (U - recent) / spread
        ok = learning[:, None] & (spread > 0) & np.isfinite(strength)
        strength = np.where(ok, np.maximum(strength, 0.0), 0.0) * np.minimum(1.0, learned / self.mature)[:, None]
        self.strength_ = strength
        logp = np.where(strength > 0, -np.log(np.minimum(learned, self.window))[:, None] - strength / self.scale, 0.0)

        learn = learning[:, None]
        self.partial_ = np.where(learn, np.maximum(self.partial_, U), self.partial_)
        self.low_ = np.where(learn, np.minimum(self.low_, U), self.low_)
        self.high_ = np.where(learn, np.maximum(self.high_, U), self.high_)
        self.fill_ += learning
        full = np.flatnonzero(self.fill_ >= self.block_)
        if full.size:
            self.maxima_[full, :, self.slot_[full]] = self.partial_[full]
            self.slot_[full] = (self.slot_[full] + 1) % self.n_blocks
            self.partial_[full] = -np.inf
            self.fill_[full] = 0
        self.seen_ += present
        return logp


class HoldOff:
    """After an alarm, ignore a stream's novelty for its next ``ticks`` points, unless it escalates.

    A point held off is one whose score does not exceed the score of the
    alarm that started the hold-off: a much rarer event right after a
    small one still raises its own alarm (and restarts the hold-off).

    Examples
    --------
    >>> hold = HoldOff(ticks=2).reset(1)
    >>> [bool(hold.update(np.array([s]), np.array([True]), 0.5)[0]) for s in (0.9, 0.9, 0.9, 0.9, 0.1)]
    [False, True, True, False, True]
    >>> hold = HoldOff(ticks=2).reset(1)
    >>> [bool(hold.update(np.array([s]), np.array([True]), 0.5)[0]) for s in (0.7, 0.95, 0.9, 0.9)]
    [False, False, True, True]
    """

    def __init__(self, ticks: int):
        self.ticks = int(ticks)

    def reset(self, n_streams: int) -> "HoldOff":
        """Forget all alarms; allocate state for ``n_streams`` streams."""
        if self.ticks < 0:
            raise ValueError("hold-off ticks must be non-negative")
        self.quiet_ = np.zeros(n_streams, dtype=np.int64)
        self.alarm_score_ = np.zeros(n_streams)
        return self

    def update(self, scores: np.ndarray, present: np.ndarray, threshold: float) -> np.ndarray:
        """Return which present rows are held off on this tick; rows at or above ``threshold`` start a hold-off."""
        quiet = present & (self.quiet_ > 0)
        self.quiet_[quiet] -= 1
        held = quiet & (scores <= self.alarm_score_)
        alarm = present & ~held & (scores >= threshold)
        self.quiet_[alarm] = self.ticks
        self.alarm_score_[alarm] = scores[alarm]
        return held
