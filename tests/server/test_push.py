"""SSE through the Flask test client: framing, filters, heartbeats and Last-Event-ID replay.

(The WebSocket and real sockets are covered by test_integration.py against gunicorn.)
"""
from __future__ import annotations

import json

import jsonschema
import pytest

from server.openapi import spec
from server.push import replay_events
from server_helpers import run_ticks, services_of


def parse_frame(chunk: bytes) -> dict:
    fields = {}
    for line in chunk.decode().strip("\n").split("\n"):
        name, _, value = line.partition(": ")
        fields[name] = value
    return fields


class SseReader:
    """Reads the frames of a streamed test-client response one at a time."""

    def __init__(self, response):
        self.response = response
        self.chunks = iter(response.response)

    def frame(self) -> dict:
        return parse_frame(next(self.chunks))

    def event(self) -> dict:
        frame = self.frame()
        assert "data" in frame, f"expected an event, got {frame}"
        data = json.loads(frame["data"])
        assert frame["id"] == str(data["id"]) and frame["event"] == data["type"]
        return data

    def close(self):
        self.response.close()


@pytest.fixture
def open_stream(client):
    readers = []

    def open_(query: str = "", headers=None) -> SseReader:
        response = client.get(f"/api/stream/anomalies{query}", headers=headers or {}, buffered=False)
        assert response.status_code == 200 and response.mimetype == "text/event-stream"
        reader = SseReader(response)
        readers.append(reader)
        assert reader.frame() == {"retry": "2000"}
        return reader

    yield open_
    for reader in readers:
        reader.close()


def test_a_tick_arrives_as_one_sse_event_with_published_at(app, open_stream):
    stream = open_stream()
    points = run_ticks(app, 1)
    event = stream.event()
    assert event["type"] == "tick" and event["tick"] == 1 and event["origin"] == "scheduler"
    assert [p["id"] for p in event["points"]] == [p["id"] for p in points]
    assert isinstance(event["published_at"], int) and event["published_at"] > 1.6e12
    assert services_of(app).hub.counts()["sse"] == 1


def test_source_filter_keeps_only_matching_points(app, open_stream):
    stream = open_stream("?source=cpu_usage,iot_sensors")
    run_ticks(app, 1)
    event = stream.event()
    assert [p["source"] for p in event["points"]] == ["cpu_usage", "iot_sensors"]


def test_submit_is_pushed_and_anomalies_follow_their_tick(app, client, open_stream):
    stream = open_stream("?source=probe")
    normal = [{"source": "probe", "value": 50.0 + (i % 7) * 0.3} for i in range(120)]
    client.post("/api/submit", json={"points": normal + [{"source": "probe", "value": 1e6}]})
    tick = stream.event()
    assert tick["type"] == "tick" and tick["origin"] == "submit" and tick["tick"] is None
    assert len(tick["points"]) == 121
    anomaly = stream.event()
    assert anomaly["type"] == "anomaly" and anomaly["id"] > tick["id"]
    assert anomaly["anomaly"]["values"] == {"value": 1e6}
    assert anomaly["anomaly"]["id"] == tick["points"][-1]["id"]


def test_heartbeat_comment_when_idle(make_app):
    client = make_app(HEARTBEAT_INTERVAL=0.1).test_client()
    response = client.get("/api/stream/anomalies", buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b"retry: 2000\n\n"
    assert next(chunks) == b": ping\n\n"
    response.close()


def test_last_event_id_replays_stored_events_in_order_then_live(app, open_stream):
    first = open_stream()
    run_ticks(app, 4)
    ids = [first.event()["id"] for _ in range(4)]
    resumed = open_stream(headers={"Last-Event-ID": str(ids[1])})
    replayed = [resumed.event() for _ in range(2)]
    assert [e["id"] for e in replayed] == ids[2:]
    assert all(e["type"] == "tick" and len(e["points"]) == 9 for e in replayed)
    run_ticks(app, 1)
    live = resumed.event()
    assert live["id"] > ids[-1]
    query = open_stream(f"?last_event_id={ids[0]}")  # the query-string form
    assert query.event()["id"] == ids[1]


def test_bad_last_event_id_is_rejected(client):
    response = client.get("/api/stream/anomalies", headers={"Last-Event-ID": "abc"})
    assert response.status_code == 400 and "Last-Event-ID" in response.get_json()["error"]
    response = client.get("/api/stream/anomalies?source=" + "x" * 65)
    assert response.status_code == 400


def test_pushed_events_match_the_openapi_event_schema(app, client, open_stream):
    document = spec()
    validator = jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/Event", "components": document["components"]})
    stream = open_stream()
    run_ticks(app, 2)
    client.post("/api/submit", json={"points": [{"source": "s", "value": float(i % 5)} for i in range(100)]
                                     + [{"source": "s", "value": 1e9}]})
    events = [stream.event() for _ in range(3)]
    events.append(stream.event())
    for event in events:
        validator.validate(event)
    assert {e["type"] for e in events} == {"tick", "anomaly"}


def test_replay_is_limited_to_the_newest_events(make_app):
    app = make_app(REPLAY_LIMIT=2)
    run_ticks(app, 4)
    client = app.test_client()
    response = client.get("/api/stream/anomalies", headers={"Last-Event-ID": "0"}, buffered=False)
    reader = SseReader(response)
    try:
        assert reader.frame() == {"retry": "2000"}
        assert [reader.event()["tick"] for _ in range(2)] == [3, 4]
    finally:
        reader.close()


def test_an_event_both_replayed_and_then_published_is_sent_once(app, client):
    svc = services_of(app)
    run_ticks(app, 2)
    response = client.get("/api/stream/anomalies", headers={"Last-Event-ID": "0"}, buffered=False)
    reader = SseReader(response)
    try:
        assert reader.frame() == {"retry": "2000"}
        replayed = [reader.event()["id"] for _ in range(2)]
        # The writer publishes after committing, so a replayed event can still arrive live.
        db = svc.reader()
        try:
            late = replay_events(db, replayed[-1] - 1, 10)
        finally:
            db.close()
        svc.hub.publish(late)
        run_ticks(app, 1)
        assert reader.event()["id"] == replayed[-1] + 1
    finally:
        reader.close()
