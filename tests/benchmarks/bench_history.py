"""GET /api/history/<source>: how long an answer takes, raw and bucketed, as a stream's stored
points grow.  Prints the median and worst of repeated requests per size, and the answer's bytes.

The points are stored through the real writer (PointsJob: the same rows a tick or a submit
writes), spread over a week by their own timestamps, on a real SQLite file in WAL; requests go
through the Flask test client (no network), so the figures are the query, the aggregation and
the JSON encoding.

    .venv/bin/python tests/benchmarks/bench_history.py [--sizes 10000,100000] [--repeat 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository (server package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server.writes import PointsJob  # noqa: E402
from server_helpers import build_app, services_of, shutdown_app  # noqa: E402

WEEK = 7 * 86400.0


def store(app, source: str, count: int, start: float) -> None:
    rng = np.random.default_rng(1)
    stamps = np.sort(start + rng.uniform(0, WEEK, count))
    values = 10 + rng.normal(0, 1, count)
    flagged = rng.random(count) < 0.01
    writer = services_of(app).writer
    for first in range(0, count, 5000):
        points = [{"source": source, "timestamp": float(t), "values": {"value": float(v)},
                   "score": 0.9 if f else 0.1, "is_anomaly": bool(f), "severity": "high" if f else None,
                   "detectors": {}, "fired": [], "expected": {}, "truth": None, "warming_up": False,
                   "explanation": None}
                  for t, v, f in zip(stamps[first:first + 5000], values[first:first + 5000],
                                     flagged[first:first + 5000])]
        writer.write(PointsJob(points, tick=None, origin="submit"), timeout=120)


def timed(client, url: str, repeat: int) -> tuple[list[float], int, str]:
    seconds, size, resolution = [], 0, ""
    for _ in range(repeat):
        began = time.perf_counter()
        answer = client.get(url)
        seconds.append(time.perf_counter() - began)
        assert answer.status_code == 200, answer.get_json()
        size, resolution = len(answer.data), answer.get_json()["resolution"]
    return seconds, size, resolution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="points stored per run, comma-separated")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    start = time.time() - WEEK
    print(f"{'points':>8} {'range':>6} {'answer':>8} {'median ms':>10} {'max ms':>8} {'bytes':>9}")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            app = build_app(Path(folder), RETENTION_POINTS=size, MAX_USER_STREAMS=10)
            try:
                client = app.test_client()
                client.post("/api/submit", json={"source": "bench", "value": 1.0})  # a user stream
                store(app, "bench", size, start)
                for label, span in (("1 h", 3600.0), ("24 h", 86400.0), ("7 d", WEEK)):
                    url = f"/api/history/bench?from={start + WEEK - span}&to={start + WEEK}"
                    seconds, length, resolution = timed(client, url, args.repeat)
                    print(f"{size:>8} {label:>6} {resolution:>8} {statistics.median(seconds) * 1000:>10.1f} "
                          f"{max(seconds) * 1000:>8.1f} {length:>9}")
            finally:
                shutdown_app(app)


if __name__ == "__main__":
    main()
