"""Acknowledge, resolve by hand, silences and the audit log, through the API on a real database."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from alert_helpers import WebhookReceiver, receivers_file, store_point
from server.alerts.silences import MAX_SILENCE_S
from server_helpers import services_of, wait_for


def open_alert(client, stream):
    alerts = client.get(f"/api/incidents?stream={stream}&state=pending,firing").get_json()["alerts"]
    assert len(alerts) == 1, alerts
    return alerts[0]


def test_acknowledge_records_who_when_and_note_and_is_audited(app, client):
    store_point(app, "cpu_usage")
    alert = open_alert(client, "cpu_usage")
    answer = client.post(f"/api/incidents/{alert['id']}/acknowledge",
                         json={"by": "alice", "note": "looking at it"})
    assert answer.status_code == 200
    acked = answer.get_json()["alert"]
    assert acked["acknowledged_by"] == "alice" and acked["ack_note"] == "looking at it"
    assert acked["acknowledged_at"] > 0 and acked["state"] == "firing"
    detail = client.get(f"/api/incidents/{alert['id']}").get_json()
    assert detail["alert"]["acknowledged_by"] == "alice"
    [entry] = detail["audit"]
    assert entry["action"] == "acknowledge" and entry["actor"] == "alice"
    assert entry["detail"] == {"note": "looking at it"} and entry["address"] == "127.0.0.1"
    # Without "by", the actor is the client's address.
    client.post(f"/api/incidents/{alert['id']}/acknowledge")
    assert client.get("/api/audit").get_json()["audit"][0]["actor"] == "127.0.0.1"
    assert client.get("/api/incidents?acknowledged=true").get_json()["alerts"][0]["id"] == alert["id"]
    assert client.get("/api/incidents?acknowledged=false").get_json()["alerts"] == []


def test_resolve_by_hand_then_a_new_incident_opens_a_new_alert(app, client):
    store_point(app, "cpu_usage")
    alert = open_alert(client, "cpu_usage")
    resolved = client.post(f"/api/incidents/{alert['id']}/resolve", json={"by": "bob"}).get_json()["alert"]
    assert resolved["state"] == "resolved" and resolved["resolved_by"] == "bob"
    again = client.post(f"/api/incidents/{alert['id']}/resolve", json={"by": "bob"})
    assert again.status_code == 409 and "already resolved" in again.get_json()["error"]
    assert client.post(f"/api/incidents/{alert['id']}/acknowledge").status_code == 409
    store_point(app, "cpu_usage")
    assert open_alert(client, "cpu_usage")["id"] != alert["id"]
    assert [e["action"] for e in client.get(f"/api/audit?alert_id={alert['id']}").get_json()["audit"]] == ["resolve"]


def test_unknown_alerts_and_bad_bodies_are_clear_errors(app, client):
    assert client.get("/api/incidents/999").status_code == 404
    assert client.post("/api/incidents/999/acknowledge", json={}).status_code == 404
    assert client.post("/api/incidents/99999999999999999999/resolve", json={}).status_code == 404
    store_point(app, "cpu_usage")
    alert = open_alert(client, "cpu_usage")
    bad = client.post(f"/api/incidents/{alert['id']}/acknowledge", json={"who": "x"})
    assert bad.status_code == 400 and "unknown key" in bad.get_json()["error"]
    assert client.post(f"/api/incidents/{alert['id']}/acknowledge", json={"note": 5}).status_code == 400
    assert client.get("/api/incidents?state=burning").status_code == 400
    assert client.get("/api/incidents?severity=huge").status_code == 400


def test_silences_suppress_notifications_until_they_expire(make_app, tmp_path):
    receiver = WebhookReceiver()
    try:
        app = make_app(ALERT_RECEIVERS=receivers_file(tmp_path, [
            {"name": "hook", "kind": "webhook", "url": receiver.url}]), OUTBOX_POLL_INTERVAL=0.05)
        client = app.test_client()
        created = client.post("/api/silences", json={"matchers": {"stream": "cpu_usage", "severity": ">=high"},
                                                     "duration": 3600, "by": "carol", "comment": "maintenance"})
        assert created.status_code == 201
        silence = created.get_json()["silence"]
        assert silence["state"] == "active" and silence["created_by"] == "carol"
        store_point(app, "cpu_usage", severity="critical")   # silenced
        store_point(app, "memory", severity="critical")      # another stream: not silenced
        store_point(app, "disk", severity="low")
        wait_for(lambda: len(receiver.alerts()) >= 2)  # in one message or two
        time.sleep(0.3)
        assert sorted(a["labels"]["stream"] for a in receiver.alerts()) == ["disk", "memory"]
        silenced = open_alert(client, "cpu_usage")
        assert silenced["silenced_by"] == [silence["id"]] and silenced["notified_at"] is None
        # Expiring the silence: the next evaluation notifies the alert that is still firing.
        expired = client.delete(f"/api/silences/{silence['id']}")
        assert expired.status_code == 200 and expired.get_json()["silence"]["state"] == "expired"
        assert client.delete(f"/api/silences/{silence['id']}").status_code == 409
        services_of(app).alerts.sweep()
        wait_for(lambda: len(receiver.alerts()) >= 3)
        assert sorted(a["labels"]["stream"] for a in receiver.alerts()) == ["cpu_usage", "disk", "memory"]
        actions = [e["action"] for e in client.get("/api/audit").get_json()["audit"]]
        assert actions == ["expire_silence", "silence"]
        assert [s["state"] for s in client.get("/api/silences").get_json()["silences"]] == ["expired"]
    finally:
        receiver.close()


def test_silence_requests_are_checked(client):
    cases = [({}, 400), ({"matchers": {}, "duration": 60}, 400),
             ({"matchers": {"colour": "red"}, "duration": 60}, 400),
             ({"matchers": {"severity": "awful"}, "duration": 60}, 400),
             ({"matchers": {"stream": "a"}}, 400),
             ({"matchers": {"stream": "a"}, "duration": 60, "ends_at": 10}, 400),
             ({"matchers": {"stream": "a"}, "duration": -1}, 400),
             ({"matchers": {"stream": "a"}, "ends_at": "2001-01-01T00:00:00Z"}, 409),
             ({"matchers": {"stream": "a"}, "ends_at": time.time() + 30 * 86400}, 201),
             ({"matchers": {"stream": ["a", "b"], "type": "anomaly"}, "duration": 5}, 201)]
    for body, status in cases:
        answer = client.post("/api/silences", json=body)
        assert answer.status_code == status, (body, answer.get_json())
    assert client.delete("/api/silences/12345").status_code == 404


@pytest.mark.parametrize("ends_at", [
    "9999-12-31T23:59:59Z",  # beyond the epoch form's range too
    "2999-01-01T00:00:00Z",
    datetime.fromtimestamp(time.time() + MAX_SILENCE_S + 3600, timezone.utc).isoformat(),
    time.time() + MAX_SILENCE_S + 3600,
])
def test_a_silence_lasts_at_most_a_duration_s_limit_whatever_form_its_end_takes(client, ends_at):
    answer = client.post("/api/silences", json={"matchers": {"stream": "a"}, "ends_at": ends_at})
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert f"a silence lasts at most {MAX_SILENCE_S:.0f} seconds" in error, error
    assert client.get("/api/silences").get_json()["silences"] == []


def test_a_silence_starting_later_may_end_a_year_after_its_start(client):
    starts = time.time() + 86400
    body = {"matchers": {"stream": "a"}, "starts_at": starts, "ends_at": starts + MAX_SILENCE_S}
    assert client.post("/api/silences", json=body).status_code == 201
    body["ends_at"] += 60
    answer = client.post("/api/silences", json=body)
    assert answer.status_code == 400
    assert "after starts_at" in answer.get_json()["error"]
    for key, value in (("starts_at", "5200-01-01T00:00:00Z"), ("starts_at", 1e12), ("ends_at", -1)):
        answer = client.post("/api/silences", json={**body, key: value})
        assert answer.status_code == 400 and f"{key} must be epoch seconds (0 to 1e+11)" in answer.get_json()["error"]


def test_an_acknowledged_alert_is_not_notified_again(make_app, tmp_path):
    receiver = WebhookReceiver()
    try:
        app = make_app(ALERT_RECEIVERS=receivers_file(tmp_path, [
            {"name": "hook", "kind": "webhook", "url": receiver.url}]),
            ALERT_REPEAT_INTERVAL=0.2, ALERT_KEEP_FIRING_FOR=3600, OUTBOX_POLL_INTERVAL=0.05)
        client = app.test_client()
        store_point(app, "a")
        store_point(app, "b")
        receiver.wait_for(1)
        time.sleep(0.25)
        services_of(app).alerts.sweep()  # both are due again: repeated
        wait_for(lambda: len(receiver.alerts()) >= 4)
        alert_a = open_alert(client, "a")
        client.post(f"/api/incidents/{alert_a['id']}/acknowledge", json={"by": "dan"})
        before = len(receiver.alerts())
        time.sleep(0.25)
        services_of(app).alerts.sweep()  # only b is repeated
        wait_for(lambda: len(receiver.alerts()) >= before + 1)
        time.sleep(0.3)
        later = receiver.alerts()[before:]
        assert [a["labels"]["stream"] for a in later] == ["b"]
    finally:
        receiver.close()
