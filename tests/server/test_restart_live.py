"""Restarts of the real server (gunicorn): after a kill -9 the engine is the one that never crashed.

Run, let the periodic snapshot be taken, run more ticks and submits, SIGKILL
the process group, restart on the same database and compare the restored
engine with a reference engine that scored every stored point without a
crash: one probe point per stream through /api/submit must get the same
score to 1e-12.  Then the generators' stored sequence must be their seeded
sequence once, with no duplicate (source, tick) pair.

A graceful stop (SIGTERM) with push clients and an idle keep-alive connection
open ends the streams cleanly, lets go of the idle connection and writes the
final snapshot well within gunicorn's graceful timeout,
so the next start replays nothing.  While a start restores the engine, /health
already answers (ready false) and a submit waits for the restore.
"""
from __future__ import annotations

import http.client
import json
import sqlite3
import struct
import threading
import time

import numpy as np
import pytest
import websocket

from generators import STREAMS, make_stream
from live_server import LiveServer, SseClient, http_json
from server_helpers import wait_for
from test_snapshots import reference_engine

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def count_points(db, where: str = "1") -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT count(*) FROM points WHERE {where}").fetchone()[0]


def snapshot_covers(snapshot) -> int:
    with np.load(snapshot, allow_pickle=False) as archive:
        return json.loads(archive["meta"].tobytes())["last_point_id"]


def test_kill_9_then_restart_replays_to_the_engine_that_never_crashed(tmp_path):
    settings = {"TICK_INTERVAL": 0.2, "SNAPSHOT_INTERVAL": 1.0}
    server = LiveServer(tmp_path / "run", settings).start()
    snapshot = server.database.with_name(server.database.name + ".snapshot.npz")
    rng = np.random.default_rng(5)
    try:
        wait_for(lambda: count_points(server.database) > 0, timeout=60)  # the first tick imports scipy
        for _ in range(10):
            status, _ = http_json(server.port, "POST", "/api/submit", timeout=60, body={"points": [
                {"source": "user_a", "value": float(rng.normal(5, 1))},
                {"source": "user_b", "values": {"x": float(rng.normal()), "y": float(rng.normal(3))}}]})
            assert status == 200
        wait_for(lambda: snapshot.exists() and snapshot_covers(snapshot) > 0, timeout=60)
        covered = snapshot_covers(snapshot)
        wait_for(lambda: count_points(server.database, "tick IS NOT NULL") > 40 * 9, timeout=90)
        status, _ = http_json(server.port, "POST", "/api/submit", {"source": "user_a", "value": 6.0}, timeout=60)
        assert status == 200
    finally:
        server.kill()
    assert count_points(server.database, f"id > {covered}") > 0  # something to replay

    reference = reference_engine(server.database)  # scored everything stored, never crashed
    again = LiveServer(tmp_path / "run", {"SCHEDULER": "false"}, database=server.database).start()
    try:
        assert "replayed" in again.log() and "restored snapshot" in again.log()
        points, expected = [], {}
        for name, fields in reference.streams().items():
            values = {f: float(v) for f, v in zip(fields, rng.normal(40, 8, len(fields)))}
            points.append({"source": name, "values": values})
            expected[name] = reference.step({name: values})[name].score
        status, body = http_json(again.port, "POST", "/api/submit", {"points": points}, timeout=60)
        assert status == 200, body
        got = {p["source"]: p["score"] for p in body["results"]}
        for name, score in expected.items():
            assert got[name] == pytest.approx(score, abs=1e-12, rel=0), name
    finally:
        again.stop()

    # Ticking again: tick numbers continue and the generators resume their sequences.
    third = LiveServer(tmp_path / "run", settings, database=server.database).start()
    try:
        before = count_points(server.database, "tick IS NOT NULL")
        wait_for(lambda: count_points(server.database, "tick IS NOT NULL") >= before + 5 * 9, timeout=60)
    finally:
        third.stop()
    with sqlite3.connect(server.database) as conn:
        assert conn.execute("SELECT count(*) FROM (SELECT 1 FROM points WHERE tick IS NOT NULL "
                            "GROUP BY source, tick HAVING count(*) > 1)").fetchone()[0] == 0
        rows = conn.execute("SELECT source, field_values FROM points WHERE tick IS NOT NULL "
                            "ORDER BY id").fetchall()
    for i, name in enumerate(STREAMS):
        stored = [json.loads(v) for s, v in rows if s == name]
        assert stored == [p.values for p in make_stream(name, seed=42 + i, anomaly_rate=0.02).take(len(stored))], name


def last_point(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM points").fetchone()[0]


def close_code(ws: websocket.WebSocket) -> tuple[int, str]:
    """Read frames until the server's close frame; return its status code and reason."""
    while True:
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", frame.data[:2])[0], frame.data[2:].decode()


def sse_ending(sse: SseClient) -> str:
    """Read events until the stream stops; return how it stopped (SseClient's message)."""
    try:
        while True:
            sse.next_event()
    except (ConnectionError, OSError) as exc:
        return str(exc)


def test_sigterm_with_push_clients_ends_them_and_writes_the_final_snapshot_in_time(tmp_path):
    settings = {"TICK_INTERVAL": 0.2, "SNAPSHOT_INTERVAL": 3600, "HEARTBEAT_INTERVAL": 1.0}
    server = LiveServer(tmp_path / "run", settings).start()
    snapshot = server.database.with_name(server.database.name + ".snapshot.npz")
    sse = SseClient(server.port)
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws", timeout=15)
    kept_alive = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
    try:
        sse.next_event()  # both streams are live
        assert json.loads(ws.recv())["type"] == "hello"
        acknowledged = []
        for k in range(5):
            status, body = http_json(server.port, "POST", "/api/submit", timeout=60, body={
                "points": [{"source": "user_a", "value": 5.0 + k}, {"source": "user_b", "value": 1.0}]})
            assert status == 200, body
            acknowledged += [p["id"] for p in body["results"]]
        wait_for(lambda: count_points(server.database, "tick IS NOT NULL") >= 9 * 3, timeout=60)
        kept_alive.request("GET", "/api/status")  # then idle, kept alive, when SIGTERM comes
        assert kept_alive.getresponse().read()
        results = {}
        readers = [threading.Thread(target=lambda: results.__setitem__("sse", sse_ending(sse))),
                   threading.Thread(target=lambda: results.__setitem__("ws", close_code(ws)))]
        for reader in readers:
            reader.start()
        stopping = time.monotonic()
        exit_code = server.stop(timeout=30)
        took = time.monotonic() - stopping
        for reader in readers:
            reader.join(10)
    finally:
        sse.close()
        ws.close()
        kept_alive.close()
    log = server.log()
    # gunicorn's graceful timeout is 5 s: the master kills a worker still busy after it.
    assert exit_code == 0 and took < 4.0, (took, log[-3000:])
    assert "graceful timeout" not in log.lower()
    assert results["sse"] == "server ended the stream"  # the terminating chunk, not a cut socket
    assert results["ws"] == (1001, "server shutting down")
    assert "ended 2 push clients" in log and "; 0 cut" in log
    assert snapshot_covers(snapshot) == last_point(server.database)  # the final snapshot: all of it
    with sqlite3.connect(server.database) as conn:
        stored = {i for (i,) in conn.execute(f"SELECT id FROM points WHERE id IN "
                                             f"({','.join(map(str, acknowledged))})")}
    assert stored == set(acknowledged)

    again = LiveServer(tmp_path / "run", {"SCHEDULER": "false"}, database=server.database).start()
    try:
        assert "restored snapshot" in again.log() and "replayed" not in again.log()
    finally:
        again.stop()


def test_health_answers_while_the_engine_is_restored_and_submits_wait_for_it(tmp_path):
    settings = {"TICK_INTERVAL": 0.2, "SNAPSHOT_INTERVAL": 3600, "MAX_USER_STREAMS": 2000}
    server = LiveServer(tmp_path / "run", settings).start()
    try:
        for start in (0, 1000):  # enough state for the restore to take a while; 1,000 points a submit
            names = [f"user_{i}" for i in range(start, start + 1000)]
            for k in range(3):
                status, body = http_json(server.port, "POST", "/api/submit", timeout=120, body={
                    "points": [{"source": n, "value": float((i + k) % 5)} for i, n in enumerate(names)]})
                assert status == 200, body
    finally:
        server.stop(timeout=60)

    reference = reference_engine(server.database)  # scored every stored point, never restarted
    again = LiveServer(tmp_path / "run", {**settings, "SCHEDULER": "false"}, database=server.database)
    again.start(wait=False)
    try:
        first = None
        deadline = time.monotonic() + 60
        while first is None and time.monotonic() < deadline:
            try:
                first = http_json(again.port, "GET", "/health", timeout=5)
            except OSError:
                time.sleep(0.005)
        status, body = first
        assert status == 200 and body["ready"] is False and body["status"] == "starting", body
        assert body["starting"] and body["database"] is True
        # A submit sent now waits for the restore, then is scored by the restored engine.
        probe = {"source": "user_7", "value": 100.0}
        answer = {}
        sender = threading.Thread(target=lambda: answer.update(
            result=http_json(again.port, "POST", "/api/submit", probe, timeout=60)))
        sender.start()
        wait_for(lambda: again.get("/health")[1]["ready"], timeout=60)
        sender.join(60)
        status, body = answer["result"]
        assert status == 200, body
        expected = reference.step({"user_7": {"value": 100.0}})["user_7"].score
        assert body["results"][0]["score"] == pytest.approx(expected, abs=1e-12, rel=0)
    finally:
        again.stop()
