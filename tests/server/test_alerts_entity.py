"""A point that names an entity and anomaly types opens one alert per (stream, entity, type)."""
from __future__ import annotations

from alert_helpers import store_point


def test_a_points_entity_and_types_reach_the_alerts(app, client):
    store_point(app, "ev_sessions", entity="user-7", anomaly_types=["billing_fraud", "dos_attack"])
    store_point(app, "ev_sessions")  # no entity, no type: the stream's own "anomaly"
    alerts = client.get("/api/incidents?stream=ev_sessions").get_json()["alerts"]
    subjects = sorted((a["entity"] or "", a["type"]) for a in alerts)
    assert subjects == [("", "anomaly"), ("user-7", "billing_fraud"), ("user-7", "dos_attack")]
    assert all(a["labels"].get("entity") == "user-7" for a in alerts if a["entity"])
