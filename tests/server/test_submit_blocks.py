"""A submitted batch of one stream is scored as blocks on the detectors' fast path: the same verdicts as one by one."""
from __future__ import annotations

import numpy as np

from server_helpers import build_app, services_of, shutdown_app


def _series(n: int = 400) -> list[float]:
    rng = np.random.default_rng(11)
    x = 50 + 5 * np.sin(np.arange(n) / 9) + rng.normal(0, 1, n)
    x[250] += 40  # a spike, so an episode and an alert happen inside the batch
    x[320:330] -= 25  # and a level shift
    return [float(v) for v in x]


def _verdicts(points: list[dict]) -> tuple[np.ndarray, list, list, list]:
    return (np.array([p["score"] for p in points]), [p["is_anomaly"] for p in points],
            [p["alert"] for p in points], [p["severity"] for p in points])


def test_one_request_of_many_points_scores_as_one_point_per_request(tmp_path):
    values = _series()
    batched = build_app(tmp_path / "batched")
    single = build_app(tmp_path / "single")
    engine = services_of(batched).monitor.engine
    blocks: list[int] = []
    block, step = engine.step_block, engine.step
    engine.step_block = lambda name, values, fields=None: blocks.append(len(values)) or block(name, values, fields)
    # A slice that ends one point before the series does leaves that point to a plain step.
    stepped: list[int] = []
    engine.step = lambda points, *args, **kwargs: stepped.append(len(points)) or step(points, *args, **kwargs)
    try:
        answer = batched.test_client().post("/api/submit", json={"points": [
            {"source": "pump", "value": v, "timestamp": 1_700_000_000 + i} for i, v in enumerate(values)]})
        assert answer.status_code == 200, answer.get_json()
        one_by_one = []
        client = single.test_client()
        for i, v in enumerate(values):
            reply = client.post("/api/submit", json={"source": "pump", "value": v, "timestamp": 1_700_000_000 + i})
            assert reply.status_code == 200, reply.get_json()
            one_by_one.extend(reply.get_json()["results"])
        got, expected = _verdicts(answer.get_json()["results"]), _verdicts(one_by_one)
        np.testing.assert_allclose(got[0], expected[0], rtol=0, atol=1e-9)
        assert got[1:] == expected[1:]
        assert sum(blocks) + sum(stepped) == len(values) and max(blocks) > 1, (blocks, stepped)
        assert any(got[2]), "the series should raise an alert, or the test proves little"
    finally:
        shutdown_app(batched)
        shutdown_app(single)
