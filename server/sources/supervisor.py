"""The supervisor: owns every live source's lifecycle (start, stop, drain) and feeds pulled batches on.

Each pulled source runs in a thread of its own (a greenlet under gevent),
handing each batch to the pipeline's ``store``; a driven source (the
generators, HTTP submit) is fed from outside and only started and stopped
here.  A batch that fails is logged and the source carries on.  At shutdown
every source is stopped, then drained, and what it had taken in but not yet
handed over is stored before the writer stops: nothing a source has
accepted is lost.
"""
from __future__ import annotations

import logging
import threading

from . import PulledSource

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)


class Supervisor:
    """Runs sources into ``store(batches, origin)`` (e.g. :meth:`Ingest.store`)."""

    def __init__(self, store, positions=None):
        self.store = store
        #: Where resumable sources' positions are saved after each stored batch
        #: (:class:`server.sources.positions.SourcePositions`), or None.
        self.positions = positions
        self.sources: dict[str, object] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._started: set[str] = set()
        self.batches = 0
        self.failures = 0

    def add(self, source) -> None:
        if source.name in self.sources:
            raise ValueError(f"a source named {source.name!r} is running already")
        self.sources[source.name] = source

    def clocks(self, schema: str) -> list[dict]:
        """The clocks of the running sources that feed ``schema`` and keep time of their own (a
        simulated feed, :meth:`server.sources.ev.EVSource.clock`)."""
        out = []
        for name, source in list(self.sources.items()):
            clock = getattr(source, "clock", None)
            if name in self._started and callable(clock):
                described = clock()
                if described.get("schema") == schema:
                    out.append(described)
        return out

    def start(self) -> None:
        for name, source in list(self.sources.items()):
            if name in self._started:
                continue
            source.start()
            self._started.add(name)
            if not isinstance(source, PulledSource):
                continue  # driven: fed by its clock or by requests
            thread = threading.Thread(target=self._run, args=(source,), name=f"source-{name}", daemon=True)
            self._threads[name] = thread
            thread.start()

    def _run(self, source) -> None:
        for batch in source.batches():
            try:
                self.store([batch], source.name)
                self.batches += 1
            except Exception:
                self.failures += 1
                log.exception("source %s: a batch of %d events failed", source.name, len(batch))
                continue
            self._save_position(source)

    def _save_position(self, source) -> None:
        """After its batch is stored, never before: a restart then repeats nothing it stored."""
        if self.positions is None or not hasattr(source, "position"):
            return
        try:
            self.positions.save(source.name, source.position())
        except Exception:
            log.exception("source %s: its position could not be saved", source.name)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every source, wait for its thread, and store what it drains."""
        for source in self.sources.values():
            source.stop()
        for name, thread in self._threads.items():
            thread.join(timeout)
            if thread.is_alive():
                log.error("source %s did not stop within %g s", name, timeout)
        for name, source in self.sources.items():
            drained = source.drain()
            if drained:
                try:
                    self.store(drained, source.name)
                except Exception:
                    log.exception("source %s: storing %d drained batches failed", source.name, len(drained))
                    continue
            if name in self._started:
                self._save_position(source)
        self._threads.clear()
        self._started.clear()

    def stats(self) -> dict:
        return {"sources": sorted(self.sources), "batches": self.batches, "failures": self.failures}
