"""The engine's one lock and one OS thread: every source and every setting change goes through here.

The engine (detectors.engine.Engine) is not thread-safe, so every call to it
happens under one lock and on one dedicated OS thread
(:class:`~server.concurrency.DedicatedThread`): under gevent that keeps numpy
off the event loop.  A caller that must also queue a write in the engine's
order (a tick, a submit, a configure) does both inside one :meth:`EngineThread.turn`,
so the database sees changes in the order the engine made them, and waits for
the commit after the turn, so the next batch can be scored meanwhile.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ..concurrency import DedicatedThread
from ..writer import WriterStopped

__all__ = ["EngineThread"]


class EngineThread:
    """The engine behind its lock, on its thread, closed for good at shutdown.

    Parameters
    ----------
    engine : detectors.engine.Engine
    """

    def __init__(self, engine):
        self.engine = engine
        self.lock = threading.Lock()
        self.closed = False
        self._thread = DedicatedThread("engine")
        #: Called with (seconds, streams) after every engine step (scoring latency metrics).
        self.on_step: Callable[[float, int], None] | None = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the engine; raise WriterStopped once the server is shutting down."""
        with self.lock:
            if self.closed:
                raise WriterStopped("the server is shutting down")
            yield

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn(*args)`` on the engine's thread; the caller holds the lock."""
        return self._thread.run(fn, *args)

    def step(self, points: dict) -> Any:
        """One engine step, timed for whoever listens (server/metrics.py); on the engine's thread."""
        return self._timed(len(points), self.engine.step, points)

    def step_block(self, name: str, values, fields) -> Any:
        """Successive points of one stream as one block (the detectors' fast path), timed like :meth:`step`."""
        return self._timed(1, self.engine.step_block, name, values, fields)

    def _timed(self, streams: int, call: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        verdicts = call(*args)
        if self.on_step is not None:
            self.on_step(time.perf_counter() - started, streams)
        return verdicts

    def checkpoint(self, export: Callable[[], Any], queue: Callable[[], Any], closing: bool = False):
        """Run ``export`` on the engine thread between two batches, then ``queue`` (a write) at once.

        The writer commits in queue order, so the queued write sees exactly the
        points scored before ``export`` (server/snapshots.py).  Returns
        ``(export's result, queue's result)``, or None once closed (unless
        ``closing``: the final snapshot).
        """
        with self.lock:
            if self.closed and not closing:
                return None
            state = self._thread.run(export)
            return state, queue()

    def quiesce(self) -> None:
        """Wait for the batch in progress; refuse new ones (at shutdown)."""
        with self.lock:
            self.closed = True

    def close(self) -> None:
        self.quiesce()
        self._thread.close()
