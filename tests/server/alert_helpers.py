"""Helpers of the alert tests: stored anomalous points, and a real webhook receiver on loopback."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from server.writes import PointsJob
from server_helpers import services_of


def store_point(app, source: str, anomalous: bool = True, severity: str | None = "high", **extra) -> dict:
    """Store one scored point through the real writer (PointsJob), as a tick or submit would."""
    point = {"source": source, "timestamp": 1.0, "values": {"value": 1.0},
             "score": 0.9 if anomalous else 0.1, "is_anomaly": anomalous,
             "severity": severity if anomalous else None, "detectors": {}, "fired": [],
             "expected": {}, "truth": None, "warming_up": False,
             "explanation": f"test point of {source}", **extra}
    return services_of(app).writer.write(PointsJob([point], tick=None, origin="submit"))[0]


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every JSON body POSTed to it.

    ``fail_next`` answers that many requests 500 first; ``hold`` (a threading.Event) makes
    every request wait until it is set (a receiver that hangs); ``delay`` seconds slow every
    answer down (a busy receiver).
    """

    def __init__(self, fail_next: int = 0, hold: threading.Event | None = None, delay: float = 0.0):
        self.bodies: list[dict] = []
        self.fail_next = fail_next
        self.hold = hold
        self.delay = delay
        self.requests = 0
        self.started = 0  # requests begun (a held one counts here before it is answered)
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.started += 1
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.requests += 1
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                    else:
                        receiver.bodies.append(json.loads(body))
                    receiver.arrived.notify_all()
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict]:
        """Wait until ``count`` bodies have arrived; return them."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout):
                raise AssertionError(f"{len(self.bodies)} of {count} webhook bodies within {timeout} s")
            return list(self.bodies)

    def alerts(self) -> list[dict]:
        with self.lock:
            return [a for body in self.bodies for a in body["alerts"]]

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


def receivers_file(tmp_path, receivers: list[dict], name: str = "receivers.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"receivers": receivers}))
    return str(path)
