"""The security limits against the real gunicorn server, over real loopback sockets.

The floods of the issue (4,100 SSE connections, 3,000 trickling bodies) are
reproduced at a small, bounded scale: the caps are set low through settings.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import time

import pytest

from live_server import LiveServer, SseClient, http_json

pytestmark = pytest.mark.slow

TOKEN = "live-test-token"
STREAM_CAP = 5
CONNECTION_CAP = 20


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("limited"), {
        "SCHEDULER": "false", "MAX_STREAMS_PER_CLIENT": STREAM_CAP,
        "MAX_CONNECTIONS_PER_CLIENT": CONNECTION_CAP, "WORKER_CONNECTIONS": 60,
        "BODY_TIMEOUT": 1.0, "RATE_LIMIT": "5 per minute",
        # Closed streams are noticed at the next write: heartbeat often.
        "HEARTBEAT_INTERVAL": 0.3}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("guarded"), {
        "SCHEDULER": "false", "API_TOKEN": TOKEN, "READ_ACCESS": "token"}).start()
    yield server
    server.stop()


def raw_request(port: int, head: str, body: bytes = b"", timeout: float = 10.0) -> tuple[int, bytes]:
    """Send a raw request on a fresh connection; return the status and the rest of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def timed_health(server) -> tuple[int, float]:
    started = time.monotonic()
    status, _ = http_json(server.port, "GET", "/health", timeout=5)
    return status, time.monotonic() - started


def test_a_flood_of_event_streams_from_one_client_leaves_health_answering(limited):
    # 60 attempts from one address against a worker of 60 connections: without the caps they
    # would take every connection and /health would wait (the issue saw 40 s at full scale).
    held, refused = [], 0
    try:
        for _ in range(60):
            client = SseClient(limited.port, timeout=5)
            try:
                client._fill()  # the status line and the first chunk
                held.append(client)
            except ConnectionError as exc:
                client.close()
                assert "429" in str(exc), exc
                refused += 1
        assert len(held) == STREAM_CAP and refused == 60 - STREAM_CAP
        status, seconds = timed_health(limited)
        assert status == 200 and seconds < 2.0
        assert http_json(limited.port, "GET", "/api/status")[1]["clients"]["sse"] == STREAM_CAP
    finally:
        for client in held:
            client.close()


def wait_until_no_streams(server) -> None:
    """A closed stream is noticed at its next write (a heartbeat): wait for the earlier tests'."""
    deadline = time.monotonic() + 10
    while sum(http_json(server.port, "GET", "/api/status")[1]["clients"].values()):
        assert time.monotonic() < deadline, "the streams of an earlier test were never released"
        time.sleep(0.2)
    time.sleep(0.2)  # their connections end just after the hub lets them go


def test_connections_over_the_per_client_cap_get_a_json_429_at_once(limited):
    wait_until_no_streams(limited)
    idle = [socket.create_connection(("127.0.0.1", limited.port), timeout=5)
            for _ in range(CONNECTION_CAP)]
    try:
        time.sleep(0.3)  # the worker has accepted them all
        started = time.monotonic()
        status, answer = raw_request(limited.port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert status == 429 and time.monotonic() - started < 2.0
        assert b"Retry-After" in answer
        assert "ANOMALY_MAX_CONNECTIONS_PER_CLIENT" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while timed_health(limited)[0] != 200:  # the slots come back once the sockets are closed
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_trickling_bodies_are_cut_after_the_body_timeout(limited):
    head = ("POST /api/submit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 200\r\n\r\n")
    socks = []
    try:
        started = time.monotonic()
        for _ in range(4):  # under the rate limit of this server (5 per minute)
            sock = socket.create_connection(("127.0.0.1", limited.port), timeout=10)
            sock.sendall(head.encode() + b'{"source": "slow", ')  # and never the rest
            socks.append(sock)
        assert timed_health(limited)[0] == 200  # answered while the bodies trickle
        for sock in socks:
            data = b""
            while True:  # until the server closes: the connection must not be kept
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            assert data.startswith(b"HTTP/1.1 408"), data[:100]
            assert b"did not arrive within 1 s" in data
        assert time.monotonic() - started < 5.0
    finally:
        for sock in socks:
            sock.close()
    assert "slow" not in {s["name"] for s in http_json(limited.port, "GET", "/api/streams")[1]["streams"]}


def test_mutating_requests_are_rate_limited(limited):
    codes = [http_json(limited.port, "POST", "/api/submit", {"source": "rated", "value": 1.0})[0]
             for _ in range(6)]
    assert codes[-1] == 429 and codes.count(200) <= 5
    status, answer = raw_request(limited.port, "POST /api/submit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n", b"{}")
    assert status == 429 and b"Retry-After: " in answer


def _ws_handshake(port: int, origin: str) -> int:
    key = base64.b64encode(os.urandom(16)).decode()
    status, _ = raw_request(port, f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                                  f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n")
    return status


def test_websocket_origin_is_checked(limited):
    wait_until_no_streams(limited)
    assert _ws_handshake(limited.port, "http://evil.example") == 403
    assert _ws_handshake(limited.port, f"http://127.0.0.1:{limited.port}") == 101


def test_the_start_says_it_serves_loopback_only_without_a_token(limited):
    log = limited.output.read_text()
    assert "ANOMALY_API_TOKEN is not set" in log and "loopback" in log
    assert f"Listening at: http://127.0.0.1:{limited.port}" in log


def test_token_guards_writes_reads_and_the_event_stream(guarded):
    assert http_json(guarded.port, "POST", "/api/submit", {"source": "x", "value": 1.0})[0] == 401
    assert http_json(guarded.port, "GET", "/api/status")[0] == 401
    assert http_json(guarded.port, "GET", "/health")[0] == 200
    status, _ = raw_request(guarded.port, "GET /api/stream/anomalies HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 401
    status, answer = raw_request(guarded.port, "GET /api/stream/anomalies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 f"Authorization: Bearer {TOKEN}\r\n\r\n", timeout=5)
    assert status == 200 and b"text/event-stream" in answer
    body = json.dumps({"source": "x", "value": 1.0}).encode()
    status, _ = raw_request(guarded.port, "POST /api/submit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n", body)
    assert status == 200
