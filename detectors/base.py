"""The detector contract: a bank of independent per-stream detectors scored in one step.

A detector here is not one model for one series: it holds the state of ``S``
streams with ``d`` numeric fields each, and scores one *tick* (one new point per
stream) with a handful of vectorised numpy operations.  Every detector is

* **causal and prequential** -- :meth:`Detector.step` scores each point from the
  state built by earlier points, then learns from it;
* **masked** -- a row of ``X`` holding any NaN means "no point for this stream
  on this tick": its score is 0 and its state does not change;
* **warmed up** -- a stream that has learned fewer than ``warmup`` points scores 0;
* **calibrated** -- scores lie in [0, 1] and read as ``1 - p``, where ``p`` is
  the tail probability of the point under the detector's model of normal
  behaviour, so one threshold means roughly the same false-alarm rate for
  every detector;
* **stateful about incidents** -- after each tick, :attr:`is_anomaly_` says
  which streams are in an anomalous episode and :attr:`alert_` which ones
  started one on this tick (one alert per incident).  By default a point is
  anomalous when its score reaches :attr:`threshold`, and an episode is a run
  of such points; the ensemble keeps episodes with hysteresis instead.

Time is optional.  ``step(X, timestamps)`` may give each stream's point time
(``(S,)`` seconds since the Unix epoch, UTC, or ``datetime64``; NaN or NaT
where unknown); a detector whose ``uses_time`` is True reads it as
``self.time_`` inside :meth:`_score_and_learn` (a seasonal profile), every
other detector ignores it, and a caller that passes no times gets NaN times.

Expected ranges keep a series' sign: while every value a stream has shown in
a field is >= 0, the lower end of that field's range is at least 0 (and
likewise for <= 0), whatever the detector's model says; subclasses' ranges
are wrapped to do so.

Subclasses implement :meth:`_allocate` (create state for ``S`` streams) and
:meth:`_score_and_learn` (score the present rows, then update them); a joint
model may implement :meth:`field_contributions` to say which fields made
the last tick's score.

**The fast path.**  :meth:`Detector.step_block` scores ``T`` successive points
of *one* stream (a file, a replay, a submitted batch) and returns what ``T``
calls of :meth:`step` in which only that stream has a point would, leaving
the same state behind.  A detector whose statistics are exactly
vectorisable over time implements :meth:`_score_block` (see there); every
other one is stepped point by point, so the block path is never an
approximation.  :meth:`score_series`, :meth:`label_series` and
:meth:`score_many` score each series as one block.
"""
from __future__ import annotations

from typing import ClassVar

import functools
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Block", "Detector", "NotResetError", "as_epoch_seconds"]

#: Most numbers a vectorised block holds in one temporary array (windows x fields x points): the
#: block is scored in chunks of points so that memory stays bounded at any length.
BLOCK_NUMBERS = 1 << 21


def as_epoch_seconds(timestamps, n: int) -> np.ndarray:
    """Return ``(n,)`` float seconds since the Unix epoch from None, numbers or ``datetime64`` (NaN where unknown).

    >>> as_epoch_seconds(np.array(["1970-01-02T00:00", "NaT"], dtype="datetime64[s]"), 2).tolist()
    [86400.0, nan]
    >>> as_epoch_seconds(None, 2).tolist()
    [nan, nan]
    """
    if timestamps is None:
        return np.full(n, np.nan)
    t = np.asarray(timestamps)
    if np.issubdtype(t.dtype, np.datetime64):
        ns = t.astype("datetime64[ns]")
        seconds = ns.astype(np.int64) / 1e9
        t = np.where(np.isnat(ns), np.nan, seconds)
    t = np.asarray(t, dtype=float).reshape(-1)
    if t.shape != (n,):
        raise ValueError(f"expected {n} timestamps, got {t.size}")
    return t


class NotResetError(RuntimeError):
    """Raised when a detector is stepped before :meth:`Detector.reset`."""


@dataclass
class Block:
    """What :meth:`Detector.step_block` returns for ``T`` points of one stream.

    ``scores``, ``is_anomaly`` and ``alert`` are ``(T,)``: the stream's row of
    the score, :attr:`Detector.is_anomaly_` and :attr:`Detector.alert_` after
    each point.  ``traces`` holds what the caller asked to follow point by
    point (see :meth:`Detector.step_block`), each with ``T`` rows.
    """

    scores: np.ndarray
    is_anomaly: np.ndarray
    alert: np.ndarray
    traces: dict = field(default_factory=dict)


class Traces:
    """What :meth:`Detector.step_block` follows point by point: a range before each tick, attributes after it."""

    def __init__(self, names):
        self.names = tuple(names)
        self.wants_range = "range" in self.names
        self._values = {name: [] for name in self.names}

    def add_range(self, expected) -> None:
        """Record one stream's ``(low, high)`` before a tick (None when the detector has no range)."""
        self._values["range"].append(expected)

    def add_after(self, det: "Detector", row: int) -> None:
        """Record stream ``row``'s value of every followed attribute after a tick."""
        for name in self.names:
            if name != "range":
                self._values[name].append(np.array(getattr(det, name)[row], copy=True))

    def collect(self) -> dict:
        """Return ``{name: (T, ...) array}``, and ``"range"`` as ``(low, high)`` or None."""
        out = {name: np.stack(values) if values else np.zeros(0)
               for name, values in self._values.items() if name != "range"}
        if self.wants_range:
            ranges = self._values["range"]
            out["range"] = None if not ranges or ranges[0] is None else tuple(np.stack(p) for p in zip(*ranges))
        return out


class Detector:
    """Base class of every detector bank.

    Parameters
    ----------
    warmup : int
        Points a stream must have learned before it may score above 0.
    threshold : float
        Default flag threshold on the calibrated score.

    Notes
    -----
    ``__init__`` only stores parameters (scikit-learn's convention); learned
    state lives in attributes ending in ``_`` and is created by :meth:`reset`.
    """

    name: ClassVar[str] = "base"
    #: Whether the detector models all fields jointly (True) or needs d == 1.
    multivariate: ClassVar[bool] = True
    #: Whether the detector reads the points' times (``self.time_``); others ignore them.
    uses_time: ClassVar[bool] = False
    #: Whether a lone extreme point is among what the detector scores; False for shape-only
    #: detectors (discords), which contract checks of single spikes skip.
    scores_points: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Every detector's range keeps the series' sign, without each one repeating the rule.
        own = cls.__dict__.get("expected_range")
        if own is not None and not getattr(own, "_keeps_sign", False):
            @functools.wraps(own)
            def expected_range(self, _own=own):
                return self._keep_sign(_own(self))
            expected_range._keeps_sign = True
            cls.expected_range = expected_range

    def __init__(self, *, warmup: int = 30, threshold: float = 0.5):
        self.warmup = int(warmup)
        self.threshold = float(threshold)

    # -- public API -----------------------------------------------------
    def get_params(self) -> dict:
        """Return the constructor parameters (enough to build a twin)."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def clone(self) -> "Detector":
        """Return a fresh, un-reset detector with the same parameters."""
        return type(self)(**self.get_params())

    def reset(self, n_streams: int, n_features: int = 1) -> "Detector":
        """Forget everything and allocate state for ``n_streams`` streams of ``n_features`` fields."""
        if n_streams < 1 or n_features < 1:
            raise ValueError("n_streams and n_features must be at least 1")
        if n_features > 1 and not self.multivariate:
            raise ValueError(f"{self.name} scores univariate streams only")
        self.n_streams_ = int(n_streams)
        self.n_features_ = int(n_features)
        self.seen_ = np.zeros(n_streams, dtype=np.int64)
        self.ticks_ = 0
        #: Per stream and field: whether every value seen so far was >= 0 (resp. <= 0).
        self.never_negative_ = np.ones((n_streams, n_features), dtype=bool)
        self.never_positive_ = np.ones((n_streams, n_features), dtype=bool)
        self.time_ = np.full(n_streams, np.nan)
        self._cache_ = {}
        #: Per stream, after the last tick: in an anomalous episode, and whether the episode started then.
        self.is_anomaly_ = np.zeros(n_streams, dtype=bool)
        self.alert_ = np.zeros(n_streams, dtype=bool)
        #: Per stream, whether its last present point was anomalous (episodes persist across absent ticks).
        self.episode_open_ = np.zeros(n_streams, dtype=bool)
        self._allocate(self.n_streams_, self.n_features_)
        return self

    def step(self, X, timestamps=None) -> np.ndarray:
        """Score one tick, then learn it; return an ``(S,)`` array of scores in [0, 1].

        ``timestamps`` (optional, ``(S,)``): each point's time, see the module
        docstring; only detectors with ``uses_time`` read it.
        """
        X = self._check_tick(X)
        return self._tick(X, as_epoch_seconds(timestamps, self.n_streams_), self._score_and_learn)

    def _tick(self, X: np.ndarray, times: np.ndarray, score_and_learn) -> np.ndarray:
        """One tick's bookkeeping around ``score_and_learn(X, present)`` (the detector's own model)."""
        self.time_ = times
        present = ~np.isnan(X).any(axis=1)
        scores = np.zeros(self.n_streams_)
        if present.any():
            raw = score_and_learn(X, present)
            ready = present & (self.seen_ >= self.warmup)
            # Clipped first, then NaN to 0: what nan_to_num's then clip's values give (an infinity clips to 0 or
            # 1 either way) in two array passes, not nan_to_num's half dozen (eight members a tick, each bank).
            kept = np.clip(raw[ready], 0.0, 1.0)
            kept[np.isnan(kept)] = 0.0
            scores[ready] = kept
            self.seen_[present] += 1
            self.never_negative_ &= ~(present[:, None] & (X < 0))
            self.never_positive_ &= ~(present[:, None] & (X > 0))
        self._update_episodes(scores, present)
        self.ticks_ += 1
        return scores

    def state_bytes(self) -> int:
        """Return the bytes of every numpy array of learned state this detector holds (members included)."""
        return _array_bytes(self, set())

    def expected_range(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Return ``(lower, upper)``, each ``(S, d)``: the range the *next* point is expected in.

        Detectors without a natural per-field range return None.
        """
        return None

    def field_contributions(self) -> np.ndarray | None:
        """Return ``(S, d)``: each field's share of the last tick's raw statistic (rows sum to it).

        For explanations ("which fields made this point anomalous"); only joint
        models that can split their statistic by field implement it, the others
        return None.  A row is 0 where the stream had no point on the last tick.
        """
        return None

    def score_series(self, values, timestamps=None) -> np.ndarray:
        """Score one series causally, as one block (:meth:`step_block`).

        ``values`` is ``(T,)`` or ``(T, d)``, ``timestamps`` ``(T,)``.
        """
        return self.score_many([values], None if timestamps is None else [timestamps])[0]

    def label_series(self, values, timestamps=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score one series causally; return ``(scores, is_anomaly, alert)``, each ``(T,)``."""
        scores, anomalous, alerts = self._run([values], None if timestamps is None else [timestamps], True)
        return scores[0], anomalous[0], alerts[0]

    def score_many(self, series: list, timestamps: list | None = None) -> list[np.ndarray]:
        """Score several independent series at once, each as its own stream.

        The series are stacked as streams of one bank and padded with NaN, so
        a short series simply stops learning when it ends.  ``timestamps``, if
        given, holds one array of times per series (see :meth:`step`).
        """
        return self._run(series, timestamps)[0]

    def _run(self, series: list, timestamps: list | None = None, with_episodes: bool = False):
        """Score the series as streams ``0 .. n-1`` of one bank.

        One series, or a detector whose block path is vectorised, is scored
        series by series, each as one block.  Several series through a
        detector that would step point by point anyway are stepped together,
        one tick for all of them: a bank tick costs about what a one-stream
        tick does, so the dataset costs its longest series, not the sum.
        Both give the same scores.
        """
        arrays = [np.asarray(s, dtype=float) for s in series]
        arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
        if not arrays:
            return [], [], []
        d = arrays[0].shape[1]
        if any(a.ndim != 2 or a.shape[1] != d for a in arrays):
            raise ValueError("all series must have the same number of fields")
        if timestamps is not None and len(timestamps) != len(arrays):
            raise ValueError("give one array of timestamps per series")
        self.reset(len(arrays), d)
        if len(arrays) == 1 or self._vectorised((), 0):
            blocks = [self.step_block(a, None if timestamps is None else timestamps[i], row=i)
                      for i, a in enumerate(arrays)]
            return ([b.scores for b in blocks], [b.is_anomaly for b in blocks], [b.alert for b in blocks])
        return self._run_ticks(arrays, timestamps, with_episodes)

    def _run_ticks(self, arrays: list, timestamps: list | None, with_episodes: bool):
        """Step several series together, padded with NaN, so a short series simply stops learning when it ends."""
        length, d = max(len(a) for a in arrays), arrays[0].shape[1]
        padded = np.full((length, len(arrays), d), np.nan)
        for i, a in enumerate(arrays):
            padded[: len(a), i] = a
        times = None
        if timestamps is not None:
            times = np.full((length, len(arrays)), np.nan)
            for i, (a, ts) in enumerate(zip(arrays, timestamps)):
                times[: len(a), i] = as_epoch_seconds(ts, len(a))
        out = np.empty((length, len(arrays)))
        anomalous = np.zeros((length, len(arrays)), dtype=bool)
        alerts = np.zeros((length, len(arrays)), dtype=bool)
        for t in range(length):
            out[t] = self.step(padded[t], None if times is None else times[t])
            if with_episodes:
                anomalous[t], alerts[t] = self.is_anomaly_, self.alert_
        cut = [slice(0, len(a)) for a in arrays]
        return tuple([m[c, i].copy() for i, c in enumerate(cut)] for m in (out, anomalous, alerts))

    def step_block(self, X, timestamps=None, *, row: int = 0, trace=()) -> Block:
        """Score ``T`` successive points of stream ``row``, as ``T`` calls of :meth:`step` would, and learn them.

        ``X`` is ``(T, d)`` (or ``(T,)`` for one field), NaN rows are ticks
        without a point; ``timestamps`` ``(T,)`` as for :meth:`step`.  The
        other streams of the bank sit out every one of those ticks, so the
        result, and the state left behind, are those of ``T`` steps in which
        only ``row`` has a point.

        ``trace`` names what to follow point by point, returned in
        :attr:`Block.traces`: ``"range"`` gives ``(low, high)``, each ``(T, d)``,
        the detector's own expected range just before each point (before the
        sign rule of :meth:`expected_range`); any other name is a per-stream
        attribute, read after each point.  A detector with an exact
        vectorised path (:meth:`_score_block`) takes it when it can supply
        the trace; otherwise it steps point by point.
        """
        X, times, empty = self._open_block(X, timestamps, row, trace)
        if empty is not None:
            return empty
        if self._vectorised(trace, row):
            return self._vector_block(X, times, row, "range" in trace)
        if self.n_streams_ > 1:
            return self._on_twin(X, times, row, tuple(trace))
        return self._looped_block(X, times, row, tuple(trace))

    def _open_block(self, X, timestamps, row: int, trace):
        """Check a block's arguments; return ``(X, times, empty)``, ``empty`` the result of a block without points."""
        X = self._check_block(X)
        times = as_epoch_seconds(timestamps, len(X))
        if not 0 <= row < self.n_streams_:
            raise ValueError(f"{self.name}: row {row} is not one of the bank's {self.n_streams_} streams")
        if len(X):
            return X, times, None
        return X, times, Block(np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool), Traces(trace).collect())

    def own_expected_range(self):
        """Return :meth:`expected_range` as the detector's model gives it, before the sign rule."""
        method = type(self).expected_range
        return getattr(method, "__wrapped__", method)(self)

    def _vectorised(self, trace, row: int) -> bool:
        """Whether a block of stream ``row`` may take the fast path, following ``trace``."""
        return (type(self)._score_block is not Detector._score_block
                and type(self)._update_episodes is Detector._update_episodes
                and set(trace) <= {"range"} and self._can_block(row))

    def _independent_streams(self, n_active: int) -> bool:
        """Whether ``n_active`` streams with points on the same ticks score as each would alone (default: yes)."""
        return True

    def _can_block(self, row: int) -> bool:
        """Whether :meth:`_score_block` is exact for stream ``row`` in the bank's present state (default: yes)."""
        return True

    def _on_twin(self, X: np.ndarray, times: np.ndarray, row: int, trace: tuple) -> Block:
        """Score a block of one stream of a large bank on a one-stream twin, then copy its state back.

        A step costs as much for a bank of 10,000 streams with one point as
        for one stream: the twin makes a block's steps cost one stream's.
        """
        twin = self.clone().reset(1, self.n_features_)
        copy_stream_rows(twin, self, [0], [row], 1, self.n_streams_)
        copy_drawn_settings(twin, self)
        twin.ticks_ = self.ticks_
        block = twin.step_block(X, times, row=0, trace=trace)
        copy_stream_rows(self, twin, [row], [0], self.n_streams_, 1)
        self._others_sat_out(row, X)
        return block

    def _others_sat_out(self, row: int, X: np.ndarray) -> None:
        """Leave the other streams as ``len(X)`` ticks without their point would (``X``: stream ``row``'s points).

        Called after a block computed away from the bank (on a twin): what a
        tick sets for every stream, a stream without a point included.
        """
        if len(X) == 0:
            return
        others = np.arange(self.n_streams_) != row
        self.is_anomaly_[others] = False
        self.alert_[others] = False
        self.time_[others] = np.nan
        self.ticks_ += len(X)
        self._cache_ = {}

    def _looped_block(self, X: np.ndarray, times: np.ndarray, row: int, trace: tuple) -> Block:
        """The reference path: one :meth:`step` per point, every other stream absent."""
        T = len(X)
        scores = np.zeros(T)
        anomalous, alerts = np.zeros(T, dtype=bool), np.zeros(T, dtype=bool)
        followed = Traces(trace)
        for t in range(T):
            tick, when = self._one_point(row, X[t], times[t])
            if followed.wants_range:
                expected = self.own_expected_range()
                followed.add_range(None if expected is None else (expected[0][row], expected[1][row]))
            scores[t] = self.step(tick, when)[row]
            anomalous[t], alerts[t] = self.is_anomaly_[row], self.alert_[row]
            followed.add_after(self, row)
        return Block(scores, anomalous, alerts, followed.collect())

    def _one_point(self, row: int, x: np.ndarray, time: float) -> tuple[np.ndarray, np.ndarray]:
        """A tick ``(S, d)`` and its times ``(S,)`` in which only stream ``row`` has a point."""
        tick = np.full((self.n_streams_, self.n_features_), np.nan)
        tick[row] = x
        when = np.full(self.n_streams_, np.nan)
        when[row] = time
        return tick, when

    def _vector_block(self, X: np.ndarray, times: np.ndarray, row: int, with_range: bool) -> Block:
        """The fast path: :meth:`_score_block` over the present points in chunks, then the base bookkeeping."""
        T, (S, d) = len(X), (self.n_streams_, self.n_features_)
        at = np.flatnonzero(~np.isnan(X).any(axis=1))
        points = X[at]
        raw = np.empty(len(at))
        low, high = np.full((T, d), np.nan), np.full((T, d), np.nan)
        chunk = max(64, BLOCK_NUMBERS // (d * self._block_width()))
        # The chunk that completes the windows ends there: a full window and a filling one are
        # computed by different (equal up to rounding) formulas, as the step does.
        cuts = sorted({0, len(at), *range(min(self._points_to_fill(row), len(at)), len(at), chunk),
                       *range(0, min(self._points_to_fill(row), len(at)), chunk)})
        for a, b in zip(cuts[:-1], cuts[1:]):
            raw[a:b], expected = self._score_block(row, points[a:b], with_range)
            if with_range:
                low[at[a:b]], high[at[a:b]] = expected
        self._cache_ = {}
        ready = self.seen_[row] + np.arange(len(at)) >= self.warmup
        kept = np.where(ready, np.clip(np.nan_to_num(raw, nan=0.0), 0.0, 1.0), 0.0)
        self.seen_[row] += len(at)
        self.never_negative_[row] &= ~(points < 0).any(axis=0)
        self.never_positive_[row] &= ~(points > 0).any(axis=0)
        # The default episode rule over the block: a run of points at or over the threshold.
        flagged = kept >= self.threshold
        before = np.concatenate([[self.episode_open_[row]], flagged[:-1]])
        if len(at):
            self.episode_open_[row] = flagged[-1]
        scores = np.zeros(T)
        anomalous, alerts = np.zeros(T, dtype=bool), np.zeros(T, dtype=bool)
        scores[at], anomalous[at], alerts[at] = kept, flagged, flagged & ~before
        self.is_anomaly_, self.alert_ = np.zeros(S, dtype=bool), np.zeros(S, dtype=bool)
        self.is_anomaly_[row], self.alert_[row] = anomalous[-1], alerts[-1]
        self.time_ = np.full(S, np.nan)
        self.time_[row] = times[-1]
        self.ticks_ += T
        return Block(scores, anomalous, alerts, {"range": (low, high)} if with_range else {})

    # -- for subclasses ---------------------------------------------------
    def _update_episodes(self, scores: np.ndarray, present: np.ndarray) -> None:
        """Set :attr:`is_anomaly_` and :attr:`alert_` for this tick: by default a run of scores at or over the threshold."""
        flagged = present & (scores >= self.threshold)
        self.alert_ = flagged & ~self.episode_open_
        self.is_anomaly_ = flagged
        self.episode_open_ = np.where(present, flagged, self.episode_open_)

    def _per_tick(self, key: str, compute):
        """Return ``compute()``, computed once per tick: statistics shared by expected_range() and step()."""
        hit = self._cache_.get(key)
        if hit is None or hit[0] != self.ticks_:
            hit = self._cache_[key] = (self.ticks_, compute())
        return hit[1]

    def _allocate(self, n_streams: int, n_features: int) -> None:
        raise NotImplementedError

    def _keep_sign(self, expected):
        """Raise the low ends of never-negative fields to 0 and lower the high ends of never-positive ones."""
        if expected is None:
            return None
        low, high = expected
        seen = (self.seen_ > 0)[:, None]
        return (np.where(seen & self.never_negative_, np.maximum(low, 0.0), low),
                np.where(seen & self.never_positive_, np.minimum(high, 0.0), high))

    def _score_and_learn(self, X: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Return raw calibrated scores ``(S,)`` for present rows, then update their state."""
        raise NotImplementedError

    def _score_block(self, row: int, points: np.ndarray, with_range: bool):
        """Return the raw scores ``(n,)`` of ``n`` successive present points of stream ``row``, and learn them.

        Optional, for the fast path: a detector that implements it returns
        exactly what ``n`` calls of :meth:`_score_and_learn` would (up to
        floating-point rounding) and leaves the same state; with
        ``with_range`` also ``(low, high)``, each ``(n, d)``, its own expected
        range before each point, else None.  The base class handles warm-up,
        clipping, the sign flags and the episodes.
        """
        raise NotImplementedError

    def _block_width(self) -> int:
        """Numbers per field and point the fast path's temporary arrays hold (a window's length)."""
        return 1

    def _points_to_fill(self, row: int) -> int:
        """Present points before stream ``row``'s windows are full (0 when they are, or have none)."""
        return 0

    def _as_rows(self, X, call: str) -> np.ndarray:
        """``X`` as float rows of points (a 1-D array is one field's values), once the detector is reset."""
        if not hasattr(self, "n_streams_"):
            raise NotResetError(f"{self.name}: call reset(n_streams, n_features) before {call}()")
        X = np.asarray(X, dtype=float)
        return X[:, None] if X.ndim == 1 and self.n_features_ == 1 else X

    def _check_block(self, X) -> np.ndarray:
        X = self._as_rows(X, "step_block")
        if X.ndim != 2 or X.shape[1] != self.n_features_:
            raise ValueError(f"{self.name}: expected a block of shape (T, {self.n_features_}), got {X.shape}")
        return X

    def _check_tick(self, X) -> np.ndarray:
        X = self._as_rows(X, "step")
        if X.shape != (self.n_streams_, self.n_features_):
            raise ValueError(
                f"{self.name}: expected a tick of shape {(self.n_streams_, self.n_features_)}, got {X.shape}"
            )
        return X

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def copy_stream_rows(dst, src, dst_rows, src_rows, dst_streams: int, src_streams: int) -> None:
    """Copy the per-stream state of ``src_rows`` of ``src`` into ``dst_rows`` of ``dst``.

    Works on any detector whose per-stream state lives in numpy arrays whose
    first axis holds ``k`` rows per stream (stream ``i`` owns rows
    ``i*k .. i*k+k-1``), possibly inside helper objects and lists: the bank
    grows, or a reused row starts afresh, without knowing the detector.
    """
    dst_rows, src_rows = np.asarray(dst_rows), np.asarray(src_rows)
    if isinstance(dst, np.ndarray):
        return
    items = dst.__dict__.items() if hasattr(dst, "__dict__") else enumerate(dst)
    for key, dst_value in list(items):
        src_value = src.__dict__[key] if hasattr(src, "__dict__") else src[key]
        if isinstance(dst_value, np.ndarray) and dst_value.ndim and isinstance(src_value, np.ndarray):
            k_dst, rem_dst = divmod(dst_value.shape[0], dst_streams)
            k_src, rem_src = divmod(src_value.shape[0], src_streams)
            if rem_dst or rem_src or k_dst != k_src or k_dst == 0 or dst_value.shape[1:] != src_value.shape[1:]:
                continue
            d_idx = (dst_rows[:, None] * k_dst + np.arange(k_dst)).ravel()
            s_idx = (src_rows[:, None] * k_src + np.arange(k_src)).ravel()
            dst_value[d_idx] = src_value[s_idx]
        elif isinstance(dst_value, (list, tuple)) or (hasattr(dst_value, "__dict__") and not isinstance(dst_value, type)):
            if type(dst_value) is type(src_value) and not callable(dst_value):
                copy_stream_rows(dst_value, src_value, dst_rows, src_rows, dst_streams, src_streams)


def copy_drawn_settings(dst, src) -> None:
    """Copy learned scalars that are the same for every stream but drawn at reset (a random seed) into a twin."""
    for key, value in vars(src).items():
        if key == "seed_":
            setattr(dst, key, value)
        elif isinstance(value, list) and key.endswith("_"):
            for a, b in zip(getattr(dst, key), value):
                if hasattr(b, "__dict__"):
                    copy_drawn_settings(a, b)


def _array_bytes(obj, seen: set) -> int:
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (list, tuple)):
        return sum(_array_bytes(item, seen) for item in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(_array_bytes(value, seen) for value in vars(obj).values())
    return 0
