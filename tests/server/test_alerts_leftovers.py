"""Retention of what is over (resolved alerts, expired silences, audit rows), the alerts of a
deleted stream, and /metrics behind the token when reads are token-only -- on a real database."""
from __future__ import annotations

import sqlite3
import time

from alert_helpers import store_point
from server.alerts.service import EXTENSION as ALERTS
from server_helpers import services_of

DAY = 86400.0
TOKEN = "s3cret-token-for-tests"


def open_alert(client, stream):
    alerts = client.get(f"/api/incidents?stream={stream}&state=pending,firing").get_json()["alerts"]
    assert len(alerts) == 1, alerts
    return alerts[0]


def backdate(app, sql: str, params) -> None:
    """Age rows in the database file, as if days had passed (the server's clock is the real one)."""
    conn = sqlite3.connect(services_of(app).db_path)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


def prune_now(app) -> None:
    alerts = app.extensions[ALERTS]
    alerts._last_prune = 0.0  # the prune runs every ten minutes: make it due
    alerts.sweep()


def rows(client, path, key):
    return {r["id"] for r in client.get(path).get_json()[key]}


def test_retention_prunes_resolved_alerts_expired_silences_and_audit_rows_past_the_age(make_app):
    app = make_app(RETENTION_DAYS=7.0)
    client = app.test_client()
    store_point(app, "cpu_usage")
    store_point(app, "memory_usage")
    old, kept_open = open_alert(client, "cpu_usage"), open_alert(client, "memory_usage")
    client.post(f"/api/incidents/{old['id']}/resolve", json={"by": "bob"})
    store_point(app, "disk_io")
    recent = open_alert(client, "disk_io")
    client.post(f"/api/incidents/{recent['id']}/resolve", json={"by": "bob"})
    client.post(f"/api/incidents/{kept_open['id']}/acknowledge", json={"by": "amy"})
    gone_silence = client.post("/api/silences", json={"matchers": {"stream": "x"}, "duration": 60}).get_json()
    live_silence = client.post("/api/silences", json={"matchers": {"stream": "y"}, "duration": 30 * DAY}).get_json()
    client.delete(f"/api/silences/{gone_silence['silence']['id']}")

    ten_days_ago = time.time() - 10 * DAY
    backdate(app, "UPDATE alerts SET resolved_at = ?, started_at = ? WHERE id IN (?, ?)",
             [ten_days_ago, ten_days_ago, old["id"], kept_open["id"]])
    backdate(app, "UPDATE silences SET expired_at = ? WHERE id = ?", [ten_days_ago, gone_silence["silence"]["id"]])
    backdate(app, "UPDATE alert_audit SET at = ? WHERE alert_id = ?", [ten_days_ago, old["id"]])
    audit_before = rows(client, "/api/audit?limit=1000", "audit")

    prune_now(app)

    alerts = rows(client, "/api/incidents?limit=1000", "alerts")
    assert old["id"] not in alerts  # resolved ten days ago
    assert recent["id"] in alerts  # resolved just now
    assert kept_open["id"] in alerts  # open, however old
    silences = rows(client, "/api/silences", "silences")
    assert gone_silence["silence"]["id"] not in silences
    assert live_silence["silence"]["id"] in silences
    audit = client.get("/api/audit?limit=1000").get_json()["audit"]
    assert {a["alert_id"] for a in audit if a["alert_id"]} == {recent["id"], kept_open["id"]}
    assert len(audit) == len(audit_before) - 1  # only the old alert's resolve row went


def test_ids_of_pruned_alerts_and_silences_are_never_given_to_new_ones(make_app):
    """A receiver or an operator may still hold the id of a pruned alert or silence: a new
    one must not take it, even when the pruned rows were the newest."""
    app = make_app(RETENTION_DAYS=7.0)
    client = app.test_client()
    store_point(app, "cpu_usage")
    old = open_alert(client, "cpu_usage")
    client.post(f"/api/incidents/{old['id']}/resolve", json={"by": "bob"})
    silence = client.post("/api/silences", json={"matchers": {"stream": "x"}, "duration": 60}).get_json()["silence"]
    client.delete(f"/api/silences/{silence['id']}")
    ten_days_ago = time.time() - 10 * DAY
    backdate(app, "UPDATE alerts SET resolved_at = ?, started_at = ? WHERE id = ?", [ten_days_ago, ten_days_ago, old["id"]])
    backdate(app, "UPDATE silences SET expired_at = ? WHERE id = ?", [ten_days_ago, silence["id"]])
    prune_now(app)
    assert rows(client, "/api/incidents?limit=1000", "alerts") == set()
    assert rows(client, "/api/silences", "silences") == set()

    store_point(app, "cpu_usage")
    assert open_alert(client, "cpu_usage")["id"] > old["id"]
    new_silence = client.post("/api/silences", json={"matchers": {"stream": "y"}, "duration": 60}).get_json()["silence"]
    assert new_silence["id"] > silence["id"]


def test_retention_days_zero_keeps_everything(make_app):
    app = make_app(RETENTION_DAYS=0.0)
    client = app.test_client()
    store_point(app, "cpu_usage")
    alert = open_alert(client, "cpu_usage")
    client.post(f"/api/incidents/{alert['id']}/resolve", json={"by": "bob"})
    backdate(app, "UPDATE alerts SET resolved_at = ? WHERE id = ?", [time.time() - 1000 * DAY, alert["id"]])
    backdate(app, "UPDATE alert_audit SET at = ?", [time.time() - 1000 * DAY])
    prune_now(app)
    assert alert["id"] in rows(client, "/api/incidents", "alerts")
    assert len(client.get("/api/audit").get_json()["audit"]) == 1


def test_deleting_a_stream_resolves_its_alerts_with_the_reason_and_announces_it(app, client):
    assert client.post("/api/submit", json={"source": "doomed", "value": 1.0}).status_code == 200
    store_point(app, "doomed")
    store_point(app, "doomed", entity="pump-1")
    store_point(app, "cpu_usage")
    doomed = client.get("/api/incidents?stream=doomed&state=pending,firing").get_json()["alerts"]
    assert len(doomed) == 2
    other = open_alert(client, "cpu_usage")
    last_event = services_of(app).hub.last_id

    assert client.delete("/api/streams/doomed").status_code == 200

    for alert in doomed:
        detail = client.get(f"/api/incidents/{alert['id']}").get_json()
        assert detail["alert"]["state"] == "resolved"
        assert detail["alert"]["resolved_by"] == "stream deleted"
        assert [(a["action"], a["actor"], a["detail"]) for a in detail["audit"]] == \
            [("resolve", "server", {"reason": "stream deleted"})]
    assert open_alert(client, "cpu_usage")["id"] == other["id"]  # another stream's alert stays
    # The transitions are push events, stored (so replayed after Last-Event-ID).
    conn = sqlite3.connect(services_of(app).db_path)
    try:
        stored = conn.execute("SELECT alert_id, transition FROM events WHERE type = 'alert' AND id > ? "
                              "ORDER BY id", [last_event]).fetchall()
    finally:
        conn.close()
    assert sorted(stored) == sorted((a["id"], "resolved") for a in doomed)
    # A new stream of the same name starts with no open alert.
    assert client.post("/api/submit", json={"source": "doomed", "value": 1.0}).status_code == 200
    assert client.get("/api/incidents?stream=doomed&state=pending,firing").get_json()["alerts"] == []


def test_metrics_need_the_token_when_reads_do(make_app):
    client = make_app(API_TOKEN=TOKEN, READ_ACCESS="token").test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and "Authorization" in refused.get_json()["error"]
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    allowed = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200 and b"anomaly_points" in allowed.data


def test_metrics_stay_public_when_reads_are_public(make_app):
    client = make_app(API_TOKEN=TOKEN).test_client()
    assert client.get("/metrics").status_code == 200
