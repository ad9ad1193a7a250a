"""Restarts that remember, in-process: snapshot at shutdown, replay after a crash, generators and ticks continue."""
from __future__ import annotations

import json
import logging
import sqlite3

import numpy as np
import pytest

from detectors.engine import Engine
from generators import STREAMS, make_stream
from server_helpers import run_ticks, services_of


def stored_points(db_path) -> list[tuple]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT source, tick, field_values FROM points ORDER BY id").fetchall()


def reference_engine(db_path) -> Engine:
    """An engine that scored every stored point and never stopped (each stream's points in order)."""
    engine = Engine()
    with sqlite3.connect(db_path) as conn:
        for name, fields in conn.execute("SELECT name, fields FROM streams ORDER BY rowid"):
            engine.add_stream(name, tuple(json.loads(fields)))
    rounds: list[dict] = []
    seen: dict[str, int] = {}
    for source, _, values in stored_points(db_path):
        k = seen.get(source, 0)
        seen[source] = k + 1
        if k == len(rounds):
            rounds.append({})
        rounds[k][source] = json.loads(values)
    for points in rounds:
        engine.step(points)
    return engine


def probe(app, reference: Engine, rng) -> None:
    """Score one new point per stream in the app and in the reference; the scores must agree to 1e-12."""
    monitor = services_of(app).monitor
    points = {}
    for name, fields in reference.streams().items():
        points[name] = {f: float(v) for f, v in zip(fields, rng.normal(50, 5, len(fields)))}
    expected = reference.step(points)
    got = monitor.engine.step(points)
    for name in points:
        assert got[name].score == pytest.approx(expected[name].score, abs=1e-12, rel=0), name
        assert got[name].warming_up == expected[name].warming_up


def submit_user_points(client, rng, n=40):
    for i in range(n):
        body = {"points": [{"source": "user_a", "value": float(rng.normal(5, 1))},
                           {"source": "user_b", "values": {"x": float(rng.normal()), "y": float(rng.normal(3))}}]}
        assert client.post("/api/submit", json=body).status_code == 200


def test_graceful_restart_restores_engine_generators_and_tick_numbers(make_app, tmp_path):
    rng = np.random.default_rng(0)
    first = make_app()
    run_ticks(first, 45)
    submit_user_points(first.test_client(), rng)
    services_of(first).shutdown()
    assert (tmp_path / "test.db.snapshot.npz").exists()

    second = make_app()
    monitor = services_of(second).monitor
    assert monitor.tick_count == 45
    probe(second, reference_engine(tmp_path / "test.db"), rng)
    run_ticks(second, 5)
    with sqlite3.connect(tmp_path / "test.db") as conn:
        ticks = conn.execute("SELECT source, tick, count(*) FROM points WHERE tick IS NOT NULL "
                             "GROUP BY source, tick HAVING count(*) > 1").fetchall()
        assert ticks == []
        assert conn.execute("SELECT max(tick) FROM points").fetchone()[0] == 50
    # The generators went on: the stored values are their sequence from its first point, once.
    points = stored_points(tmp_path / "test.db")
    for i, name in enumerate(STREAMS):
        stored = [json.loads(v) for s, t, v in points if s == name and t is not None]
        expected = make_stream(name, seed=42 + i, anomaly_rate=0.02).take(len(stored))
        assert stored == [p.values for p in expected], name


def test_after_a_crash_the_points_stored_since_the_snapshot_are_replayed(make_app, tmp_path):
    rng = np.random.default_rng(1)
    first = make_app()
    run_ticks(first, 35)
    submit_user_points(first.test_client(), rng, 20)
    services_of(first).snapshots.save()
    run_ticks(first, 12)  # scored and stored after the snapshot: a crash now loses them from it
    submit_user_points(first.test_client(), rng, 7)
    services_of(first).snapshots = None  # a crash: no snapshot at shutdown
    services_of(first).writer.stop()  # and a dead process holds no writer lock

    second = make_app()
    assert services_of(second).monitor.tick_count == 47
    probe(second, reference_engine(tmp_path / "test.db"), rng)
    run_ticks(second, 3)
    points = stored_points(tmp_path / "test.db")
    name = "machine_health"
    stored = [json.loads(v) for s, t, v in points if s == name and t is not None]
    assert stored == [p.values for p in make_stream(name, seed=42 + list(STREAMS).index(name),
                                                   anomaly_rate=0.02).take(len(stored))]


def test_a_snapshot_from_other_detectors_is_refused_with_a_warning(make_app, tmp_path, caplog):
    first = make_app()
    run_ticks(first, 5)
    services_of(first).shutdown()
    with caplog.at_level(logging.WARNING, logger="server.snapshots"):
        second = make_app(DETECTORS="zscore,mad")
    assert "refused, starting cold" in caplog.text
    assert services_of(second).monitor.tick_count == 5  # tick numbers continue even when cold
    run_ticks(second, 1)


def test_a_damaged_snapshot_is_refused_and_the_server_starts(make_app, tmp_path, caplog):
    (tmp_path / "test.db.snapshot.npz").write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING, logger="server.snapshots"):
        app = make_app()
    assert "refused" in caplog.text
    assert run_ticks(app, 1)


def test_snapshots_can_be_turned_off(make_app, tmp_path):
    app = make_app(SNAPSHOT_PATH="off")
    run_ticks(app, 2)
    services_of(app).shutdown()
    assert not list(tmp_path.glob("*.npz"))
