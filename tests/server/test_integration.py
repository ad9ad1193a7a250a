"""The real server: gunicorn with one gevent worker, real sockets, real SSE and WebSocket clients.

Slow (each server takes a few seconds to boot): ``-m "not slow"`` skips them.
"""
from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time

import pytest
import websocket

from live_server import LiveServer, SseClient
from server_helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

FAST = {"TICK_INTERVAL": 0.2, "CLIENT_QUEUE_SIZE": 8, "STREAM_SEND_BUFFER": 8192,
        "HEARTBEAT_INTERVAL": 2}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("live"), FAST).start()
    yield server
    server.stop()


def ws_connect(server: LiveServer, query: str = "", **options) -> websocket.WebSocket:
    return websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws{query}", timeout=15, **options)


def ws_event(conn: websocket.WebSocket) -> dict:
    return json.loads(conn.recv())


def latencies(events) -> list[float]:
    return [e["received_ms"] - e["data"]["published_at"] for e in events]


def test_health_and_the_scheduler_ticking(live):
    status, body = live.get("/health")
    assert status == 200 and body["scheduler"] and body["database"]
    first = live.get("/api/stats")[1]["tick"]["count"]
    wait_for(lambda: live.get("/api/stats")[1]["tick"]["count"] >= first + 3)


def test_sse_and_websocket_receive_the_same_ticks(live):
    sse = SseClient(live.port)
    ws = ws_connect(live)
    try:
        hello = ws_event(ws)
        assert hello["type"] == "hello" and "cpu_usage" in hello["sources"]
        # The SSE client may have been registered before the WebSocket and so hold ticks the
        # WebSocket never gets: compare the ticks from the WebSocket's first one on.
        while (first := ws_event(ws))["type"] != "tick":
            pass
        ws_ids = {first["id"]}
        sse_ticks = []
        while len(sse_ticks) < 5:
            event = sse.next_event()
            if event["event"] == "tick" and int(event["id"]) >= first["id"]:
                sse_ticks.append(event)
        while not {e["id"] for e in sse_ticks} <= ws_ids:
            ws_ids.add(ws_event(ws)["id"])
        for event in sse_ticks:
            assert len(event["data"]["points"]) == 9 and event["data"]["origin"] == "scheduler"
        print("SSE publish-to-receive ms:", [round(x, 1) for x in latencies(sse_ticks)])
    finally:
        sse.close()
        ws.close()


def test_websocket_subscribe_filters_and_ping_pongs(live):
    ws = ws_connect(live)
    try:
        assert ws_event(ws)["type"] == "hello"
        ws.send(json.dumps({"subscribe": ["cpu_usage", "iot_sensors"]}))
        ws.send(json.dumps({"type": "ping"}))
        seen_pong = False
        filtered = 0
        while not seen_pong or filtered < 3:
            event = ws_event(ws)
            if event["type"] == "pong":
                seen_pong = True
                assert isinstance(event["published_at"], int)
            elif event["type"] == "tick" and seen_pong:
                # Everything after the pong was queued after the subscription took effect.
                assert {p["source"] for p in event["points"]} <= {"cpu_usage", "iot_sensors"}
                filtered += 1
        ws.send("not json")
        while (event := ws_event(ws))["type"] != "error":
            pass
        assert "expected" in event["error"] or "Expecting" in event["error"]
    finally:
        ws.close()


def test_sse_resumes_with_last_event_id_without_gaps_or_repeats(live):
    first = SseClient(live.port)
    seen = [first.next_event()["id"] for _ in range(3)]
    first.close()
    time.sleep(1.0)  # ~5 ticks happen while disconnected
    resumed = SseClient(live.port, last_event_id=seen[-1])
    try:
        ids = [resumed.next_event()["id"] for _ in range(15)]
    finally:
        resumed.close()
    assert ids == list(range(seen[-1] + 1, seen[-1] + 16))


def test_websocket_resumes_with_last_event_id(live):
    sse = SseClient(live.port)
    start = sse.next_event()["id"]
    sse.close()
    time.sleep(0.6)
    ws = ws_connect(live, f"?last_event_id={start}")
    try:
        assert ws_event(ws)["type"] == "hello"
        ids = [ws_event(ws)["id"] for _ in range(8)]
    finally:
        ws.close()
    assert ids == list(range(start + 1, start + 9))


def test_a_stalled_client_is_dropped_while_others_keep_receiving(live):
    healthy = SseClient(live.port)
    received: list[dict] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                received.append(healthy.next_event())
            except (OSError, ConnectionError):
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_for(lambda: received)
    baseline = live.get("/api/status")[1]["clients"]
    # Two clients that connect and never read, with small receive buffers.
    stalled_sse = SseClient(live.port, receive_buffer=4096)
    stalled_ws = ws_connect(live, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    wait_for(lambda: live.get("/api/status")[1]["clients"]["sse"] == baseline["sse"] + 1
             and live.get("/api/status")[1]["clients"]["ws"] == baseline["ws"] + 1)
    # ... until the server notices their queues are full and drops them.
    wait_for(lambda: live.get("/api/status")[1]["clients"] == baseline, timeout=60)
    assert "dropping sse client" in live.log() and "dropping ws client" in live.log()
    after_drop = len(received)
    wait_for(lambda: len(received) >= after_drop + 5)
    stop.set()
    healthy.close()
    ids = [e["id"] for e in received]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "the healthy client missed events"
    lag = sorted(latencies(received))
    print(f"healthy client during the stall: {len(lag)} events, p50 {lag[len(lag) // 2]:.1f} ms, "
          f"max {lag[-1]:.1f} ms")
    # The stalled sockets were cut: once their buffers are drained they end (EOF or reset).
    assert read_until_closed(stalled_sse.sock) in {"eof", "reset"}
    assert read_until_closed(stalled_ws.sock) in {"eof", "reset"}


def read_until_closed(conn: socket.socket) -> str:
    """Drain ``conn``; a socket still open after 10 s of silence raises TimeoutError."""
    conn.settimeout(10)
    try:
        while conn.recv(65536):
            pass
        return "eof"
    except ConnectionResetError:
        return "reset"


def test_an_acknowledged_submit_survives_a_crash(tmp_path):
    server = LiveServer(tmp_path / "crash", {"SCHEDULER": "false"}).start()
    try:
        batch = {"points": [{"source": "vault", "value": float(i)} for i in range(50)]}
        status, body = server.post("/api/submit", batch)
        assert status == 200
        acknowledged = {p["id"]: p["score"] for p in body["results"]}
    finally:
        server.kill()  # SIGKILL master and worker: no shutdown hook runs
    conn = sqlite3.connect(server.database)
    try:
        rows = dict(conn.execute("SELECT id, score FROM points WHERE source = 'vault'").fetchall())
        stream = conn.execute("SELECT kind, fields FROM streams WHERE name = 'vault'").fetchone()
    finally:
        conn.close()
    assert rows == acknowledged
    assert stream == ("user", '["value"]')
    again = LiveServer(tmp_path / "crash", {"SCHEDULER": "false"}, database=server.database).start()
    try:
        status, body = again.get("/api/data/vault?limit=1000")
        assert status == 200 and [p["id"] for p in body["points"]] == sorted(acknowledged)
    finally:
        again.stop()


def test_one_scheduler_per_database(tmp_path):
    first = LiveServer(tmp_path / "one", {"TICK_INTERVAL": 0.2}).start()
    second = LiveServer(tmp_path / "two", {"TICK_INTERVAL": 0.2}, database=first.database)
    try:
        second.start()
        status, body = second.get("/health")
        assert status == 503 and body["scheduler"] is False and body["database"] is False  # the first server is the writer
        assert "will not tick" in second.log()
        assert first.get("/health") == (200, {"status": "ok", "ready": True, "scheduler": True,
                                              "database": True, "scheduler_enabled": True})
    finally:
        second.stop()
        first.stop()


def test_gunicorn_refuses_more_than_one_worker(tmp_path):
    server = LiveServer(tmp_path / "many", extra_args=["--workers", "2"])
    server.start(wait=False)
    assert server.process.wait(60) != 0
    assert "workers must be 1" in server.log()
