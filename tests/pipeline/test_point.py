"""The scored point is defined once: the tables, the writer, the reads, the push events and OpenAPI agree with it."""
from __future__ import annotations

import sqlite3
import sys
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from server.pipeline import point
from server.pipeline.point import ScoredPoint, Truth

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server_helpers import build_app, run_ticks, services_of, shutdown_app  # noqa: E402


def _columns(db_path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(db_path)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


@pytest.fixture
def app(tmp_path):
    app = build_app(tmp_path)
    yield app
    shutdown_app(app)


def test_the_migrated_tables_hold_exactly_the_point_s_columns(app):
    db_path = services_of(app).db_path
    assert set(_columns(db_path, "points")) == {*point.ROW_COLUMNS, "received_at"}
    assert set(_columns(db_path, "anomalies")) == {*point.ROW_COLUMNS, "point_id", "detected_at"}
    assert list(point.sqlite_columns()) == list(point.ROW_COLUMNS)


def test_a_tick_s_points_are_stored_read_back_and_pushed_alike(app):
    svc = services_of(app)
    published = []
    real_publish = svc.hub.publish
    svc.hub.publish = lambda events: published.extend(events) or real_publish(events)
    for _ in range(300):  # long enough for the generators' injected anomalies to be flagged
        stored = run_ticks(app, 1)
        if any(p["is_anomaly"] for p in stored):
            break
    assert any(p["is_anomaly"] for p in stored), "no anomaly in 300 ticks"
    reader = svc.reader()
    try:
        read_back = reader.points_between(stored[0]["id"], stored[-1]["id"])
        anomalies = reader.anomalies(limit=1000)
    finally:
        reader.close()
    assert read_back == stored  # the writer's JSON and the reader's are the same objects
    schema = app.test_client().get("/api/openapi.json").get_json()["components"]["schemas"]["Point"]
    assert schema == point.json_schema()
    for p in stored:
        jsonschema.validate(p, schema)
        assert "episode" not in p and "_episode" not in p and "tick" not in p
    flagged = {p["id"]: p for p in stored if p["is_anomaly"]}
    for anomaly in anomalies:
        if anomaly["id"] in flagged:
            assert anomaly == {**flagged[anomaly["id"]], "anomaly_id": anomaly["anomaly_id"],
                               "detected_at": anomaly["detected_at"]}
    pushed = [e for e in published if e.type == "anomaly"]
    assert pushed and all('"episode"' not in e.text() and '"_episode"' not in e.text() for e in pushed)


def test_from_row_inverts_to_row_and_from_json_inverts_to_json():
    scored = ScoredPoint(id=5, source="m", tick=None, timestamp=2.5, values={"a": 1.0, "b": None},
                         score=0.25, is_anomaly=False, alert=False, severity=None, explanation=None,
                         detectors={}, fired=(), expected={}, truth=None, warming_up=True)
    assert point.from_row(dict(zip(point.ROW_COLUMNS, point.to_row(scored)))) == scored
    assert point.from_json(point.to_json(scored)) == scored
    labelled = replace(scored, truth=Truth(True, "spike"), tick=3)
    assert point.from_row(dict(zip(point.ROW_COLUMNS, point.to_row(labelled)))) == labelled


def test_a_point_built_by_hand_with_a_misspelt_member_is_refused():
    with pytest.raises(ValueError, match="not members of a point: \\['scroe'\\]"):
        point.from_json({"source": "m", "timestamp": 1.0, "values": {}, "scroe": 0.5})
