"""Anomaly -> webhook received: how long from submitting an anomalous point to the real server
(gunicorn, one gevent worker) until a webhook receiver on loopback holds its Alertmanager
notification.  Prints p50/p99/max.

Each measured alert is a new record on its own warmed-up user stream (one flag, one alert,
firing at once with ALERT_FOR=0); the clock starts before the submit is sent and stops when
the receiver has parsed the body naming that stream.  The scheduler ticks the nine built-in
streams meanwhile (TICK_INTERVAL 0.5 s), so their alerts share the receiver.

    .venv/bin/python tests/benchmarks/bench_alert_delivery.py [--alerts 100]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository (server package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from alert_helpers import WebhookReceiver, receivers_file  # noqa: E402
from live_server import LiveServer, http_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100, help="alerts measured (one stream each)")
    args = parser.parse_args()

    receiver = WebhookReceiver()
    arrived: dict[str, float] = {}
    seen = 0

    def watch():
        nonlocal seen
        while True:
            with receiver.arrived:
                receiver.arrived.wait_for(lambda: len(receiver.bodies) > seen, 1.0)
                bodies = receiver.bodies[seen:]
                seen = len(receiver.bodies)
            now = time.perf_counter()
            for body in bodies:
                for alert in body["alerts"]:
                    if alert["status"] == "firing":
                        arrived.setdefault(alert["labels"]["stream"], now)

    threading.Thread(target=watch, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"ALERT_RECEIVERS": receivers_file(Path(tmp), [
                        {"name": "bench", "kind": "webhook", "url": receiver.url}]),
                    "ALERT_KEEP_FIRING_FOR": 0, "TICK_INTERVAL": 0.5,
                    "MAX_USER_STREAMS": args.alerts}
        server = LiveServer(Path(tmp) / "run", settings=settings).start()
        try:
            names = [f"bench{i}" for i in range(args.alerts)]
            warm = [{"source": n, "value": float(k % 3)} for n in names for k in range(40)]
            for start in range(0, len(warm), 1000):
                status, body = http_json(server.port, "POST", "/api/submit",
                                         {"points": warm[start:start + 1000]}, timeout=300)
                assert status == 200, body
            latencies, missing = [], 0
            for name in names:
                sent = time.perf_counter()
                status, body = http_json(server.port, "POST", "/api/submit",
                                         {"source": name, "value": 1e6}, timeout=60)
                assert status == 200 and body["results"][0]["is_anomaly"], body
                deadline = time.monotonic() + 10
                while name not in arrived and time.monotonic() < deadline:
                    time.sleep(0.0005)
                if name in arrived:
                    latencies.append((arrived[name] - sent) * 1000)
                else:
                    missing += 1
            ms = np.array(latencies)
            print(f"anomaly -> webhook received, {len(ms)} alerts ({missing} not received within 10 s):"
                  f" p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms,"
                  f" max {ms.max():.1f} ms (submit answered in the same clock; SYNCHRONOUS=FULL)")
        finally:
            server.stop()
            receiver.close()


if __name__ == "__main__":
    main()
