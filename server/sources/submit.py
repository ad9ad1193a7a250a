"""HTTP submit as a source: points posted to /api/submit, scored together in shared engine steps.

Calls that arrive while the engine is busy wait in one mailbox; whoever next
holds the engine lock takes every queued request and scores them in one
engine step per round (the k-th point of every stream goes into step k), so
concurrent single-point submits to different streams cost one vectorised step,
not one each, and successive points of one stream are scored as one block on
the detectors' fast path (the same verdicts as one step each).  A large
submit is scored in slices with the lock released in between (a tick may run
between two slices) and queues its write after its last slice: two concurrent submits to the same stream may then reach the
database in another order than the engine scored them; each one's own points
keep theirs.

Its lifecycle is the supervisor's: once stopped, queued and new requests are
refused (they are answered with an error, never acknowledged), and a request
already scored still gets its write queued, so nothing acknowledged is lost.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from ..pipeline.engine_thread import EngineThread
from ..pipeline.point import ScoredPoint, from_verdict
from ..pipeline.streams import StreamCatalog
from ..validation import Conflict, InvalidRequest, SubmittedPoint
from ..writer import Writer, WriterStopped
from ..writes import PointsJob

__all__ = ["SLICE_SECONDS", "SubmitSource"]

# How long one slice of a submit may hold the engine: between slices the lock is released,
# so a tick (or a configure, or another submit) never waits for a whole large batch.  A
# fraction of the shortest tick interval (0.1 s), not a figure tuned on a benchmark.
SLICE_SECONDS = 0.025
#: The first block of one stream's successive points (then sized to take about one slice), and the most.
FIRST_BLOCK_POINTS, MAX_BLOCK_POINTS = 16, 4096


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


class SubmitSource:
    """Points sent over HTTP: validated against their streams, scored in shared steps, stored.

    Parameters
    ----------
    engine : EngineThread
    catalog : StreamCatalog
        Where new user streams are recorded (at most ``max_user_streams`` of them).
    writer : Writer
    write_timeout : float
    max_user_streams : int
    """

    name = "submit"

    def __init__(self, engine: EngineThread, catalog: StreamCatalog, writer: Writer,
                 write_timeout: float, max_user_streams: int):
        self.engine = engine
        self.catalog = catalog
        self.writer = writer
        self.write_timeout = write_timeout
        self.max_user_streams = max_user_streams
        #: The mailbox: requests waiting for the engine (its length is a metric).
        self.waiting: list[_SubmitRequest] = []
        self._waiting_lock = threading.Lock()
        self._stopped = False
        #: Points of one stream scored as one block; adapted to the measured speed (see _score_block).
        self._block_points = FIRST_BLOCK_POINTS

    # -- the lifecycle the supervisor drives ---------------------------------------------------
    def start(self) -> None:
        """Nothing to open: requests arrive through the API."""

    def stop(self) -> None:
        """Refuse further requests, once the slice in progress (if any) is scored."""
        with self.engine.lock:
            self._stopped = True

    def drain(self) -> list:
        return []  # a request is acknowledged only after its commit: nothing is held unanswered

    @property
    def _closed(self) -> bool:
        return self._stopped or self.engine.closed

    # -- one call -------------------------------------------------------------------------------
    def submit(self, items: list[SubmittedPoint], owner: dict | None = None) -> list[dict]:
        """Score submitted points (creating user streams as needed), store and publish them.

        Raises :class:`~server.validation.InvalidRequest` when a point does not
        fit its stream; nothing of that call is scored or stored then.  Returns
        the stored point objects in the order of ``items``.  ``owner`` (client
        address and token fingerprint) is recorded with the user streams it creates.
        """
        request = _SubmitRequest(items, owner)
        with self._waiting_lock:
            self.waiting.append(request)
        batch: list[_SubmitRequest] = []
        accepted: list[_SubmitRequest] = []
        with self.engine.lock:
            if not request.scored:
                with self._waiting_lock:
                    batch, self.waiting = self.waiting, []
                try:
                    accepted, merged = self._plan(batch)
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
        self.catalog.persisted(request.job.new_streams)
        results: list[dict] = [None] * len(items)  # type: ignore[list-item]
        for stored_point, index in zip(stored, request.order):
            results[index] = stored_point
        return results

    def _plan(self, batch: list[_SubmitRequest]) -> tuple[list[_SubmitRequest], list[tuple]]:
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
                self.engine.run(self._add_streams, list(planned.values()))
            except Exception as exc:
                for request in accepted:
                    request.error = exc
                return [], []
            self.catalog.add(planned.values())
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
        scored: list[ScoredPoint] = []
        order: list[tuple[int, int]] = []
        done = 0
        try:
            while done < len(rounds):
                with self.engine.lock:
                    if self._closed:
                        raise WriterStopped("the server is shutting down")
                    done = self.engine.run(self._score_slice, rounds, done, scored, order)
                if done < len(rounds):
                    time.sleep(0)  # let a waiting tick take the lock (a greenlet switch under gevent)
            per_request: list[tuple[list, list]] = [([], []) for _ in accepted]
            for scored_point, (n, index) in zip(scored, order):
                per_request[n][0].append(scored_point)
                per_request[n][1].append(index)
            with self.engine.lock:
                unpersisted = self.catalog.unpersisted()
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
        known = {name: meta["fields"] for name, meta in self.catalog.streams.items()}
        known.update((name, meta["fields"]) for name, meta in planned.items())
        user_streams = self.catalog.user_streams + len(planned)
        created: dict[str, dict] = {}
        resolved = []
        where = (lambda i: "body") if len(items) == 1 else (lambda i: f"points[{i}]")
        for item in items:
            values = item.values
            fields = known.get(item.source)
            if fields is None:
                fields = tuple(values) if values is not None else ("value",)
                if user_streams + len(created) >= self.max_user_streams:
                    raise Conflict(f"{where(item.index)}.source {item.source!r} is a new "
                                   f"stream, but the limit of {self.max_user_streams} "
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
            self.engine.engine.add_stream(meta["name"], meta["fields"])

    def _score_block(self, run: list[dict[str, tuple]], scored: list[ScoredPoint],
                     order: list[tuple[int, int]]) -> None:
        """Score a run of rounds that each hold one point of the same stream as one engine block.

        The block's length adapts so that one block takes about one slice
        (:data:`SLICE_SECONDS`): the lock is never held much longer than by step-wise scoring.
        """
        (source,) = run[0]
        entries = [r[source] for r in run]
        fields = tuple(entries[0][2])  # every point of the stream was checked to have its fields
        values = np.array([[entry[2][f] for f in fields] for entry in entries], dtype=float)
        started = time.perf_counter()
        verdicts = self.engine.step_block(source, values, fields)
        elapsed = time.perf_counter() - started
        for verdict, (n, index, _, timestamp) in zip(verdicts, entries):
            scored.append(from_verdict(verdict, source, timestamp))
            order.append((n, index))
        rate = len(entries) / max(elapsed, 1e-6)
        self._block_points = int(min(MAX_BLOCK_POINTS, max(2, rate * SLICE_SECONDS)))

    def _score_slice(self, rounds: list[dict[str, tuple]], start: int, scored: list[ScoredPoint],
                     order: list[tuple[int, int]]) -> int:
        """Runs on the engine thread: score rounds from ``start`` for about SLICE_SECONDS.

        Appends each scored point and its (request number, item index) to
        ``scored`` and ``order``; returns the index of the first round not scored.
        """
        deadline = time.perf_counter() + SLICE_SECONDS
        k = start
        while k < len(rounds):
            run = _single_stream_run(rounds, k, self._block_points)
            if run > 1:  # successive points of one stream: one block on the detectors' fast path
                self._score_block(rounds[k:k + run], scored, order)
                k += run
            else:
                batch = rounds[k]
                verdicts = self.engine.step({s: entry[2] for s, entry in batch.items()})
                for source, (n, index, _, timestamp) in batch.items():
                    scored.append(from_verdict(verdicts[source], source, timestamp))
                    order.append((n, index))
                k += 1
            if time.perf_counter() >= deadline:
                break
        return k


def _single_stream_run(rounds: list[dict[str, tuple]], k: int, limit: int) -> int:
    """How many rounds from ``k`` (at most ``limit``) hold one point each, all of the same stream."""
    if len(rounds[k]) != 1:
        return 1
    (source,) = rounds[k]
    end = k + 1
    while end < len(rounds) and end - k < limit and len(rounds[end]) == 1 and source in rounds[end]:
        end += 1
    return end - k


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
