"""Throughput and latency of POST /api/submit, with the durability guarantee on.

Starts the real server (``python server.py``: gunicorn, one gevent worker,
``ANOMALY_SYNCHRONOUS=FULL``: every answered submit is fsynced) on a free port
of 127.0.0.1, with the scheduler ticking at its default pace, and runs a few
bounded scenarios from this process (gevent greenlets, keep-alive HTTP/1.1
connections): single points one at a time, single points from concurrent
clients (their commits are grouped), and batches.

    .venv/bin/python tests/benchmarks/bench_submit.py
    .venv/bin/python tests/benchmarks/bench_submit.py --seconds 3 --synchronous NORMAL
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from live_server import LiveServer  # noqa: E402

#: (name, concurrent clients, points per request, streams per request).  A batch is scored in
#: rounds, one engine step per round holding one point of each stream, so 100 points over 100
#: streams cost one step and 100 points over 10 streams cost ten.
SCENARIOS = [
    ("single, 1 client", 1, 1, 1),
    ("single, 16 clients", 16, 1, 1),
    ("100 pts/10 streams, 1 client", 1, 100, 10),
    ("100 pts/100 streams, 1 client", 1, 100, 100),
    ("100 pts/100 streams, 4 clients", 4, 100, 100),
    ("1000 pts/100 streams, 2 clients", 2, 1000, 100),
]


def body_for(worker: int, points: int, streams: int, rng: np.random.Generator) -> bytes:
    values = rng.normal(50.0, 5.0, points)
    if points == 1:  # every client its own stream
        return json.dumps({"source": f"bench_single_{worker}", "value": float(values[0])}).encode()
    # Batches share streams bench_0 .. bench_<streams-1>.
    return json.dumps({"points": [{"source": f"bench_{i % streams}", "value": float(v)}
                                  for i, v in enumerate(values)]}).encode()


def client_loop(port: int, worker: int, points: int, streams: int, until: float,
                latencies: list, errors: list) -> None:
    rng = np.random.default_rng(worker)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        while time.monotonic() < until:
            body = body_for(worker, points, streams, rng)
            started = time.perf_counter()
            conn.request("POST", "/api/submit", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                errors.append(f"{response.status}: {payload[:200]!r}")
                continue
            latencies.append(elapsed)
    finally:
        conn.close()


def run(server: LiveServer, name: str, clients: int, points: int, streams: int,
        seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    before = server.get("/api/stats")[1]["writer"]
    started = time.monotonic()
    until = started + seconds
    greenlets = [gevent.spawn(client_loop, server.port, i, points, streams, until,
                              latencies, errors) for i in range(clients)]
    gevent.joinall(greenlets)
    elapsed = time.monotonic() - started
    after = server.get("/api/stats")[1]["writer"]
    lat = np.array(latencies) if latencies else np.array([np.nan])
    jobs, batches = after["jobs"] - before["jobs"], after["batches"] - before["batches"]
    return {"name": name, "requests": len(latencies), "points": len(latencies) * points,
            "points_per_s": len(latencies) * points / elapsed,
            "requests_per_s": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "jobs_per_commit": jobs / batches if batches else float("nan"),
            "errors": len(errors), "first_error": errors[0] if errors else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each scenario")
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    args = parser.parse_args()
    if args.seconds > 60:
        parser.error("bounded benchmark: at most 60 s per scenario")
    workdir = Path(tempfile.mkdtemp(prefix="bench-submit-"))
    server = LiveServer(workdir, {"SYNCHRONOUS": args.synchronous, "MAX_USER_STREAMS": 1000}).start()
    try:
        results = [run(server, name, clients, points, streams, args.seconds)
                   for name, clients, points, streams in SCENARIOS]
    finally:
        server.stop()
    print(f"/api/submit, synchronous={args.synchronous}, {args.seconds:g} s per scenario, "
          f"scheduler ticking every 2 s, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'scenario':<32} {'requests':>8} {'points/s':>9} {'req/s':>7} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'jobs/commit':>11} {'errors':>6}")
    for r in results:
        print(f"{r['name']:<32} {r['requests']:>8} {r['points_per_s']:>9.0f} {r['requests_per_s']:>7.1f} "
              f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['jobs_per_commit']:>11.1f} {r['errors']:>6}")
        if r["first_error"]:
            print("   first error:", r["first_error"])
    print(json.dumps(results))


if __name__ == "__main__":
    main()
