"""A DoS burst spread over three batches: the third marks the first two where they are stored,
in its own transaction, with its push event and its alert saying so."""
from __future__ import annotations

import json

from server.push import replay_events
from server_helpers import services_of

HEADER = "session_id,user_id,charger_id,start_time,duration,energy,payment"
#: Three sessions shorter than 5 min by U3 within the hour, each uploaded alone (its own batch);
#: the first is also billing fraud (62 kWh for 0.50).
BURST = ["d1,U3,C3,2026-01-01T09:00:00Z,2,62,0.5",
         "d2,U3,C4,2026-01-01T09:10:00Z,2,0.5,0.2",
         "d3,U3,C5,2026-01-01T09:20:00Z,2,0.5,0.2"]


def _upload(client, *rows):
    body = ("\n".join([HEADER, *rows]) + "\n").encode()
    response = client.post("/api/upload?schema=ev_charging", data=body, content_type="text/csv")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _stored(app) -> dict[str, dict]:
    reader = services_of(app).reader()
    try:
        rows = reader.conn.execute("SELECT event_id, is_anomaly, types, risk, severity, explanation, amended_by "
                                   "FROM scored_events ORDER BY id").fetchall()
    finally:
        reader.close()
    return {r[0]: {"is_anomaly": r[1], "types": json.loads(r[2] or "[]"), "risk": r[3], "severity": r[4],
                   "explanation": r[5], "amended_by": r[6]} for r in rows}


def _rebuilt(app) -> list[dict]:
    """The ``events`` push events as a resuming client gets them (rebuilt from the database)."""
    reader = services_of(app).reader()
    try:
        return [json.loads(e.text()) for e in replay_events(reader, 0, 100) if e.type == "events"]
    finally:
        reader.close()


def _capture_live(app, monkeypatch) -> list[dict]:
    """The ``events`` push events as the hub publishes them at commit."""
    hub = services_of(app).hub
    published = []
    real = hub.publish

    def publish(events):
        result = real(events)  # stamps their publication time
        published.extend(json.loads(e.text()) for e in events if e.type == "events")
        return result

    monkeypatch.setattr(hub, "publish", publish)
    return published


def test_the_batch_completing_a_burst_marks_its_earlier_sessions_and_says_so(app, client, monkeypatch):
    live = _capture_live(app, monkeypatch)
    for row in BURST[:2]:
        _upload(client, row)
    before = _stored(app)
    assert before["d1"]["types"] == ["billing_fraud"] and not before["d2"]["is_anomaly"]
    _upload(client, BURST[2])
    stored = _stored(app)
    assert all("dos_attack" in stored[s]["types"] for s in ("d1", "d2", "d3"))
    # d1 keeps its fraud (critical, the stronger) first; d2 is an anomaly now, at the rule's risk.
    assert stored["d1"]["types"] == ["billing_fraud", "dos_attack"] and stored["d1"]["severity"] == "critical"
    assert stored["d1"]["risk"] == before["d1"]["risk"]
    assert stored["d2"]["is_anomaly"] == 1 and stored["d2"]["severity"] == "high"
    assert stored["d2"]["risk"] == stored["d3"]["risk"] > 0
    assert stored["d2"]["explanation"] == "dos_attack (rule, high): 3 sessions shorter than 5 min by user U3 within 1 h"
    assert stored["d3"]["amended_by"] is None and stored["d1"]["amended_by"] == stored["d2"]["amended_by"]

    # The third batch's push event lists what it amended, live and rebuilt for a resuming client.
    rebuilt = _rebuilt(app)
    assert len(live) == len(rebuilt) == 3
    assert [a["event_id"] for a in live[-1]["amended"]] == ["d1", "d2"]
    assert live[-1]["amended"][1]["types"] == ["dos_attack"] and live[-1]["anomaly_count"] == 1
    assert rebuilt[-1]["amended"] == live[-1]["amended"]
    assert all(p["amended"] == [] for p in rebuilt[:-1])

    # One alert for U3's burst counting its three sessions; the fraud alert counted d1 once.
    alerts = {(a["entity"], a["type"]): a for a in
              client.get("/api/incidents?stream=ev_charging&limit=100").get_json()["alerts"]}
    assert alerts[("user_id=U3", "dos_attack")]["points"] == 3
    assert alerts[("user_id=U3", "billing_fraud")]["points"] == 1
    listed = client.get("/api/anomalies?schema=ev_charging&type=dos_attack").get_json()["anomalies"]
    assert sorted(a["event_id"] for a in listed) == ["d1", "d2", "d3"]


def test_a_fourth_short_session_leaves_the_amended_ones_as_they_are(app, client):
    for row in BURST:
        _upload(client, row)
    first = _stored(app)
    _upload(client, "d4,U3,C6,2026-01-01T09:30:00Z,2,0.5,0.2")
    stored = _stored(app)
    assert {k: v for k, v in stored.items() if k != "d4"} == first
    assert "dos_attack" in stored["d4"]["types"]
    assert _rebuilt(app)[-1]["amended"] == []


def test_longer_sessions_and_other_users_inside_the_hour_are_not_amended(app, client):
    _upload(client, BURST[0], "long,U3,C9,2026-01-01T09:05:00Z,90,20,8", "other,U4,C8,2026-01-01T09:05:00Z,2,0.5,0.2")
    _upload(client, BURST[1])
    _upload(client, BURST[2])
    stored = _stored(app)
    assert "dos_attack" not in stored["long"]["types"] and "dos_attack" not in stored["other"]["types"]
    assert all("dos_attack" in stored[s]["types"] for s in ("d1", "d2", "d3"))


def test_an_upload_read_in_several_batches_counts_its_amended_sessions_once(app, client, monkeypatch):
    import functools

    import server.sources.upload

    monkeypatch.setattr(server.sources.upload, "FileSource",
                        functools.partial(server.sources.upload.FileSource, chunk_rows=2))
    summary = _upload(client, BURST[0], BURST[1], "n1,U7,C7,2026-01-01T11:00:00Z,60,20,8", BURST[2])
    assert summary["events"] == 4 and summary["anomalies"] == 3
    assert summary["types"] == {"billing_fraud": 1, "dos_attack": 3}
    assert summary["severities"] == {"critical": 1, "high": 2}
    listed = {a["event_id"]: a["types"] for a in summary["anomaly_list"]}
    assert listed == {"d1": ["billing_fraud", "dos_attack"], "d2": ["dos_attack"], "d3": ["dos_attack"]}
