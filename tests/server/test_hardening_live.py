"""Regression tests for the defects of issue 7 (section 2) that live in gunicorn or in sockets.

Each starts the real server (gunicorn, one gevent worker) through live_server.py.
"""
from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
import websocket

from live_server import LiveServer, http_json
from server.validation import MAX_EVENT_ID

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("hardening"),
                        settings={"SYNCHRONOUS": "NORMAL", "TICK_INTERVAL": 0.2,
                                  "MAX_CONTENT_LENGTH": 1024 * 1024}).start()
    yield server
    server.stop()


def raw_exchange(port: int, request: bytes, timeout: float = 15.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes or the body is complete; (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        data = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                headers = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:])
                length = headers.get("Content-Length")
                if length is not None and len(body) >= int(length):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ")[1]), headers, body


# -- 3. Last-Event-ID past SQLite's integers, on real sockets ---------------------------------
def test_sse_with_a_last_event_id_past_sqlite_integers_is_a_clean_400(live):
    status, headers, body = raw_exchange(live.port, (
        f"GET /api/stream/anomalies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Last-Event-ID: {MAX_EVENT_ID + 1}\r\nConnection: close\r\n\r\n").encode())
    assert status == 400
    assert "Last-Event-ID" in json.loads(body)["error"]


def test_websocket_with_a_last_event_id_past_sqlite_integers_gets_an_error_message(live):
    conn = websocket.create_connection(
        f"ws://127.0.0.1:{live.port}/ws?last_event_id={MAX_EVENT_ID + 1}", timeout=15)
    try:
        message = json.loads(conn.recv())  # a well-formed frame, not an HTTP answer on the socket
    finally:
        conn.close()
    assert message["type"] == "error" and "last_event_id" in message["error"]


# -- 4. a chunked body over the limit ---------------------------------------------------------
def chunked_post(port: int, path: str, body: bytes, chunk: int = 64 * 1024):
    pieces = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk])
                      for i in range(0, len(body), chunk))
    return raw_exchange(port, (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                               "Connection: close\r\n\r\n").encode() + pieces + b"0\r\n\r\n")


def test_a_chunked_body_over_the_limit_is_a_413_not_truncated(live):
    padded = b'{"source": "chunky", "value": 1}' + b" " * (2 * 1024 * 1024)
    status, _, body = chunked_post(live.port, "/api/submit", padded)
    assert status == 413
    assert "payload too large" in json.loads(body)["error"]
    assert http_json(live.port, "GET", "/api/data/chunky")[0] == 404  # nothing stored


def test_a_chunked_body_within_the_limit_is_accepted(live):
    body = b'{"source": "chunky_ok", "value": 1}' + b" " * (1024 * 1024 - 40)
    status, _, answer = chunked_post(live.port, "/api/submit", body)
    assert status == 200, answer[:300]
    assert json.loads(answer)["results"][0]["source"] == "chunky_ok"


# -- 5. gunicorn's own error answers are JSON -----------------------------------------------
@pytest.mark.parametrize("request_bytes, status", [
    (b"NOT A REQUEST LINE\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n", 431),
    (b"POST /api/submit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
])
def test_gunicorn_errors_are_json(live, request_bytes, status):
    answer_status, headers, body = raw_exchange(live.port, request_bytes)
    assert answer_status == status
    assert headers["Content-Type"] == "application/json"
    assert isinstance(json.loads(body)["error"], str)


# -- 10. a rejected configure is not a server error -----------------------------------------
def test_a_rejected_configure_prints_no_traceback(live):
    before = live.log().count("Traceback")
    for body in ({"source": "cpu_usage", "threshold": 5},
                 {"source": "cpu_usage", "detector": "zscore", "window": 3},
                 {"source": "cpu_usage", "window": 50}):
        status, answer = http_json(live.port, "POST", "/api/configure", body)
        assert status == 400 and answer["error"]
    assert http_json(live.port, "GET", "/health")[0] == 200
    assert live.log().count("Traceback") == before


# -- 8. a second server on the same database -----------------------------------------------
def test_a_second_server_on_the_same_database_refuses_writes_with_a_503(tmp_path):
    database = tmp_path / "shared.db"
    first = LiveServer(tmp_path / "first", settings={"SYNCHRONOUS": "NORMAL"}, database=database).start()
    second = None
    try:
        assert first.post("/api/submit", {"source": "shared", "value": 1.0})[0] == 200
        second = LiveServer(tmp_path / "second", settings={"SYNCHRONOUS": "NORMAL"},
                            database=database).start()
        assert second.get("/health")[0] == 503
        for path, body in (("/api/submit", {"source": "shared", "value": 2.0}),
                           ("/api/submit", {"source": "other", "value": 2.0}),
                           ("/api/configure", {"source": "cpu_usage", "threshold": 0.5})):
            status, answer = second.post(path, body)
            assert status == 503, (path, status, answer)
            assert "another server" in answer["error"]
        assert second.get("/api/data/shared")[0] == 200  # reads are served
        assert "Traceback" not in second.log()
        # The first one goes on writing; once it stops, the second takes over without a clash.
        assert first.post("/api/submit", {"source": "shared", "value": 3.0})[0] == 200
        first.stop()
        status, answer = second.post("/api/submit", {"source": "shared", "value": 4.0})
        assert status == 200, answer
        ids = [p["id"] for p in second.get("/api/data/shared")[1]["points"]]
        assert len(ids) == 3 and len(set(ids)) == 3
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_a_graceful_stop_lets_idle_keep_alive_connections_go_without_a_traceback(tmp_path):
    server = LiveServer(tmp_path, settings={"SCHEDULER": "false"}).start()
    idle = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=15) for _ in range(3)]
    try:
        for conn in idle:
            conn.request("GET", "/api/streams")
            assert conn.getresponse().read()  # then idle, kept alive, when SIGTERM comes
        stopping = time.monotonic()
        assert server.stop(timeout=30) == 0
        took = time.monotonic() - stopping
    finally:
        for conn in idle:
            conn.close()
    log = server.output.read_text(errors="replace")
    assert "Traceback" not in log and "Socket error" not in log, log[-3000:]
    assert took < 4.0 and "graceful timeout" not in log.lower(), (took, log[-3000:])
