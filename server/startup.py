"""Start-up in two steps: answer at once, restore the engine's learned state in the background.

Restoring the engine of 10,000 streams (its snapshot, the streams' registration,
the replay of the points stored after the snapshot) takes longer than a worker
may keep ``/health`` waiting.  Under gevent, :meth:`Startup.begin` therefore
runs those steps behind the app: the CPU-bound ones on an OS thread of their
own, the ones that write through the writer (whose waits are greenlet waits) on
the event loop.  Until they are done:

- ``/health`` answers 200 with ``"ready": false`` and the step in progress
  (:meth:`Startup.describe`);
- every other request except the page and its assets waits for the end of the
  restore (at most :data:`WAIT_S` seconds, then 503 with ``Retry-After``), so
  nothing is scored against a half-restored engine and submits are scored after
  the replay (woken in the order they came);
- the scheduler is not started: the first tick is scored by the restored engine,
  so it can flag.

Without gevent (unit tests, a threaded development server) the steps run inline,
in :meth:`Startup.begin`, and the app is ready when ``create_app`` returns.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Sequence

from .concurrency import DedicatedThread, cooperative

__all__ = ["WAIT_S", "Startup", "Step", "StartupFailed", "init_app"]

log = logging.getLogger(__name__)

#: How long a request that needs the engine waits for its restore: far above the 1-2 s that
#: 10,000 streams take, so only a restore that is stuck turns requests away (503, Retry-After).
WAIT_S = 30.0

#: One step of the restore: (what it does, for /health; the call; whether it runs off the event loop).
Step = tuple[str, Callable[[], object], bool]


class StartupFailed(RuntimeError):
    """The restore raised: the server answers 503 until it is restarted."""


class Startup:
    """Runs the restore steps, then ``on_ready``; tells requests whether the engine is ready.

    Parameters
    ----------
    steps : sequence of Step
        In order; a step that runs off the loop must not write through the writer.
    on_ready : callable
        Called on the event loop once every step is done (starts the scheduler).
    wait_s : float
        How long a request that needs the engine waits for it (then 503).
    """

    def __init__(self, steps: Sequence[Step], on_ready: Callable[[], None], wait_s: float = WAIT_S):
        self.steps = list(steps)
        self.on_ready = on_ready
        self.wait_s = wait_s
        self.phase = "waiting to start"
        self.error: str | None = None
        self.began_at: float | None = None
        self.ready_at: float | None = None
        self.stopped = False
        # Set on the event loop only (a gevent Event under gevent), waited on by request greenlets.
        self._done = threading.Event()

    @property
    def ready(self) -> bool:
        return self.ready_at is not None

    def begin(self) -> None:
        """Restore inline without gevent; under gevent, in a greenlet that starts once the worker serves."""
        if not cooperative():
            self._run(DedicatedThread("restore"))
            if self.error is not None:
                raise StartupFailed(self.error)
            return
        import gevent

        gevent.spawn(self._run, DedicatedThread("restore"))

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the end of the restore; True when the engine is ready."""
        if not self.ready and self.error is None:
            self._done.wait(timeout)
        return self.ready

    def stop(self) -> None:
        """At shutdown: the steps not yet begun are skipped and the scheduler is not started."""
        self.stopped = True

    def describe(self) -> dict:
        """What ``/health`` says about the start."""
        if self.ready:
            return {"ready": True}
        if self.error is not None:
            return {"ready": False, "failed": self.error}
        return {"ready": False, "starting": self.phase,
                "since_s": round(time.monotonic() - (self.began_at or time.monotonic()), 3)}

    def _run(self, thread: DedicatedThread) -> None:
        self.began_at = time.monotonic()
        timings = []
        try:
            for phase, call, offloaded in self.steps:
                if self.stopped:
                    return
                self.phase = phase
                started = time.perf_counter()
                if offloaded:
                    thread.run(call)
                else:
                    call()
                timings.append(f"{phase} {(time.perf_counter() - started) * 1000:.0f} ms")
            if self.stopped:
                return
            self.phase = "ready"
            self.ready_at = time.monotonic()
            self.on_ready()
            log.info("engine ready %.0f ms after the restore began (%s)",
                     (self.ready_at - self.began_at) * 1000, "; ".join(timings))
        except Exception as exc:
            self.error = f"{self.phase}: {type(exc).__name__}: {exc}"
            log.exception("start-up failed while %s; the server answers 503 until restarted", self.phase)
        finally:
            thread.close()
            self._done.set()


#: Paths served while the engine is restored: the health check, the page and its assets.
_SERVED_WHILE_STARTING = frozenset({"/health", "/", "/favicon.ico"})
_ASSET_PREFIXES = ("/static/", "/vendor/")


def init_app(app) -> None:
    """Make requests that need the engine wait for the app's restore (``Services.startup``)."""
    from flask import request

    from .errors import error_response
    from .services import services

    @app.before_request
    def wait_for_the_engine():
        startup = services().startup
        if startup is None or startup.ready or request.path in _SERVED_WHILE_STARTING \
                or request.path.startswith(_ASSET_PREFIXES):
            return None
        if startup.wait(startup.wait_s):
            return None
        state = startup.describe()
        reason = (f"the server failed to start ({state['failed']})" if "failed" in state
                  else f"the server is starting ({state['starting']}); retry shortly")
        return error_response(503, reason, **{"Retry-After": "1"})

