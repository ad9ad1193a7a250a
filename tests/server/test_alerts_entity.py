"""Alerts about entities: points naming one, and anomalous EV charging sessions uploaded as a file,
one alert per (schema, entity, type) with the lifecycle, the outbox and the push events of points."""
from __future__ import annotations

import csv
import io
import json

import pytest

from alert_helpers import WebhookReceiver, receivers_file, store_point
from server.alerts import subjects as subjects_module
from server.alerts.service import EXTENSION as ALERTS, PUSHED_EVENT_ALERTS
from server.pipeline.schema import SchemaError, load_schema, schema_from_data
from server_helpers import services_of, stored_rows

HEADER = "session_id,user_id,charger_id,start_time,duration,energy,payment"
SESSIONS = [
    # billing fraud: 62 kWh for 0.50 (a condition rule; its subject is the user, as declared)
    "f1,U1,C1,2026-01-01T08:00:00Z,60,62,0.5",
    # a DoS burst: three sessions shorter than 5 min by U3 within the hour (a repeat rule per user)
    "d1,U3,C3,2026-01-01T09:00:00Z,2,0.5,0.2",
    "d2,U3,C3,2026-01-01T09:10:00Z,2,0.5,0.2",
    "d3,U3,C3,2026-01-01T09:20:00Z,2,0.5,0.2",
    # two users on charger C4 at once (an overlap rule per charger)
    "o1,U5,C4,2026-01-01T10:00:00Z,60,20,8",
    "o2,U6,C4,2026-01-01T10:30:00Z,60,20,8",
    # ordinary sessions
    "n1,U7,C7,2026-01-01T11:00:00Z,60,20,8",
    "n2,U8,C8,2026-01-01T12:00:00Z,45,15,6",
]
EXPECTED = {("user_id=U1", "billing_fraud"): (1, "critical"), ("user_id=U3", "dos_attack"): (3, "high"),
            ("charger_id=C4", "multi_user_conflict"): (1, "high")}


def _upload(client, *rows):
    body = ("\n".join([HEADER, *rows]) + "\n").encode()
    response = client.post("/api/upload?schema=ev_charging", data=body, content_type="text/csv")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _alerts(client, **query) -> dict:
    params = "&".join(f"{k}={v}" for k, v in {"stream": "ev_charging", "limit": 1000, **query}.items())
    alerts = client.get(f"/api/incidents?{params}").get_json()["alerts"]
    return {(a["entity"], a["type"]): a for a in alerts}


def _db(app, sql: str, params=()):
    return stored_rows(app, sql, params)


@pytest.fixture
def receiver():
    hook = WebhookReceiver()
    yield hook
    hook.close()


def test_a_points_entity_and_types_reach_the_alerts(app, client):
    store_point(app, "ev_sessions", entity="user-7", anomaly_types=["billing_fraud", "dos_attack"])
    store_point(app, "ev_sessions")  # no entity, no type: the stream's own "anomaly"
    alerts = client.get("/api/incidents?stream=ev_sessions").get_json()["alerts"]
    subjects = sorted((a["entity"] or "", a["type"]) for a in alerts)
    assert subjects == [("", "anomaly"), ("user-7", "billing_fraud"), ("user-7", "dos_attack")]
    assert all(a["labels"].get("entity") == "user-7" for a in alerts if a["entity"])


def test_uploaded_sessions_open_one_alert_per_entity_and_type_with_notifications(make_app, tmp_path,
                                                                                 receiver):
    app = make_app(ALERT_RECEIVERS=receivers_file(tmp_path, [
        {"name": "am", "kind": "webhook", "url": receiver.url}]), OUTBOX_POLL_INTERVAL=0.05,
        EXTERNAL_URL="http://anomaly.example:5001")
    client = app.test_client()
    summary = _upload(client, *SESSIONS)
    assert summary["types"]["dos_attack"] == 3 and summary["types"]["billing_fraud"] == 1
    alerts = _alerts(client)
    for key, (points, severity) in EXPECTED.items():
        alert = alerts[key]
        assert (alert["points"], alert["severity"], alert["state"]) == (points, severity, "firing")
        assert alert["labels"]["entity"] == key[0] and alert["labels"]["stream"] == "ev_charging"
        # first and last point ids are the stored events' ids; the link lists those events
        events = client.get(alert["anomalies"]).get_json()["anomalies"]
        assert len(events) == points and all(key[1] in e["types"] for e in events)
        assert {e["id"] for e in events} <= set(range(alert["first_point_id"], alert["last_point_id"] + 1))
    assert alerts[("user_id=U3", "dos_attack")]["summary"].startswith("d")
    assert "U3" in alerts[("user_id=U3", "dos_attack")]["summary"]
    # every alert that fired has its notification row, written in the events' transaction
    outbox = _db(app, "SELECT alert_id, status FROM outbox WHERE receiver = 'am'")
    firing = {a["id"] for a in alerts.values() if a["state"] == "firing"}
    assert {row[0] for row in outbox if row[1] == "firing"} == firing
    delivered = {a["labels"]["entity"]: a for a in _received(receiver, len(firing))}
    fraud = delivered["user_id=U1"]
    assert fraud["labels"]["type"] == "billing_fraud" and fraud["status"] == "firing"
    assert fraud["annotations"]["anomalies"] == ("http://anomaly.example:5001/api/anomalies?"
                                                 "schema=ev_charging&user_id=U1&type=billing_fraud")
    # the push events: each alert once, announced as it stands after the batch (firing)
    rows = _db(app, "SELECT alert_id, transition FROM events WHERE type = 'alert'")
    assert sorted(rows) == sorted((a, "firing") for a in firing)


def _received(receiver, count: int) -> list[dict]:
    from server_helpers import wait_for

    wait_for(lambda: len(receiver.alerts()) >= count)
    return receiver.alerts()


def test_more_anomalies_of_a_subject_extend_its_alert_and_quiet_resolves_it(make_app):
    app = make_app(ALERT_KEEP_FIRING_FOR=3600)
    client = app.test_client()
    _upload(client, *SESSIONS)
    first = _alerts(client)[("user_id=U3", "dos_attack")]
    _upload(client, "d4,U3,C9,2026-01-01T09:30:00Z,1,0.3,0.1")  # a fourth short session within the hour
    again = _alerts(client)
    assert len([k for k in again if k == ("user_id=U3", "dos_attack")]) == 1
    extended = again[("user_id=U3", "dos_attack")]
    assert extended["id"] == first["id"] and extended["points"] == 4 and extended["state"] == "firing"
    alerts = app.extensions[ALERTS]
    alerts.sweep()
    assert _alerts(client)[("user_id=U3", "dos_attack")]["state"] == "firing"  # not quiet for an hour yet
    alerts.book.policy.keep_firing_for_s = 0.0
    alerts.sweep()
    ended = _alerts(client)
    assert {a["state"] for a in ended.values()} == {"resolved"}
    assert {a["resolution"] for a in ended.values()} == {"quiet"}


def test_exports_carry_how_each_alert_resolved(make_app):
    app = make_app(ALERT_KEEP_FIRING_FOR=0)
    client = app.test_client()
    _upload(client, *SESSIONS)
    fraud = _alerts(client)[("user_id=U1", "billing_fraud")]
    assert client.post(f"/api/incidents/{fraud['id']}/resolve", json={"by": "carol"}).status_code == 200
    assert client.post("/api/submit", json={"source": "doomed", "value": 1.0}).status_code == 200
    store_point(app, "doomed")
    assert client.delete("/api/streams/doomed").status_code == 200
    store_point(app, "cpu_usage")
    store_point(app, "cpu_usage", anomalous=False)  # normal at once: quiet
    app.extensions[ALERTS].sweep()  # keep_firing_for 0: the rest are quiet at once
    text = client.get("/api/incidents?format=csv&limit=1000").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    by_subject = {(r["stream"], r["entity"], r["type"]): r for r in rows}
    assert by_subject[("ev_charging", "user_id=U1", "billing_fraud")]["resolution"] == "by hand"
    assert by_subject[("ev_charging", "user_id=U1", "billing_fraud")]["resolved_by"] == "carol"
    assert by_subject[("ev_charging", "user_id=U3", "dos_attack")]["resolution"] == "quiet"
    assert by_subject[("doomed", "", "anomaly")]["resolution"] == "stream deleted"
    assert by_subject[("cpu_usage", "", "anomaly")]["resolution"] == "quiet"
    lines = client.get("/api/incidents?format=jsonl&limit=1000").get_data(as_text=True).splitlines()
    exported = [json.loads(line) for line in lines]
    assert all(a["resolution"] in ("by hand", "quiet", "stream deleted") for a in exported)
    assert len(exported) == len(rows) > 3


def test_a_failing_alert_step_never_costs_the_events(app, client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("alert code broke")

    monkeypatch.setattr(subjects_module, "group_anomalies", broken)
    summary = _upload(client, *SESSIONS)
    assert summary["events"] == len(SESSIONS)
    assert _db(app, "SELECT count(*) FROM scored_events")[0][0] == len(SESSIONS)
    assert _alerts(client) == {}
    monkeypatch.undo()
    _upload(client, "d5,U3,C3,2026-01-01T09:40:00Z,2,0.5,0.2")  # the book reloads and carries on
    assert ("user_id=U3", "dos_attack") in _alerts(client)


def test_a_large_batch_groups_per_subject_and_pushes_the_worst_few(app, client):
    # 3,000 fraudulent sessions by 1,000 users in one file: one alert per user, 3 points each
    rows = [f"x{i},F{i % 1000},C{i % 50},2026-01-02T{(i // 1000):02d}:{(i % 60):02d}:00Z,60,62,0.5"
            for i in range(3000)]
    summary = _upload(client, *rows)
    assert summary["types"]["billing_fraud"] == 3000
    counts = _db(app, "SELECT count(*), min(points), max(points) FROM alerts "
                      "WHERE stream = 'ev_charging' AND type = 'billing_fraud'")[0]
    assert tuple(counts) == (1000, 3, 3)
    pushed = _db(app, "SELECT count(*) FROM events WHERE type = 'alert'")[0][0]
    assert pushed == PUSHED_EVENT_ALERTS


def test_acknowledging_an_alert_leaves_its_events_to_their_own_acknowledgement(client):
    _upload(client, *SESSIONS)
    alert = _alerts(client)[("user_id=U3", "dos_attack")]
    assert client.post(f"/api/incidents/{alert['id']}/acknowledge", json={"by": "dave"}).status_code == 200
    events = client.get(alert["anomalies"]).get_json()["anomalies"]
    assert all(e["acknowledged"] is None for e in events)  # reviewing a session is its own act
    first = events[0]["id"]
    assert client.post(f"/api/anomalies/{first}/acknowledge",
                       json={"by": "dave", "note": "seen"}).status_code == 200
    assert _alerts(client)[("user_id=U3", "dos_attack")]["acknowledged_by"] == "dave"
    # feedback teaches learned streams only: an entity's alert is refused plainly
    assert client.post(f"/api/incidents/{alert['id']}/feedback",
                       json={"verdict": "not_anomaly"}).status_code == 409


def _schema_data(**alerts) -> dict:
    data = {"name": "t", "id": "sid", "timestamp": "at", "entities": ["user", "site"],
            "fields": {"sid": {"type": "string"}, "user": {"type": "string"}, "site": {"type": "string"},
                       "at": {"type": "datetime"}, "kwh": {"type": "number"}},
            "baseline": {"features": [{"entity": "site", "feature": "kwh", "high": "surge"}]},
            "rules": [{"type": "free", "kind": "condition", "severity": "high", "when": [["kwh", "<", 0]]},
                      {"type": "spam", "kind": "repeat", "entity": "user", "count": 3, "severity": "low",
                       "when": [["kwh", "<", 1]]}]}
    if alerts:
        data["alerts"] = alerts
    return data


def test_the_schema_decides_which_entity_each_type_concerns():
    schema = load_schema("ev_charging")
    assert schema.alert_subjects["dos_attack"] == "user_id"
    assert schema.alert_subjects["multi_user_conflict"] == "charger_id"
    assert schema.alert_subjects["billing_fraud"] == "user_id"  # declared: the rule names no entity
    assert schema.alert_subjects["unusual_power_kw"] == "charger_id"  # its baseline's entity
    declared = schema_from_data(_schema_data(subjects={"free": "user"}))
    assert declared.alert_subjects == {"free": "user", "spam": "user", "surge": "site",
                                       "unusual_kwh": "site"}
    one_side = _schema_data(subjects={"free": "user"})
    one_side["baseline"]["features"][0]["sides"] = "high"  # a low kwh is no anomaly: no unusual_kwh
    assert schema_from_data(one_side).alert_subjects == {"free": "user", "spam": "user", "surge": "site"}
    with pytest.raises(SchemaError, match="alerts.subjects: 'free' is found by a condition rule"):
        schema_from_data(_schema_data())
    with pytest.raises(SchemaError, match="'fraud' is not an anomaly type"):
        schema_from_data(_schema_data(subjects={"free": "user", "fraud": "user"}))
    with pytest.raises(SchemaError, match="must be one of the entities"):
        schema_from_data(_schema_data(subjects={"free": "charger"}))
    with pytest.raises(SchemaError, match="unknown key"):
        schema_from_data(_schema_data(subjects={"free": "user"}, keep="1h"))


def test_alerts_of_an_import_undone_after_a_failed_write_end_with_it(app, client, monkeypatch):
    from server_helpers import fail_third_event_write, wait_for

    _upload(client, "e1,U9,C9,2026-01-01T07:00:00Z,60,62,0.5")  # an earlier import: U9's alert stays
    calls = fail_third_event_write(monkeypatch)
    rows = ["f1,U1,C1,2026-01-01T08:00:00Z,60,62,0.5", "f2,U9,C2,2026-01-01T08:10:00Z,60,62,0.5",
            *(f"n{i},N{i},D{i},2026-01-01T09:{i:02d}:00Z,60,20,8" for i in range(6))]
    body = ("\n".join([HEADER, *rows]) + "\n").encode()
    response = client.post("/api/upload?schema=ev_charging", data=body, content_type="text/csv")
    assert response.status_code >= 500 and len(calls) >= 3
    wait_for(lambda: _db(app, "SELECT count(*) FROM scored_events")[0][0] == 1)
    alerts = _alerts(client)
    undone = alerts[("user_id=U1", "billing_fraud")]  # opened by the undone import
    assert undone["state"] == "resolved" and undone["resolution"] == "import undone"
    kept = alerts[("user_id=U9", "billing_fraud")]  # opened earlier, only extended by it
    assert kept["state"] == "firing" and kept["points"] == 2
    audit = client.get(f"/api/audit?alert_id={undone['id']}").get_json()["audit"]
    assert audit[0]["detail"]["reason"] == "import undone"


def test_a_silence_on_an_entity_keeps_its_alerts_from_the_receivers(make_app, tmp_path, receiver):
    app = make_app(ALERT_RECEIVERS=receivers_file(tmp_path, [
        {"name": "am", "kind": "webhook", "url": receiver.url}]), OUTBOX_POLL_INTERVAL=0.05)
    client = app.test_client()
    silence = client.post("/api/silences", json={"matchers": {"entity": "user_id=U3", "type": "dos_attack"},
                                                  "duration": 600})
    assert silence.status_code == 201
    _upload(client, *SESSIONS)
    alerts = _alerts(client)
    dos = alerts[("user_id=U3", "dos_attack")]
    assert dos["state"] == "firing" and dos["silenced_by"] == [silence.get_json()["silence"]["id"]]
    notified = {row[0] for row in _db(app, "SELECT alert_id FROM outbox")}
    assert dos["id"] not in notified and alerts[("user_id=U1", "billing_fraud")]["id"] in notified


def test_open_entity_alerts_survive_a_restart_and_then_go_quiet(make_app):
    first = make_app(ALERT_KEEP_FIRING_FOR=3600)
    _upload(first.test_client(), *SESSIONS)
    opened = _alerts(first.test_client())
    services_of(first).shutdown()
    again = make_app(ALERT_KEEP_FIRING_FOR=3600)
    client = again.test_client()
    _upload(client, "f9,U1,C5,2026-01-02T08:00:00Z,60,62,0.5")  # the same incident, after the restart
    fraud = _alerts(client)[("user_id=U1", "billing_fraud")]
    assert fraud["id"] == opened[("user_id=U1", "billing_fraud")]["id"] and fraud["points"] == 2
    again.extensions[ALERTS].book.policy.keep_firing_for_s = 0.0
    again.extensions[ALERTS].sweep()
    assert {a["resolution"] for a in _alerts(client).values()} == {"quiet"}


def test_for_holds_an_entity_alert_pending_and_drops_it_when_it_goes_quiet_first(make_app, tmp_path,
                                                                                 receiver):
    app = make_app(ALERT_FOR=600, ALERT_KEEP_FIRING_FOR=3600, OUTBOX_POLL_INTERVAL=0.05,
                   ALERT_RECEIVERS=receivers_file(tmp_path, [{"name": "am", "kind": "webhook",
                                                              "url": receiver.url}]))
    client = app.test_client()
    _upload(client, *SESSIONS)
    assert {a["state"] for a in _alerts(client).values()} == {"pending"}
    alerts = app.extensions[ALERTS]
    alerts.sweep()
    assert {a["state"] for a in _alerts(client).values()} == {"pending"}  # anomalous within the hour
    alerts.book.policy.keep_firing_for_s = 0.0  # now quiet, before `for` has passed
    alerts.sweep()
    ended = _alerts(client).values()
    assert {(a["state"], a["resolution"], a["fired_at"]) for a in ended} == {("resolved", "dropped", None)}
    assert _db(app, "SELECT count(*) FROM outbox")[0][0] == 0  # never notified


def test_an_entity_alert_still_anomalous_when_for_has_passed_fires(make_app):
    app = make_app(ALERT_FOR=600, ALERT_KEEP_FIRING_FOR=3600)
    client = app.test_client()
    _upload(client, *SESSIONS)
    alerts = app.extensions[ALERTS]
    alerts.book.policy.for_s = 0.0  # as if ten minutes had passed, its last anomaly within the hour
    alerts.sweep()
    assert {a["state"] for a in _alerts(client).values()} == {"firing"}


def test_the_alert_of_the_longest_entity_id_can_be_filtered_and_silenced(client):
    from server.alerts.subjects import MAX_ENTITY_LABEL_LENGTH
    from server.pipeline.event import MAX_ENTITY_ID_LENGTH

    user = "U" * MAX_ENTITY_ID_LENGTH
    _upload(client, SESSIONS[0].replace("U1", user))
    entity = f"user_id={user}"
    assert list(_alerts(client, entity=entity)) == [(entity, "billing_fraud")]
    silence = {"matchers": {"entity": entity}, "duration": 60}
    assert client.post("/api/silences", json=silence).status_code == 201
    answer = client.post("/api/silences", json={**silence, "matchers": {"entity": "U" * (MAX_ENTITY_LABEL_LENGTH + 1)}})
    assert answer.status_code == 400 and "matchers.entity" in answer.get_json()["error"]
