"""Entity-keyed events through the API: upload, anomalies, flags, acknowledgements, restarts."""
from __future__ import annotations

import io
import json

import pytest

from server.event_storage import EventReader
from server.pipeline.event import MAX_ENTITY_ID_LENGTH
from server.push import replay_events
from server_helpers import fail_third_event_write, run_ev_feed, services_of, wait_for

HEADER = "session_id,user_id,charger_id,start_time,duration,energy,payment"
FRAUD = "s1,U1,C1,2026-01-01T08:00:00Z,60,62,0.5"
ORDINARY = "s2,U2,C2,2026-01-01T08:00:00Z,60,20,8"


def _csv(*rows, header=HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def _upload(client, body: bytes, content_type="text/csv", **query):
    params = "&".join(f"{k}={v}" for k, v in {"schema": "ev_charging", **query}.items())
    return client.post(f"/api/upload?{params}", data=body, content_type=content_type)


def _stored(app) -> int:
    reader = services_of(app).reader()
    try:
        return reader.conn.execute("SELECT count(*) FROM scored_events").fetchone()[0]
    finally:
        reader.close()


def test_upload_answers_a_summary_and_lists_anomalies_with_their_fields(client):
    response = _upload(client, _csv(FRAUD, ORDINARY))
    assert response.status_code == 200, response.get_json()
    summary = response.get_json()
    assert summary["events"] == 2 and summary["anomalies"] == 1
    assert summary["types"] == {"billing_fraud": 1} and summary["severities"] == {"critical": 1}
    anomaly = summary["anomaly_list"][0]
    assert anomaly["fields"]["session_id"] == "s1" and anomaly["fields"]["payment"] == 0.5
    assert anomaly["risk"] == 88 and anomaly["types"] == ["billing_fraud"]
    listed = client.get("/api/anomalies?schema=ev_charging").get_json()["anomalies"]
    assert [a["event_id"] for a in listed] == ["s1"]
    assert listed[0]["entities"] == {"user_id": "U1", "charger_id": "C1"}
    assert client.get("/api/anomalies?schema=ev_charging&type=dos_attack").get_json()["anomalies"] == []
    events = client.get("/api/events?schema=ev_charging&user_id=U2").get_json()["events"]
    assert [e["event_id"] for e in events] == ["s2"] and events[0]["is_anomaly"] is False


def test_camel_case_multipart_and_json_lines_uploads(client):
    camel = _csv("a,U1,C1,08:00,60,20,8", header="sessionId,userId,chargerId,startTime,duration,energy,payment")
    response = client.post("/api/upload?schema=ev_charging", content_type="multipart/form-data",
                           data={"file": (io.BytesIO(camel), "sessions.csv")})
    assert response.status_code == 200 and response.get_json()["events"] == 1
    line = json.dumps({"session_id": "b", "user_id": "U3", "charger_id": "C3",
                       "start_time": "2026-01-01T09:00:00Z", "duration": 30, "energy": 55, "payment": 0})
    response = _upload(client, (line + "\n").encode(), content_type="application/x-ndjson")
    assert response.status_code == 200 and "billing_fraud" in response.get_json()["types"]


@pytest.mark.parametrize("body, message, line", [
    (_csv("a,U1,C1,08:00,60,20", header="session_id,user_id,charger_id,start_time,duration,energy"),
     "missing column(s) payment", 1),
    (_csv(ORDINARY, "s3,U3,C3,08:00,sixty,20,8"), "'duration' needs a number", 3),
    (_csv(ORDINARY, "s3,U3,C3,noon,60,20,8"), "start_time", 3),
    (b"", "empty", 1),
    (b"\x00\x01\x02PK\x03\x04" * 100, "binary", 1),
])
def test_bad_files_are_refused_with_what_was_expected_and_nothing_is_stored(app, client, body, message, line):
    response = _upload(client, body)
    assert response.status_code == 400
    error = response.get_json()
    assert message in error["error"] and error["line"] == line
    assert "expected" in error and "found" in error
    assert _stored(app) == 0


@pytest.mark.parametrize("content_type", ["text/csv", "application/x-ndjson"])
def test_an_entity_id_longer_than_flags_take_is_refused_with_its_line_and_field(app, client, content_type):
    rows = [ORDINARY, ORDINARY.replace("s2", "s3").replace("U2", "U" * 3_000_000)]
    if content_type == "text/csv":
        body, line = _csv(*rows), 3  # below the header
    else:
        names = HEADER.split(",")
        body, line = "".join(json.dumps(dict(zip(names, r.split(",")))) + "\n" for r in rows).encode(), 2
    response = _upload(client, body, content_type=content_type)
    assert response.status_code == 400
    error = response.get_json()
    assert error["line"] == line and "'user_id'" in error["error"], error["error"][:300]
    assert f"at most {MAX_ENTITY_ID_LENGTH} characters" in error["error"]
    assert len(response.data) < 2000  # the id is quoted by its start and length, not whole
    assert _stored(app) == 0  # whole or nothing


def test_the_longest_entity_id_an_upload_takes_can_be_flagged_and_looked_up(client):
    longest = "U" * MAX_ENTITY_ID_LENGTH
    flag = {"schema": "ev_charging", "entity": "user_id", "id": longest}
    assert client.post("/api/flags", json=flag).status_code == 201
    summary = _upload(client, _csv(ORDINARY.replace("U2", longest))).get_json()
    assert summary["events"] == 1 and summary["flagged"] == 1
    events = client.get(f"/api/events?schema=ev_charging&user_id={longest}").get_json()["events"]
    assert [e["event_id"] for e in events] == ["s2"]
    answer = client.post("/api/flags", json={**flag, "id": longest + "U"})
    assert answer.status_code == 400
    assert f"the limit is {MAX_ENTITY_ID_LENGTH}" in answer.get_json()["error"]


def test_a_file_is_imported_whole_or_not_at_all_when_a_write_fails(app, client, monkeypatch):
    import server.event_writes

    real_apply = server.event_writes.ScoredEventsJob.apply
    calls = fail_third_event_write(monkeypatch)
    rows = [f"s{i},U{i},C{i},2026-01-01T08:{i:02d}:00Z,30,10,4" for i in range(8)]
    response = _upload(client, _csv(*rows))
    assert response.status_code >= 500 and len(calls) >= 3
    wait_for(lambda: _stored(app) == 0)
    monkeypatch.setattr(server.event_writes.ScoredEventsJob, "apply", real_apply)
    assert _upload(client, _csv(*rows)).get_json()["events"] == 8 and _stored(app) == 8


def test_upload_content_types_size_and_cross_site_forms(make_app):
    app = make_app(MAX_UPLOAD_BYTES=1024)
    client = app.test_client()
    assert _upload(client, b'{"a": 1}', content_type="application/json").status_code == 415
    big = _csv(*[ORDINARY.replace("s2", f"s{i}") for i in range(40)])
    assert len(big) > 1024 and _upload(client, big).status_code == 413
    response = client.post("/api/upload?schema=ev_charging", content_type="multipart/form-data",
                           data={"file": (io.BytesIO(_csv(ORDINARY)), "x.csv")},
                           headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert _upload(client, _csv(ORDINARY), schema="nope").status_code == 404
    assert client.post("/api/upload", data=_csv(ORDINARY), content_type="text/csv").status_code == 400


def test_flags_and_acknowledgements_persist_across_a_restart(make_app):
    app = make_app()
    client = app.test_client()
    response = client.post("/api/flags", json={"schema": "ev_charging", "entity": "user_id", "id": "U2",
                                               "by": "alice", "note": "chargeback"})
    assert response.status_code == 201 and response.get_json()["flag"]["flagged_by"] == "alice"
    summary = _upload(client, _csv(FRAUD, ORDINARY)).get_json()
    assert summary["flagged"] == 1
    anomaly_id = summary["anomaly_list"][0]["id"]
    ack = client.post(f"/api/anomalies/{anomaly_id}/acknowledge", json={"by": "bob", "note": "refunded"})
    assert ack.status_code == 200 and ack.get_json()["acknowledged"]["by"] == "bob"
    services_of(app).shutdown()

    again = make_app().test_client()
    assert [f["entity_id"] for f in again.get("/api/flags?schema=ev_charging").get_json()["flags"]] == ["U2"]
    listed = again.get("/api/anomalies?schema=ev_charging&acknowledged=true").get_json()["anomalies"]
    assert listed[0]["acknowledged"]["note"] == "refunded"
    later = _upload(again, _csv(ORDINARY.replace("s2", "s9").replace("08:00", "10:00"))).get_json()
    assert later["flagged"] == 1  # the restored flag still marks U2's new sessions
    events = again.get("/api/events?schema=ev_charging&user_id=U2").get_json()["events"]
    assert [e["flagged"] for e in events] == [True, True]
    assert again.delete("/api/flags", json={"schema": "ev_charging", "entity": "user_id", "id": "U2"}).status_code == 200
    assert again.get("/api/flags").get_json()["flags"] == []


def test_a_second_acknowledgement_shows_and_the_audit_log_keeps_both(client):
    anomaly_id = _upload(client, _csv(FRAUD)).get_json()["anomaly_list"][0]["id"]
    first = client.post(f"/api/anomalies/{anomaly_id}/acknowledge", json={"by": "bob", "note": "refunded"})
    second = client.post(f"/api/anomalies/{anomaly_id}/acknowledge", json={"by": "eve", "note": "fine"})
    assert first.status_code == second.status_code == 200
    bob, eve = first.get_json()["acknowledged"], second.get_json()["acknowledged"]
    listed = client.get("/api/anomalies?schema=ev_charging&acknowledged=true").get_json()["anomalies"]
    assert listed[0]["acknowledged"] == eve  # as an alert shows its latest acknowledgement
    audit = [e for e in client.get("/api/audit").get_json()["audit"] if e["action"] == "acknowledge"]
    assert [(e["actor"], e["address"], e["alert_id"]) for e in audit] == [("eve", "127.0.0.1", None),
                                                                          ("bob", "127.0.0.1", None)]
    assert audit[1]["detail"] == {"event_id": anomaly_id, "note": "refunded"}
    assert audit[0]["detail"] == {"event_id": anomaly_id, "note": "fine", "replaces": bob}
    # One anomaly's acknowledgements, by its id; another anomaly's id finds none of them.
    mine = client.get(f"/api/audit?event_anomaly_id={anomaly_id}").get_json()["audit"]
    assert [e["actor"] for e in mine] == ["eve", "bob"]
    assert client.get(f"/api/audit?event_anomaly_id={anomaly_id + 1}").get_json()["audit"] == []
    assert client.get("/api/audit?event_anomaly_id=x").status_code == 400
    # Given empty (or empty first of several), a filter is refused, not dropped to list every entry.
    for query in ("event_anomaly_id=", f"event_anomaly_id=&event_anomaly_id={anomaly_id}", "alert_id=%20"):
        assert client.get(f"/api/audit?{query}").status_code == 400, query


def test_acknowledging_what_is_no_anomaly_is_404_and_bad_bodies_are_400(client):
    summary = _upload(client, _csv(ORDINARY)).get_json()
    assert summary["anomalies"] == 0
    assert client.post("/api/anomalies/1/acknowledge", json={"by": "x"}).status_code == 404
    assert client.post("/api/anomalies/999/acknowledge", json={"by": "x"}).status_code == 404
    assert client.post("/api/anomalies/1/acknowledge", json={"note": "no by"}).status_code == 400
    assert client.post("/api/flags", json={"schema": "ev_charging", "entity": "colour", "id": "x"}).status_code == 404


def test_summary_schemas_and_the_stored_push_event(app, client):
    _upload(client, _csv(FRAUD, ORDINARY))
    summary = client.get("/api/events/summary?schema=ev_charging").get_json()
    assert summary["events"] == 2 and summary["anomalies"] == 1 and summary["types"] == {"billing_fraud": 1}
    assert summary["top"]["user_id"][0]["id"] == "U1"
    schemas = client.get("/api/schemas").get_json()["schemas"]
    assert schemas[0]["name"] == "ev_charging" and "user_id" in schemas[0]["entities"]
    reader = services_of(app).reader()
    try:
        pushed = [e for e in replay_events(reader, 0, 100) if e.type == "events"]
    finally:
        reader.close()
    body = json.loads(pushed[-1].text())
    assert body["count"] == 2 and body["anomaly_count"] == 1 and body["anomalies"][0]["event_id"] == "s1"


def test_top_entities_are_ranked_by_their_highest_risk_then_their_anomalies(client):
    """The view draws each top entity's highest risk: ranked by it, so the list reads in order
    (three short sessions of one user no longer outrank another user's critical fraud)."""
    short = [f"d{k},U7,C7,2026-01-01T09:{10 * k:02d}:00Z,2,0.3,0.12" for k in range(3)]  # dos_attack
    _upload(client, _csv(FRAUD, *short, "s3,U8,C8,2026-01-01T10:00:00Z,2,0.3,0.12"))
    top = client.get("/api/events/summary?schema=ev_charging").get_json()["top"]["user_id"]
    assert [e["id"] for e in top][:2] == ["U1", "U7"], top
    assert top[0]["max_risk"] > top[1]["max_risk"] and top[1]["anomalies"] == 3
    risks = [(e["max_risk"], e["anomalies"]) for e in top]
    assert risks == sorted(risks, reverse=True)


def test_the_ev_feed_stores_sessions_and_drains_at_stop(app):
    svc = services_of(app)
    run_ev_feed(app)
    reader = EventReader(svc.reader().conn)
    try:
        summary = reader.summary("ev_charging", ("user_id", "charger_id"))
    finally:
        reader.close()
    assert summary["events"] > 0 and svc.sources.failures == 0


def test_retention_keeps_the_newest_scored_events_and_their_acknowledgements(app, client):
    from server.event_writes import EventPruneJob

    rows = [f"s{i},U{i},C{i},2026-01-01T08:{i:02d}:00Z,30,{55 if i % 2 else 10},0.5" for i in range(10)]
    summary = _upload(client, _csv(*rows)).get_json()
    for anomaly in summary["anomaly_list"]:
        client.post(f"/api/anomalies/{anomaly['id']}/acknowledge", json={"by": "ops"})
    writer = services_of(app).writer
    assert writer.write(EventPruneJob(keep=4, max_age_s=0), 10) == 6
    assert _stored(app) == 4
    reader = services_of(app).reader()
    try:
        orphans = reader.conn.execute("SELECT count(*) FROM acknowledgements a LEFT JOIN scored_events e "
                                      "ON e.id = a.event_row WHERE e.id IS NULL").fetchone()[0]
    finally:
        reader.close()
    assert orphans == 0
    assert writer.write(EventPruneJob(keep=100, max_age_s=1, now=1e12), 10) == 4


def test_event_anomalies_export_as_csv_and_json_lines_with_their_own_fields(client):
    import csv

    rows = [f"f{i},U{i},C{i % 3},2026-01-01T08:{i:02d}:00Z,60,{60 + i},0.5" for i in range(30)]
    assert _upload(client, _csv(*rows, ORDINARY)).status_code == 200
    listed = client.get("/api/anomalies?schema=ev_charging&limit=1000").get_json()["anomalies"]
    assert len(listed) == 30

    answer = client.get("/api/anomalies?schema=ev_charging&format=csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert answer.is_streamed
    assert 'filename="ev_charging-anomalies.csv"' in answer.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [r["event_id"] for r in table] == [a["event_id"] for a in listed]  # newest first, all of them
    header = list(table[0])
    assert header[:3] == ["id", "event_id", "timestamp_iso"]
    for field in ("session_id", "user_id", "charger_id", "start_time", "duration", "energy", "payment",
                  "payment_per_kwh", "hour_of_day"):
        assert field in header
    assert "label" not in header  # the truth label is the truth column
    first = table[0]
    assert first["session_id"] == "f29" and float(first["energy"]) == 89.0 and first["user_id"] == "U29"
    assert json.loads(first["types"]) == listed[0]["types"] and "billing_fraud" in listed[0]["types"]
    assert first["severity"] == listed[0]["severity"] == "critical"
    assert first["acknowledged_by"] == ""

    lines = client.get("/api/anomalies?schema=ev_charging&format=jsonl&limit=5")
    assert lines.status_code == 200 and lines.mimetype == "application/x-ndjson"
    objects = [json.loads(line) for line in lines.get_data(as_text=True).splitlines()]
    assert objects == listed[:5]  # exactly the JSON answer's objects

    # Filters apply to exports as to the JSON answer; bad values are 400s whatever the format.
    one = client.get("/api/anomalies?schema=ev_charging&format=csv&user_id=U3").get_data(as_text=True)
    assert [r["user_id"] for r in csv.DictReader(io.StringIO(one))] == ["U3"]
    assert client.get("/api/anomalies?schema=ev_charging&format=xml").status_code == 400
    assert client.get("/api/anomalies?schema=ev_charging&format=csv&limit=0").status_code == 400
    assert client.get("/api/anomalies?schema=nosuch&format=csv").status_code == 404


def test_summary_names_the_simulated_clock_of_a_running_feed(app, client):
    """The built-in feed's sessions start in simulated time (2026-01-01 on, 600 x the wall clock by
    default): the summary says so while it runs, so the view can tell dates that are not today's."""
    from server.sources.ev import EVSource
    from server.sources.replay import FakeClock

    assert client.get("/api/events/summary?schema=ev_charging").get_json()["clocks"] == []
    svc = services_of(app)
    source = EVSource(svc.ingest.schema("ev_charging"), seed=1, speed=3600.0, interval=1.0, clock=FakeClock())
    svc.sources.add(source)
    svc.sources.start()
    try:
        wait_for(lambda: svc.sources.batches >= 1, timeout=60)
        clocks = client.get("/api/events/summary?schema=ev_charging").get_json()["clocks"]
        assert len(clocks) == 1 and clocks[0]["source"] == "ev_charging" and clocks[0]["simulated"] is True
        assert clocks[0]["speed"] == 3600.0 and clocks[0]["now"] >= source.generator.start + 3600
    finally:
        svc.sources.stop()
    assert client.get("/api/events/summary?schema=ev_charging").get_json()["clocks"] == []
