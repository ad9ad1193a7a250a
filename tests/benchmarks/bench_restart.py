"""Restart time of the real server to /health 200, with 10 and with 10,000 streams of learned state.

For each size: start the real server (``python server.py``: gunicorn, one
gevent worker) on a free port of 127.0.0.1 with a fresh database, give it its
streams (the nine built-in ones plus user streams created through
/api/submit, a few points each), stop it with SIGTERM (a graceful stop
writes the snapshot), then restart it several times.  Each restart is timed
from the launch of the process

- to the first ``/health`` answer 200 (polled every 10 ms; the worker answers
  it while the engine is still being restored, with ``"ready": false``), with
  the CPU seconds the server's processes (gunicorn's master and its worker)
  had used by then, a figure that other load on the machine inflates less;
- to ready: the first tick after the restart stored (the engine is restored,
  the scheduler started and the tick scored), read from the database file;

then stopped again with SIGTERM.  Also printed: the snapshot's size per
stream, and whether the first tick after the last restart was out of warm-up
(so it could flag).

The server writes its bytecode cache like any installed one (``make run``):
``PYTHONDONTWRITEBYTECODE``, which some shells and containers set, is removed
from its environment unless ``--no-bytecode-cache`` is given, in which case
every start compiles the repository's modules again (about 0.2 s).

    .venv/bin/python tests/benchmarks/bench_restart.py
    .venv/bin/python tests/benchmarks/bench_restart.py --restarts 3 --sizes 10
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from live_server import LiveServer, cpu_seconds  # noqa: E402

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


def time_to_health(server: LiveServer, timeout: float = 120.0) -> tuple[float, float]:
    """Seconds from launching the server to its first /health 200, and the CPU seconds it had used."""
    started = time.monotonic()
    server.start(wait=False)
    while time.monotonic() - started < timeout:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited:\n{server.log()}")
        if health_status(server.port) == 200:
            return time.monotonic() - started, cpu_seconds(server.process.pid, group=True)
        time.sleep(0.01)
    raise RuntimeError(f"no /health 200 within {timeout} s:\n{server.log()}")


def last_tick_point(database: Path) -> int:
    """The id of the last point a tick stored (0 if none), read from the database file."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT max(id) FROM points WHERE tick IS NOT NULL").fetchone()
        return int(row[0] or 0)
    finally:
        conn.close()


def time_to_first_tick(server: LiveServer, since: int, launched: float, timeout: float = 120.0) -> float:
    """Seconds from ``launched`` until a tick stores a point after ``since`` (polled every 10 ms)."""
    while time.monotonic() - launched < timeout:
        if last_tick_point(server.database) > since:
            return time.monotonic() - launched
        time.sleep(0.01)
    raise RuntimeError(f"no tick within {timeout} s of the restart:\n{server.log()}")


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
    times, cpus, ready, first = [], [], [], None
    for _ in range(restarts):
        server = LiveServer(server.workdir, settings, database=server.database)
        since = last_tick_point(server.database)
        launched = time.monotonic()
        health_s, cpu_s = time_to_health(server)
        times.append(health_s)
        cpus.append(cpu_s)
        ready.append(time_to_first_tick(server, since, launched))
        first = first_tick_after_restart(server, since)
        server.stop(timeout=120)
    return {"streams": size, "median_s": statistics.median(times), "max_s": max(times),
            "times": times, "cpu_s": statistics.median(cpus), "ready": ready,
            "ready_s": statistics.median(ready),
            "snapshot_bytes": snapshot.stat().st_size if snapshot.exists() else None,
            "first_tick_warming_up": None if first is None else first["warming_up"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--restarts", type=int, default=7)
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE (every start compiles the modules again)")
    args = parser.parse_args()
    if not args.no_bytecode_cache:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"bytecode cache: {'off' if os.environ.get('PYTHONDONTWRITEBYTECODE') else 'on'}")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_restart_") as tmp:
        for size in args.sizes:
            rows.append(run(size, args.restarts, Path(tmp)))
            r = rows[-1]
            print(f"{size} streams: to /health 200 {', '.join(f'{t:.2f}' for t in r['times'])} s; "
                  f"to ready (first tick scored) {', '.join(f'{t:.2f}' for t in r['ready'])} s", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print()
    print("| streams of state | restarts | median to /health 200 | max | CPU to /health 200 "
          "| median to ready (first tick scored) | snapshot | bytes per stream "
          "| first tick after restart warming up |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        size = r["snapshot_bytes"]
        snapshot = "none | -" if size is None else f"{size / 1e6:.1f} MB | {size / r['streams']:,.0f}"
        print(f"| {r['streams']:,} | {len(r['times'])} | {r['median_s']:.2f} s | {r['max_s']:.2f} s "
              f"| {r['cpu_s']:.2f} s | {r['ready_s']:.2f} s | {snapshot} | {r['first_tick_warming_up']} |")


if __name__ == "__main__":
    main()
