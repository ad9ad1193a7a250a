"""Ingest on the real server: ``POST /api/upload`` of a generated CSV, timed by an SSE client.

Starts the real server (``python server.py``: gunicorn, one gevent worker) on a free port with
its own database, the EV feed off and the 0.2 s tick on, writes a CSV of EV charging sessions
(``bench_ingest.write_sessions``: by default 200,000 sessions over 100,000 users and 10,000
chargers, untimed), then posts it whole as ``text/csv`` while one SSE client on
``/api/stream/anomalies`` records every push it receives.  A small upload of other users goes
first (``--warmup``) so the timed one does not pay the server's first import of pandas and
the schemas.  Printed, per run:

- events/s end to end: the sessions over the time from the request's first byte to the SSE
  client's receipt of the import's last ``events`` push (every stored event is in one);
- the answer's own ``seconds`` (the import as the server timed it) and the response time;
- batch pushes: the gap between consecutive ``events`` pushes of the import, and from the
  request's end to the first one (an event waits at most about one gap beyond its batch's
  scoring start); p50 / p99 / max;
- tick pushes during the import: receipt minus ``published_at``, p50 / p99 / max (live pushes
  held up by the import);
- the server's CPU seconds over the upload (its processes' user + system time), per event.

    .venv/bin/python tests/benchmarks/bench_upload.py
    .venv/bin/python tests/benchmarks/bench_upload.py --runs 3 --events 200000 --users 100000
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests" / "server"))
sys.path.insert(0, str(HERE))
from bench_ingest import write_sessions  # noqa: E402
from live_server import LiveServer, SseClient, cpu_seconds, upload_csv  # noqa: E402


class Pushes:
    """What the SSE client received: ``events`` pushes (receipt, count, origin) and tick latencies."""

    def __init__(self, port: int):
        self.client = SseClient(port, timeout=300)
        self.batches: list[tuple[float, int, str]] = []
        self.tick_ms: list[tuple[float, float]] = []  # (receipt s, receipt - published ms)
        self.stop = False
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while not self.stop:
                event = self.client.next_event()
                now = time.perf_counter()
                data = event["data"]
                if event["event"] == "events":
                    self.batches.append((now, int(data["count"]), data["origin"]))
                elif event["event"] == "tick":
                    self.tick_ms.append((now, event["received_ms"] - data["published_at"]))
        except Exception as exc:  # noqa: BLE001 -- reported by the run
            if not self.stop:
                self.error = exc

    def close(self) -> None:
        self.stop = True
        self.client.close()
        self.thread.join(5)


def post_csv(port: int, body: bytes, timeout: float = 600) -> dict:
    status, answer = upload_csv(port, body, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"upload answered {status}: {answer}")
    return answer


def spread(values) -> str:
    if not len(values):
        return "none"
    values = np.asarray(values, dtype=float)
    return (f"p50 {np.percentile(values, 50):.3f} p99 {np.percentile(values, 99):.3f} "
            f"max {values.max():.3f}")


def run_once(workdir: Path, body: bytes, warmup: bytes | None, events: int, switch_interval: float | None):
    settings = {"EV_FEED": "false", "TICK_INTERVAL": 0.2}
    if switch_interval is not None:
        settings["THREAD_SWITCH_INTERVAL"] = switch_interval
    server = LiveServer(workdir, settings).start()
    pushes = None
    try:
        if warmup is not None:
            post_csv(server.port, warmup)
        pushes = Pushes(server.port)
        time.sleep(1.0)  # the client is registered and has had ticks
        load = os.getloadavg()[0]
        cpu = cpu_seconds(server.process.pid, group=True)
        started = time.perf_counter()
        summary = post_csv(server.port, body)
        answered = time.perf_counter()
        cpu = cpu_seconds(server.process.pid, group=True) - cpu
        origin = summary["origin"]
        deadline = time.monotonic() + 30
        while sum(c for _, c, o in pushes.batches if o == origin) < summary["events"]:
            if pushes.error or time.monotonic() > deadline:
                raise RuntimeError(f"the import's pushes did not all arrive: {pushes.error!r}")
            time.sleep(0.01)
        mine = [t for t, _, o in pushes.batches if o == origin]
        last = mine[-1]
        gaps = np.diff([started, *mine])
        ticks = [ms for t, ms in pushes.tick_ms if started <= t <= last]
        return {"events": summary["events"], "wall": last - started, "answered": answered - started,
                "server_s": summary["seconds"], "cpu": cpu, "batches": len(mine), "first": gaps[0],
                "gaps": gaps[1:], "ticks": ticks, "load": (load, os.getloadavg()[0])}
    finally:
        if pushes is not None:
            pushes.close()
        server.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=6.0)
    parser.add_argument("--runs", type=int, default=1, help="server starts, one timed upload each")
    parser.add_argument("--warmup", type=int, default=1000,
                        help="sessions of other users uploaded first, untimed (0: none)")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="the server's THREAD_SWITCH_INTERVAL, s (default its own)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "sessions.csv"
        write_sessions(path, args.events, args.users, args.chargers, args.days)
        body = path.read_bytes()
        warmup = None
        if args.warmup:
            # Other users and chargers, days before the timed file: its entities start fresh.
            small = tmp / "warmup.csv"
            write_sessions(small, args.warmup, max(1, args.warmup // 2), 10, 1.0, seed=1)
            warmup = small.read_bytes().replace(b",U", b",W").replace(b",C", b",D").replace(b"\nS", b"\nw")
        print(f"{args.events:,} sessions, {args.users:,} users, {args.chargers:,} chargers, "
              f"{len(body) / 2**20:.0f} MiB CSV as text/csv; warm-up upload of {args.warmup:,}")
        for run in range(args.runs):
            r = run_once(tmp / f"run{run}", body, warmup, args.events, args.switch_interval)
            n = r["events"]
            print(f"run {run + 1}: {n / r['wall']:,.0f} events/s end to end ({r['wall']:.2f} s to the last push; "
                  f"answered at {r['answered']:.2f} s, the server's import {r['server_s']:.2f} s), "
                  f"server CPU {r['cpu']:.2f} s ({r['cpu'] / n * 1e6:.1f} us/event), load average "
                  f"{r['load'][0]:.2f} -> {r['load'][1]:.2f}")
            print(f"  {r['batches']} batch pushes: request -> first {r['first']:.3f} s; "
                  f"between batches (s) {spread(r['gaps'])}")
            print(f"  tick pushes during the import, received - published (ms): {spread(r['ticks'])} "
                  f"over {len(r['ticks'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
