"""The engine: many named streams, scored one tick at a time in a few vectorised steps.

Streams with the same number of fields and the same detector parameters share
a *bank*: one ensemble detector whose rows are the streams.  A tick fills one
``(S, d)`` array per bank (NaN for streams without a point) and steps it once,
so the cost of a tick grows with the number of banks, not of streams.

**Shards.**  A bank holds at most ``shard_rows`` streams; more streams alike
fill further banks of the same kind (*shards*, numbered from 0), and a tick
steps its banks side by side on ``threads`` native threads
(:class:`~detectors.workers.Workers`): numpy releases the GIL in its array
loops, so a tick of 100,000 streams uses every core it is given.  Banks
share no state, so the scores do not depend on the number of threads.

Which bank a stream lands in is deterministic: the lowest-numbered shard of
its kind with a free row (or room to grow) takes it, at the lowest free row,
so the same adds and removes in the same order give the same layout.  The
layout can matter, slightly: a stream's scores are those it would get alone
in its bank except (1) when more of the bank's streams are due to refit
their model (isolation forest, LOF) on one tick than the bank's refit
budget, which is proportional to its size: they then refit in row order over
the next ticks (:class:`~detectors.features.RefitSchedule`); (2) the pattern
member recomputes its running sums exactly on a turn given by the row
number (``(blocks + row) % RESYNC``), which changes rounding only; with
``shard_rows`` a multiple of that period (the default is) a stream's turn is
the one it would have in a single bank.  Everything else is per row.

Per-stream settings that do not change a detector's state (thresholds,
member weights, on/off) live in the engine's arrays and apply at once; a
new window moves the stream to a bank with that window and replays the
stream's recent history into it, so it does not start cold.
"""
from __future__ import annotations

import math
from itertools import chain
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .base import copy_drawn_settings, copy_stream_rows
from .ensemble import DEFAULT_MEMBERS, PATTERN_CAUSE, EnsembleDetector
from .kernels import load_for_threads
from .registry import make
from .streaming import compiled_steps
from .workers import Workers

__all__ = ["Engine", "Verdict", "SEVERITIES"]

#: Severity names, from a score just past the threshold to one far beyond it.
SEVERITIES = ("low", "medium", "high", "critical")
#: How many times smaller than the threshold's tail probability a point's must be for each severity.
_SEVERITY_STEPS = (1.5, 2.25, 3.5)
#: Points of history kept per stream, replayed when its detector is rebuilt.
HISTORY = 512
#: Windows a user may choose.
WINDOW_RANGE = (10, 2000)
#: Most streams in one bank: a multiple of the pattern member's resync period (see the module docstring).
SHARD_ROWS = 4096
#: Threads that step a tick's banks by default: the two cores this server is sized for.
THREADS = 2


@dataclass
class Verdict:
    """The engine's answer for one point of one stream.

    ``is_anomaly`` is the stream's state: whether this point belongs to an
    anomalous episode (true for every point of it); ``alert`` marks the
    episode's first point only, so an incident raises one alert.  ``fired``
    names the detectors behind an anomalous point (never empty for one).
    """

    stream: str
    values: dict
    score: float
    is_anomaly: bool
    severity: str | None
    detectors: dict = field(default_factory=dict)
    fired: list = field(default_factory=list)
    expected: dict = field(default_factory=dict)
    warming_up: bool = False
    alert: bool = False

    def to_dict(self) -> dict:
        """Return the verdict as plain JSON-ready types."""
        return asdict(self)


def severity_of(score: float, threshold: float) -> str | None:
    """Grade a flagged score by how far its tail probability lies below the threshold's.

    >>> severity_of(0.99, 0.999) is None, severity_of(0.9999, 0.999), severity_of(1.0, 0.999)
    (True, 'low', 'critical')
    """
    if score < threshold:
        return None
    p, p_threshold = max(1.0 - score, 1e-300), max(1.0 - threshold, 1e-300)
    ratio = math.log(p) / math.log(p_threshold) if p_threshold < 1 else math.inf
    # The steps passed, counted without a generator (a tick may grade thousands of verdicts).
    medium, high, critical = _SEVERITY_STEPS
    return SEVERITIES[(ratio >= medium) + (ratio >= high) + (ratio >= critical)]


class _Bank:
    """Streams of one field count and one parameter set, sharing one ensemble detector.

    A bank holds at most ``limit`` rows (a *shard*): more streams alike fill
    further banks, which a tick steps side by side (see :class:`Engine`).
    """

    def __init__(self, prototype: EnsembleDetector, n_features: int, capacity: int = 8,
                 limit: int | None = None):
        self.prototype = prototype
        self.n_features = n_features
        self.limit = limit
        capacity = capacity if limit is None else min(capacity, limit)
        self.detector = prototype.clone().reset(capacity, n_features)
        self.history = np.full((capacity, HISTORY, n_features), np.nan)
        self.history_next = np.zeros(capacity, dtype=np.int64)
        self.history_count = np.zeros(capacity, dtype=np.int64)
        self.free = list(range(capacity - 1, -1, -1))
        #: Each row's ensemble threshold, so a tick's anomalies are found in one comparison.
        self.thresholds = np.full(capacity, np.inf)

    @property
    def capacity(self) -> int:
        return self.detector.n_streams_

    def has_room(self) -> bool:
        """Whether :meth:`take_row` can give a row: one is free, or the bank may still grow."""
        return bool(self.free) or self.limit is None or self.capacity < self.limit

    def take_row(self) -> int:
        """Claim a free row, growing the bank by a quarter (up to its limit) when it is full.

        Every row is scored on every tick (absent ones masked), so spare rows
        cost time: a modest growth factor keeps at most a fifth of them idle.
        """
        if not self.free:
            self.reserve(self.capacity + max(8, self.capacity // 4))
        return self.free.pop()

    def reserve(self, capacity: int) -> None:
        """Make room for ``capacity`` rows in all, or for the bank's limit (no-op if the bank is that large already)."""
        capacity = capacity if self.limit is None else min(capacity, self.limit)
        if capacity > self.capacity:
            self._grow(capacity)

    def release_row(self, row: int) -> None:
        """Forget a row's state and history and make it free for another stream."""
        fresh = self.prototype.clone().reset(1, self.n_features)
        copy_stream_rows(self.detector, fresh, [row], [0], self.capacity, 1)
        self.history[row] = np.nan
        self.history_count[row] = self.history_next[row] = 0
        self.thresholds[row] = np.inf
        self.free.append(row)

    def split(self) -> list["_Bank"]:
        """This bank as banks of at most ``limit`` rows, the k-th holding rows ``k * limit ..``, state and all.

        For a snapshot written before banks had a limit, or with a larger one.
        """
        if self.limit is None or self.capacity <= self.limit:
            return [self]
        pieces = []
        for start in range(0, self.capacity, self.limit):
            rows = np.arange(start, min(start + self.limit, self.capacity))
            piece = _Bank(self.prototype, self.n_features, len(rows), self.limit)
            copy_stream_rows(piece.detector, self.detector, np.arange(len(rows)), rows, len(rows), self.capacity)
            copy_drawn_settings(piece.detector, self.detector)
            for name in _BANK_ARRAYS:
                setattr(piece, name, getattr(self, name)[rows].copy())
            piece.free = [r - start for r in self.free if start <= r < start + len(rows)]
            pieces.append(piece)
        return pieces

    def _grow(self, capacity: int) -> None:
        old, old_capacity = self.detector, self.capacity
        self.detector = self.prototype.clone().reset(capacity, self.n_features)
        rows = np.arange(old_capacity)
        copy_stream_rows(self.detector, old, rows, rows, capacity, old_capacity)
        history = np.full((capacity, HISTORY, self.n_features), np.nan)
        history[:old_capacity] = self.history
        self.history = history
        self.history_next = np.concatenate([self.history_next, np.zeros(capacity - old_capacity, np.int64)])
        self.history_count = np.concatenate([self.history_count, np.zeros(capacity - old_capacity, np.int64)])
        self.thresholds = np.concatenate([self.thresholds, np.full(capacity - old_capacity, np.inf)])
        self.free = list(range(capacity - 1, old_capacity - 1, -1)) + self.free

    def remember(self, X: np.ndarray, present: np.ndarray) -> None:
        rows = np.flatnonzero(present)
        self.history[rows, self.history_next[rows]] = X[rows]
        self.history_next[rows] = (self.history_next[rows] + 1) % HISTORY
        self.history_count[rows] = np.minimum(self.history_count[rows] + 1, HISTORY)

    def remember_block(self, row: int, values: np.ndarray) -> None:
        """Remember ``T`` points of one row, as ``T`` calls of :meth:`remember` would."""
        last = values[-HISTORY:]
        slots = (self.history_next[row] + len(values) - len(last) + np.arange(len(last))) % HISTORY
        self.history[row, slots] = last
        self.history_next[row] = (self.history_next[row] + len(values)) % HISTORY
        self.history_count[row] = min(self.history_count[row] + len(values), HISTORY)

    def recent(self, row: int) -> np.ndarray:
        """Return the row's remembered points, oldest first."""
        n = self.history_count[row]
        idx = (self.history_next[row] - n + np.arange(n)) % HISTORY
        return self.history[row, idx]


class Engine:
    """Score many named streams tick by tick with one ensemble per bank of alike streams.

    Parameters
    ----------
    members : sequence of str
        Member detectors of every stream's ensemble.
    member_params : dict, optional
        Constructor parameters per member name.
    ensemble_params : dict, optional
        Other parameters of the ensemble (fusion, weights, warmup, threshold).
    shard_rows : int
        Most streams in one bank (see the module docstring, "Shards").
    threads : int
        Native threads that step a tick's banks side by side (1: the caller alone).

    Examples
    --------
    >>> engine = Engine(members=("zscore", "mad"))
    >>> engine.add_stream("cpu", ("cpu",))
    >>> rng = np.random.default_rng(0)
    >>> for v in rng.normal(50, 2, 100):
    ...     _ = engine.step({"cpu": {"cpu": float(v)}})
    >>> v = engine.step({"cpu": {"cpu": 95.0}})["cpu"]
    >>> v.is_anomaly, v.severity, v.fired
    (True, 'critical', ['zscore', 'mad'])
    """

    def __init__(self, members: Sequence[str] = DEFAULT_MEMBERS, member_params=None, ensemble_params=None,
                 shard_rows: int = SHARD_ROWS, threads: int = THREADS):
        self.members = tuple(members)
        self.member_params = {k: dict(v) for k, v in (member_params or {}).items()}
        self.ensemble_params = dict(ensemble_params or {})
        if isinstance(shard_rows, bool) or not isinstance(shard_rows, int) or shard_rows < 1:
            raise ValueError("shard_rows must be a whole number of at least 1")
        self.shard_rows = shard_rows
        self.workers = Workers(threads)
        self._prototype_cache: dict = {}
        self._banks: dict = {}
        self._streams: dict[str, dict] = {}
        #: What verdicts read of each stream's settings, as Python lists; forgotten whenever settings change.
        self._verdict_settings: dict[str, tuple] = {}
        #: Bumped whenever a stream changes bank, so stream groups know to resolve again.
        self.layout_version = 0

    # -- streams ----------------------------------------------------------
    @property
    def detector_names(self) -> list[str]:
        """Return the member detector names, in explanation order."""
        return list(self.members)

    def streams(self) -> dict[str, tuple]:
        """Return ``{name: fields}`` in the order streams were added."""
        return {name: s["fields"] for name, s in self._streams.items()}

    def has_stream(self, name: str) -> bool:
        """Return whether ``name`` is a known stream."""
        return name in self._streams

    def add_stream(self, name: str, fields: Sequence[str]) -> None:
        """Add a stream with the given field names; re-adding with the same fields is a no-op."""
        fields = tuple(fields)
        if not fields or len(set(fields)) != len(fields):
            raise ValueError(f"stream {name!r} needs one or more distinct field names")
        if name in self._streams:
            if self._streams[name]["fields"] != fields:
                raise ValueError(f"stream {name!r} exists with fields {list(self._streams[name]['fields'])}")
            return
        prototype = self._ensemble()
        stream = {
            "fields": fields,
            "windows": {},
            "threshold": prototype.threshold,
            "thresholds": np.array([self._member_default(m, "threshold") for m in self.members]),
            "weights": np.array([float(prototype.weights.get(m, 1.0)) for m in self.members]),
            "enabled": np.ones(len(self.members), dtype=bool),
        }
        self._streams[name] = stream
        self._place(name)

    def remove_stream(self, name: str) -> None:
        """Forget a stream: its bank row is cleared and reused by the next stream added.

        >>> engine = Engine(members=("zscore",))
        >>> engine.add_stream("tmp", ("x",))
        >>> engine.remove_stream("tmp")
        >>> engine.has_stream("tmp")
        False
        """
        stream = self._streams.pop(name, None)
        if stream is None:
            raise ValueError(f"unknown stream {name!r}")
        self._verdict_settings.pop(name, None)
        self._banks[stream["bank"]].release_row(stream["row"])
        self.layout_version += 1  # stream groups holding it must resolve again (and fail)

    def add_streams(self, names: Sequence[str], fields: Sequence[str]) -> None:
        """Add many streams with the same fields, growing each bank they fill once, to fit them exactly."""
        names = list(dict.fromkeys(n for n in names if n not in self._streams))
        if not names:
            return
        self.add_stream(names[0], fields)  # checks the fields
        added = 1
        while added < len(names):
            _, bank = self._bank_for(len(tuple(fields)), {})
            bank.reserve(bank.capacity - len(bank.free) + len(names) - added)
            for name in names[added:added + max(1, len(bank.free))]:
                self.add_stream(name, fields)
                added += 1

    # -- scoring ----------------------------------------------------------
    def step(self, points: Mapping[str, Mapping[str, float]]) -> "TickResult":
        """Score one tick: one point per named stream, scored together, then learned.

        Returns a read-only mapping ``{stream: Verdict}`` whose verdicts are
        built only when read, so a tick of many streams costs no Python work
        per stream beyond filling its row.
        """
        by_bank: dict = {}
        for name, values in points.items():
            stream = self._streams.get(name)
            if stream is None:
                raise ValueError(f"unknown stream {name!r}")
            if len(values) != len(stream["fields"]) or not all(f in values for f in stream["fields"]):
                raise ValueError(f"stream {name!r} takes fields {list(stream['fields'])}, got {sorted(values)}")
            by_bank.setdefault(stream["bank"], []).append(name)
        parts = []
        for key, names in by_bank.items():
            rows = np.fromiter((self._streams[n]["row"] for n in names), dtype=np.int64, count=len(names))
            values = np.array([[points[n][f] for f in self._streams[n]["fields"]] for n in names], dtype=float)
            parts.append((names, self._banks[key], rows, values))
        return self._step_parts(parts)

    def _step_parts(self, parts: list) -> "TickResult":
        """Step each bank of ``parts`` (``(names, bank, rows, values)``) once, side by side; collect the verdicts."""
        if self.workers.threads > 1 and len(parts) > 1 and compiled_steps():
            load_for_threads()  # the kernels ready on this thread first (see there: gevent)
        outputs = self.workers.map(lambda part: self._stepped_part(*part), parts)
        if not _collector_settled:
            settle_collector()
        result = TickResult(self)
        for part, in_episode in outputs:
            result._add(part, in_episode)
        return result

    def _stepped_part(self, names: list, bank: "_Bank", rows: np.ndarray, values: np.ndarray) -> tuple:
        """Step one bank (on a worker thread); return its part of a :class:`TickResult` and the verdicts of its
        streams in an episode, ``{name: Verdict}``.

        Those verdicts are what a tick's reader nearly always wants (``anomalies()``,
        ``alerts()``, the anomalous streams' points), and building them is Python
        work that holds the GIL: built here, right after the bank's step, it
        overlaps the other thread's compiled kernels instead of following every
        bank on one thread.  The verdicts of the other streams stay built on demand.
        """
        fused, members, state, warming, low, high = self._step_bank(bank, rows, values)
        part = (names, fused, members, state, warming, low, high, values)
        at = np.flatnonzero(state[0])
        built = self._verdicts_of_rows(*_taken(part, at)) if at.size else []
        return part, dict(zip([names[i] for i in at.tolist()], built))

    def step_block(self, name: str, values, fields: Sequence[str] | None = None) -> "BlockResult":
        """Score ``T`` successive points of one stream at once, leaving the engine as ``T`` :meth:`step` calls would.

        ``values`` is ``(T, d)`` in the stream's field order (or in the order
        of ``fields``, when given); a NaN row is a point the stream skips, as
        a NaN value would be in :meth:`step`.  For a file, a replay or a
        submitted batch of one stream: the detectors score the block on
        their fast path (:meth:`~detectors.base.Detector.step_block`).
        Returns the ``T`` verdicts as a lazily built sequence.
        """
        stream = self._streams.get(name)
        if stream is None:
            raise ValueError(f"unknown stream {name!r}")
        values = np.asarray(values, dtype=float)
        values = values[:, None] if values.ndim == 1 else values
        if fields is not None:
            fields = tuple(fields)
            if sorted(fields) != sorted(stream["fields"]):
                raise ValueError(f"stream {name!r} takes fields {list(stream['fields'])}, got {sorted(fields)}")
            values = values[:, [fields.index(f) for f in stream["fields"]]]
        if values.ndim != 2 or values.shape[1] != len(stream["fields"]):
            raise ValueError(f"stream {name!r} takes {len(stream['fields'])} field(s) per point, got {values.shape}")
        bank, row = self._banks[stream["bank"]], stream["row"]
        det = bank.detector
        det.stream_thresholds_ = bank.thresholds
        present = ~np.isnan(values).any(axis=1)
        warming = det.seen_[row] + np.cumsum(present) - present < det.warmup
        block = det.step_block(values, row=row, trace=("range", "member_scores_", "cause_"))
        bank.remember_block(row, values)
        return BlockResult(self, name, values, block, warming)

    def group(self, names: Sequence[str]) -> "StreamGroup":
        """Resolve a fixed list of streams once, for ticks given as one ``(n, d)`` array with no per-stream work."""
        return StreamGroup(self, names)

    def _step_bank(self, bank: _Bank, rows: np.ndarray, values: np.ndarray):
        det = bank.detector
        X = np.full((bank.capacity, bank.n_features), np.nan)
        X[rows] = values
        present = np.zeros(bank.capacity, dtype=bool)
        present[rows] = True
        expected = det.expected_range()
        warming = det.seen_[rows] < det.warmup
        det.stream_thresholds_ = bank.thresholds
        fused = det.step(X)
        bank.remember(X, present)
        low, high = expected if expected is not None else (None, None)
        state = (det.is_anomaly_[rows], det.alert_[rows], det.cause_[rows])
        return (fused[rows], det.member_scores_[rows], state, warming,
                None if low is None else low[rows], None if high is None else high[rows])

    def _verdict(self, name, values: np.ndarray, fused, member_scores, state, warming, low, high) -> Verdict:
        return self._verdict_of(name, values.tolist(), float(fused), member_scores.tolist(),
                                (bool(state[0]), bool(state[1]), int(state[2])), bool(warming),
                                None if low is None else low.tolist(), None if high is None else high.tolist())

    def _verdict_of(self, name: str, values: list, score: float, scores: list, state: tuple, warming: bool,
                    low: list | None, high: list | None) -> Verdict:
        # Python floats and lists throughout: a tick may build hundreds of verdicts, and numpy's
        # per-call cost on arrays of a few members would dominate each one.
        fields, thresholds, on, threshold = self._settings_of(name)
        anomalous, alert, cause = state
        fired = [m for m, s, t, o in zip(self.members, scores, thresholds, on) if o and s >= t]
        if anomalous and not fired:
            fired = self._causes(scores, thresholds, on, cause)
        ranges = {}
        if low is not None:
            for f, a, b in zip(fields, low, high):
                if math.isfinite(a) and math.isfinite(b):
                    ranges[f] = [a, b]
        return Verdict(
            stream=name,
            values=dict(zip(fields, values)),
            score=score,
            is_anomaly=anomalous,
            severity=severity_of(max(score, threshold), threshold) if anomalous else None,
            detectors={m: s for m, s, o in zip(self.members, scores, on) if o},
            fired=fired,
            expected=ranges,
            warming_up=warming,
            alert=alert,
        )

    def _verdicts_of_rows(self, names: list, values: np.ndarray, fused: np.ndarray, member_scores: np.ndarray,
                          state: list, warming: np.ndarray, low, high) -> list[Verdict]:
        """The verdicts :meth:`_verdict_of` gives for ``k`` streams of one tick (arrays ``(k, ...)``), built together.

        A tick may put thousands of streams in an episode at once, and their
        verdicts are built holding the GIL (on the worker threads, after each
        bank's step: :meth:`_stepped_part`).  So what needs a
        loop over the members (which fired, the causes of an anomalous point
        that none flagged) is found for all rows in a few array operations,
        with the same comparisons and divisions as :meth:`_verdict_of`, and
        the Python loop per stream only fills in each verdict.
        """
        settings = [self._settings_of(name) for name in names]
        # Flat iterators, not nested lists: numpy reads a list of k short lists as slowly as k small arrays.
        size = len(names) * len(self.members)
        thresholds = np.fromiter(chain.from_iterable(s[1] for s in settings), dtype=float, count=size)
        thresholds = thresholds.reshape(len(names), len(self.members))
        on = np.fromiter(chain.from_iterable(s[2] for s in settings), dtype=bool, count=size).reshape(thresholds.shape)
        anomalous, alert, cause = state
        with np.errstate(invalid="ignore"):
            fired = on & (member_scores >= thresholds)
            # :meth:`_causes` for anomalous rows none flagged: the members most surprised relative to
            # their thresholds (NaN wins the maximum, as in numpy, and then none is named).
            ratio = np.where(on, member_scores / np.maximum(thresholds, 1e-12), -np.inf)
            best = ratio.max(axis=1, keepdims=True) if len(self.members) else ratio[:, :0]
            surprised = np.isfinite(ratio) & (ratio >= best)
        unexplained = anomalous & ~fired.any(axis=1)
        if "pattern" in self.members:
            by_pattern = unexplained & (cause == PATTERN_CAUSE) & on[:, self.members.index("pattern")]
            surprised[by_pattern] = np.arange(len(self.members)) == self.members.index("pattern")
        fired[unexplained] = surprised[unexplained]
        # Each row's pattern of fired members as one number (bit i: member i), named once per pattern.
        patterns = (fired.astype(np.int64) << np.arange(len(self.members))).sum(axis=1).tolist()
        names_of = {p: [m for i, m in enumerate(self.members) if p >> i & 1] for p in set(patterns)}
        if low is not None:
            finite = np.isfinite(low) & np.isfinite(high)
            ranged = zip(finite.tolist(), low.tolist(), high.tolist())
        else:
            ranged = [(None, None, None)] * len(names)
        members = self.members
        verdicts = []
        # Verdict's fields by position (stream, values, score, is_anomaly, severity, detectors, fired,
        # expected, warming_up, alert): a call by keyword costs half as much again, per verdict.
        for name, setting, row, score, scores, pattern, all_on, is_anomaly, is_alert, warm, (kept, a, b) in zip(
                names, settings, values.tolist(), fused.tolist(), member_scores.tolist(), patterns,
                on.all(axis=1).tolist(), anomalous.tolist(), alert.tolist(), warming.tolist(), ranged):
            fields, _, on_row, threshold = setting
            verdicts.append(Verdict(
                name,
                dict(zip(fields, row)),
                score,
                is_anomaly,
                severity_of(max(score, threshold), threshold) if is_anomaly else None,
                dict(zip(members, scores)) if all_on else {m: s for m, s, o in zip(members, scores, on_row) if o},
                list(names_of[pattern]),
                {} if kept is None else {f: [x, y] for f, k, x, y in zip(fields, kept, a, b) if k},
                warm,
                is_alert,
            ))
        return verdicts

    def _settings_of(self, name: str) -> tuple:
        """A stream's fields and, as Python lists, what a verdict reads of its settings (kept until they change)."""
        settings = self._verdict_settings.get(name)
        if settings is None:
            stream = self._streams[name]
            on = [e and w > 0 for e, w in zip(stream["enabled"].tolist(), stream["weights"].tolist())]
            settings = (stream["fields"], stream["thresholds"].tolist(), on, stream["threshold"])
            self._verdict_settings[name] = settings
        return settings

    def _causes(self, scores: list, thresholds: list, on: list, cause) -> list[str]:
        """Name the detectors behind an anomalous point that no member flagged on its own.

        A pattern record names the pattern member; otherwise (a value record,
        or a point inside an episode) the members most surprised by the point,
        relative to their own thresholds.
        """
        if cause == PATTERN_CAUSE and "pattern" in self.members and on[self.members.index("pattern")]:
            return ["pattern"]
        ratio = [s / max(t, 1e-12) if o else -math.inf for s, t, o in zip(scores, thresholds, on)]
        best = math.nan if any(r != r for r in ratio) else max(ratio)  # numpy's max: NaN wins
        return [m for m, r in zip(self.members, ratio) if math.isfinite(r) and r >= best]

    # -- feedback ---------------------------------------------------------
    def accept_normal(self, stream: str, points) -> None:
        """Teach ``stream`` that ``points`` were not anomalies: the same values stop alerting on it.

        ``points`` is a sequence of ``{field: value}`` mappings (the marked
        point, or every point of a marked incident).  Only this stream's row
        changes; see :meth:`detectors.ensemble.EnsembleDetector.accept_normal`
        for what is learned and for how long.

        >>> engine = Engine(members=("zscore", "mad"))
        >>> engine.add_stream("cpu", ("cpu",))
        >>> engine.accept_normal("cpu", [{"cpu": 95.0}])
        >>> engine.accept_normal("cpu", [{"load": 1.0}])
        Traceback (most recent call last):
        ...
        ValueError: stream 'cpu' takes fields ['cpu'], got ['load']
        """
        s = self._streams.get(stream)
        if s is None:
            raise ValueError(f"unknown stream {stream!r}")
        fields = s["fields"]
        rows = []
        for values in points:
            if len(values) != len(fields) or not all(f in values for f in fields):
                raise ValueError(f"stream {stream!r} takes fields {list(fields)}, got {sorted(values)}")
            rows.append([float(values[f]) for f in fields])
        if not rows:
            raise ValueError("give at least one point to accept")
        self._banks[s["bank"]].detector.accept_normal(s["row"], np.array(rows))

    # -- configuration ----------------------------------------------------
    def configure(self, stream: str, *, detector: str | None = None, threshold=None, window=None,
                  enabled=None, weight=None) -> dict:
        """Change one stream's threshold, window, on/off or weight for one detector (or the ensemble)."""
        s = self._streams.get(stream)
        if s is None:
            raise ValueError(f"unknown stream {stream!r}")
        fused = detector in (None, "ensemble")
        if not fused and detector not in self.members:
            raise ValueError(f"unknown detector {detector!r}; choose 'ensemble' or one of {list(self.members)}")
        if threshold is not None:
            threshold = _number(threshold, "threshold", 0.0, 1.0)
        if window is not None:
            window = int(_number(window, "window", *WINDOW_RANGE, integer=True))
        if weight is not None:
            weight = _number(weight, "weight", 0.0, 100.0)
        if enabled is not None and not isinstance(enabled, bool):
            raise ValueError("enabled must be true or false")
        if fused and (window is not None or weight is not None or enabled is not None):
            raise ValueError("the ensemble takes a threshold only; set window, weight and enabled per detector")
        self._verdict_settings.pop(stream, None)  # settings change below
        if window is not None and not fused and self._window_of(stream, detector) is None:
            raise ValueError(f"{detector} has no window to set")
        if fused:
            if threshold is not None:
                s["threshold"] = threshold
                self._banks[s["bank"]].thresholds[s["row"]] = threshold
            return self.config(stream)
        i = self.members.index(detector)
        if enabled is False and int(np.sum(s["enabled"] & (s["weights"] > 0))) <= 1 and s["enabled"][i]:
            raise ValueError("at least one detector must stay enabled")
        if threshold is not None:
            s["thresholds"][i] = threshold
        if weight is not None:
            s["weights"][i] = weight
        if enabled is not None:
            s["enabled"][i] = enabled
        self._apply_weights(stream)
        if window is not None and window != self._window_of(stream, detector):
            self._move(stream, {**s["windows"], detector: window})
        return self.config(stream)

    def config(self, stream: str | None = None) -> dict:
        """Return one stream's settings, or ``{stream: settings}`` for all."""
        if stream is None:
            return {name: self.config(name) for name in self._streams}
        s = self._streams.get(stream)
        if s is None:
            raise ValueError(f"unknown stream {stream!r}")
        return {
            "threshold": float(s["threshold"]),
            "detectors": {
                m: {
                    "threshold": float(s["thresholds"][i]),
                    "window": self._window_of(stream, m),
                    "enabled": bool(s["enabled"][i]),
                    "weight": float(s["weights"][i]),
                }
                for i, m in enumerate(self.members)
            },
        }

    def load_config(self, saved: Mapping) -> None:
        """Re-apply settings saved from :meth:`config` (unknown streams and detectors are skipped)."""
        for name, cfg in saved.items():
            if name not in self._streams:
                continue
            if "threshold" in cfg:
                self.configure(name, threshold=cfg["threshold"])
            for det, dcfg in cfg.get("detectors", {}).items():
                if det in self.members:
                    self.configure(name, detector=det, **{k: dcfg[k] for k in ("threshold", "window", "enabled", "weight") if k in dcfg})

    # -- banks ------------------------------------------------------------
    def _member_default(self, member: str, param: str):
        return getattr(make(member, **self.member_params.get(member, {})), param, None)

    def _window_of(self, stream: str, member: str):
        s = self._streams[stream]
        return s["windows"].get(member, self._member_default(member, "window"))

    def _ensemble(self, windows: Mapping[str, int] | None = None) -> EnsembleDetector:
        key = tuple(sorted((windows or {}).items()))
        if key not in self._prototype_cache:
            params = {m: dict(self.member_params.get(m, {})) for m in self.members}
            for m, w in (windows or {}).items():
                params[m]["window"] = w
            self._prototype_cache[key] = EnsembleDetector(members=self.members, member_params=params, **self.ensemble_params)
        return self._prototype_cache[key]

    def _bank_for(self, n_features: int, windows: Mapping[str, int]) -> tuple[tuple, _Bank]:
        """Return the key and the bank that takes the next stream with this field count and these windows.

        The lowest-numbered shard with room, or a new one (see the module
        docstring); the key is ``(n_features, windows, shard)``.
        """
        kind = (n_features, tuple(sorted(windows.items())))
        shard = 0
        while (kind + (shard,)) in self._banks and not self._banks[kind + (shard,)].has_room():
            shard += 1
        key = kind + (shard,)
        if key not in self._banks:
            self._banks[key] = _Bank(self._ensemble(windows), n_features, limit=self.shard_rows)
        return key, self._banks[key]

    def _place(self, name: str) -> None:
        s = self._streams[name]
        s["bank"], bank = self._bank_for(len(s["fields"]), s["windows"])
        s["row"] = bank.take_row()
        bank.thresholds[s["row"]] = s["threshold"]
        self._apply_weights(name)

    def _apply_weights(self, name: str) -> None:
        self._verdict_settings.pop(name, None)
        s = self._streams[name]
        bank = self._banks[s["bank"]]
        bank.detector.stream_weights_[s["row"]] = np.where(s["enabled"], s["weights"], 0.0)

    def _move(self, name: str, windows: dict) -> None:
        """Rebuild a stream's detector with new windows, warmed on its recent history."""
        s = self._streams[name]
        self._bank_for(len(s["fields"]), windows)  # first: a bad parameter must leave the stream as it was
        old = self._banks[s["bank"]]
        history = old.recent(s["row"])
        taught = old.detector.acceptance(s["row"])  # "not an anomaly" outlives a rebuild
        old.release_row(s["row"])
        s["windows"] = windows
        self._place(name)
        self.layout_version += 1
        bank = self._banks[s["bank"]]
        # One block: the replay costs the stream's points, not as many ticks of the whole bank.
        bank.detector.step_block(history, row=s["row"])
        bank.remember_block(s["row"], history)
        bank.detector.set_acceptance(s["row"], taught)

    # -- snapshots (format and checks in detectors/snapshot.py) ----------------
    def export_state(self, copy: bool = True) -> tuple[dict, dict]:
        """Return ``(meta, arrays)``: every stream, bank and learned array (see :meth:`import_state`).

        ``meta`` is JSON-ready; ``arrays`` maps names to numpy arrays, copies
        unless ``copy`` is False (when the engine will not step before they are saved).
        """
        from .snapshot import flatten

        arrays: dict[str, np.ndarray] = {}
        banks, bank_index = [], {}
        for i, (key, bank) in enumerate(self._banks.items()):
            bank_index[key] = i
            structure, scalars, state = flatten(bank.detector, copy=copy)
            arrays.update((f"bank{i}/detector/{path}", a) for path, a in state.items())
            for name in _BANK_ARRAYS:
                arrays[f"bank{i}/{name}"] = getattr(bank, name).copy() if copy else getattr(bank, name)
            banks.append({"n_features": key[0], "windows": dict(key[1]), "shard": key[2], "capacity": bank.capacity,
                          "free": list(bank.free), "structure": structure, "scalars": scalars})
        names = list(self._streams)
        columns: dict[str, list] = {}
        for key in sorted({k for s in self._streams.values() for k in s} - {"bank", "row"}):
            values = [self._streams[n].get(key) for n in names]
            if all(isinstance(v, np.ndarray) for v in values) and values:
                arrays[f"streams/{key}"] = np.stack(values)
            else:
                columns[key] = [list(v) if isinstance(v, tuple) else v for v in values]
        meta = {"engine": self._fingerprint(), "history": HISTORY, "banks": banks,
                "streams": {"names": names, "bank": [bank_index[self._streams[n]["bank"]] for n in names],
                            "row": [int(self._streams[n]["row"]) for n in names], "columns": columns}}
        return meta, arrays

    def import_state(self, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> None:
        """Replace every stream and bank by those of an :meth:`export_state` of an engine like this one.

        Raises :class:`~detectors.snapshot.SnapshotMismatch` (and changes nothing)
        when the snapshot comes from other members, parameters or code.  A
        saved bank larger than this engine's ``shard_rows`` (a snapshot
        written before banks had a limit, or with a larger one) is split into
        shards here, row ``r`` going to row ``r % shard_rows`` of the
        ``r // shard_rows``-th; a bank without a saved shard number is shard 0.
        """
        from .snapshot import SnapshotError, SnapshotMismatch, restore_built

        if _untuned(meta.get("engine")) != self._fingerprint() or meta.get("history") != HISTORY:
            raise SnapshotMismatch("the snapshot's detectors or parameters differ from this engine's")
        try:
            banks, keys = {}, [None] * len(meta["banks"])
            # Shards of one kind in their order, each saved bank split if larger than a shard here.
            order = sorted(range(len(meta["banks"])), key=lambda i: int(meta["banks"][i].get("shard", 0)))
            for i in order:
                saved = meta["banks"][i]
                windows = {m: int(w) for m, w in saved["windows"].items()}
                kind = (int(saved["n_features"]), tuple(sorted(windows.items())))
                capacity, prototype = int(saved["capacity"]), self._ensemble(windows)
                # Built with one row: every array below is replaced by the saved one (full size).
                bank = _Bank(prototype, kind[0], 1, self.shard_rows)
                prefix = f"bank{i}/detector/"
                state = {p[len(prefix):]: a for p, a in arrays.items() if p.startswith(prefix)}
                bank.detector = restore_built(lambda rows, n=kind[0], p=prototype: p.clone().reset(rows, n),
                                              capacity, saved["structure"], saved["scalars"], state)
                for name in _BANK_ARRAYS:
                    fresh, stored = getattr(bank, name), arrays[f"bank{i}/{name}"]
                    if (capacity, *fresh.shape[1:]) != stored.shape or fresh.dtype != stored.dtype:
                        raise SnapshotMismatch(f"bank {i}: {name} has shape {stored.shape} in the snapshot")
                    setattr(bank, name, stored)
                bank.free = [int(r) for r in saved["free"]]
                first = sum(key[:2] == kind for key in banks)
                pieces = bank.split()
                banks.update(((*kind, first + k), piece) for k, piece in enumerate(pieces))
                keys[i] = (kind, first)
            streams = self._imported_streams(meta["streams"], arrays, keys)
        except SnapshotError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotMismatch(f"the snapshot does not fit this engine: {type(exc).__name__}: {exc}") from exc
        self._banks, self._streams = banks, streams
        self._verdict_settings = {}
        self.layout_version += 1

    def _imported_streams(self, saved: Mapping, arrays: Mapping[str, np.ndarray], bank_keys: list) -> dict[str, dict]:
        """The streams of an :meth:`export_state`, column by column (a Python loop per stream, none per array).

        ``bank_keys[b]`` is ``(kind, first shard)`` of saved bank ``b``.
        """
        from .snapshot import SnapshotMismatch

        names = saved["names"]
        columns = {key: list(values) for key, values in saved["columns"].items()}
        # One copy per stacked array (off the snapshot's map); each stream gets its row, a view.
        columns.update((p[len("streams/"):], list(np.array(a))) for p, a in arrays.items() if p.startswith("streams/"))
        columns["fields"] = [tuple(f) for f in columns["fields"]]
        columns["windows"] = [{m: int(w) for m, w in windows.items()} for windows in columns["windows"]]
        # A saved bank split into shards: its row r is row r % shard_rows of its (r // shard_rows)-th piece.
        rows = [int(r) for r in saved["row"]]
        columns["bank"] = [(*bank_keys[b][0], bank_keys[b][1] + r // self.shard_rows) for b, r in zip(saved["bank"], rows)]
        columns["row"] = [r % self.shard_rows for r in rows]
        if any(len(values) != len(names) for values in columns.values()):
            raise SnapshotMismatch("the snapshot's stream columns differ in length")
        for name, enabled in zip(names, columns["enabled"]):
            if len(enabled) != len(self.members):
                raise SnapshotMismatch(f"stream {name!r} has settings for other members")
        settings = list(columns)
        return {name: dict(zip(settings, row)) for name, row in zip(names, zip(*columns.values()))}

    def _fingerprint(self) -> dict:
        """What must be equal for a snapshot to mean the same thing here (JSON-ready).

        The ensemble's tunable parameters (``EnsembleDetector.snapshot_tunable``)
        are left out: they steer how the learned state is used, not what it means.
        """
        import json

        return _untuned(json.loads(json.dumps({"members": list(self.members), "member_params": self.member_params,
                                               "ensemble_params": self.ensemble_params}, default=repr)))


def _untuned(fingerprint):
    """An engine fingerprint without the ensemble's tunable parameters (a saved one may hold them)."""
    if not isinstance(fingerprint, dict) or not isinstance(fingerprint.get("ensemble_params"), dict):
        return fingerprint
    ensemble = {k: v for k, v in fingerprint["ensemble_params"].items() if k not in EnsembleDetector.snapshot_tunable}
    return {**fingerprint, "ensemble_params": ensemble}


#: Set once :func:`settle_collector` has run in this process.
_collector_settled: list = []


def settle_collector() -> None:
    """Once per process, after the engine's first tick: collect garbage, then freeze every object alive.

    By then numba and the compiled kernels are loaded: about 80,000 objects
    (functions, types, compiled dispatchers) that live as long as the
    process, and that each full collection of Python's cycle collector walks
    again: 80-100 ms on this machine, paid by whichever tick allocates the
    object that triggers one (a tick building thousands of verdicts, every
    few dozen ticks: the p99 of a 10,000-stream tick).  Frozen
    (:func:`gc.freeze`), they are never walked again; objects made later are
    collected as before.  Process-wide, and the price: an object alive now
    that later becomes garbage inside a reference cycle is never freed
    (reference counting still frees all others); what is alive at the first
    tick is mostly the modules and the server's setup, which live as long
    as the process anyway.
    """
    import gc

    _collector_settled.append(True)
    gc.collect()
    gc.freeze()


#: The arrays of a bank outside its detector, saved by Engine.export_state.
_BANK_ARRAYS = ("history", "history_next", "history_count", "thresholds")


def _number(value, name: str, low: float, high: float, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    if integer and float(value) != int(value):
        raise ValueError(f"{name} must be a whole number")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}")
    return float(value)


class TickResult(Mapping):
    """The verdicts of one tick, as a mapping ``{stream: Verdict}`` built lazily.

    ``anomalies()`` lists the streams in an anomalous episode and
    ``alerts()`` those whose episode started on this tick, found with one
    array lookup per bank; the index by name is built only when a verdict
    is asked for by name, so a tick that reads only those costs no Python
    work per stream.
    """

    def __init__(self, engine: Engine):
        self._engine = engine
        self._index: dict[str, tuple] | None = None
        self._parts: list = []
        self._cache: dict[str, Verdict] = {}

    def _add(self, part: tuple, built: dict) -> None:
        """Add one bank's part ``(names, fused, members, state, warming, low, high, values)`` and verdicts built."""
        self._parts.append(part)
        self._cache.update(built)
        self._index = None

    def _where(self) -> dict[str, tuple]:
        if self._index is None:
            self._index = {n: (part, i) for part, p in enumerate(self._parts) for i, n in enumerate(p[0])}
        return self._index

    def _at(self, part: int, i: int) -> Verdict:
        names, fused, members, state, warming, low, high, values = self._parts[part]
        name = names[i]
        if name not in self._cache:
            self._cache[name] = self._engine._verdict(
                name, values[i], fused[i], members[i], [a[i] for a in state], warming[i],
                None if low is None else low[i], None if high is None else high[i])
        return self._cache[name]

    def __getitem__(self, name: str) -> Verdict:
        return self._at(*self._where()[name])

    def __iter__(self):
        return (n for p in self._parts for n in p[0])

    def __len__(self) -> int:
        return sum(len(p[0]) for p in self._parts)

    def __contains__(self, name) -> bool:
        return name in self._where()

    def scores(self) -> dict[str, float]:
        """Return ``{stream: fused score}`` for every stream of the tick."""
        return {n: float(p[1][i]) for p in self._parts for i, n in enumerate(p[0])}

    def anomalies(self) -> list[Verdict]:
        """Return the verdicts of the streams in an anomalous episode on this tick."""
        return [v for k, p in enumerate(self._parts) for v in self._many(k, np.flatnonzero(p[3][0]))]

    def alerts(self) -> list[Verdict]:
        """Return the verdicts of the streams whose anomalous episode started on this tick (one per incident)."""
        return [v for k, p in enumerate(self._parts) for v in self._many(k, np.flatnonzero(p[3][1]))]

    def _many(self, part: int, at: np.ndarray) -> list[Verdict]:
        """The verdicts of positions ``at`` of one part, their arrays turned into Python lists once for all of them."""
        names = self._parts[part][0]
        build = [i for i in at.tolist() if names[i] not in self._cache]
        if build:
            self._cache.update(zip((names[i] for i in build),
                                   self._engine._verdicts_of_rows(*_taken(self._parts[part], np.array(build)))))
        return [self._cache[names[i]] for i in at.tolist()]


def _taken(part: tuple, at: np.ndarray) -> tuple:
    """Positions ``at`` of a tick's part, as the arguments of :meth:`Engine._verdicts_of_rows`."""
    names, fused, members, state, warming, low, high, values = part
    return ([names[i] for i in at.tolist()], values[at], fused[at], members[at], [a[at] for a in state], warming[at],
            None if low is None else low[at], None if high is None else high[at])


class BlockResult(Sequence):
    """The ``T`` verdicts of :meth:`Engine.step_block`, as a sequence built lazily, and their arrays.

    ``scores``, ``is_anomaly`` and ``alert`` are ``(T,)`` arrays, so a caller
    storing a batch needs no Python work per point; ``result[t]`` builds the
    :class:`Verdict` of point ``t`` when asked.
    """

    def __init__(self, engine: Engine, name: str, values: np.ndarray, block, warming: np.ndarray):
        self._engine, self._name, self._values, self._warming = engine, name, values, warming
        self.scores, self.is_anomaly, self.alert = block.scores, block.is_anomaly, block.alert
        self._members, self._cause = block.traces["member_scores_"], block.traces["cause_"]
        self._range = block.traces["range"]

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, t):
        if isinstance(t, slice):
            return [self[i] for i in range(*t.indices(len(self)))]
        t = range(len(self))[t]
        low, high = (None, None) if self._range is None else (self._range[0][t], self._range[1][t])
        state = (self.is_anomaly[t], self.alert[t], self._cause[t])
        return self._engine._verdict(self._name, self._values[t], self.scores[t], self._members[t], state,
                                     self._warming[t], low, high)


class StreamGroup:
    """A fixed list of streams resolved to bank rows once, stepped from one ``(n, d)`` array.

    >>> engine = Engine(members=("zscore",))
    >>> for i in range(3):
    ...     engine.add_stream(f"s{i}", ("x",))
    >>> group = engine.group(["s0", "s1", "s2"])
    >>> result = group.step(np.array([[1.0], [2.0], [3.0]]))
    >>> sorted(result), result["s2"].values
    (['s0', 's1', 's2'], {'x': 3.0})
    """

    def __init__(self, engine: Engine, names: Sequence[str]):
        self.engine = engine
        self.names = list(names)
        self._resolve()

    def _resolve(self) -> None:
        engine = self.engine
        self._version = engine.layout_version
        by_bank: dict = {}
        for position, name in enumerate(self.names):
            stream = engine._streams.get(name)
            if stream is None:
                raise ValueError(f"unknown stream {name!r}")
            by_bank.setdefault(stream["bank"], []).append(position)
        widths = {len(engine._streams[n]["fields"]) for n in self.names}
        if len(widths) > 1:
            raise ValueError("a group's streams must all have the same number of fields")
        self._parts = [
            (key, np.array(positions), np.array([engine._streams[self.names[p]]["row"] for p in positions]))
            for key, positions in by_bank.items()
        ]
        self._names_of = [[self.names[p] for p in positions] if len(by_bank) > 1 else self.names
                          for positions in by_bank.values()]

    def step_many(self, ticks, chunk: int = 2048, progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score ``T`` ticks at once, as ``T`` calls of :meth:`step` would: ``ticks`` is ``(T, n, d)`` (NaN rows skip).

        Returns ``(scores, is_anomaly, alert)``, each ``(T, n)``.  For a file
        of many series, a replay of many streams: members with a vectorised
        block path score each stream's points ahead, the others and the
        ensemble's recursion step tick by tick (see
        :meth:`~detectors.ensemble.EnsembleDetector.step_ticks`), ``chunk``
        ticks at a time to bound memory; ``progress(k)`` is told of each
        chunk's ``k`` ticks.
        """
        ticks = np.asarray(ticks, dtype=float)
        ticks = ticks[:, :, None] if ticks.ndim == 2 else ticks
        if ticks.ndim != 3 or ticks.shape[1] != len(self.names):
            raise ValueError(f"expected ticks of shape (T, {len(self.names)}, d), got {ticks.shape}")
        if self._version != self.engine.layout_version:
            self._resolve()
        T = len(ticks)
        scores = np.zeros((T, len(self.names)))
        anomalous, alerts = np.zeros((T, len(self.names)), dtype=bool), np.zeros((T, len(self.names)), dtype=bool)

        def step_part(part, a: int, b: int) -> None:
            # Each bank writes only its own streams' columns, so banks may run side by side.
            key, positions, rows = part
            bank = self.engine._banks[key]
            det = bank.detector
            det.stream_thresholds_ = bank.thresholds
            X = np.full((b - a, bank.capacity, bank.n_features), np.nan)
            X[:, rows] = ticks[a:b][:, positions]

            def after(t):
                anomalous[a + t, positions], alerts[a + t, positions] = det.is_anomaly_[rows], det.alert_[rows]

            fused = det.step_ticks(X, np.full((b - a, bank.capacity), np.nan), None, after)
            scores[a:b, positions] = fused[:, rows]

        if self.engine.workers.threads > 1 and len(self._parts) > 1:
            load_for_threads()  # the kernels ready on this thread first (see there: gevent)
        for a in range(0, T, chunk):
            b = min(T, a + chunk)
            self.engine.workers.map(lambda part, a=a, b=b: step_part(part, a, b), self._parts)
            if progress is not None:
                progress(b - a)
        for key, positions, rows in self._parts:
            for position, row in zip(positions, rows):
                self.engine._banks[key].remember_block(row, ticks[:, position])
        return scores, anomalous, alerts

    def step(self, values) -> TickResult:
        """Score one tick of ``values`` (row i is stream ``names[i]``; a NaN row skips that stream)."""
        values = np.asarray(values, dtype=float)
        values = values[:, None] if values.ndim == 1 else values
        if values.shape[0] != len(self.names):
            raise ValueError(f"expected {len(self.names)} rows, got {values.shape[0]}")
        if self._version != self.engine.layout_version:
            self._resolve()
        return self.engine._step_parts([
            (self._names_of[i], self.engine._banks[key], rows, values[positions])
            for i, (key, positions, rows) in enumerate(self._parts)])
