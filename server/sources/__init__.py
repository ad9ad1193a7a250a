"""Sources: anything that yields batches of a schema's events, with one lifecycle.

Every source has the same four methods, so one supervisor can own them all:

``start()``    get ready (open and check a file, seed a generator); raises on bad input
``batches()``  an iterator of :class:`~server.pipeline.event.EventBatch`, ending when the
               source is exhausted or stopped
``stop()``     ask ``batches()`` to end soon (safe from another thread)
``drain()``    after ``stop()``: the events already read or due but not yet yielded,
               so a shutdown loses nothing a source has taken in

Implementations beside this module: :mod:`.upload` (a CSV or JSON-lines file,
checked whole before anything is yielded), :mod:`.replay` (a file at its own
pace or N times faster) and :mod:`.ev` (the built-in EV charging feed).
"""
from __future__ import annotations

from typing import Iterator, Protocol, runtime_checkable

from ..pipeline.event import EventBatch

__all__ = ["Source"]


@runtime_checkable
class Source(Protocol):
    """What every source offers (see the module docstring)."""

    name: str

    def start(self) -> None: ...

    def batches(self) -> Iterator[EventBatch]: ...

    def stop(self) -> None: ...

    def drain(self) -> list[EventBatch]: ...
