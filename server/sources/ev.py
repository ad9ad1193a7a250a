"""The built-in EV charging feed: the seeded generator's sessions, as they start in simulated time.

Simulated time runs ``speed`` times faster than the wall clock from the
generator's first midnight; every ``interval`` wall seconds the source
yields the sessions that have started since the last batch.  Days are
generated one ahead as needed and kept sorted, so a session that the
generator places just past midnight still comes out in order.

>>> from server.pipeline.schema import load_schema
>>> from server.sources.replay import FakeClock
>>> source = EVSource(load_schema("ev_charging"), seed=0, speed=3600.0, interval=1.0,
...                   clock=FakeClock())
>>> source.start()
>>> batches = source.batches()
>>> first, second = next(batches), next(batches)   # each: one simulated hour
>>> bool(first.frame["start_time"].max() <= second.frame["start_time"].min()), source.simulated_now > 0
(True, True)
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterator

import pandas as pd

from generators.ev_charging import EVChargingGenerator

from ..pipeline.event import EventBatch
from ..pipeline.schema import Schema

__all__ = ["EVSource"]


class EVSource:
    """Live EV charging sessions from :class:`generators.ev_charging.EVChargingGenerator`."""

    name = "ev_charging"

    def __init__(self, schema: Schema, *, seed: int = 0, speed: float = 600.0, interval: float = 1.0,
                 clock: Callable[[], float] | None = None, **generator_params):
        if not speed > 0 or not interval > 0:
            raise ValueError("speed and interval must be positive")
        self.schema = schema
        self.generator = EVChargingGenerator(seed=seed, **generator_params)
        self.speed = float(speed)
        self.interval = float(interval)
        self._clock = clock if clock is not None else time.monotonic
        self._sleep = getattr(clock, "sleep", None)
        self._stopped = threading.Event()
        self._pending = self.generator.next_day().iloc[:0]
        self._wall_origin: float | None = None
        self.simulated_now = self.generator.start

    def start(self) -> None:
        self._stopped.clear()
        self._wall_origin = self._clock()

    def stop(self) -> None:
        self._stopped.set()

    def drain(self) -> list[EventBatch]:
        """The sessions already started in simulated time but not yet yielded."""
        due = self._take_due()
        return [due] if len(due) else []

    def batches(self) -> Iterator[EventBatch]:
        if self._wall_origin is None:
            raise RuntimeError("call start() before batches()")
        while not self._stopped.is_set():
            if self._sleep is not None:
                self._sleep(self.interval)
            elif self._stopped.wait(self.interval):
                return
            batch = self._take_due()
            if len(batch):
                yield batch

    def _take_due(self) -> EventBatch:
        self.simulated_now = self.generator.start + (self._clock() - self._wall_origin) * self.speed
        # Keep a day ahead of the clock, so a session placed just after midnight is not missed.
        while self._pending.empty or self._pending["start_time"].iloc[-1] < self.simulated_now + 86400:
            self._pending = pd.concat([self._pending, self.generator.next_day()], ignore_index=True)
            self._pending = self._pending.sort_values("start_time", kind="stable").reset_index(drop=True)
        due = int(self._pending["start_time"].searchsorted(self.simulated_now, side="right"))
        frame, self._pending = self._pending.iloc[:due].reset_index(drop=True), self._pending.iloc[due:]
        return EventBatch(self.schema, frame)
