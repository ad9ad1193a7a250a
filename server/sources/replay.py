"""Replay a file of events at its own pace, or ``speed`` times faster, in batches as they fall due.

The first event plays at once; each later event falls due when as much
wall time has passed as separated it from the first, divided by ``speed``
(``speed=None`` plays everything at once, batch by batch).  Events due
within ``tick`` seconds of each other travel in one batch.  The file is
checked whole first (as an upload is), so a bad line stops the replay
before anything is sent.

>>> import io
>>> from server.pipeline.schema import load_schema
>>> text = (b"session_id,user_id,charger_id,start_time,duration,energy,payment\\n"
...         b"a,u1,c1,2026-01-01T08:00:00Z,60,20,8\\nb,u1,c1,2026-01-01T08:00:30Z,5,1,1\\n"
...         b"c,u2,c2,2026-01-01T08:10:00Z,30,9,4\\n")
>>> waits = []
>>> replay = ReplaySource(io.BytesIO(text), load_schema("ev_charging"), speed=60,
...                       clock=FakeClock(waits))
>>> replay.start()
>>> [list(b.frame["session_id"]) for b in replay.batches()], waits
([['a', 'b'], ['c']], [10.0])
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np

from ..pipeline.event import EventBatch
from ..pipeline.schema import Schema
from .upload import FileSource

__all__ = ["FakeClock", "ReplaySource"]


class FakeClock:
    """A clock for tests and doctests: ``sleep`` records the wait and advances time at once."""

    def __init__(self, waits: list | None = None):
        self.now = 0.0
        self.waits = waits if waits is not None else []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(round(float(seconds), 6))
        self.now += seconds


class ReplaySource:
    """A file's events, paced by their timestamps (see the module docstring)."""

    def __init__(self, file: str | Path | IO[bytes], schema: Schema, *, speed: float | None = 1.0,
                 tick: float = 0.5, filename: str | None = None, chunk_rows: int = 50_000,
                 clock: Callable[[], float] | None = None):
        if speed is not None and not speed > 0:
            raise ValueError("speed must be positive (or None for as fast as possible)")
        # A paced replay reads for minutes or hours: it parses the file again as it goes rather
        # than hold its checked batches (and the upload budget they share) all that time.
        self.file_source = FileSource(file, schema, filename=filename, chunk_rows=chunk_rows,
                                      **({"keep_bytes": 0} if speed is not None else {}))
        self.schema = schema
        self.name = "replay:" + self.file_source.name.split(":", 1)[1]
        self.speed = speed
        self.tick = float(tick)
        self._clock = clock if clock is not None else time.monotonic
        self._sleep = getattr(clock, "sleep", None)
        self._stopped = threading.Event()
        self._pending: list[EventBatch] = []
        self.sent = 0

    @property
    def rows(self) -> int:
        return self.file_source.rows

    def start(self) -> None:
        self.file_source.start()

    def stop(self) -> None:
        self._stopped.set()

    def drain(self) -> list[EventBatch]:
        """The events of the chunk in hand that were not yet due when the replay stopped."""
        pending, self._pending = self._pending, []
        return pending

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self._stopped.wait(seconds)

    def batches(self) -> Iterator[EventBatch]:
        origin_wall = origin_time = None
        for chunk in self.file_source.batches():
            frame = chunk.frame.sort_values(self.schema.timestamp, kind="stable").reset_index(drop=True)
            times = frame[self.schema.timestamp].to_numpy(dtype=float)
            if origin_wall is None:
                origin_wall, origin_time = self._clock(), float(times[0])
            if self.speed is None:
                due = np.zeros(len(times))
            else:
                due = origin_wall + (times - origin_time) / self.speed
            start = 0
            while start < len(frame):
                if self._stopped.is_set():
                    self._pending = [EventBatch(self.schema, frame.iloc[start:].reset_index(drop=True))]
                    return
                self._wait(due[start] - self._clock())
                # Everything due by now, plus what falls due within one tick, goes together.
                end = int(np.searchsorted(due, max(self._clock(), due[start]) + self.tick, side="right"))
                end = max(end, start + 1)
                self.sent += end - start
                yield EventBatch(self.schema, frame.iloc[start:end].reset_index(drop=True),
                                 None if chunk.first_line is None else chunk.first_line + start)
                start = end
