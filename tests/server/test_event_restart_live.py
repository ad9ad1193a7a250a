"""A DoS burst across a kill -9 of the real server (gunicorn): its first session is in the event
scorers' periodic snapshot, its second only in the database (replayed at start), its third arrives
after the restart; all three end up marked."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from live_server import LiveServer, upload_csv
from server_helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HEADER = "session_id,user_id,charger_id,start_time,duration,energy,payment"


def upload(port: int, *rows: str) -> dict:
    status, body = upload_csv(port, ("\n".join([HEADER, *rows]) + "\n").encode())
    assert status == 200, body
    return body


def last_push_event(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM events WHERE type = 'events'").fetchone()[0]


def covered(snapshot) -> int:
    if not snapshot.exists():
        return 0
    with np.load(snapshot, allow_pickle=False) as archive:
        return json.loads(archive["meta"].tobytes())["last_event_id"]


def test_a_dos_burst_across_a_kill_9_is_found_and_marked_whole(tmp_path):
    # Snapshots every 5 s: the second upload comes right after one, well before the next.
    settings = {"TICK_INTERVAL": 0.5, "SNAPSHOT_INTERVAL": 5.0, "EV_FEED": "false"}
    server = LiveServer(tmp_path / "run", settings).start()
    snapshot = server.database.with_name(server.database.name + ".snapshot.events.npz")
    try:
        upload(server.port, "d1,UX,C1,2026-01-01T09:00:00Z,2,0.5,0.2", "n1,UY,C2,2026-01-01T09:00:00Z,60,20,8")
        first = last_push_event(server.database)
        wait_for(lambda: covered(snapshot) >= first, timeout=60)
        upload(server.port, "d2,UX,C3,2026-01-01T09:10:00Z,2,0.5,0.2")
    finally:
        server.kill()
    assert covered(snapshot) < last_push_event(server.database)  # d2 is only in the database

    again = LiveServer(tmp_path / "run", {"SCHEDULER": "false"}, database=server.database).start()
    try:
        assert "replayed 1 events stored after the event scorer snapshot" in again.log()
        summary = upload(again.port, "d3,UX,C4,2026-01-01T09:20:00Z,2,0.5,0.2")
        assert summary["types"] == {"dos_attack": 1}
    finally:
        again.stop()
    with sqlite3.connect(server.database) as conn:
        types = dict(conn.execute("SELECT event_id, coalesce(types, '[]') FROM scored_events"))
    assert all("dos_attack" in types[s] for s in ("d1", "d2", "d3")) and "dos_attack" not in types["n1"]
