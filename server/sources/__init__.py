"""Sources: anything that yields events or points, with one lifecycle owned by one supervisor.

Every source has the same lifecycle, so the supervisor (:mod:`.supervisor`)
can own them all:

``start()``    get ready (open and check a file, seed a generator); raises on bad input
``stop()``     take nothing more in (safe from another thread)
``drain()``    after ``stop()``: the batches already read or due but not yet handed on,
               so a shutdown loses nothing a source has taken in

A source is fed one of two ways.  A *pulled* source (:class:`PulledSource`)
also has ``batches()``, an iterator of :class:`~server.pipeline.event.EventBatch`
ending when the source is exhausted or stopped; the supervisor runs it in a
thread of its own.  A *driven* source is fed from outside and stores what it
takes in itself: the built-in generators (:mod:`.generators`) by the
scheduler's tick, their clock, and HTTP submit (:mod:`.submit`) by requests.

Implementations beside this module: :mod:`.upload` (a CSV or JSON-lines file,
checked whole before anything is yielded), :mod:`.replay` (a file at its own
pace or N times faster), :mod:`.ev` (the built-in EV charging feed),
:mod:`.generators` and :mod:`.submit` (the numeric streams' points).
"""
from __future__ import annotations

from typing import Iterator, Protocol, runtime_checkable

from ..pipeline.event import EventBatch

__all__ = ["PulledSource", "Source"]


@runtime_checkable
class Source(Protocol):
    """The lifecycle every source offers (see the module docstring)."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def drain(self) -> list[EventBatch]: ...


@runtime_checkable
class PulledSource(Source, Protocol):
    """A source whose batches the supervisor pulls, in a thread of its own."""

    def batches(self) -> Iterator[EventBatch]: ...
