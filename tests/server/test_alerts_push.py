"""Alert transitions pushed live: ``event: alert`` on SSE and ``{"type": "alert"}`` on the WebSocket,
against a real gunicorn on real sockets, and replayed after Last-Event-ID."""
from __future__ import annotations

import json

import jsonschema
import pytest
import websocket

from server.openapi import spec
from live_server import LiveServer, SseClient, http_json

STREAM = "pushed_alerts"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    # No scheduler: only this test's points make alerts; alerts fire at once and resolve at the
    # first normal point, so each step below is one transition.
    server = LiveServer(tmp_path_factory.mktemp("alerts-push"),
                        {"SCHEDULER": False, "ALERT_FOR": 0, "ALERT_KEEP_FIRING_FOR": 3600}).start()
    yield server
    server.stop()


def submit(server, points) -> list[dict]:
    status, body = http_json(server.port, "POST", "/api/submit", {"points": points}, timeout=60)
    assert status == 200, body
    return body["points"] if "points" in body else body


def sse_alerts(client: SseClient, count: int) -> list[dict]:
    """The next ``count`` alert events of an SSE client (other types skipped)."""
    found = []
    while len(found) < count:
        event = client.next_event()
        if event["event"] == "alert":
            assert event["data"]["type"] == "alert" and event["data"]["id"] == event["id"]
            found.append(event["data"])
    return found


def ws_alerts(conn: websocket.WebSocket, count: int) -> list[dict]:
    found = []
    while len(found) < count:
        data = json.loads(conn.recv())
        if data["type"] == "alert":
            found.append(data)
    return found


def open_alert(server) -> dict:
    """Train the stream on a quiet signal, then a spike: one firing alert."""
    submit(server, [{"source": STREAM, "value": float(k % 3)} for k in range(40)])
    submit(server, [{"source": STREAM, "value": 1e6}])
    status, body = http_json(server.port, "GET", f"/api/incidents?stream={STREAM}&state=firing")
    assert status == 200 and len(body["alerts"]) == 1, body
    return body["alerts"][0]


def test_every_transition_reaches_sse_and_websocket_and_replays_after_last_event_id(live):
    sse = SseClient(live.port, f"?source={STREAM}")
    other = SseClient(live.port, "?source=some_other_stream")
    ws = websocket.create_connection(f"ws://127.0.0.1:{live.port}/ws?source={STREAM}", timeout=15)
    try:
        assert json.loads(ws.recv())["type"] == "hello"
        alert = open_alert(live)
        status, _ = http_json(live.port, "POST", f"/api/incidents/{alert['id']}/acknowledge",
                              {"by": "alice", "note": "looking"})
        assert status == 200
        status, body = http_json(live.port, "POST", "/api/silences",
                                 {"matchers": {"stream": STREAM}, "duration": 600, "by": "alice"})
        assert status == 201
        silence = body["silence"]["id"]
        status, _ = http_json(live.port, "DELETE", f"/api/silences/{silence}")
        assert status == 200
        status, _ = http_json(live.port, "POST", f"/api/incidents/{alert['id']}/resolve", {"by": "bob"})
        assert status == 200

        expected = ["pending", "firing", "acknowledged", "silenced", "unsilenced", "resolved"]
        pushed = sse_alerts(sse, len(expected))
        assert [e["transition"] for e in pushed] == expected
        assert {e["alert"]["id"] for e in pushed} == {alert["id"]}
        assert [e["id"] for e in pushed] == sorted(e["id"] for e in pushed)
        document = spec()
        validator = jsonschema.Draft202012Validator(
            {"$ref": "#/components/schemas/Event", "components": document["components"]})
        for event in pushed:
            validator.validate(event)  # the documented AlertEvent
        by = {e["transition"]: e["alert"] for e in pushed}
        assert by["firing"]["state"] == "firing" and by["firing"]["stream"] == STREAM
        assert by["firing"]["points"] >= 1 and by["firing"]["severity"]
        assert by["acknowledged"]["acknowledged_by"] == "alice"
        assert by["acknowledged"]["ack_note"] == "looking"
        assert by["silenced"]["silenced_by"] == [silence]
        assert by["unsilenced"]["silenced_by"] == []
        assert by["resolved"]["state"] == "resolved" and by["resolved"]["resolved_by"] == "bob"

        on_ws = ws_alerts(ws, len(expected))
        assert [(e["id"], e["transition"]) for e in on_ws] == [(e["id"], e["transition"]) for e in pushed]

        # Resuming after the first alert event: the rest again, in order, each once; the alert as
        # it stands now (resolved).
        resumed = SseClient(live.port, f"?source={STREAM}", last_event_id=pushed[0]["id"])
        try:
            replayed = sse_alerts(resumed, len(expected) - 1)
            assert [(e["id"], e["transition"]) for e in replayed] == \
                [(e["id"], e["transition"]) for e in pushed[1:]]
            assert {e["alert"]["state"] for e in replayed} == {"resolved"}
        finally:
            resumed.close()

        ws_resumed = websocket.create_connection(
            f"ws://127.0.0.1:{live.port}/ws?source={STREAM}&last_event_id={pushed[2]['id']}", timeout=15)
        try:
            assert json.loads(ws_resumed.recv())["type"] == "hello"
            assert [e["id"] for e in ws_alerts(ws_resumed, 3)] == [e["id"] for e in pushed[3:]]
        finally:
            ws_resumed.close()

        # A client following another stream hears none of it (only heartbeats until now).
        other.sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            other.next_event()
    finally:
        sse.close()
        other.close()
        ws.close()


def test_a_resumed_client_gets_each_transition_once_even_when_it_is_published_during_replay(live):
    """The hub skips alert events already replayed (alert is a stored type)."""
    status, body = http_json(live.port, "GET", f"/api/incidents?stream={STREAM}&limit=1")
    last = body["alerts"][0]["id"] if body["alerts"] else 0
    sse = SseClient(live.port, f"?source={STREAM}")
    try:
        submit(live, [{"source": STREAM, "value": -1e6}])  # a new incident: pending, firing
        pushed = sse_alerts(sse, 2)
        assert [e["transition"] for e in pushed] == ["pending", "firing"]
        assert pushed[0]["alert"]["id"] > last
        resumed = SseClient(live.port, f"?source={STREAM}", last_event_id=pushed[0]["id"] - 1)
        try:
            again = sse_alerts(resumed, 2)
            assert [e["id"] for e in again] == [e["id"] for e in pushed]
            resumed.sock.settimeout(1.0)
            with pytest.raises(TimeoutError):
                resumed.next_event()
        finally:
            resumed.close()
    finally:
        sse.close()
