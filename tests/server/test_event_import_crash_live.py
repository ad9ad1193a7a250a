"""An upload cut short by a kill -9 of the real server (gunicorn, gevent): the batches it had
committed are removed at the next start, so no half import is visible; the next upload lands whole."""
from __future__ import annotations

import http.client
import sqlite3
import threading

import numpy as np
import pandas as pd
import pytest

from live_server import LiveServer, upload_csv
from server_helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _csv(path, n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    energy = np.round(rng.uniform(10, 40, n), 3)
    pd.DataFrame({"session_id": [f"s{seed}-{i}" for i in range(n)],
                  "user_id": [f"u{i % 5000}" for i in range(n)],
                  "charger_id": [f"c{i % 500}" for i in range(n)],
                  "start_time": 1_767_225_600 + np.arange(n) * 10,
                  "duration": np.round(energy / 11 * 60 + 5, 2), "energy": energy,
                  "payment": np.round(energy * 0.4, 2)}).to_csv(path, index=False)
    return path.read_bytes()


def _upload(port: int, body: bytes, outcome: dict) -> None:
    try:
        outcome["status"], outcome["body"] = upload_csv(port, body, timeout=120)
    except (OSError, http.client.HTTPException) as exc:
        outcome["error"] = exc


def _stored(db) -> tuple[int, list]:
    with sqlite3.connect(db) as conn:
        count = conn.execute("SELECT count(*) FROM scored_events").fetchone()[0]
        marks = [r[0] for r in conn.execute("SELECT key FROM meta WHERE key LIKE 'import:%'")]
    return count, marks


def test_an_upload_cut_short_by_a_kill_9_is_removed_at_the_next_start(tmp_path):
    settings = {"TICK_INTERVAL": 0.5, "EV_FEED": "false"}
    big = _csv(tmp_path / "big.csv", 300_000, seed=0)
    server = LiveServer(tmp_path / "run", settings).start()
    outcome: dict = {}
    try:
        upload = threading.Thread(target=_upload, args=(server.port, big, outcome), daemon=True)
        upload.start()
        # Some of its batches committed (and it is marked in progress), not all of them.
        count, marks = wait_for(lambda: (lambda s: s if s[0] > 0 else None)(_stored(server.database)),
                                timeout=120, interval=0.01)
    finally:
        server.kill()
    upload.join(30)
    assert "status" not in outcome  # the client was never told it landed
    count, marks = _stored(server.database)
    assert 0 < count < 300_000 and len(marks) == 1 and marks[0].startswith("import:upload:")

    again = LiveServer(tmp_path / "run", settings, database=server.database).start()
    try:
        assert _stored(server.database) == (0, [])
        assert "was cut short by the last stop; removed its" in (tmp_path / "run" / "logs" / "server.log").read_text()
        outcome = {}
        _upload(again.port, _csv(tmp_path / "small.csv", 25_000, seed=1), outcome)
        assert outcome.get("status") == 200, outcome
        assert outcome["body"]["events"] == 25_000
        assert _stored(server.database) == (25_000, [])
    finally:
        again.stop()
