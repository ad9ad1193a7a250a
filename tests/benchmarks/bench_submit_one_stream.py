"""Large batches of ONE stream: request time, and whether the scheduler's ticks keep their pace.

Reproduces issue 7, defect 7: three clients each post 1,000-point batches of one
stream (the same stream, the worst case: its points cannot share engine steps)
to the real server (``python server.py``: gunicorn, one gevent worker) while the
scheduler ticks every ``--tick`` seconds.  Prints each request's time and the
ticks done against the ticks expected over the run; ``maximum number of running
instances`` lines in the server's log mean ticks were skipped.

    .venv/bin/python tests/benchmarks/bench_submit_one_stream.py
    .venv/bin/python tests/benchmarks/bench_submit_one_stream.py --seconds 30 --clients 3 --points 1000
"""
from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from live_server import LiveServer, http_json  # noqa: E402


def client_loop(port: int, worker: int, points: int, until: float, times: list, errors: list) -> None:
    rng = np.random.default_rng(worker)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        while time.monotonic() < until:
            body = json.dumps({"points": [{"source": "bench_one_stream", "value": float(v)}
                                          for v in rng.normal(50.0, 5.0, points)]}).encode()
            started = time.perf_counter()
            conn.request("POST", "/api/submit", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status == 200:
                times.append(elapsed)
            else:
                errors.append(response.status)
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--tick", type=float, default=2.0, help="ANOMALY_TICK_INTERVAL")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp), settings={"TICK_INTERVAL": args.tick,
                                                 "SYNCHRONOUS": "NORMAL"}).start()
        try:
            _, before = http_json(server.port, "GET", "/api/stats")
            started = time.monotonic()
            until = started + args.seconds
            times: list[float] = []
            errors: list[int] = []
            threads = [threading.Thread(target=client_loop,
                                        args=(server.port, i, args.points, until, times, errors))
                       for i in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
            _, after = http_json(server.port, "GET", "/api/stats")
            skipped = server.log().count("maximum number of running instances")
        finally:
            server.stop()

    ticks = after["tick"]["count"] - before["tick"]["count"]
    expected = elapsed / args.tick
    t = np.array(times) if times else np.array([np.nan])
    print(f"{args.clients} clients x {args.points}-point batches of one stream, tick every "
          f"{args.tick:g} s, {elapsed:.1f} s")
    print(f"requests: {len(times)} ok, {len(errors)} failed {sorted(set(errors))}; "
          f"time per request p50 {np.median(t):.2f} s, max {np.max(t):.2f} s; "
          f"points/s {len(times) * args.points / elapsed:,.0f}")
    print(f"ticks: {ticks} done, {expected:.1f} expected ({ticks / expected:.0%}); "
          f"tick p99 {after['tick']['p99_ms']} ms; skipped-run warnings in the log: {skipped}")


if __name__ == "__main__":
    main()
