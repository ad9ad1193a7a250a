"""The monitor: one handle on the numeric streams' pieces, for the API, the jobs and the snapshots.

It owns nothing of its own; each job lives in its own module and the monitor
wires them together and keeps the methods the rest of the server calls:

==========================================  =========================================
the engine's lock and thread                :mod:`server.pipeline.engine_thread`
the streams (built-in, user), restored      :mod:`server.pipeline.streams`
ticks of the built-in generators (source)   :mod:`server.sources.generators`
HTTP submit and its mailbox (source)        :mod:`server.sources.submit`
detector configuration                      :mod:`server.pipeline.tuning`
retention                                   :mod:`server.retention`
the scored point                            :mod:`server.pipeline.point`
==========================================  =========================================

A point's path, in five files: its source (server/sources/submit.py or
generators.py) scores it through the engine thread into a
:class:`~server.pipeline.point.ScoredPoint` (server/pipeline/point.py) and
queues a :class:`~server.writes.PointsJob` (server/writes.py); the writer
thread (server/writer.py) commits it and hands its push events to the hub
(server/hub.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from .pipeline.engine_thread import EngineThread
from .pipeline.streams import BuiltinStream, StreamCatalog, UnknownSource
from .pipeline.tuning import Tuning
from .retention import prune_points
from .sources.generators import GeneratorSource, build_generators
from .sources.submit import SubmitSource
from .validation import SubmittedPoint
from .writer import WriteJob, Writer

__all__ = ["BuiltinStream", "Monitor", "UnknownSource", "build_generators"]


class Monitor:
    """The engine, the built-in generators and HTTP submit, with the methods the server calls.

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
        self.writer = writer
        self.db_path = db_path
        self.settings = settings
        timeout = settings["WRITE_TIMEOUT"]
        self.engine_thread = EngineThread(engine)
        self.catalog = StreamCatalog(writer, timeout)
        self.generator_source = GeneratorSource(generators, self.engine_thread, writer, timeout)
        self.submit_source = SubmitSource(self.engine_thread, self.catalog, writer, timeout,
                                          settings["MAX_USER_STREAMS"])
        self.tuning = Tuning(self.engine_thread, self.catalog, writer, timeout)

    def attach(self, supervisor) -> None:
        """Hand the generators and HTTP submit to the supervisor that owns every source's lifecycle."""
        supervisor.add(self.generator_source)
        supervisor.add(self.submit_source)
        supervisor.start()

    # -- what other modules read or set -------------------------------------------------------
    @property
    def engine(self):
        return self.engine_thread.engine

    @property
    def generators(self) -> dict[str, Any]:
        return self.generator_source.generators

    @property
    def streams(self) -> dict[str, dict]:
        return self.catalog.streams

    @property
    def write_timeout(self) -> float:
        return self.settings["WRITE_TIMEOUT"]

    @property
    def detector_names(self) -> list[str]:
        return list(self.engine.detector_names)

    @property
    def tick_count(self) -> int:
        return self.generator_source.tick_count

    @tick_count.setter
    def tick_count(self, value: int) -> None:  # restored from a snapshot
        self.generator_source.tick_count = value

    @property
    def last_tick_at(self) -> float | None:
        return self.generator_source.last_tick_at

    @property
    def on_tick(self) -> Callable[[float], None] | None:
        return self.generator_source.on_tick

    @on_tick.setter
    def on_tick(self, listener: Callable[[float], None] | None) -> None:
        self.generator_source.on_tick = listener

    @property
    def on_step(self) -> Callable[[float, int], None] | None:
        return self.engine_thread.on_step

    @on_step.setter
    def on_step(self, listener: Callable[[float, int], None] | None) -> None:
        self.engine_thread.on_step = listener

    @property
    def _lock(self):
        """The engine lock (tests hold it to make calls queue up)."""
        return self.engine_thread.lock

    @property
    def _submits(self) -> list:
        """The submits waiting for the engine (a metric)."""
        return self.submit_source.waiting

    # -- lifecycle --------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Register built-in streams, then restore user streams and saved configurations."""
        self.catalog.bootstrap(self.engine, self.generators, self.db_path)

    def quiesce(self) -> None:
        """Wait for the tick, submit or configure in progress; refuse new ones (at shutdown)."""
        self.engine_thread.quiesce()

    def close(self) -> None:
        self.engine_thread.close()

    def checkpoint(self, export: Callable[[], Any], marker: WriteJob, closing: bool = False):
        """Run ``export`` on the engine thread between ticks and submits, then queue ``marker``.

        Returns ``(export's result, the queued marker)``, or None once closed
        (unless ``closing``: the final snapshot).  See server/snapshots.py.
        """
        return self.engine_thread.checkpoint(
            export, lambda: self.writer.submit(marker, timeout=self.write_timeout), closing)

    # -- the sources ------------------------------------------------------------------------
    def tick(self) -> list[dict]:
        """Draw one point per built-in stream, score them together, store and publish them."""
        return self.generator_source.tick()

    def tick_stats(self) -> dict:
        return self.generator_source.stats()

    def submit(self, items: list[SubmittedPoint], owner: dict | None = None) -> list[dict]:
        """Score submitted points (creating user streams as needed), store and publish them."""
        return self.submit_source.submit(items, owner)

    # -- streams, configuration and retention ----------------------------------------------------
    def delete_stream(self, name: str) -> dict[str, int]:
        """Remove a user stream from the engine and the database; return the rows deleted."""
        with self.engine_thread.turn():
            self.catalog.removable(name)
            self.engine_thread.run(self.engine.remove_stream, name)
            job = self.catalog.remove(name)
        return job.wait(self.write_timeout)

    def configure(self, source: str, detector: str | None, params: dict) -> dict:
        """Apply a configuration change at once (under the engine lock) and persist it."""
        return self.tuning.configure(source, detector, params)

    def config(self, source: str | None = None) -> dict:
        """The engine's configuration of one stream, or of all streams."""
        return self.tuning.config(source)

    def window_ranges(self) -> dict[str, tuple[int | None, int | None]]:
        """Each member's accepted windows (for the API's description)."""
        return self.tuning.window_ranges()

    def prune(self) -> dict[str, int]:
        """Delete what the retention settings no longer keep; return the counts deleted."""
        return prune_points(self.writer, self.settings)
