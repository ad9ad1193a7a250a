"""The built-in EV feed after a restart continues where it stopped: no session made twice, no step
back in simulated time, and so no charger "in use" by an earlier copy of its own sessions."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from server.pipeline.schema import load_schema
from server.sources.ev import EVSource
from server.sources.replay import FakeClock
from server.sources.supervisor import Supervisor
from server_helpers import run_ev_feed, services_of, wait_for

SCHEMA = load_schema("ev_charging")


def feed(seed: int = 3) -> EVSource:
    source = EVSource(SCHEMA, seed=seed, speed=3600.0, interval=1.0, clock=FakeClock())
    return source


def take(source: EVSource, n: int) -> pd.DataFrame:
    """The next ``n`` batches (simulated hours) as one frame."""
    batches = source.batches()
    return pd.concat([next(batches).frame for _ in range(n)], ignore_index=True)


def test_a_resumed_feed_makes_the_sessions_the_first_run_would_have_made_next():
    first = feed()
    first.start()
    seen = take(first, 40)  # past a simulated midnight: sessions of two days pending at once
    position = json.loads(json.dumps(first.position()))  # as saved in the database and read back
    expected = take(first, 30)

    resumed = feed()
    resumed.resume(position, last_stored=float(seen["start_time"].max()))
    resumed.start()
    again = take(resumed, 30)
    pd.testing.assert_frame_equal(again, expected)
    assert not set(again["session_id"]) & set(seen["session_id"])
    assert again["start_time"].min() > seen["start_time"].max()


def test_sessions_stored_after_the_saved_position_are_not_made_again():
    """A crash after a batch was stored but before its position was saved."""
    first = feed()
    first.start()
    take(first, 10)
    old_position = first.position()
    stored_after = take(first, 5)
    expected = take(first, 20)

    resumed = feed()
    resumed.resume(old_position, last_stored=float(stored_after["start_time"].max()))
    resumed.start()
    again = take(resumed, 21)  # its clock restarts at the last stored session, not at a batch's end
    again = again[again["start_time"] <= expected["start_time"].max()].reset_index(drop=True)
    pd.testing.assert_frame_equal(again, expected)


def test_without_a_position_the_feed_starts_a_fresh_day_after_its_last_stored_session():
    """A database from before positions were saved: new session ids, later start times."""
    first = feed()
    first.start()
    seen = take(first, 30)
    resumed = feed()
    resumed.resume(None, last_stored=float(seen["start_time"].max()))
    resumed.start()
    again = take(resumed, 30)
    assert len(again) and again["start_time"].min() > seen["start_time"].max()
    numbers = again["session_id"].str.slice(1).astype(int)
    assert numbers.min() > seen["session_id"].str.slice(1).astype(int).max()
    # Each charger's first session of the fresh day starts after every earlier one ended there.
    earlier_end = (seen["start_time"] + seen["duration"] * 60).groupby(seen["charger_id"]).max()
    first_start = again.groupby("charger_id")["start_time"].min()
    both = earlier_end.index.intersection(first_start.index)
    assert (first_start[both] >= earlier_end[both]).all()


def test_nothing_to_resume_leaves_a_new_feed_as_it_was():
    a, b = feed(), feed()
    b.resume(None, last_stored=None)
    a.start(), b.start()
    pd.testing.assert_frame_equal(take(a, 5), take(b, 5))


class _Positions:
    def __init__(self):
        self.saved: list[tuple[str, dict]] = []

    def save(self, name, position):
        self.saved.append((name, position))


def test_the_supervisor_saves_a_position_only_after_its_batch_is_stored():
    stored: list[int] = []
    positions = _Positions()

    def store(batches, origin):
        if len(stored) == 1:
            stored.append(-1)
            raise RuntimeError("the disk is full")
        stored.append(len(batches[0]))

    supervisor = Supervisor(store, positions)
    source = feed()
    supervisor.add(source)
    supervisor.start()
    wait_for(lambda: len(positions.saved) >= 3, timeout=30)
    supervisor.stop()
    assert supervisor.failures == 1
    # One save per stored batch (the failed one saved nothing), and one more at stop.
    assert len(positions.saved) == len([n for n in stored if n >= 0]) + 1
    assert all(name == "ev_charging" for name, _ in positions.saved)
    throughs = [p["through"] for _, p in positions.saved]
    assert throughs == sorted(throughs)


def test_the_server_resumes_its_feed_from_the_database(app):
    """Positions go through the writer into meta; the newest stored session is read back."""
    svc = services_of(app)
    source = run_ev_feed(app)
    positions = svc.sources.positions
    saved = positions.load("ev_charging")
    last = positions.last_stored("ev_charging")
    reader = svc.reader()
    try:
        rows = reader.conn.execute("SELECT event_id, timestamp FROM scored_events WHERE origin = 'ev_charging'"
                                   ).fetchall()
    finally:
        reader.close()
    assert saved == json.loads(json.dumps(source.position())) and last == max(t for _, t in rows)

    resumed = EVSource(svc.ingest.schema("ev_charging"), seed=1, speed=3600.0, interval=1.0, clock=FakeClock())
    resumed.resume(saved, last)
    resumed.start()
    again = take(resumed, 3)
    assert not set(again["session_id"]) & {event_id for event_id, _ in rows}
    assert np.all(again["start_time"] > last)
