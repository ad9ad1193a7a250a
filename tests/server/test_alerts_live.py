"""At-least-once delivery across kill -9: a real gunicorn, a real webhook receiver on loopback,
the server killed in the middle of a delivery storm, restarted on the same database."""
from __future__ import annotations

import sqlite3
import time

import pytest

from alert_helpers import WebhookReceiver, receivers_file
from detectors.ensemble import REFRACTORY
from live_server import LiveServer, http_json

pytestmark = pytest.mark.slow

STREAMS = 300


def submit(server, points):
    for start in range(0, len(points), 1000):
        status, body = http_json(server.port, "POST", "/api/submit",
                                 {"points": points[start:start + 1000]}, timeout=300)
        assert status == 200, body


def outbox(database) -> tuple[set, int]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT alert_id, status, delivered_at FROM outbox").fetchall()
    finally:
        conn.close()
    return {(a, s) for a, s, _ in rows}, sum(d is None for _, _, d in rows)


@pytest.mark.timeout(600)
def test_no_alert_is_lost_when_the_server_is_killed_during_a_delivery_storm(tmp_path):
    receiver = WebhookReceiver(delay=0.3)  # a busy receiver: the outbox has a backlog
    settings = {"ALERT_RECEIVERS": receivers_file(tmp_path, [
                    {"name": "storm", "kind": "webhook", "url": receiver.url}]),
                "ALERT_KEEP_FIRING_FOR": 0, "OUTBOX_POLL_INTERVAL": 0.05,
                "OUTBOX_RETRY_BASE": 0.1, "OUTBOX_RETRY_MAX": 1.0, "TICK_INTERVAL": 0.5,
                "SYNCHRONOUS": "NORMAL", "MAX_USER_STREAMS": STREAMS}
    server = LiveServer(tmp_path / "run", settings=settings).start()
    try:
        names = [f"storm{i}" for i in range(STREAMS)]
        submit(server, [{"source": n, "value": float(k % 3)} for n in names for k in range(40)])
        # A new record on every stream (one alert each, firing), then normal points: enough of
        # them in a row to end each stream's anomalous episode (hysteresis), so it resolves.
        spikes = [{"source": n, "value": 1e6} for n in names]
        submit(server, spikes + [{"source": n, "value": float(k % 3)} for n in names
                                for k in range(REFRACTORY + 5)])
        deadline = time.monotonic() + 60
        while len(receiver.bodies) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        _, killed_with_backlog = outbox(server.database)
        server.kill()  # kill -9 of master and worker, mid-delivery
        assert killed_with_backlog, "the kill came after every notification was delivered"
        received_before_kill = len(receiver.alerts())

        server.start()  # same database: the outbox is delivered by the new process
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            expected, waiting = outbox(server.database)
            if waiting == 0:
                break
            time.sleep(0.2)
        expected, waiting = outbox(server.database)
        time.sleep(0.5)
        got = [(int(a["annotations"]["alert_id"]), a["status"]) for a in receiver.alerts()]
        lost = expected - set(got)
        duplicates = len(got) - len(set(got))
        print(f"\nnotifications committed: {len(expected)} (alerts fired: "
              f"{sum(s == 'firing' for _, s in expected)}); waiting at the kill: {killed_with_backlog}; "
              f"received before the kill: {received_before_kill}; received in all: {len(got)}; "
              f"lost: {len(lost)}; duplicates: {duplicates}; webhook requests: {receiver.requests}")
        assert waiting == 0
        assert len(expected) >= 2 * STREAMS  # the storm really happened: every stream fired and resolved
        assert lost == set()
        assert set(got) <= expected  # nothing was invented
    finally:
        server.stop()
        receiver.close()
