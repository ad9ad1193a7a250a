"""'Not an anomaly' through the API on a real database: the verdict teaches the stream (the same
bump no longer alerts there, another stream still alerts), resolves the alert, is audited and
listed, survives a restart whose snapshot predates it, and bad requests get clear 4xx answers."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from alert_helpers import store_point
from server_helpers import services_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detectors"))
from feedback_series import bumped_series  # noqa: E402  (the engine tests' series)

FIRST = 900
#: More than the engine's 4,000-point value window after the first bump: an untaught stream has
#: forgotten it by then, so only the verdict can keep the repeat from alerting.
REPEAT = FIRST + 4400
LENGTH = REPEAT + 60
TAUGHT, UNTAUGHT = "fb_taught", "fb_untaught"


SERIES = {TAUGHT: bumped_series(1, 0.0, LENGTH, (FIRST, REPEAT)),
          UNTAUGHT: bumped_series(2, 1.0, LENGTH, (FIRST, REPEAT))}


def submit(client, start: int, stop: int) -> dict[str, list[int]]:
    """Submit points [start, stop) of both streams in batches; return the indices that alerted."""
    alerted: dict[str, list[int]] = {name: [] for name in SERIES}
    for first in range(start, stop, 500):
        last = min(stop, first + 500)
        points = [{"source": name, "value": float(x[i]), "timestamp": 1.7e9 + i}
                  for i in range(first, last) for name, x in SERIES.items()]
        answer = client.post("/api/submit", json={"points": points})
        assert answer.status_code == 200, answer.get_json()
        for point in answer.get_json()["results"]:
            if point["alert"]:
                alerted[point["source"]].append(int(point["timestamp"] - 1.7e9))
    return alerted


def incidents(client, stream: str) -> list[dict]:
    return client.get(f"/api/incidents?stream={stream}").get_json()["alerts"]


def test_feedback_on_an_alert_teaches_its_stream_and_survives_a_restart(make_app, tmp_path):
    app = make_app()  # alerts keep firing for a minute: the verdict finds the bump's alert open
    client = app.test_client()
    first = submit(client, 0, FIRST + 40)
    assert any(FIRST <= i < FIRST + 25 for i in first[TAUGHT]), first
    alert = max(incidents(client, TAUGHT), key=lambda a: a["id"])  # the bump's: no alert since
    # The snapshot a kill -9 would leave behind: taken before the verdict.
    snapshots = services_of(app).snapshots
    snapshots.save()
    older = tmp_path / "older.snapshot.npz"
    shutil.copy(snapshots.path, older)

    answer = client.post(f"/api/incidents/{alert['id']}/feedback",
                         json={"verdict": "not_anomaly", "note": "a planned load test", "by": "alice"})
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["alert"]["id"] == alert["id"]
    assert body["alert"]["state"] == "resolved" and body["alert"]["resolution"] == "not an anomaly"
    assert body["alert"]["resolved_by"] == "alice"
    feedback = body["feedback"]
    assert feedback["stream"] == TAUGHT and feedback["by"] == "alice" and feedback["note"] == "a planned load test"
    assert feedback["alert_id"] == alert["id"] and len(feedback["taught"]) >= 1
    detail = client.get(f"/api/incidents/{alert['id']}").get_json()
    assert detail["alert"]["resolution"] == "not an anomaly"
    [entry] = [e for e in detail["audit"] if e["action"] == "feedback"]
    assert entry["actor"] == "alice" and entry["detail"]["resolved"] is True
    assert entry["detail"]["feedback_id"] == feedback["id"]
    listed = client.get(f"/api/feedback?stream={TAUGHT}").get_json()["feedback"]
    assert [f["id"] for f in listed] == [feedback["id"]]

    # A restart from the older snapshot (the verdict came after it): it must be taught again.
    services_of(app).shutdown()
    shutil.copy(older, snapshots.path)
    # keep_firing_for 0: an incident ends with its bump, so a repeat would open a new one.
    app = make_app(ALERT_KEEP_FIRING_FOR=0.0)
    client = app.test_client()
    engine = services_of(app).monitor.engine
    stream = engine._streams[TAUGHT]
    records = engine._banks[stream["bank"]].detector.value_records_
    assert records.accepted_until_[stream["row"]] > records.seen_[stream["row"]]

    later = submit(client, FIRST + 40, LENGTH)
    assert any(REPEAT <= i < REPEAT + 25 for i in later[UNTAUGHT]), later
    assert not any(REPEAT <= i < REPEAT + 25 for i in later[TAUGHT]), later
    assert all(a["started_at"] < feedback["at"] for a in incidents(client, TAUGHT))
    assert any(a["started_at"] > feedback["at"] for a in incidents(client, UNTAUGHT))


def test_feedback_on_an_anomalous_point_resolves_its_incident(app, client):
    assert client.post("/api/submit", json={"source": "fb_point", "value": 1.0}).status_code == 200
    point = store_point(app, "fb_point", values={"value": 7.0})
    [anomaly] = client.get("/api/anomalies?source=fb_point").get_json()["anomalies"]
    answer = client.post(f"/api/anomalies/{anomaly['anomaly_id']}/feedback", json={"verdict": "not_anomaly"})
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["feedback"]["point_id"] == point["id"] and body["feedback"]["taught"] == [{"value": 7.0}]
    assert body["feedback"]["by"] == "127.0.0.1"
    assert body["alert"]["state"] == "resolved" and body["alert"]["resolution"] == "not an anomaly"
    # Feedback on a resolved incident still teaches, and leaves the alert as it was.
    alert_id = body["alert"]["id"]
    again = client.post(f"/api/incidents/{alert_id}/feedback", json={"verdict": "not_anomaly"})
    assert again.status_code == 201 and again.get_json()["alert"]["resolved_at"] == body["alert"]["resolved_at"]


def _count_teaching(app, monkeypatch) -> list:
    engine = services_of(app).monitor.engine
    taught, accept = [], engine.accept_normal
    monkeypatch.setattr(engine, "accept_normal", lambda *a: taught.append(a) or accept(*a))
    return taught


@pytest.mark.parametrize("target", ["anomaly", "incident"])
def test_the_same_verdict_again_stores_and_teaches_nothing_new(app, client, monkeypatch, target):
    assert client.post("/api/submit", json={"source": "fb_twice", "value": 1.0}).status_code == 200
    store_point(app, "fb_twice", values={"value": 7.0})
    taught = _count_teaching(app, monkeypatch)
    if target == "anomaly":
        [anomaly] = client.get("/api/anomalies?source=fb_twice").get_json()["anomalies"]
        path = f"/api/anomalies/{anomaly['anomaly_id']}/feedback"
    else:
        path = f"/api/incidents/{incidents(client, 'fb_twice')[0]['id']}/feedback"
    first = client.post(path, json={"verdict": "not_anomaly", "by": "alice", "note": "load test"})
    again = client.post(path, json={"verdict": "not_anomaly", "by": "bob"})
    assert first.status_code == 201 and again.status_code == 200, again.get_json()
    assert again.get_json() == first.get_json()  # the verdict stored first, its alert as it stands
    assert len(taught) == 1
    assert [f["id"] for f in client.get("/api/feedback").get_json()["feedback"]] == [first.get_json()["feedback"]["id"]]
    assert [e["actor"] for e in client.get("/api/audit").get_json()["audit"] if e["action"] == "feedback"] == ["alice"]


@pytest.mark.parametrize("body, message", [
    ({}, "verdict is missing"),
    ({"verdict": "anomaly"}, "verdict must be 'not_anomaly'"),
    ({"verdict": "not_anomaly", "why": "x"}, "unknown key"),
    ({"verdict": "not_anomaly", "note": 5}, "note must be a string"),
    ([], "JSON object"),
])
def test_bad_bodies_are_400_with_what_is_wrong(app, client, body, message):
    store_point(app, "cpu_usage")
    [anomaly] = client.get("/api/anomalies?source=cpu_usage").get_json()["anomalies"]
    answer = client.post(f"/api/anomalies/{anomaly['anomaly_id']}/feedback", json=body)
    assert answer.status_code == 400 and message in answer.get_json()["error"]


def test_unknown_ids_wrong_streams_and_other_types_are_clear_errors(app, client):
    verdict = {"verdict": "not_anomaly"}
    assert client.post("/api/anomalies/999/feedback", json=verdict).status_code == 404
    assert client.post("/api/incidents/999/feedback", json=verdict).status_code == 404
    assert client.post("/api/incidents/99999999999999999999/feedback", json=verdict).status_code == 404
    answer = client.post("/api/anomalies/1/feedback", data="verdict=not_anomaly",
                         content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 415
    store_point(app, "not_a_stream")  # an anomaly of a stream the engine does not score
    anomaly = client.get("/api/alerts").get_json()["alerts"][0]
    answer = client.post(f"/api/anomalies/{anomaly['anomaly_id']}/feedback", json=verdict)
    assert answer.status_code == 409 and "not scored by the learned detectors" in answer.get_json()["error"]
    store_point(app, "cpu_usage", values={"nope": 1.0})  # values that do not fit the stream's fields
    alert = incidents(client, "cpu_usage")[0]
    answer = client.post(f"/api/incidents/{alert['id']}/feedback", json=verdict)
    assert answer.status_code == 409 and "cannot be taught" in answer.get_json()["error"]


def test_feedback_needs_the_token_like_every_mutating_route(make_app):
    app = make_app(API_TOKEN="s3cret-token-for-feedback")
    client = app.test_client()
    store_point(app, "cpu_usage")
    alert_id = services_of(app).alerts.book.open_alerts()[0].id
    answer = client.post(f"/api/incidents/{alert_id}/feedback", json={"verdict": "not_anomaly"})
    assert answer.status_code == 401
    assert client.get("/api/feedback").get_json()["feedback"] == []


def test_answers_fit_the_openapi_description(app, client):
    import jsonschema

    document = client.get("/api/openapi.json").get_json()

    def check(path: str, method: str, status: int, body) -> None:
        schema = document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
        jsonschema.validate(body, {**schema, "components": document["components"]},
                            cls=jsonschema.Draft202012Validator)

    assert client.post("/api/submit", json={"source": "fb_doc", "value": 1.0}).status_code == 200
    store_point(app, "fb_doc", values={"value": 3.0})
    alert = incidents(client, "fb_doc")[0]
    answer = client.post(f"/api/incidents/{alert['id']}/feedback", json={"verdict": "not_anomaly", "note": "ok"})
    check("/api/incidents/{alert_id}/feedback", "post", 201, answer.get_json())
    again = client.post(f"/api/incidents/{alert['id']}/feedback", json={"verdict": "not_anomaly"})
    check("/api/incidents/{alert_id}/feedback", "post", 200, again.get_json())
    check("/api/feedback", "get", 200, client.get("/api/feedback").get_json())
    check("/api/incidents/{alert_id}", "get", 200, client.get(f"/api/incidents/{alert['id']}").get_json())
