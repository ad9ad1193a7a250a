"""The HTTP API on a temporary database with the scheduler off: every endpoint and rejection."""
from __future__ import annotations

import json

import numpy as np
import pytest

from detectors.ensemble import REFRACTORY
from server import pages
from server.settings import REPO_ROOT
from server_helpers import run_ticks, services_of, shutdown_app

BUILTIN = ["cpu_usage", "financial", "network_traffic", "transactions", "electricity",
           "machine_health", "server_traffic", "stock_risk", "iot_sensors"]


def normal_then_spike(source: str, n: int = 120, spike: float = 1e6, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    points = [{"source": source, "value": float(v)} for v in rng.normal(50.0, 2.0, n)]
    return {"points": points + [{"source": source, "value": spike}]}


def post_raw(client, path: str, body: str | bytes):
    return client.post(path, data=body, content_type="application/json")


# -- status, stats, data, anomalies, alerts -------------------------------------------------
def test_status_lists_the_nine_builtin_streams_with_counts(client, app):
    run_ticks(app, 3)
    body = client.get("/api/status").get_json()
    assert [s["name"] for s in body["streams"]] == BUILTIN
    assert all(s["kind"] == "builtin" and s["points"] == 3 for s in body["streams"])
    machine = next(s for s in body["streams"] if s["name"] == "machine_health")
    assert machine["fields"] == ["temperature", "vibration"] and machine["units"]
    assert body["points"] == 27 and body["clients"] == {"sse": 0, "ws": 0}
    assert body["tick_interval_s"] == 2.0 and body["uptime_s"] >= 0


def test_stats_count_points_ticks_and_truth(client, app):
    run_ticks(app, 4)
    body = client.get("/api/stats").get_json()
    assert body["points"] == 36 and body["tick"]["count"] == 4
    assert body["tick"]["p50_ms"] is not None and body["tick"]["p99_ms"] >= body["tick"]["p50_ms"]
    # The process's first tick loads the compiled kernels: reported apart, not in the percentiles.
    source = services_of(app).monitor.generator_source
    assert body["tick"]["first_ms"] == round(source.first_tick_ms, 3) and len(source.tick_ms) == 3
    assert set(body["per_detector"]) == set(services_of(app).monitor.detector_names)
    truth = body["truth"]
    assert truth["tp"] + truth["fp"] <= body["anomalies"]
    assert body["anomaly_rate"] == pytest.approx(body["anomalies"] / 36, abs=1e-6)


def test_data_returns_the_latest_points_oldest_first(client, app):
    run_ticks(app, 5)
    body = client.get("/api/data/machine_health?limit=3").get_json()
    assert body["source"] == "machine_health" and body["fields"] == ["temperature", "vibration"]
    ids = [p["id"] for p in body["points"]]
    assert len(ids) == 3 and ids == sorted(ids)
    assert all(p["truth"] is not None and set(p["values"]) == {"temperature", "vibration"}
               for p in body["points"])
    assert len(client.get("/api/data/cpu_usage").get_json()["points"]) == 5  # default limit 60


@pytest.mark.parametrize("query, message", [("limit=0", "between 1 and 1000"),
                                            ("limit=1001", "between 1 and 1000"),
                                            ("limit=ten", "integer")])
def test_data_rejects_bad_limits(client, query, message):
    response = client.get(f"/api/data/cpu_usage?{query}")
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_unknown_source_is_404(client):
    for path in ("/api/data/nosuch", "/api/anomalies?source=nosuch", "/api/configure?source=nosuch"):
        response = client.get(path)
        assert response.status_code == 404
        assert "unknown source 'nosuch'" in response.get_json()["error"]


def test_anomalies_and_alerts_newest_first_with_filters(client):
    client.post("/api/submit", json=normal_then_spike("probe_a", seed=1))
    client.post("/api/submit", json=normal_then_spike("probe_b", seed=2))
    everything = client.get("/api/anomalies").get_json()["anomalies"]
    assert {a["source"] for a in everything} >= {"probe_a", "probe_b"}
    ids = [a["anomaly_id"] for a in everything]
    assert ids == sorted(ids, reverse=True)
    only_a = client.get("/api/anomalies?source=probe_a&limit=1").get_json()["anomalies"]
    assert len(only_a) == 1 and only_a[0]["source"] == "probe_a"
    assert only_a[0]["values"] == {"value": 1e6} and only_a[0]["detected_at"] > 0
    future = client.get("/api/anomalies?since=2100-01-01T00:00:00Z").get_json()["anomalies"]
    assert future == []
    assert client.get("/api/anomalies?since=0").get_json()["anomalies"] == everything
    assert client.get("/api/anomalies?since=yesterday").status_code == 400
    alerts = client.get("/api/alerts").get_json()["alerts"]
    assert alerts == everything[:20]


# -- submit -----------------------------------------------------------------------------------
def test_submit_single_value_creates_a_user_stream(client):
    response = client.post("/api/submit", json={"source": "boiler", "value": 71.5})
    assert response.status_code == 200
    (result,) = response.get_json()["results"]
    assert result["source"] == "boiler" and result["values"] == {"value": 71.5}
    assert {"score", "is_anomaly", "severity", "explanation", "id"} <= set(result)
    assert result["truth"] is None
    streams = {s["name"]: s for s in client.get("/api/status").get_json()["streams"]}
    assert streams["boiler"]["kind"] == "user" and streams["boiler"]["fields"] == ["value"]
    assert streams["boiler"]["points"] == 1


def test_submit_flags_a_spike_with_severity_and_explanation(client):
    results = client.post("/api/submit", json=normal_then_spike("furnace")).get_json()["results"]
    assert len(results) == 121 and [r["id"] for r in results] == sorted(r["id"] for r in results)
    spike = results[-1]
    assert spike["is_anomaly"] and spike["severity"] in {"low", "medium", "high", "critical"}
    assert "above expected" in spike["explanation"] and spike["fired"]
    assert not results[0]["is_anomaly"] and results[0]["warming_up"]


def test_submit_batch_keeps_request_order_across_sources(client):
    batch = {"points": [{"source": "a1", "value": 1}, {"source": "a1", "value": 2},
                        {"source": "b1", "values": {"x": 1, "y": 2}, "timestamp": 1700000000},
                        {"source": "b1", "values": {"x": 3, "y": 4},
                         "timestamp": "2024-01-02T03:04:05+00:00"}]}
    results = client.post("/api/submit", json=batch).get_json()["results"]
    assert [(r["source"], r["values"]) for r in results] == [
        ("a1", {"value": 1.0}), ("a1", {"value": 2.0}), ("b1", {"x": 1.0, "y": 2.0}),
        ("b1", {"x": 3.0, "y": 4.0})]
    assert results[2]["timestamp"] == 1700000000 and results[3]["timestamp"] == 1704164645
    assert len({r["id"] for r in results}) == 4


def test_submit_value_to_a_builtin_single_field_stream_uses_its_field(client):
    result = client.post("/api/submit", json={"source": "cpu_usage", "value": 42}).get_json()
    assert result["results"][0]["values"] == {"cpu": 42.0}


LONG = "x" * 65


@pytest.mark.parametrize("body, status, message", [
    ('{"value": 1}', 400, "body.source is missing"),
    ('{"source": "s", "value": NaN}', 400, "NaN is not a valid JSON number"),
    ('{"source": "s", "value": Infinity}', 400, "Infinity is not a valid JSON number"),
    ('{"source": "s", "value": 1e999}', 400, "finite"),
    ('{"source": "s", "value": "12"}', 400, "body.value must be a number"),
    ('{"source": "s", "value": true}', 400, "body.value must be a number"),
    ('{"source": "s", "value": null}', 400, "body.value must be a number"),
    ('{"source": "s", "values": {"t": [1]}}', 400, "body.values.t must be a number"),
    ('{"source": "s", "values": {}}', 400, "non-empty object"),
    ('{"source": "s", "value": 1, "values": {"a": 1}}', 400, "exactly one of"),
    ('{"source": "s"}', 400, "exactly one of"),
    ('{"source": "s", "vlaue": 1}', 400, "unknown key(s) 'vlaue'"),
    ('{"source": "", "value": 1}', 400, "must not be empty"),
    ('{"source": 5, "value": 1}', 400, "body.source must be a string"),
    (f'{{"source": "{LONG}", "value": 1}}', 400, "65 characters long; the limit is 64"),
    (f'{{"source": "s", "values": {{"{LONG}": 1}}}}', 400, "the limit is 64"),
    ('{"source": "s", "value": 1, "timestamp": "soon"}', 400, "ISO-8601"),
    # Milliseconds taken for seconds, or a time no date can name: refused, not stored far in the future.
    ('{"source": "s", "value": 1, "timestamp": 1767225600000}', 400, "milliseconds? divide by 1000"),
    ('{"source": "s", "value": 1, "timestamp": -1e12}', 400, "years 1 to 9999"),
    ('{"points": [{"source": "s", "value": 1}, {"source": "s", "value": 1, "timestamp": 1e18}]}', 400,
     "points[1].timestamp must be epoch seconds of the years 1 to 9999"),
    ('{"points": []}', 400, "non-empty list"),
    ('{"points": [{"source": "s", "value": 1}, {"source": "s", "value": "x"}]}', 400,
     "points[1].value must be a number"),
    ('{"points": [], "extra": 1}', 400, "only 'points'"),
    ('[1, 2]', 400, "must be a JSON object"),
    ('{"source": "s", "value": 1', 400, "malformed JSON"),
    ('', 400, "body is empty"),
    (b'\xff\xfe', 400, "malformed JSON"),
    # Well formed, but the stream exists with other fields: a conflict with the server's state.
    ('{"source": "machine_health", "values": {"temperature": 70}}', 409,
     "takes fields ['temperature', 'vibration']"),
    ('{"source": "machine_health", "value": 70}', 409, "send them as 'values'"),
])
def test_submit_rejections(client, body, status, message):
    before = client.get("/api/status").get_json()["points"]
    response = post_raw(client, "/api/submit", body)
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert client.get("/api/status").get_json()["points"] == before  # nothing stored


def test_submit_rejects_too_many_points_and_oversized_payloads(make_app):
    client = make_app(MAX_BATCH_POINTS=3, MAX_CONTENT_LENGTH=2048).test_client()
    batch = {"points": [{"source": "s", "value": i} for i in range(4)]}
    response = client.post("/api/submit", json=batch)
    assert response.status_code == 400 and "too many points in one batch: 4" in response.get_json()["error"]
    big = {"source": "s", "values": {f"f{i}": 1.0 for i in range(30)}, "timestamp": "x" * 2000}
    response = client.post("/api/submit", json=big)
    assert response.status_code == 413
    assert response.get_json() == {"error": "payload too large: the limit is 2048 bytes"}


def test_a_batch_with_one_bad_point_stores_nothing(client):
    batch = {"points": [{"source": "new_one", "value": 1}, {"source": "machine_health", "value": 2}]}
    assert client.post("/api/submit", json=batch).status_code == 409
    names = [s["name"] for s in client.get("/api/status").get_json()["streams"]]
    assert "new_one" not in names


def test_user_stream_limit(make_app):
    client = make_app(MAX_USER_STREAMS=1).test_client()
    assert client.post("/api/submit", json={"source": "first", "value": 1}).status_code == 200
    response = client.post("/api/submit", json={"source": "second", "value": 1})
    assert response.status_code == 409 and "limit of 1 user streams" in response.get_json()["error"]
    assert client.post("/api/submit", json={"source": "first", "value": 2}).status_code == 200


def test_user_streams_and_their_fields_survive_a_rebuild(make_app):
    app = make_app()
    client = app.test_client()
    client.post("/api/submit", json={"source": "press", "values": {"force": 1.0, "speed": 2.0}})
    shutdown_app(app)
    client = make_app().test_client()
    streams = {s["name"]: s for s in client.get("/api/status").get_json()["streams"]}
    assert streams["press"]["kind"] == "user" and streams["press"]["fields"] == ["force", "speed"]
    assert streams["press"]["points"] == 1
    response = client.post("/api/submit", json={"source": "press", "values": {"force": 1.0}})
    assert response.status_code == 409 and "takes fields ['force', 'speed']" in response.get_json()["error"]
    assert len(client.get("/api/data/press").get_json()["points"]) == 1


# -- configure --------------------------------------------------------------------------------
def test_configure_round_trip_and_persistence(make_app):
    app = make_app()
    client = app.test_client()
    everything = client.get("/api/configure").get_json()["streams"]
    assert list(everything) == BUILTIN
    detector = services_of(app).monitor.detector_names[0]
    response = client.post("/api/configure", json={"source": "cpu_usage", "detector": detector,
                                                   "threshold": 0.9991, "window": 150})
    assert response.status_code == 200
    body = response.get_json()
    assert body["source"] == "cpu_usage"
    assert body["config"]["detectors"][detector]["threshold"] == 0.9991
    assert body["config"]["detectors"][detector]["window"] == 150
    response = client.post("/api/configure", json={"source": "cpu_usage", "threshold": 0.97})
    assert response.get_json()["config"]["threshold"] == 0.97
    assert client.get("/api/configure?source=cpu_usage").get_json() == response.get_json()
    shutdown_app(app)

    client = make_app().test_client()
    config = client.get("/api/configure?source=cpu_usage").get_json()["config"]
    assert config["threshold"] == 0.97
    assert config["detectors"][detector]["threshold"] == 0.9991
    assert config["detectors"][detector]["window"] == 150


def test_a_user_stream_config_is_restored_with_the_stream(make_app):
    app = make_app()
    client = app.test_client()
    client.post("/api/submit", json={"source": "lathe", "value": 3.0})
    assert client.post("/api/configure", json={"source": "lathe", "threshold": 0.75}).status_code == 200
    shutdown_app(app)
    client = make_app().test_client()
    assert client.get("/api/configure?source=lathe").get_json()["config"]["threshold"] == 0.75


def test_configure_applies_at_once_to_scoring(client):
    client.post("/api/submit", json=normal_then_spike("kiln", spike=50.0))
    assert client.post("/api/configure", json={"source": "kiln", "threshold": 0.0}).status_code == 200
    result = client.post("/api/submit", json={"source": "kiln", "value": 50.0}).get_json()["results"][0]
    assert result["is_anomaly"] and not result["warming_up"]  # threshold 0 flags every point
    assert client.post("/api/configure", json={"source": "kiln", "threshold": 1.0}).status_code == 200
    results = [client.post("/api/submit", json={"source": "kiln", "value": 50.0}).get_json()["results"][0]
               for _ in range(REFRACTORY + 1)]
    assert all(r["score"] < 1.0 and not r["alert"] for r in results)  # no new alert at once
    # The open episode ends by hysteresis, once the stream has been back to normal for REFRACTORY points.
    assert not results[-1]["is_anomaly"]


@pytest.mark.parametrize("body, status, message", [
    ({"source": "nosuch", "threshold": 0.9}, 404, "unknown source 'nosuch'"),
    ({"source": "cpu_usage", "detector": "nosuch", "threshold": 0.9}, 400, "unknown detector"),
    ({"source": "cpu_usage", "threshold": "high"}, 400, "threshold must be a number"),
    ({"source": "cpu_usage", "threshold": 2.0}, 400, "threshold must be between 0 and 1"),
    ({"source": "cpu_usage", "threshold": True}, 400, "threshold must be a number"),
    ({"source": "cpu_usage", "detector": "zscore", "window": 1.5}, 400, "window must be an integer"),
    ({"source": "cpu_usage", "detector": "zscore", "window": 3}, 400, "window must be between"),
    ({"source": "cpu_usage", "detector": "zscore", "enabled": "yes"}, 400, "enabled must be true or false"),
    ({"source": "cpu_usage", "detector": "zscore", "weight": -1}, 400, "weight must be between"),
    ({"source": "cpu_usage", "window": 100}, 400, "the ensemble takes a threshold only"),
    ({"source": "cpu_usage"}, 400, "nothing to configure"),
    ({"threshold": 0.9}, 400, "source is missing"),
    ({"source": "cpu_usage", "threshold": 0.9, "colour": "red"}, 400, "unknown key(s) 'colour'"),
])
def test_configure_rejections(client, body, status, message):
    response = client.post("/api/configure", json=body)
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_configure_rejects_malformed_json(client):
    response = post_raw(client, "/api/configure", '{"source": ')
    assert response.status_code == 400 and "malformed JSON" in response.get_json()["error"]


# -- errors, pages, health --------------------------------------------------------------------
def test_one_error_shape_for_404_405_and_500(client, services, monkeypatch):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404 and response.get_json() == {"error": "not found: /api/nothing-here"}
    response = client.delete("/api/status")
    assert response.status_code == 405 and "method DELETE not allowed on /api/status" in response.get_json()["error"]

    def broken():
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services.monitor, "tick_stats", broken)
    response = client.get("/api/stats")
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal server error: RuntimeError"}


def test_plain_get_on_the_websocket_route_is_a_json_400(client):
    response = client.get("/ws")
    assert response.status_code == 400
    assert response.get_json() == {"error": "/ws takes WebSocket connections only (send Upgrade: websocket)"}


def test_index_page_serves_the_dashboard_template(client):
    response = client.get("/")
    if (REPO_ROOT / "web" / "index.html").exists():
        assert response.status_code == 200 and response.mimetype == "text/html"
    else:
        assert response.status_code == 404 and "web/index.html" in response.get_json()["error"]


def test_static_files_come_from_the_static_folder(client, app):
    assert app.static_folder == str(REPO_ROOT / "static")
    assert app.template_folder == str(REPO_ROOT / "web")
    assets = sorted(p.name for p in (REPO_ROOT / "static").glob("*") if p.is_file())
    if assets:
        assert client.get(f"/static/{assets[0]}").status_code == 200
    response = client.get("/static/no-such-file.js")
    assert response.status_code == 404 and "error" in response.get_json()


def test_chart_js_is_served_from_node_modules_or_404(client, monkeypatch, tmp_path):
    if pages.CHART_JS.is_file():
        response = client.get("/vendor/chart.umd.js")
        assert response.status_code == 200 and response.mimetype == "text/javascript"
        assert b"Chart" in response.get_data()[:5000]
    monkeypatch.setattr(pages, "CHART_JS", tmp_path / "missing.js")
    response = client.get("/vendor/chart.umd.js")
    assert response.status_code == 404 and "npm install" in response.get_json()["error"]


def test_health_reports_database_and_scheduler(client, services):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "ready": True, "scheduler": False, "database": True,
                                   "scheduler_enabled": False}
    services.writer.stop()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["status"] == "degraded" and response.get_json()["database"] is False


def test_submit_answers_503_when_the_writer_is_down(client, services):
    services.writer.stop()
    response = client.post("/api/submit", json={"source": "cpu_usage", "value": 1})
    assert response.status_code == 503 and "not running" in response.get_json()["error"]
    assert json.loads(response.get_data())  # still the one error shape
