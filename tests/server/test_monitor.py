"""The monitor: concurrent submits are scored together; ticks carry every built-in stream."""
from __future__ import annotations

import threading

import pytest

from server.validation import InvalidRequest, parse_submit
from server_helpers import services_of, wait_for


def test_concurrent_submits_share_one_engine_step(app, monkeypatch):
    monitor = services_of(app).monitor
    steps = []
    real_step = monitor.engine.step
    monkeypatch.setattr(monitor.engine, "step", lambda points: steps.append(sorted(points)) or real_step(points))
    monitor.submit(parse_submit({"source": "m0", "values": {"a": 1.0, "b": 2.0}}, 10))
    steps.clear()

    bodies = [{"source": f"m{i}", "value": float(i)} for i in range(1, 7)]
    bodies.insert(3, {"source": "m0", "values": {"a": 1.0}})  # wrong fields: refused alone
    outcomes: dict[int, object] = {}

    def submit(n: int, body: dict) -> None:
        try:
            outcomes[n] = monitor.submit(parse_submit(body, 10))
        except InvalidRequest as exc:
            outcomes[n] = exc

    with monitor._lock:  # the engine is busy: every call queues up behind it
        threads = [threading.Thread(target=submit, args=(n, b)) for n, b in enumerate(bodies)]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(monitor._submits) == len(bodies))
    for thread in threads:
        thread.join(10)

    assert steps == [[f"m{i}" for i in range(1, 7)]]  # one vectorised step for six streams
    assert isinstance(outcomes[3], InvalidRequest) and "takes fields" in str(outcomes[3])
    ids = []
    for n, body in enumerate(bodies):
        if n == 3:
            continue
        (point,) = outcomes[n]
        assert point["source"] == body["source"] and point["values"] == {"value": body["value"]}
        ids.append(point["id"])
    assert len(set(ids)) == 6


def test_a_batch_feeds_repeated_sources_in_rounds(app, monkeypatch):
    monitor = services_of(app).monitor
    steps = []
    real_step = monitor.engine.step
    real_block = monitor.engine.step_block
    monkeypatch.setattr(monitor.engine, "step", lambda points: steps.append(sorted(points)) or real_step(points))
    monkeypatch.setattr(monitor.engine, "step_block",
                        lambda name, values, fields=None: steps.append([name] * len(values))
                        or real_block(name, values, fields))
    body = {"points": [{"source": "r1", "value": 1}, {"source": "r1", "value": 2},
                       {"source": "r2", "value": 3}, {"source": "r1", "value": 4}]}
    results = monitor.submit(parse_submit(body, 10))
    # Round 1 holds both streams (one step); rounds 2 and 3 hold only r1: one block of two points.
    assert steps == [["r1", "r2"], ["r1", "r1"]]
    assert [r["values"]["value"] for r in results] == [1, 2, 3, 4]
    r1_ids = [r["id"] for r in results if r["source"] == "r1"]
    assert r1_ids == sorted(r1_ids)  # a stream's points are scored (and stored) in order


def test_every_tick_scores_all_nine_streams_in_one_step(app, monkeypatch):
    monitor = services_of(app).monitor
    steps = []
    real_step = monitor.engine.step
    monkeypatch.setattr(monitor.engine, "step", lambda points: steps.append(len(points)) or real_step(points))
    points = monitor.tick()
    assert steps == [9] and len(points) == 9
    assert all(p["truth"] is not None and p["explanation"] for p in points)
    assert monitor.tick_count == 1 and monitor.tick_stats()["count"] == 1


@pytest.mark.parametrize("limit", [0, 1])
def test_user_stream_limit_counts_streams_planned_in_the_same_batch(make_app, limit):
    app = make_app(MAX_USER_STREAMS=limit)
    monitor = services_of(app).monitor
    body = {"points": [{"source": "u1", "value": 1}, {"source": "u2", "value": 2}]}
    with pytest.raises(InvalidRequest, match=f"limit of {limit} user streams"):
        monitor.submit(parse_submit(body, 10))
