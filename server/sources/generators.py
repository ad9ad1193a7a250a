"""The built-in generators as a source: each tick draws one point per stream and scores them in one step.

Its clock is the scheduler's ``tick`` job (server/scheduler.py), which runs in
the one process that holds the scheduler lock; tests call :meth:`tick`
themselves.  The supervisor owns its lifecycle like any other source's: once
stopped it refuses further ticks after the one in progress has queued its
write.  A tick is scored and queued as a whole or not at all, so there is
never anything to drain.
"""
from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import Any, Callable, Mapping

import numpy as np

from ..episodes import EpisodeTracker
from ..pipeline.point import ScoredPoint, Truth, from_verdict
from ..pipeline.engine_thread import EngineThread
from ..writer import Writer
from ..writes import PointsJob

__all__ = ["GeneratorSource", "build_generators"]

log = logging.getLogger(__name__)


class GeneratorSource:
    """The built-in streams, drawn and scored together at each tick of the scheduler.

    Parameters
    ----------
    generators : dict of str to generator
        Objects with ``fields``, ``description``, ``units``, ``next()`` (see generators/).
    engine : EngineThread
    writer : Writer
    write_timeout : float
    """

    name = "generators"

    def __init__(self, generators: Mapping[str, Any], engine: EngineThread, writer: Writer,
                 write_timeout: float):
        self.generators = dict(generators)
        self.engine = engine
        self.writer = writer
        self.write_timeout = write_timeout
        self.episodes = EpisodeTracker()
        self.tick_count = 0
        #: The last 1,000 ticks' times, without the process's first tick (:attr:`first_tick_ms`).
        self.tick_ms: deque[float] = deque(maxlen=1000)
        #: The process's first tick in ms (what it loads first that the start-up did not): kept
        #: apart so the percentiles describe the running server.
        self.first_tick_ms: float | None = None
        self.last_tick_at: float | None = None
        self._stopped = False
        #: Called with the seconds of every tick, scoring and commit included.
        self.on_tick: Callable[[float], None] | None = None

    # -- the lifecycle the supervisor drives ---------------------------------------------------
    def start(self) -> None:
        """Nothing to open: the generators are seeded when built; the scheduler's clock ticks them."""

    def stop(self) -> None:
        """Refuse further ticks, once the tick in progress (if any) has queued its write."""
        with self.engine.lock:
            self._stopped = True

    def drain(self) -> list:
        return []  # a tick is queued whole under the engine lock: nothing is ever half taken

    # -- the tick -----------------------------------------------------------------------------
    def tick(self) -> list[dict]:
        """Draw one point per built-in stream, score them together, store and publish them."""
        started = time.perf_counter()
        with self.engine.lock:
            if self.engine.closed or self._stopped:
                return []
            self.tick_count += 1
            number = self.tick_count
            points, problems = self.engine.run(self._draw_and_score)
            job = None
            if points:
                job = self.writer.submit(PointsJob(points, tick=number, origin="scheduler"),
                                         timeout=self.write_timeout)
        for problem in problems:
            log.error("tick %d: %s", number, problem)
        stored = job.wait(self.write_timeout) if job is not None else []
        took_ms = (time.perf_counter() - started) * 1000
        if self.first_tick_ms is None:
            self.first_tick_ms = took_ms
        else:
            self.tick_ms.append(took_ms)
        if self.on_tick is not None:
            self.on_tick(took_ms / 1000)
        self.last_tick_at = time.time()
        return stored

    def _draw_and_score(self) -> tuple[list[ScoredPoint], list[str]]:
        """Runs on the engine thread.  A failing generator costs only its own stream this tick."""
        drawn, problems = {}, []
        for name, gen in self.generators.items():
            try:
                drawn_point = gen.next()
                values = {f: float(v) for f, v in drawn_point.values.items()}
            except Exception as exc:
                problems.append(f"generator {name!r} failed: {type(exc).__name__}: {exc}")
                continue
            if not all(math.isfinite(v) for v in values.values()):
                problems.append(f"generator {name!r} produced a non-finite value {values}")
                continue
            drawn[name] = (drawn_point, values)
        if not drawn:
            return [], problems
        now = time.time()
        verdicts = self.engine.step({name: values for name, (_, values) in drawn.items()})
        scored = []
        for name, (p, _) in drawn.items():
            verdict = verdicts[name]
            truth = Truth(bool(p.is_anomaly), p.kind)
            episode = self.episodes.outcome(name, truth.is_anomaly, verdict.is_anomaly)
            scored.append(from_verdict(verdict, name, now, truth, episode))
        return scored, problems

    def stats(self) -> dict:
        """The tick count, the last, median and 99th-percentile tick times of the last 1,000 ticks
        after the first, and the first's, in ms."""
        durations = np.fromiter(self.tick_ms, dtype=float)
        first = None if self.first_tick_ms is None else round(self.first_tick_ms, 3)
        if durations.size == 0:
            return {"count": self.tick_count, "last_ms": first, "p50_ms": None, "p99_ms": None, "first_ms": first}
        return {"count": self.tick_count, "last_ms": round(float(durations[-1]), 3),
                "p50_ms": round(float(np.percentile(durations, 50)), 3),
                "p99_ms": round(float(np.percentile(durations, 99)), 3), "first_ms": first}


def build_generators(make_stream: Callable, names, seed: int, rate: float) -> dict[str, Any]:
    """One seeded generator per built-in stream name (stream i gets ``seed + i``)."""
    return {name: make_stream(name, seed=seed + i, anomaly_rate=rate) for i, name in enumerate(names)}
