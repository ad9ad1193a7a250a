"""Native threads that share out a list of independent calls: the engine's banks, stepped side by side.

numpy releases the GIL inside its array loops, so two banks of streams stepped
on two threads use two cores for most of a tick.  The threads must be the
operating system's even when gevent has patched ``threading`` (the server's
worker): a patched thread is a greenlet, and greenlets take turns on one core.
gevent's advice is to do only computation in such threads and to share no
gevent object (lock, event) across them, so :class:`Workers` synchronises
with the interpreter's own locks (``_thread.allocate_lock``, fetched with
``gevent.monkey.get_original`` when patched), and gevent is never imported here.

The calling thread works too: with ``threads=2`` there is one helper thread,
started on the first call that has at least two items to share out.
"""
from __future__ import annotations

import sys
import weakref
from typing import Any, Callable, Sequence

__all__ = ["Workers"]


def _native_thread_api() -> tuple[Callable, Callable]:
    """``(start_new_thread, allocate_lock)`` of the interpreter, whether or not gevent has patched them."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return tuple(monkey.get_original("_thread", ["start_new_thread", "allocate_lock"]))
    import _thread

    return _thread.start_new_thread, _thread.allocate_lock


class _Crew:
    """What the helper threads share with the caller: the batch in progress and one wake/done lock pair each.

    Kept apart from :class:`Workers` so that a helper holds no reference to
    it: when the engine drops its ``Workers``, a finalizer stops the helpers.
    """

    def __init__(self, helpers: int):
        start, self.allocate = _native_thread_api()
        self.take = self.allocate()
        self.batch: tuple | None = None
        self.closed = False
        self.pairs = []
        for _ in range(helpers):
            wake, done = self.allocate(), self.allocate()
            wake.acquire()
            done.acquire()
            self.pairs.append((wake, done))
            start(self._serve, (wake, done))

    def _serve(self, wake, done) -> None:
        while True:
            wake.acquire()
            if self.closed:
                return
            self.work()
            done.release()

    def work(self) -> None:
        """Take the batch's next item until none is left (helpers and caller alike)."""
        call, items, results, errors, cursor = self.batch
        while True:
            with self.take:
                i = cursor[0]
                cursor[0] += 1
            if i >= len(items):
                return
            try:
                results[i] = call(items[i])
            except BaseException as exc:  # carried to the caller, which raises the first one
                errors.append((i, exc))

    def close(self) -> None:
        self.closed = True
        for wake, _ in self.pairs:
            wake.release()


class Workers:
    """Run ``call(item)`` for every item on up to ``threads`` native threads; the results keep the items' order.

    The calls must be independent (they touch disjoint state): each item is
    run exactly once, by whichever thread takes it first, so results do not
    depend on the number of threads.

    >>> workers = Workers(threads=2)
    >>> workers.map(lambda x: x * x, [1, 2, 3, 4])
    [1, 4, 9, 16]
    >>> Workers(threads=1).map(str, [5, 6])
    ['5', '6']
    """

    def __init__(self, threads: int = 2):
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError("threads must be a whole number of at least 1")
        self.threads = threads
        self._crew: _Crew | None = None

    def map(self, call: Callable[[Any], Any], items: Sequence) -> list:
        """Return ``[call(item) for item in items]``, computed side by side; re-raise the first item's error."""
        items = list(items)
        if self.threads < 2 or len(items) < 2:
            return [call(item) for item in items]
        crew = self._crew
        if crew is None:
            crew = self._crew = _Crew(self.threads - 1)
            weakref.finalize(self, crew.close)
        results: list = [None] * len(items)
        errors: list = []
        crew.batch = (call, items, results, errors, [0])
        for wake, _ in crew.pairs:
            wake.release()
        try:
            crew.work()
        finally:
            for _, done in crew.pairs:
                done.acquire()
            crew.batch = None
        if errors:
            raise min(errors, key=lambda e: e[0])[1]
        return results
