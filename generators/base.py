"""The seeded base class of every synthetic stream: simulated time, blocks of points, injection.

Points are made in fixed blocks of :attr:`SyntheticStream.block_size`: the
stream's normal behaviour for the whole block in a few numpy operations, then
the anomaly episodes that touch the block written over it.  ``next()``,
``take()`` and ``frame()`` only read from the current block, so they are cheap
and give the same points however the calls are mixed.

Randomness comes from ``numpy.random.default_rng(seed)``, split into three
independent children: normal behaviour, episode planning, and the noise of
variance changes.  So a stream with ``anomaly_rate=0`` is exactly the normal
part of the same seed's anomalous stream.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .episodes import Episode, EpisodeScheduler, apply_episode
from .patterns import SECONDS_PER_DAY, ar1, day_start
from .point import Point

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SyntheticStream", "CyclicStream", "DEFAULT_START", "MAX_ANOMALY_RATE"]

#: 2026-01-01T00:00:00Z.
DEFAULT_START = 1_767_225_600.0
#: Above this, episodes would crowd out the normal behaviour they stand out from.
MAX_ANOMALY_RATE = 0.5


class SyntheticStream:
    """Base class: a seeded, endless stream of labelled points.

    Parameters
    ----------
    seed : int
        Seed of ``numpy.random.default_rng``; the same parameters give the same points.
    anomaly_rate : float
        Expected fraction of points labelled anomalous, in [0, 0.5]; 0 gives a clean stream.
    step_seconds : float
        Simulated seconds between points; point ``i`` is at ``start + i * step_seconds``.
    start : float or None
        Epoch seconds of the first point; None means 2026-01-01T00:00:00Z.
    warmup_points : int
        No episode starts before this point, so detectors can learn the normal behaviour first.

    Notes
    -----
    Subclasses declare ``name``, ``fields``, ``units``, ``description`` and the
    anomaly ``kinds`` they use (with weights), and implement :meth:`_start_state`
    and :meth:`_baseline`; streams with a daily pattern implement :meth:`_profile`
    to allow contextual anomalies.  State lives in attributes ending in ``_``,
    created by :meth:`reset` (which ``__init__`` calls).
    """

    name: ClassVar[str] = "base"
    fields: ClassVar[tuple[str, ...]] = ()
    units: ClassVar[dict[str, str]] = {}
    description: ClassVar[str] = ""
    #: Anomaly kinds this stream injects, with integer weights.
    kinds: ClassVar[dict[str, int]] = {}
    #: Per kind, +1 or -1 to fix an episode's direction (missing: random).
    signs: ClassVar[dict[str, int]] = {}
    #: Per kind, the fields it hits: a tuple of names or "one" (missing: all fields).
    kind_fields: ClassVar[dict] = {}
    #: Per kind, overrides of episodes.LENGTHS and episodes.MAGNITUDES.
    lengths: ClassVar[dict] = {}
    magnitudes: ClassVar[dict] = {}
    #: Per field, (low, high) bounds every value is clipped to; a dropout reads the low bound.
    bounds: ClassVar[dict[str, tuple[float, float]]] = {}
    #: Contextual episodes lie within these UTC hours (first < last) and take the level of busy_hour.
    quiet_hours: ClassVar[tuple[float, float]] = (0.0, 5.0)
    busy_hour: ClassVar[float] = 13.0
    block_size: ClassVar[int] = 256

    def __init__(
        self,
        seed: int = 0,
        anomaly_rate: float = 0.02,
        step_seconds: float = 300.0,
        start: float | None = None,
        warmup_points: int = 100,
    ):
        if not _is_count(seed):
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not _is_real(anomaly_rate) or not 0.0 <= anomaly_rate <= MAX_ANOMALY_RATE:
            raise ValueError(f"anomaly_rate must be a number in [0, {MAX_ANOMALY_RATE}], got {anomaly_rate!r}")
        if not _is_real(step_seconds) or not step_seconds > 0:
            raise ValueError(f"step_seconds must be a positive number, got {step_seconds!r}")
        if start is not None and not _is_real(start):
            raise ValueError(f"start must be epoch seconds or None, got {start!r}")
        if not _is_count(warmup_points):
            raise ValueError(f"warmup_points must be a non-negative integer, got {warmup_points!r}")
        self.seed = int(seed)
        self.anomaly_rate = float(anomaly_rate)
        self.step_seconds = float(step_seconds)
        self.start = DEFAULT_START if start is None else float(start)
        self.warmup_points = int(warmup_points)
        self.reset()

    # -- public API -----------------------------------------------------
    def reset(self) -> "SyntheticStream":
        """Go back to the first point: the stream replays exactly."""
        normal_rng, planning_rng, noise_rng = np.random.default_rng(self.seed).spawn(3)
        self.normal_rng_ = normal_rng
        self.injection_rng_ = noise_rng
        self.scheduler_ = EpisodeScheduler(
            rng=planning_rng,
            rate=self.anomaly_rate,
            kinds=self.kinds,
            fields=self.fields,
            kind_fields=self.kind_fields,
            signs=self.signs,
            lengths=self.lengths,
            magnitudes=self.magnitudes,
            warmup=self.warmup_points,
            place=self._place_episode,
        )
        unbounded = (-np.inf, np.inf)
        self.lower_, self.upper_ = np.array([self.bounds.get(f, unbounded) for f in self.fields], dtype=float).T
        self.floors_ = np.where(np.isfinite(self.lower_), self.lower_, 0.0)
        self.generated_ = 0  # points made so far, in whole blocks
        self.cursor_ = self.block_size  # read position in the current block; "exhausted" before the first
        self.previous_row_ = None
        self.block_origin_ = None
        self.resume_at_ = None  # set by resume(): where to read in the block it makes next
        self._start_state(normal_rng)
        return self

    @property
    def position(self) -> int:
        """Index of the next point the stream will return."""
        if self.resume_at_ is not None:  # resumed, its block not made again yet
            return self.generated_ + self.resume_at_
        return self.generated_ - self.block_size + self.cursor_

    def next(self) -> Point:
        """Return the next point and advance simulated time by ``step_seconds``."""
        if self.cursor_ == self.block_size:
            self._make_block()
        i = self.cursor_
        self.cursor_ += 1
        return Point(
            float(self.block_times_[i]),
            dict(zip(self.fields, self.block_values_[i].tolist())),
            bool(self.block_anomaly_[i]),
            self.block_kinds_[i],
        )

    def take(self, n: int) -> list[Point]:
        """Return the next ``n`` points as a list (the same points ``n`` calls of ``next`` give)."""
        times, values, anomaly, kinds = self._take_arrays(n)
        return [
            Point(t, dict(zip(self.fields, row)), a, k)
            for t, row, a, k in zip(times.tolist(), values.tolist(), anomaly.tolist(), kinds.tolist())
        ]

    def frame(self, n: int) -> pd.DataFrame:
        """Return the next ``n`` points as a DataFrame: timestamp, one column per field, is_anomaly, kind."""
        import pandas as pd  # here, not at the top: the server never builds frames and starts faster

        times, values, anomaly, kinds = self._take_arrays(n)
        columns = {"timestamp": times}
        columns.update({field: values[:, j] for j, field in enumerate(self.fields)})
        columns["is_anomaly"] = anomaly
        columns["kind"] = pd.Series(kinds, dtype=object)
        return pd.DataFrame(columns)

    def state(self) -> dict:
        """Return a JSON-ready state to :meth:`resume` from: where the current block began, and the read position.

        >>> from generators import make_stream
        >>> a = make_stream("cpu_usage", seed=3)
        >>> _ = a.take(300)
        >>> b = make_stream("cpu_usage", seed=3).resume(a.state())
        >>> b.position, a.next() == b.next()
        (300, True)
        """
        cursor = self.cursor_ if self.resume_at_ is None else self.resume_at_
        return {"stream": repr(self), "block": self.block_origin_, "cursor": cursor}

    def resume(self, state: dict) -> "SyntheticStream":
        """Continue from a :meth:`state` of a stream with the same parameters (ValueError otherwise)."""
        if not isinstance(state, dict) or state.get("stream") != repr(self):
            raise ValueError(f"the saved state belongs to {state.get('stream') if isinstance(state, dict) else state!r}, "
                             f"not to {self!r}")
        self.reset()
        if state["block"] is not None:
            _load_state(self, state["block"])
            # The same block is made again, from that state alone, when the next point is asked
            # for: not here, so that a server restores its streams without computing anything.
            self.block_origin_ = state["block"]
            self.resume_at_ = int(state["cursor"])
        return self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(seed={self.seed}, anomaly_rate={self.anomaly_rate}, "
            f"step_seconds={self.step_seconds}, start={self.start}, warmup_points={self.warmup_points})"
        )

    # -- for subclasses ---------------------------------------------------
    def _start_state(self, rng: np.random.Generator) -> None:
        """Draw the initial state of the normal behaviour (noise, levels) into ``_``-attributes."""
        raise NotImplementedError

    def _baseline(self, times: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Continue the normal behaviour: return ``(values, scale)``, each ``(len(times), d)``.

        ``scale`` is the local noise standard deviation, the unit of anomaly sizes.
        """
        raise NotImplementedError

    def _profile(self, times: np.ndarray) -> np.ndarray:
        """Expected level ``(len(times), d)`` from the clock alone (daily and weekly cycles)."""
        raise NotImplementedError(f"{self.name} has no daily profile, so no contextual anomalies")

    # -- internals ----------------------------------------------------------
    def _make_block(self) -> None:
        # Kept so that state() can describe the block by what makes it, not by its values.
        self.block_origin_ = _dump_state(self)
        first = self.generated_
        times = self.start + np.arange(first, first + self.block_size) * self.step_seconds
        values, scale = self._baseline(times, self.normal_rng_)
        values = np.clip(values, self.lower_, self.upper_)
        labels = np.full(self.block_size, None, dtype=object)

        def contextual_shift(rows: slice) -> np.ndarray:
            at = times[rows]
            busy = day_start(at) + self.busy_hour * 3600.0
            return self._profile(busy) - self._profile(at)

        for episode in self.scheduler_.overlapping(first, first + self.block_size):
            apply_episode(
                episode,
                first,
                values,
                scale,
                labels,
                previous_row=self.previous_row_,
                floors=self.floors_,
                contextual_shift=contextual_shift,
                rng=self.injection_rng_,
            )
        np.clip(values, self.lower_, self.upper_, out=values)
        self.block_times_ = times
        self.block_values_ = values
        self.block_kinds_ = labels
        self.block_anomaly_ = labels != None  # noqa: E711 -- elementwise on an object array
        self.previous_row_ = values[-1].copy()
        self.generated_ += self.block_size
        self.cursor_, self.resume_at_ = self.resume_at_ or 0, None

    def _take_arrays(self, n: int):
        if not _is_count(n):
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        parts = []
        remaining = int(n)
        while remaining:
            if self.cursor_ == self.block_size:
                self._make_block()
            rows = slice(self.cursor_, min(self.block_size, self.cursor_ + remaining))
            parts.append((self.block_times_[rows], self.block_values_[rows], self.block_anomaly_[rows], self.block_kinds_[rows]))
            remaining -= rows.stop - rows.start
            self.cursor_ = rows.stop
        if not parts:
            d = len(self.fields)
            return np.empty(0), np.empty((0, d)), np.empty(0, dtype=bool), np.empty(0, dtype=object)
        return tuple(np.concatenate(column) for column in zip(*parts))

    def _place_episode(self, kind: str, start: int, length: int, rng: np.random.Generator) -> tuple[int, int]:
        """Move a contextual episode into the next quiet hours and keep it inside them."""
        if kind != "contextual":
            return start, length
        first_hour, last_hour = self.quiet_hours
        window_points = (last_hour - first_hour) * 3600.0 / self.step_seconds
        # Too little of tonight's window left for a proper episode: wait for tomorrow's.
        enough = max(1, min(length, int(window_points / 2)))
        today = day_start(self.start + start * self.step_seconds)
        for day in today + SECONDS_PER_DAY * np.arange(3):
            opens = max(start, self._first_index_at(day + first_hour * 3600.0))
            closes = self._first_index_at(day + last_hour * 3600.0)
            if closes - opens >= enough:
                break
        else:  # steps too coarse to land in the quiet hours: leave the plan as it is
            return start, length
        length = min(length, closes - opens)
        if opens > start:  # moved: start anywhere the episode still fits, not always on the hour
            opens += int(rng.integers(0, closes - opens - length + 1))
        return opens, length

    def _first_index_at(self, time: float) -> int:
        """Index of the first point at or after ``time``."""
        return max(0, math.ceil((time - self.start) / self.step_seconds - 1e-9))


#: Attributes that state() does not save: the block's points (remade on resume) and the origin itself.
_UNSAVED = frozenset({"block_times_", "block_values_", "block_kinds_", "block_anomaly_", "block_origin_",
                      "resume_at_"})


def _dump_state(stream: SyntheticStream) -> dict:
    """The stream's ``_``-attributes (and its episode scheduler's) as JSON-ready values."""
    saved = {k: _encode(v) for k, v in vars(stream).items() if k.endswith("_") and k not in _UNSAVED
             and k != "scheduler_"}
    scheduler = stream.scheduler_
    saved["scheduler_"] = {"rng": scheduler.rng.bit_generator.state,
                           **{k: _encode(v) for k, v in vars(scheduler).items() if k.endswith("_")}}
    return saved


def _load_state(stream: SyntheticStream, saved: dict) -> None:
    saved = dict(saved)
    scheduler = dict(saved.pop("scheduler_"))
    stream.scheduler_.rng.bit_generator.state = scheduler.pop("rng")
    for key, value in scheduler.items():
        setattr(stream.scheduler_, key, _decode(value, getattr(stream.scheduler_, key, None)))
    for key, value in saved.items():
        setattr(stream, key, _decode(value, getattr(stream, key, None)))


def _encode(value):
    if isinstance(value, np.random.Generator):
        return {"rng": value.bit_generator.state}
    if isinstance(value, np.ndarray):
        return {"array": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return {"scalar": value.item(), "dtype": value.dtype.str}
    if isinstance(value, Episode):
        return {"episode": {k: _encode(v) for k, v in vars(value).items()}}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a {type(value).__name__} in a stream's state")


def _decode(value, current):
    if isinstance(value, list):
        return [_decode(v, None) for v in value]
    if not isinstance(value, dict):
        return value
    if "rng" in value:
        current.bit_generator.state = value["rng"]  # the same object: _baseline calls keep using it
        return current
    if "array" in value:
        return np.array(value["array"], dtype=np.dtype(value["dtype"]))
    if "scalar" in value:
        return np.dtype(value["dtype"]).type(value["scalar"])
    return Episode(**{k: _decode(v, None) for k, v in value["episode"].items()})


def _is_real(x) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(x)


def _is_count(x) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool) and x >= 0



class CyclicStream(SyntheticStream):
    """A stream whose normal behaviour is a clock-driven :meth:`_profile` plus AR(1) noise.

    Subclasses set ``noise_sd`` (the noise's standard deviation, also the unit of
    anomaly sizes) and ``noise_phi`` (its lag-one autocorrelation), and implement
    :meth:`_profile`.
    """

    noise_sd: ClassVar[float] = 1.0
    noise_phi: ClassVar[float] = 0.5

    def _start_state(self, rng):
        self.noise_ = rng.standard_normal(len(self.fields))

    def _baseline(self, times, rng):
        noise, self.noise_ = ar1(rng, self.noise_, self.noise_phi, len(times))
        scale = np.full((len(times), len(self.fields)), self.noise_sd)
        return self._profile(times) + scale * noise, scale
