"""/metrics parsed with prometheus_client's own parser; exports as CSV and JSON lines."""
from __future__ import annotations

import csv
import io
import json

from prometheus_client.parser import text_string_to_metric_families

from alert_helpers import store_point
from server_helpers import run_ticks


def families(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return {f.name: f for f in text_string_to_metric_families(response.data.decode())}


def samples(family, name=None, **labels):
    return [s.value for s in family.samples
            if (name is None or s.name == name) and all(s.labels.get(k) == v for k, v in labels.items())]


def test_metrics_exposition_parses_and_counts_what_happened(app, client):
    run_ticks(app, 3)
    store_point(app, "cpu_usage", severity="critical")
    store_point(app, "cpu_usage", severity="low")
    client.post("/api/submit", json={"source": "mine", "value": 1.0})
    metrics = families(client)
    assert samples(metrics["anomaly_points"], stream="cpu_usage") == [5.0]
    assert samples(metrics["anomaly_points"], stream="mine") == [1.0]
    assert samples(metrics["anomaly_anomalies_by_severity"], stream="cpu_usage", type="anomaly",
                   severity="critical") == [1.0]
    assert samples(metrics["anomaly_alerts"], stream="cpu_usage", type="anomaly",
                   severity="critical", state="firing") == [1.0]
    tick = metrics["anomaly_tick_seconds"]
    assert samples(tick, "anomaly_tick_seconds_count") == [3.0]
    assert samples(tick, "anomaly_tick_seconds_bucket", le="+Inf") == [3.0]
    # Three ticks and one submit: four engine steps.
    assert samples(metrics["anomaly_scoring_seconds"], "anomaly_scoring_seconds_count") == [4.0]
    assert samples(metrics["anomaly_queue_depth"], queue="writer") == [0.0]
    assert set(samples(metrics["anomaly_push_clients"])) == {0.0}
    assert samples(metrics["anomaly_streams"], kind="user") == [1.0]
    assert samples(metrics["anomaly_ticks"], "anomaly_ticks_total") == [3.0]
    assert samples(metrics["anomaly_notifications"], outcome="delivered") == [0.0]
    assert "anomaly_outbox_backlog" in metrics


def test_metrics_count_anomalous_events_by_schema_type_and_severity(client):
    body = ("session_id,user_id,charger_id,start_time,duration,energy,payment\n"
            "f1,U1,C1,2026-01-01T08:00:00Z,60,62,0.5\n"      # billing fraud: 62 kWh for 0.50
            "n1,U7,C7,2026-01-01T11:00:00Z,60,20,8\n")
    assert client.post("/api/upload?schema=ev_charging", data=body, content_type="text/csv").status_code == 200
    fraud = samples(families(client)["anomaly_anomalies_by_severity"], stream="ev_charging", type="billing_fraud")
    assert fraud == [1.0]


def test_anomaly_exports_in_csv_and_json_lines_with_filters(app, client):
    store_point(app, "cpu_usage", severity="critical")
    store_point(app, "cpu_usage", severity="low")
    store_point(app, "memory", severity="critical")
    lines = client.get("/api/anomalies?format=jsonl")
    assert lines.mimetype == "application/x-ndjson"
    objects = [json.loads(line) for line in lines.data.decode().splitlines()]
    assert [o["source"] for o in objects] == ["memory", "cpu_usage", "cpu_usage"]
    assert objects == client.get("/api/anomalies").get_json()["anomalies"]
    table = client.get("/api/anomalies?format=csv&source=cpu_usage&severity=critical")
    assert table.mimetype == "text/csv" and "attachment" in table.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(table.data.decode())))
    assert len(rows) == 1 and rows[0]["severity"] == "critical" and rows[0]["source"] == "cpu_usage"
    assert json.loads(rows[0]["values"]) == {"value": 1.0}
    page = client.get("/api/anomalies?limit=1").get_json()["anomalies"]
    rest = client.get(f"/api/anomalies?before={page[0]['anomaly_id']}").get_json()["anomalies"]
    assert [a["source"] for a in page + rest] == ["memory", "cpu_usage", "cpu_usage"]
    assert client.get("/api/anomalies?until=2000-01-01").get_json()["anomalies"] == []


def test_unknown_formats_are_refused_not_answered_in_json(client):
    for path in ("/api/anomalies?format=xml", "/api/anomalies?format=CSV", "/api/incidents?format=xlsx"):
        answer = client.get(path)
        assert answer.status_code == 400 and "format must be one of json, csv, jsonl" in answer.get_json()["error"]
    assert client.get("/api/anomalies?severity=awful").status_code == 400


def test_alert_exports_in_csv_and_json_lines(app, client):
    store_point(app, "cpu_usage", severity="critical")
    store_point(app, "memory", severity="low")
    rows = list(csv.DictReader(io.StringIO(client.get("/api/incidents?format=csv").data.decode())))
    assert [r["stream"] for r in rows] == ["memory", "cpu_usage"]
    assert rows[1]["state"] == "firing" and json.loads(rows[1]["labels"])["severity"] == "critical"
    lines = client.get("/api/incidents?format=jsonl&severity=critical").data.decode().splitlines()
    assert [json.loads(line)["stream"] for line in lines] == ["cpu_usage"]
