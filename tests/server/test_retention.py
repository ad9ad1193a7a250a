"""Retention: the database keeps a bounded number of points, anomalies and events."""
from __future__ import annotations

import time

from server.push import replay_events
from server.writes import PruneJob
from server_helpers import run_ticks, services_of


def counts(svc) -> dict:
    reader = svc.reader()
    try:
        per_source = dict(reader.conn.execute("SELECT source, count(*) FROM points GROUP BY source"))
        return {"per_source": per_source, "events": reader.count("events"),
                "anomalies": reader.count("anomalies")}
    finally:
        reader.close()


def test_prune_keeps_the_newest_points_per_stream_and_events(make_app):
    app = make_app(RETENTION_POINTS=10, RETENTION_EVENTS=100, RETENTION_DAYS=0)
    svc = services_of(app)
    run_ticks(app, 120)
    before = counts(svc)
    assert all(n == 120 for n in before["per_source"].values()) and before["events"] >= 120
    deleted = svc.monitor.prune()
    after = counts(svc)
    assert all(n == 10 for n in after["per_source"].values()) and len(after["per_source"]) == 9
    assert after["events"] == 100
    assert deleted["points"] == 9 * 110 and deleted["events"] == before["events"] - 100
    # The newest ones are the ones kept.
    newest = app.test_client().get("/api/data/cpu_usage?limit=1000").get_json()["points"]
    assert len(newest) == 10 and newest[-1]["id"] == max(p["id"] for p in newest)
    # Counters are running totals: pruning does not lower them.
    assert app.test_client().get("/api/status").get_json()["points"] == 9 * 120
    assert svc.monitor.prune() == {"points": 0, "anomalies": 0, "events": 0, "revoked_sessions": 0}


def test_prune_by_age_and_replay_skips_what_is_gone(make_app):
    app = make_app(RETENTION_DAYS=1)
    svc = services_of(app)
    run_ticks(app, 3)
    reader = svc.reader()
    try:
        assert len(replay_events(reader, 0, 100)) >= 3
    finally:
        reader.close()
    deleted = svc.writer.write(PruneJob(10_000, 10_000, 86400.0, now=time.time() + 2 * 86400), 5)
    assert deleted["points"] == 27 and deleted["events"] >= 3
    reader = svc.reader()
    try:
        assert replay_events(reader, 0, 100) == []
    finally:
        reader.close()


def test_the_retention_job_is_scheduled(make_app):
    app = make_app()
    assert set(services_of(app).jobs.jobs) == {"tick", "retention", "event_retention", "snapshot", "alerts"}
    assert services_of(app).jobs.jobs["retention"][1] == 60.0
