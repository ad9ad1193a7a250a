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

import bisect
import threading
import time
from typing import Callable, Iterator

import numpy as np
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
        self.generator.reset()  # that day was drawn only for its columns
        #: (first session number, generator state before it) of each day with sessions pending,
        #: oldest first; the first is the day :meth:`position` continues from.
        self._days: list[tuple[int, dict]] = []
        self._wall_origin: float | None = None
        #: The simulated time at which the wall clock's origin (start) falls.
        self._simulated_origin = self.generator.start
        self.simulated_now = self.generator.start

    def clock(self) -> dict:
        """How this feed's time runs, for the view: simulated, ``speed`` times the wall clock, now at
        ``now`` (epoch seconds).  Its sessions carry simulated start times, not today's."""
        return {"source": self.name, "schema": self.schema.name, "simulated": True,
                "speed": self.speed, "now": float(self.simulated_now)}

    # -- resuming after a restart ---------------------------------------------------------------
    def position(self) -> dict:
        """Where the feed stands: the sessions up to ``through`` are out; the generator's state
        before the first day that still has sessions to come continues it exactly."""
        state = self._days[0][1] if self._days else self.generator.state()
        return {"generator": state, "through": float(self.simulated_now)}

    def resume(self, position: dict | None, last_stored: float | None) -> None:
        """Continue after a restart (call before :meth:`start`).

        ``position`` is a saved :meth:`position`; ``last_stored`` the start time of the newest
        session stored from this feed, which may be newer than the position (a crash between
        storing a batch and saving the position): every session up to the later of the two is
        out already and is not made again.  Without a position (a database from before
        positions were kept) the feed starts a fresh simulated day after ``last_stored``,
        numbering its sessions after every session it could have made before.
        """
        through = max(float(position["through"]) if position else -np.inf,
                      last_stored if last_stored is not None else -np.inf)
        if not np.isfinite(through):
            return
        if position is not None:
            self.generator.restore(position["generator"])
        else:
            self.generator.restore(_fresh_day_after(self.generator, through))
        self._pending = self._pending.iloc[:0]
        self._days = []
        self._extend_to(through)
        due = int(self._pending["start_time"].searchsorted(through, side="right"))
        self._pending = self._pending.iloc[due:].reset_index(drop=True)
        self._forget_days_out()
        self._simulated_origin = max(through, self.generator.start)
        self.simulated_now = self._simulated_origin

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
        self.simulated_now = self._simulated_origin + (self._clock() - self._wall_origin) * self.speed
        self._extend_to(self.simulated_now)
        due = int(self._pending["start_time"].searchsorted(self.simulated_now, side="right"))
        frame, self._pending = self._pending.iloc[:due].reset_index(drop=True), self._pending.iloc[due:]
        self._forget_days_out()
        return EventBatch(self.schema, frame)

    def _forget_days_out(self) -> None:
        """Keep only the days from the one holding the lowest-numbered pending session on, so
        ``_days[0]`` is where :meth:`position` continues (with nothing pending, the generator's
        own state is)."""
        if not len(self._pending):
            self._days = []
            return
        first = int(self._numbers(self._pending).min())
        starts = [day_first for day_first, _ in self._days]
        self._days = self._days[max(bisect.bisect_right(starts, first) - 1, 0):]

    def _extend_to(self, simulated: float) -> None:
        """Keep a day ahead of ``simulated``, so a session placed just after midnight is not missed."""
        while self._pending.empty or self._pending["start_time"].iloc[-1] < simulated + 86400:
            self._days.append((self.generator.sessions_made_, self.generator.state()))
            self._pending = pd.concat([self._pending, self.generator.next_day()], ignore_index=True)
            self._pending = self._pending.sort_values("start_time", kind="stable").reset_index(drop=True)

    @staticmethod
    def _numbers(frame: pd.DataFrame) -> np.ndarray:
        """Session numbers from their ids (``S00000910`` is 910)."""
        return frame["session_id"].str.slice(1).astype(np.int64).to_numpy()


def _fresh_day_after(generator: EVChargingGenerator, through: float) -> dict:
    """A generator state for the simulated midnight after ``through``, its chargers all free then,
    numbering sessions after every one the days before it could have made (session ids stay unique)."""
    day = int(np.floor((through - generator.start) / 86400.0)) + 1
    state = generator.state()
    return {**state, "day": day, "sessions_made": day * generator.sessions_bound_per_day(),
            "free_at": [generator.start + day * 86400.0] * generator.n_chargers}
