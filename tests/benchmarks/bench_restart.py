"""Restart time of the real server to /health 200, with 10 and with 10,000 streams of learned state.

For each size: start the real server (``python server.py``: gunicorn, one
gevent worker) on a free port of 127.0.0.1 with a fresh database, give it its
streams (the nine built-in ones plus user streams created through
/api/submit, a few points each), stop it with SIGTERM (a graceful stop
writes the snapshot), then restart it several times: each restart is timed
from the launch of the process to the first ``/health`` answer 200 (polled
every 10 ms), and stopped again with SIGTERM.  Also printed: the snapshot's
size per stream, and whether the first tick after the last restart was out
of warm-up (so it could flag).

    .venv/bin/python tests/benchmarks/bench_restart.py
    .venv/bin/python tests/benchmarks/bench_restart.py --restarts 3 --sizes 10
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from live_server import LiveServer  # noqa: E402

BUILTIN = 9


def health_status(port: int) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status
        finally:
            conn.close()
    except OSError:
        return None


def time_to_health(server: LiveServer, timeout: float = 120.0) -> float:
    """Seconds from launching the server to its first /health 200."""
    started = time.monotonic()
    server.start(wait=False)
    while time.monotonic() - started < timeout:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited:\n{server.log()}")
        if health_status(server.port) == 200:
            return time.monotonic() - started
        time.sleep(0.01)
    raise RuntimeError(f"no /health 200 within {timeout} s:\n{server.log()}")


def add_user_streams(server: LiveServer, count: int, points_each: int) -> None:
    """``count`` user streams of one field, ``points_each`` points each, in batches of 1,000 points."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    try:
        for start in range(0, count, 1000):
            names = [f"user_{i}" for i in range(start, min(count, start + 1000))]
            for k in range(points_each):
                body = json.dumps({"points": [{"source": n, "value": 50.0 + (i + k) % 7}
                                              for i, n in enumerate(names)]})
                conn.request("POST", "/api/submit", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                text = response.read()
                if response.status != 200:
                    raise RuntimeError(f"submit answered {response.status}: {text[:300]!r}")
    finally:
        conn.close()


def first_tick_after_restart(server: LiveServer, since_id: int) -> dict | None:
    """The first cpu_usage point stored after ``since_id`` (waits up to 30 s for the first tick)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, points = server.get("/api/data/cpu_usage?limit=50")
        newer = [p for p in (points or {}).get("points", []) if p["id"] > since_id] if status == 200 else []
        if newer:
            return newer[0]
        time.sleep(0.05)
    return None


def wait_past_warmup(server: LiveServer, timeout: float = 300.0) -> None:
    """Wait until the built-in streams have learned past their warm-up (about 30 ticks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = server.get("/api/data/cpu_usage?limit=1")
        points = (body or {}).get("points", []) if status == 200 else []
        if points and not points[-1]["warming_up"]:
            return
        time.sleep(0.2)
    raise RuntimeError("the built-in streams did not finish warming up")


def last_point_id(server: LiveServer) -> int:
    status, body = server.get("/api/data/cpu_usage?limit=1")
    points = (body or {}).get("points", []) if status == 200 else []
    return points[-1]["id"] if points else 0


def run(size: int, restarts: int, workdir: Path) -> dict:
    user = max(0, size - BUILTIN)
    settings = {"TICK_INTERVAL": 0.2, "MAX_USER_STREAMS": max(100, user), "SYNCHRONOUS": "NORMAL",
                "SNAPSHOT_INTERVAL": 3600}
    server = LiveServer(workdir / f"size{size}", settings).start()
    try:
        add_user_streams(server, user, points_each=3)
        wait_past_warmup(server)
    finally:
        server.stop(timeout=120)
    snapshot = server.database.with_name(server.database.name + ".snapshot.npz")
    times, first = [], None
    for _ in range(restarts):
        server = LiveServer(server.workdir, settings, database=server.database)
        times.append(time_to_health(server))
        since = last_point_id(server)
        first = first_tick_after_restart(server, since)
        server.stop(timeout=120)
    return {"streams": size, "median_s": statistics.median(times), "max_s": max(times),
            "times": times, "snapshot_bytes": snapshot.stat().st_size if snapshot.exists() else None,
            "first_tick_warming_up": None if first is None else first["warming_up"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--restarts", type=int, default=7)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_restart_") as tmp:
        for size in args.sizes:
            rows.append(run(size, args.restarts, Path(tmp)))
            r = rows[-1]
            print(f"{size} streams: restarts {', '.join(f'{t:.2f}' for t in r['times'])} s", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print()
    print("| streams of state | restarts | median to /health 200 | max | snapshot | bytes per stream "
          "| first tick after restart warming up |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        size = r["snapshot_bytes"]
        snapshot = "none | -" if size is None else f"{size / 1e6:.1f} MB | {size / r['streams']:,.0f}"
        print(f"| {r['streams']:,} | {len(r['times'])} | {r['median_s']:.2f} s | {r['max_s']:.2f} s "
              f"| {snapshot} | {r['first_tick_warming_up']} |")


if __name__ == "__main__":
    main()
