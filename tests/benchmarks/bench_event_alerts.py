"""The alert step of a stored batch of events: how much of the writer thread's CPU it takes to open
one alert per anomalous subject when one 50,000-session upload holds N fraudulent sessions, each
by a different user (the worst case: every anomaly a new alert).

The app is built on a temporary database (scheduler off) and the file uploaded through the test
client, as tests/server/test_alerts_entity.py does; ``Alerts.events_stored`` is timed on the
writer thread with ``time.thread_time`` (that thread's CPU only, so other jobs on the machine
barely move it) beside its wall time.

    .venv/bin/python tests/benchmarks/bench_event_alerts.py [--frauds 300 3000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository (server package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server.alerts.service import Alerts  # noqa: E402
from server_helpers import build_app, shutdown_app  # noqa: E402

EVENTS = 50_000
HEADER = "session_id,user_id,charger_id,start_time,duration,energy,payment"


def sessions(frauds: int) -> bytes:
    """50,000 sessions of 20,000 users on 2,000 chargers; the first ``frauds`` are billing fraud."""
    rows = [f"s{i},U{i % 20000},C{i % 2000},2026-01-0{1 + i // 20000}T{(i // 1000) % 24:02d}:{i % 60:02d}:00Z,"
            f"60,{62 if i < frauds else 20},{0.5 if i < frauds else 8}" for i in range(EVENTS)]
    return (HEADER + "\n" + "\n".join(rows) + "\n").encode()


def measure(frauds: int) -> tuple[float, float, int, int]:
    """(writer CPU s, wall s, anomalies, open alerts) of the alert step of one upload."""
    spent = []
    original = Alerts.events_stored

    def timed(self, tx, schema, anomalies):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(self, tx, schema, anomalies)
        finally:
            spent.append((time.thread_time() - cpu, time.perf_counter() - wall, len(anomalies)))

    Alerts.events_stored = timed
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app = build_app(Path(tmp))
            try:
                client = app.test_client()
                answer = client.post("/api/upload?schema=ev_charging&limit=1", data=sessions(frauds),
                                     content_type="text/csv")
                assert answer.status_code == 200, answer.get_json()
                opened = client.get("/api/incidents?limit=1").get_json()["open"]["firing"]
            finally:
                shutdown_app(app)
    finally:
        Alerts.events_stored = original
    cpu = sum(s[0] for s in spent)
    wall = sum(s[1] for s in spent)
    return cpu, wall, sum(s[2] for s in spent), opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frauds", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; one upload of {EVENTS:,} sessions per run")
    print("| anomalies | alerts opened | writer CPU ms (median) | wall ms (median) | CPU us per alert |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for frauds in args.frauds:
        runs = sorted(measure(frauds) for _ in range(args.repeat))
        cpu, wall, anomalies, opened = runs[len(runs) // 2]
        print(f"| {anomalies:,} | {opened:,} | {cpu * 1000:.0f} | {wall * 1000:.0f} | "
              f"{cpu * 1e6 / max(opened, 1):.0f} |")


if __name__ == "__main__":
    import logging

    logging.disable(logging.INFO)
    main()
