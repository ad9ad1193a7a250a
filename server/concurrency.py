"""Where blocking work runs: on a dedicated OS thread under gevent, in the caller otherwise.

Under gunicorn's gevent worker every request, push client and scheduler job is
a greenlet on ONE operating-system thread (the event loop).  numpy, scikit-learn
and SQLite's fsync do not yield to that loop: run there, a 20 ms tick would
delay every push by 20 ms.  :class:`DedicatedThread` sends such calls to a real
OS thread of its own and parks only the calling greenlet until the result is
back; the loop goes on serving clients meanwhile.

Without gevent (unit tests, a threaded dev server) the caller is already an
ordinary thread, so calls run inline.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

__all__ = ["DedicatedThread", "cooperative"]


def cooperative() -> bool:
    """True when gevent has monkey-patched ``threading`` (gunicorn's gevent worker)."""
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey
    return bool(monkey.is_module_patched("threading"))


def _outcome_of(fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[bool, Any]:
    """(False, result) or (True, the exception): runs on the dedicated thread."""
    try:
        return False, fn(*args, **kwargs)
    except Exception as exc:
        return True, exc


class DedicatedThread:
    """One real OS thread that runs the calls given to :meth:`run`, one at a time, in order.

    Parameters
    ----------
    name : str
        For log messages and thread listings.
    """

    def __init__(self, name: str):
        self.name = name
        self._pool = None
        if cooperative():
            from gevent.threadpool import ThreadPool
            # One thread, never retired: the SQLite connection and the engine
            # always see the same OS thread.
            self._pool = ThreadPool(1)

    @property
    def offloaded(self) -> bool:
        """Whether calls leave the caller's thread (True under gevent)."""
        return self._pool is not None

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` on the dedicated thread and return (or raise) its outcome."""
        if self._pool is None:
            return fn(*args, **kwargs)
        # gevent's pool prints the traceback of any exception raised in its thread, even
        # an expected one (a rejected configure): carry it back as a value and raise it here,
        # so the caller alone decides whether it is worth a log line.
        failed, outcome = self._pool.apply(_outcome_of, (fn, args, kwargs))
        if failed:
            raise outcome
        return outcome

    def close(self) -> None:
        """Stop the OS thread (after the call it is running, if any)."""
        if self._pool is not None:
            self._pool.kill()
            self._pool = None
