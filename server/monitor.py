"""The monitor: the engine and the generators, driven by ticks, submits and configure calls.

The engine is not thread-safe, so every call to it happens under one lock and
on one dedicated OS thread (:class:`~server.concurrency.DedicatedThread`):
under gevent that keeps numpy off the event loop.  Each tick, submit or
configure queues its write while it still holds the lock (so the database
sees changes in the engine's order) and waits for the commit after releasing
it, so the next tick can be scored while the last one is being committed.
A large submit is scored in slices with the lock released in between (a
tick may run between two slices) and queues its write after its last slice:
two concurrent submits to the same stream may then reach the database in
another order than the engine scored them; each one's own points keep theirs.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .concurrency import DedicatedThread
from .episodes import EpisodeTracker
from .events import jsonable
from .explain import explain
from .storage import open_reader
from .validation import Conflict, InvalidRequest, SubmittedPoint
from .writer import WriteJob, Writer, WriterStopped, WriterUnavailable
from .writes import ConfigJob, DeleteStreamJob, PointsJob, PruneJob, StreamsJob

__all__ = ["BuiltinStream", "Monitor", "UnknownSource"]

log = logging.getLogger(__name__)


class UnknownSource(LookupError):
    """A request names a stream that does not exist."""


class BuiltinStream(ValueError):
    """A request would delete a built-in stream."""


def _point(verdict, source: str, timestamp: float, truth: dict | None) -> dict:
    """The API's point object (without id) for one engine verdict.

    Reads the verdict's fields directly: ``Verdict.to_dict()`` deep-copies
    through ``dataclasses.asdict``, which costs more than the rest of this.
    """
    point = jsonable({
        "source": source, "timestamp": timestamp, "values": verdict.values,
        "score": verdict.score, "is_anomaly": verdict.is_anomaly, "alert": verdict.alert,
        "severity": verdict.severity, "detectors": verdict.detectors,
        "fired": verdict.fired, "expected": verdict.expected, "truth": truth,
        "warming_up": verdict.warming_up,
    })
    if point["score"] is None:  # the engine gave NaN: treat as "no evidence"
        point["score"] = 0.0
    point["explanation"] = explain(point)
    return point


class _SubmitRequest:
    """One /api/submit call waiting to be scored with whatever else is queued."""

    def __init__(self, items: list[SubmittedPoint], owner: dict | None = None):
        self.items = items
        self.owner = owner
        self.scored = False  # taken by a caller that scores it (perhaps not this one)
        self.ready = threading.Event()  # set once its write is queued, or it failed
        self.resolved: list[tuple] = []
        self.order: list[int] = []
        self.job: PointsJob | None = None
        self.error: BaseException | None = None


# How long one slice of a submit may hold the engine: between slices the lock is released,
# so a tick (or a configure, or another submit) never waits for a whole large batch.  A
# fraction of the shortest tick interval (0.1 s), not a figure tuned on a benchmark.
SLICE_SECONDS = 0.025


class Monitor:
    """Owns the engine and the built-in generators; turns ticks and submits into stored points.

    Parameters
    ----------
    engine : detectors.engine.Engine
    generators : dict of str to generator
        The built-in streams (objects with ``fields``, ``description``, ``units``, ``next()``).
    writer : Writer
    db_path : Path
        For the read connections used at start-up.
    settings : dict
        The resolved settings (see :mod:`server.settings`).
    """

    def __init__(self, engine, generators: Mapping[str, Any], writer: Writer, db_path: Path,
                 settings: Mapping[str, Any]):
        self.engine = engine
        self.generators = dict(generators)
        self.episodes = EpisodeTracker()
        self.writer = writer
        self.db_path = db_path
        self.settings = settings
        self.streams: dict[str, dict] = {}
        self.tick_count = 0
        self.tick_failures = 0
        self.tick_ms: deque[float] = deque(maxlen=1000)
        self.last_tick_at: float | None = None
        self._persisted: set[str] = set()
        self._submits: list[_SubmitRequest] = []
        self._submits_lock = threading.Lock()
        self._lock = threading.Lock()
        self._closed = False
        self._engine_thread = DedicatedThread("engine")
        self._window_ranges: dict[str, tuple[int | None, int | None]] | None = None
        #: Called with (seconds, streams) after every engine step (scoring latency metrics).
        self.on_step: Callable[[float, int], None] | None = None
        #: Called with the seconds of every tick, scoring and commit included.
        self.on_tick: Callable[[float], None] | None = None

    @property
    def write_timeout(self) -> float:
        return self.settings["WRITE_TIMEOUT"]

    def quiesce(self) -> None:
        """Wait for the tick, submit or configure in progress; refuse new ones (at shutdown)."""
        with self._lock:
            self._closed = True

    def close(self) -> None:
        self.quiesce()
        self._engine_thread.close()

    def checkpoint(self, export: Callable[[], Any], marker: "WriteJob", closing: bool = False):
        """Run ``export`` on the engine thread between ticks and submits, then queue ``marker``.

        The writer commits in queue order, so ``marker`` sees exactly the points
        scored before ``export`` (server/snapshots.py).  Returns ``(export's result,
        the queued marker)``, or None once closed (unless ``closing``: the final snapshot).
        """
        with self._lock:
            if self._closed and not closing:
                return None
            state = self._engine_thread.run(export)
            return state, self.writer.submit(marker, timeout=self.write_timeout)

    # -- start-up ---------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Register built-in streams, then restore user streams and saved configurations."""
        builtin = []
        for name, gen in self.generators.items():
            self.engine.add_stream(name, tuple(gen.fields))
            meta = {"name": name, "fields": tuple(gen.fields), "kind": "builtin",
                    "description": getattr(gen, "description", ""),
                    "units": dict(getattr(gen, "units", {}) or {})}
            self.streams[name] = meta
            builtin.append(meta)
        try:
            self.writer.write(StreamsJob(builtin, replace=True), self.write_timeout)
            self._persisted.update(self.streams)
        except WriterUnavailable as exc:
            # Serve reads; the built-in streams are stored with the first write once this
            # process becomes the writer.
            log.warning("monitor: %s", exc)
        reader = open_reader(self.db_path)
        try:
            stored, configs = reader.streams(), reader.configs()
        finally:
            reader.close()
        for meta in stored:
            if meta["name"] in self.streams:
                continue
            try:
                self.engine.add_stream(meta["name"], meta["fields"])
            except ValueError as exc:
                log.error("cannot restore stream %r: %s", meta["name"], exc)
                continue
            self.streams[meta["name"]] = meta
            self._persisted.add(meta["name"])
        for source, config in configs.items():
            if source not in self.streams:
                continue
            try:
                self.engine.load_config({source: config})
            except (ValueError, TypeError, KeyError) as exc:
                log.error("cannot restore the configuration of %r: %s", source, exc)
        log.info("monitor ready: %d built-in and %d user streams, %d saved configurations",
                 len(builtin), len(self.streams) - len(builtin), len(configs))

    # -- ticks ------------------------------------------------------------------------------
    def tick(self) -> list[dict]:
        """Draw one point per built-in stream, score them together, store and publish them."""
        started = time.perf_counter()
        with self._lock:
            if self._closed:
                return []
            self.tick_count += 1
            number = self.tick_count
            points, problems = self._engine_thread.run(self._draw_and_score)
            job = None
            if points:
                job = self.writer.submit(PointsJob(points, tick=number, origin="scheduler"),
                                         timeout=self.write_timeout)
        for problem in problems:
            log.error("tick %d: %s", number, problem)
        stored = job.wait(self.write_timeout) if job is not None else []
        self.tick_ms.append((time.perf_counter() - started) * 1000)
        if self.on_tick is not None:
            self.on_tick(time.perf_counter() - started)
        self.last_tick_at = time.time()
        return stored

    def _step(self, points: dict) -> dict:
        """One engine step, timed for whoever listens (server/metrics.py)."""
        started = time.perf_counter()
        verdicts = self.engine.step(points)
        if self.on_step is not None:
            self.on_step(time.perf_counter() - started, len(points))
        return verdicts

    def _draw_and_score(self) -> tuple[list[dict], list[str]]:
        """Runs on the engine thread.  A failing generator costs only its own stream this tick."""
        drawn, problems = {}, []
        for name, gen in self.generators.items():
            try:
                point = gen.next()
                values = {f: float(v) for f, v in point.values.items()}
            except Exception as exc:
                problems.append(f"generator {name!r} failed: {type(exc).__name__}: {exc}")
                continue
            if not all(math.isfinite(v) for v in values.values()):
                problems.append(f"generator {name!r} produced a non-finite value {values}")
                continue
            drawn[name] = (point, values)
        if not drawn:
            return [], problems
        now = time.time()
        verdicts = self._step({name: values for name, (_, values) in drawn.items()})
        points = []
        for name, (p, _) in drawn.items():
            verdict = verdicts[name]
            episode = self.episodes.outcome(name, bool(p.is_anomaly), verdict.is_anomaly)
            point = _point(verdict, name, now, {"is_anomaly": bool(p.is_anomaly), "kind": p.kind})
            point["_episode"] = episode  # counted by the writer, never stored or sent
            points.append(point)
        return points, problems

    # -- submits ----------------------------------------------------------------------------
    def submit(self, items: list[SubmittedPoint], owner: dict | None = None) -> list[dict]:
        """Score submitted points (creating user streams as needed), store and publish them.

        Raises :class:`~server.validation.InvalidRequest` when a point does not
        fit its stream; nothing of that call is scored or stored then.  Returns
        the stored point objects in the order of ``items``.  ``owner`` (client
        address and token fingerprint) is recorded with the user streams it creates.

        Calls that arrive while the engine is busy are scored together: each
        caller queues its request, and whoever next holds the engine lock scores
        every queued request in one engine step per round (the k-th point of
        every source goes into step k), so concurrent single-point submits to
        different streams cost one vectorised step, not one each.  Many points of
        one stream are scored in slices that release the engine lock in between,
        so they never hold up a tick for longer than one slice.
        """
        request = _SubmitRequest(items, owner)
        with self._submits_lock:
            self._submits.append(request)
        batch: list[_SubmitRequest] = []
        accepted: list[_SubmitRequest] = []
        with self._lock:
            if not request.scored:
                with self._submits_lock:
                    batch, self._submits = self._submits, []
                try:
                    accepted, merged = self._plan_submits(batch)
                except BaseException as exc:
                    for taken in batch:
                        taken.error = taken.error or exc
                        taken.ready.set()
                    raise
        if batch:
            try:
                if accepted:
                    self._score_in_slices(accepted, merged)
            finally:
                for taken in batch:
                    taken.ready.set()
        request.ready.wait()
        if request.error is not None:
            raise request.error
        stored = request.job.wait(self.write_timeout)
        self._persisted.update(m["name"] for m in request.job.new_streams)
        results: list[dict] = [None] * len(items)  # type: ignore[list-item]
        for point, index in zip(stored, request.order):
            results[index] = point
        return results

    def _plan_submits(self, batch: list[_SubmitRequest]) -> tuple[list[_SubmitRequest], list[tuple]]:
        """Runs under the engine lock: validate queued submits and create their new streams.

        Returns the accepted requests and their points in arrival order, as
        (request number, item index, source, values, timestamp).
        """
        planned: dict[str, dict] = {}
        accepted = []
        for request in batch:
            request.scored = True
            if self._closed:
                request.error = WriterStopped("the server is shutting down")
                continue
            try:
                request.resolved, created = self._resolve(request.items, planned, request.owner)
            except InvalidRequest as exc:
                request.error = exc
                continue
            planned.update((m["name"], m) for m in created)
            accepted.append(request)
        if accepted and planned:
            try:
                self._engine_thread.run(self._add_streams, list(planned.values()))
            except Exception as exc:
                for request in accepted:
                    request.error = exc
                return [], []
            self.streams.update(planned)
        merged = [(n, index, source, values, timestamp)
                  for n, request in enumerate(accepted)
                  for index, source, values, timestamp in request.resolved]
        return accepted, merged

    def _score_in_slices(self, accepted: list[_SubmitRequest], merged: list[tuple]) -> None:
        """Score the planned points a slice at a time, then queue one write per request.

        Each slice holds the engine lock for about :data:`SLICE_SECONDS`; in between
        the lock is free and this greenlet yields, so a due tick runs between two
        slices instead of after the whole batch.  Concurrent requests to the same
        stream may interleave in the engine; each request's own points keep their order.
        """
        rounds = _rounds(merged)
        points: list[dict] = []
        order: list[tuple[int, int]] = []
        done = 0
        try:
            while done < len(rounds):
                with self._lock:
                    if self._closed:
                        raise WriterStopped("the server is shutting down")
                    done = self._engine_thread.run(self._score_slice, rounds, done, points, order)
                if done < len(rounds):
                    time.sleep(0)  # let a waiting tick take the lock (a greenlet switch under gevent)
            per_request: list[tuple[list, list]] = [([], []) for _ in accepted]
            for point, (n, index) in zip(points, order):
                per_request[n][0].append(point)
                per_request[n][1].append(index)
            with self._lock:
                # A user stream whose first write failed is stored with the next one.
                unpersisted = [m for name, m in self.streams.items() if name not in self._persisted]
                for request, (request_points, request_order) in zip(accepted, per_request):
                    request.order = request_order
                    try:
                        request.job = self.writer.submit(
                            PointsJob(request_points, tick=None, origin="submit",
                                      new_streams=unpersisted), timeout=self.write_timeout)
                    except Exception as exc:
                        request.error = exc
        except Exception as exc:
            for request in accepted:
                if request.job is None and request.error is None:
                    request.error = exc

    def _resolve(self, items: list[SubmittedPoint], planned: dict[str, dict],
                 owner: dict | None = None) -> tuple[list[tuple], list[dict]]:
        """Match each point to its stream's fields; plan the user streams to create.

        ``planned`` holds streams that earlier requests of the same batch create.
        """
        known = {name: meta["fields"] for name, meta in self.streams.items()}
        known.update((name, meta["fields"]) for name, meta in planned.items())
        user_streams = len(self.streams) - len(self.generators) + len(planned)
        created: dict[str, dict] = {}
        resolved = []
        where = (lambda i: "body") if len(items) == 1 else (lambda i: f"points[{i}]")
        for item in items:
            values = item.values
            fields = known.get(item.source)
            if fields is None:
                fields = tuple(values) if values is not None else ("value",)
                if user_streams + len(created) >= self.settings["MAX_USER_STREAMS"]:
                    raise Conflict(f"{where(item.index)}.source {item.source!r} is a new "
                                         f"stream, but the limit of {self.settings['MAX_USER_STREAMS']} "
                                         "user streams is reached")
                created[item.source] = {"name": item.source, "fields": fields, "kind": "user",
                                        "description": "user stream (created by /api/submit)",
                                        "units": {}, "owner": owner}
                known[item.source] = fields
            if values is None:
                if len(fields) != 1:
                    raise Conflict(f"{where(item.index)}: source {item.source!r} has fields "
                                         f"{list(fields)}; send them as 'values'")
                values = {fields[0]: item.value}
            elif set(values) != set(fields):
                raise Conflict(f"{where(item.index)}.values: source {item.source!r} takes "
                                     f"fields {list(fields)}, got {list(values)}")
            timestamp = item.timestamp if item.timestamp is not None else time.time()
            resolved.append((item.index, item.source, values, timestamp))
        return resolved, list(created.values())

    def _add_streams(self, created: list[dict]) -> None:
        for meta in created:
            self.engine.add_stream(meta["name"], meta["fields"])

    def _score_slice(self, rounds: list[dict[str, tuple]], start: int, points: list[dict],
                     order: list[tuple[int, int]]) -> int:
        """Runs on the engine thread: score rounds from ``start`` for about SLICE_SECONDS.

        Appends each scored point and its (request number, item index) to
        ``points`` and ``order``; returns the index of the first round not scored.
        """
        deadline = time.perf_counter() + SLICE_SECONDS
        k = start
        while k < len(rounds):
            batch = rounds[k]
            verdicts = self._step({s: entry[2] for s, entry in batch.items()})
            for source, (n, index, _, timestamp) in batch.items():
                points.append(_point(verdicts[source], source, timestamp, None))
                order.append((n, index))
            k += 1
            if time.perf_counter() >= deadline:
                break
        return k

    def delete_stream(self, name: str) -> dict[str, int]:
        """Remove a user stream from the engine and the database; return the rows deleted."""
        with self._lock:
            if self._closed:
                raise WriterStopped("the server is shutting down")
            meta = self.streams.get(name)
            if meta is None:
                raise UnknownSource(name)
            if meta["kind"] == "builtin":
                raise BuiltinStream(name)
            self._engine_thread.run(self.engine.remove_stream, name)
            del self.streams[name]
            self._persisted.discard(name)
            job = self.writer.submit(DeleteStreamJob(name), timeout=self.write_timeout)
        return job.wait(self.write_timeout)

    # -- configuration ----------------------------------------------------------------------
    def configure(self, source: str, detector: str | None, params: dict) -> dict:
        """Apply a configuration change at once (under the engine lock) and persist it."""
        with self._lock:
            if self._closed:
                raise WriterStopped("the server is shutting down")
            if source not in self.streams:
                raise UnknownSource(source)
            config = self._engine_thread.run(self._configure, source, detector, params)
            job = self.writer.submit(ConfigJob(source, config), timeout=self.write_timeout)
        job.wait(self.write_timeout)
        return config

    def _configure(self, source: str, detector: str | None, params: dict) -> dict:
        if params.get("enabled") is False and detector not in (None, "ensemble"):
            # Well formed, but refused because of the stream's state: a conflict, not a 400.
            members = self.engine.config(source)["detectors"]
            others = [name for name, c in members.items()
                      if name != detector and c["enabled"] and c["weight"] > 0]
            if not others and members.get(detector, {}).get("enabled"):
                raise Conflict(f"at least one detector of {source!r} must stay enabled")
        self.engine.configure(source, detector=detector, **params)
        return jsonable(self.engine.config(source))

    def window_ranges(self) -> dict[str, tuple[int | None, int | None]]:
        """Each member's accepted windows (for the API's description), found by building it."""
        if self._window_ranges is None:
            self._window_ranges = self._engine_thread.run(_window_ranges, self.engine)
        return self._window_ranges

    def config(self, source: str | None = None) -> dict:
        """The engine's configuration of one stream, or of all streams."""
        with self._lock:
            if source is not None and source not in self.streams:
                raise UnknownSource(source)
            return jsonable(self._engine_thread.run(self.engine.config, source))

    @property
    def detector_names(self) -> list[str]:
        return list(self.engine.detector_names)

    # -- retention and stats ----------------------------------------------------------------
    def prune(self) -> dict[str, int]:
        """Delete what the retention settings no longer keep; return the counts deleted."""
        s = self.settings
        deleted = self.writer.write(
            PruneJob(s["RETENTION_POINTS"], s["RETENTION_EVENTS"], s["RETENTION_DAYS"] * 86400.0),
            self.write_timeout)
        if any(deleted.values()):
            log.info("retention pruned %s", deleted)
        return deleted

    def tick_stats(self) -> dict:
        durations = np.fromiter(self.tick_ms, dtype=float)
        if durations.size == 0:
            return {"count": self.tick_count, "last_ms": None, "p50_ms": None, "p99_ms": None}
        return {"count": self.tick_count, "last_ms": round(float(durations[-1]), 3),
                "p50_ms": round(float(np.percentile(durations, 50)), 3),
                "p99_ms": round(float(np.percentile(durations, 99)), 3)}


def _window_ranges(engine) -> dict[str, tuple[int | None, int | None]]:
    """The smallest window in WINDOW_RANGE each member accepts (some need more than the least)."""
    from detectors.engine import WINDOW_RANGE
    from detectors.registry import make

    low, high = WINDOW_RANGE
    ranges = {}
    for member in engine.detector_names:
        params = dict(engine.member_params.get(member, {}))
        if getattr(make(member, **params), "window", None) is None:
            ranges[member] = (None, None)  # no window to set
            continue
        for window in range(low, high + 1):
            try:  # some checks run only when state is allocated
                make(member, **{**params, "window": window}).reset(1, 1)
            except ValueError:
                continue
            ranges[member] = (window, high)
            break
    return ranges


def _rounds(merged: list[tuple]) -> list[dict[str, tuple]]:
    """The k-th point of every source goes into engine step k.

    ``merged`` holds (request number, item index, source, values, timestamp) in
    arrival order; each round maps source to (request number, item index, values, timestamp).
    """
    rounds: list[dict[str, tuple]] = []
    seen: dict[str, int] = {}
    for n, index, source, values, timestamp in merged:
        k = seen.get(source, 0)
        seen[source] = k + 1
        if k == len(rounds):
            rounds.append({})
        rounds[k][source] = (n, index, values, timestamp)
    return rounds


def build_generators(make_stream: Callable, names, seed: int, rate: float) -> dict[str, Any]:
    """One seeded generator per built-in stream name (stream i gets ``seed + i``)."""
    return {name: make_stream(name, seed=seed + i, anomaly_rate=rate) for i, name in enumerate(names)}
