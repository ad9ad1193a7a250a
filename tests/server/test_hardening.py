"""Regression tests for the defects found by probing the server (issue 7, section 2), in-process.

The ones that live in gunicorn or in sockets are in test_hardening_live.py.
"""
from __future__ import annotations

import threading
import time

import jsonschema
import pytest

from server.validation import MAX_EVENT_ID
from server_helpers import services_of

DEEP = "[" * 1000 + "]" * 1000


# -- 1. deeply nested JSON ------------------------------------------------------------------
@pytest.mark.parametrize("path, body", [
    ("/api/submit", DEEP),
    ("/api/submit", '{"source": "s", "value": ' + DEEP + "}"),
    ("/api/configure", '{"source": "cpu_usage", "threshold": ' + DEEP + "}"),
    ("/api/configure", '{"source": "cpu_usage", "detector": "zscore", "window": ' + DEEP + "}"),
])
def test_json_nested_1000_levels_is_a_400(client, path, body):
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.get_json()["error"] or "must be" in response.get_json()["error"]


# -- 2. a 400-digit window ------------------------------------------------------------------
@pytest.mark.parametrize("window", [int("9" * 400), -int("9" * 400), 2**63])
def test_configure_with_a_huge_integer_window_is_a_400(client, window):
    response = client.post("/api/configure",
                           json={"source": "cpu_usage", "detector": "zscore", "window": window})
    assert response.status_code == 400
    assert "window" in response.get_json()["error"]


def test_a_huge_integer_value_in_a_submit_is_a_400(client):
    response = client.post("/api/submit", data='{"source": "s", "value": ' + "9" * 400 + "}",
                           content_type="application/json")
    assert response.status_code == 400 and "finite" in response.get_json()["error"]


# -- 3. Last-Event-ID past SQLite's integers (in-process part; the socket part is live) -------
@pytest.mark.parametrize("header", [str(MAX_EVENT_ID + 1), "9" * 30, "-1"])
def test_sse_last_event_id_out_of_range_is_a_400_before_the_stream(client, header):
    response = client.get("/api/stream/anomalies", headers={"Last-Event-ID": header})
    assert response.status_code == 400
    assert "Last-Event-ID must be between 0 and" in response.get_json()["error"]


def test_sse_last_event_id_at_the_maximum_is_accepted(client):
    response = client.get("/api/stream/anomalies", headers={"Last-Event-ID": str(MAX_EVENT_ID)},
                          buffered=False)
    try:
        assert response.status_code == 200
    finally:
        response.close()


# -- 6. the OpenAPI document and validation agree -------------------------------------------
def configure_schema(client) -> jsonschema.Draft202012Validator:
    document = client.get("/api/openapi.json").get_json()
    schema = {**document["components"]["schemas"]["ConfigureRequest"], "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def submit_schema(client) -> jsonschema.Draft202012Validator:
    document = client.get("/api/openapi.json").get_json()
    return jsonschema.Draft202012Validator({"$ref": "#/components/schemas/SubmitRequest",
                                            "components": document["components"]})


@pytest.mark.parametrize("body, status", [
    ({"source": "a\u0001b", "value": 1}, 400),      # control character: invalid in both
    ({"source": "a\u0085b", "value": 1}, 400),      # C1 control character
    ({"source": "a\u00a0b", "value": 1}, 200),      # a no-break space is text: valid in both
    ({"source": "  ", "value": 1}, 400),            # only white space
    ({"source": "tab\tname", "value": 1}, 400),
    ({"source": "ts_null", "value": 1, "timestamp": None}, 200),  # null: now, as documented
    ({"source": "ts_iso", "value": 1, "timestamp": "2026-01-02T03:04:05Z"}, 200),
])
def test_submit_validation_matches_the_document(client, body, status):
    valid = submit_schema(client).is_valid(body)
    assert valid == (status == 200)
    assert client.post("/api/submit", json=body).status_code == status


@pytest.mark.parametrize("body, status", [
    ({"source": "cpu_usage", "detector": "", "threshold": 0.5}, 400),
    ({"source": "cpu_usage", "detector": "nosuch", "threshold": 0.5}, 400),
    ({"source": "cpu_usage", "detector": "ensemble", "threshold": 0.5}, 200),
    ({"source": "cpu_usage", "threshold": 0.5}, 200),
    ({"source": "cpu_usage", "window": 50}, 400),                     # the ensemble has no window
    ({"source": "cpu_usage", "threshold": None}, 400),               # null is not a number
    ({"source": "cpu_usage", "detector": "zscore", "window": 50}, 200),
    ({"source": "cpu_usage", "detector": "zscore", "window": 50, "weight": None}, 400),
    ({"source": "cpu_usage", "detector": "lof", "window": 10}, 400),  # lof needs more than its neighbours
])
def test_configure_validation_matches_the_document(client, body, status):
    assert configure_schema(client).is_valid(body) == (status == 200)
    assert client.post("/api/configure", json=body).status_code == status


def test_a_long_source_filter_is_a_documented_400(client):
    document = client.get("/api/openapi.json").get_json()
    assert "400" in document["paths"]["/api/configure"]["get"]["responses"]
    assert client.get("/api/configure?source=" + "a" * 65).status_code == 400
    assert client.get("/api/anomalies?source=" + "a" * 65).status_code == 400


def test_disabling_the_last_detector_is_a_conflict(client):
    names = list(client.get("/api/configure?source=cpu_usage").get_json()["config"]["detectors"])
    for name in names[:-1]:
        assert client.post("/api/configure", json={"source": "cpu_usage", "detector": name,
                                                   "enabled": False}).status_code == 200
    response = client.post("/api/configure", json={"source": "cpu_usage", "detector": names[-1],
                                                   "enabled": False})
    assert response.status_code == 409 and "must stay enabled" in response.get_json()["error"]


# -- 7. many points of one stream do not starve the tick ------------------------------------
def test_a_tick_runs_between_the_slices_of_a_large_one_stream_submit(app):
    from server.validation import parse_submit

    monitor = services_of(app).monitor
    items = parse_submit({"points": [{"source": "one_stream", "value": float(i % 7)}
                                     for i in range(600)]}, max_points=1000)
    submit_done = threading.Event()
    tick_done_while_submitting = []

    def submit():
        monitor.submit(items)
        submit_done.set()

    worker = threading.Thread(target=submit)
    worker.start()
    # Wait until the submit has started scoring (its stream exists), then ask for a tick.
    deadline = time.monotonic() + 30
    while "one_stream" not in monitor.streams and time.monotonic() < deadline:
        time.sleep(0.01)
    monitor.tick()
    tick_done_while_submitting.append(not submit_done.is_set())
    worker.join(120)
    assert submit_done.is_set()
    assert tick_done_while_submitting == [True], "the tick waited for the whole submit"
    assert len(app.test_client().get("/api/data/one_stream?limit=1000").get_json()["points"]) == 600
