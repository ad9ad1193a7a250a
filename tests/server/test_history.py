"""GET /api/history/<source>: stored points over a time range, raw or downsampled on the server into
min/max/mean buckets that keep a spike, with the range's anomalies; bad ranges are 4xx JSON."""
from __future__ import annotations

import jsonschema
import numpy as np
import pytest

from server.openapi import spec

WEEK = 7 * 86400.0
T0 = 1_780_000_000.0  # a fixed epoch: the points' own timestamps, not the server's clock


def submit(client, source: str, timestamps, values) -> list[dict]:
    results = []
    points = [{"source": source, "value": float(v), "timestamp": float(t)} for t, v in zip(timestamps, values)]
    for start in range(0, len(points), 1000):
        answer = client.post("/api/submit", json={"points": points[start:start + 1000]})
        assert answer.status_code == 200, answer.get_json()
        results += answer.get_json()["results"]
    return results


def validate(body: dict) -> None:
    document = spec()
    jsonschema.Draft202012Validator({"$ref": "#/components/schemas/History",
                                     "components": document["components"]}).validate(body)


@pytest.fixture
def week_with_a_spike(client):
    """5,000 points over a week, a quiet sine, and one point far above it near the middle."""
    rng = np.random.default_rng(3)
    timestamps = T0 + np.sort(rng.uniform(0, WEEK, 5000))
    values = 10 + np.sin(np.arange(5000) / 50) + rng.normal(0, 0.1, 5000)
    spike = 2500
    values[spike] = 500.0
    results = submit(client, "week", timestamps, values)
    return timestamps, values, spike, results


def test_a_short_range_answers_the_points_themselves(client):
    timestamps = T0 + np.arange(50.0)
    submit(client, "short", timestamps, 10 + np.arange(50) % 3)
    answer = client.get(f"/api/history/short?from={T0}&to={T0 + 50}")
    assert answer.status_code == 200
    body = answer.get_json()
    validate(body)
    assert body["resolution"] == "raw" and body["buckets"] is None and body["total"] == 50
    assert [p["timestamp"] for p in body["points"]] == list(timestamps)
    assert body["points"][7]["values"] == {"value": 11.0}
    # The range is half-open: [from, to).
    inner = client.get(f"/api/history/short?from={T0 + 10}&to={T0 + 20}").get_json()
    assert [p["timestamp"] for p in inner["points"]] == list(timestamps[10:20])


def test_a_week_is_bucketed_on_the_server_and_the_spike_survives(client, week_with_a_spike):
    timestamps, values, spike, results = week_with_a_spike
    answer = client.get(f"/api/history/week?from={T0}&to={T0 + WEEK}&max_points=100")
    assert answer.status_code == 200
    body = answer.get_json()
    validate(body)
    assert body["resolution"] == "buckets" and body["points"] is None
    assert body["total"] == 5000 and body["bucket_seconds"] == pytest.approx(WEEK / 100)
    buckets = body["buckets"]
    assert 90 <= len(buckets) <= 100  # bounded by max_points (empty spans left out)
    assert sum(b["count"] for b in buckets) == 5000
    # Every bucket's min/max/mean are those of the points inside it (numpy on the same data).
    width = WEEK / 100
    index = np.minimum(((timestamps - T0) // width).astype(int), 99)
    for bucket in buckets:
        inside = values[index == round((bucket["start"] - T0) / width)]
        assert bucket["count"] == len(inside)
        assert bucket["min"]["value"] == pytest.approx(inside.min())
        assert bucket["max"]["value"] == pytest.approx(inside.max())
        assert bucket["mean"]["value"] == pytest.approx(inside.mean())
    top = max(buckets, key=lambda b: b["max"]["value"])
    assert top["max"]["value"] == 500.0  # a mean would have flattened it to about 10
    assert top["start"] <= timestamps[spike] < top["end"]
    assert top["mean"]["value"] < 100
    # The spike is among the anomalies the view marks, at its own time.
    assert results[spike]["is_anomaly"]
    marked = {a["id"]: a for a in body["anomalies"]}
    assert results[spike]["id"] in marked
    assert marked[results[spike]["id"]]["timestamp"] == timestamps[spike]
    assert body["anomalies_truncated"] is False
    assert top["anomalies"] >= 1

    # Bounded whatever the range and max_points.
    body = client.get(f"/api/history/week?from={T0 - 300 * 86400}&to={T0 + WEEK}&max_points=10").get_json()
    assert len(body["buckets"]) <= 10 and sum(b["count"] for b in body["buckets"]) == 5000
    default = client.get(f"/api/history/week?from={T0}&to={T0 + WEEK}").get_json()
    assert len(default["buckets"]) <= 600


def test_the_default_range_is_the_last_hour(client):
    answer = client.get("/api/history/cpu_usage")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["to"] - body["from"] == pytest.approx(3600)


@pytest.mark.parametrize("query, message", [
    ("from=200&to=100", "must be before"),
    ("from=100&to=100", "must be before"),
    ("from=0&to=40000000", "the limit is 400 days"),
    ("from=abc", "from must be epoch seconds or an ISO-8601"),
    ("to=nan", "to must be epoch seconds"),
    ("max_points=9", "between 10 and 5000"),
    ("max_points=5001", "between 10 and 5000"),
    ("max_points=many", "max_points must be an integer"),
])
def test_bad_ranges_are_400_json(client, query, message):
    answer = client.get(f"/api/history/cpu_usage?{query}")
    assert answer.status_code == 400
    assert message in answer.get_json()["error"]


def test_an_unknown_stream_is_404(client):
    answer = client.get("/api/history/no_such_stream")
    assert answer.status_code == 404 and "unknown source" in answer.get_json()["error"]


def test_iso_dates_are_accepted(client):
    submit(client, "iso", [T0 + 1.0], [1.0])
    answer = client.get("/api/history/iso?from=2026-05-28T00:00:00Z&to=2026-06-30T00:00:00Z")
    assert answer.status_code == 200, answer.get_json()
