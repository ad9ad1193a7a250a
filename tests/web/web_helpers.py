"""Shared parts of the dashboard's browser tests: the live server, page probes, JavaScript probes
and recipes that make anomalies happen deterministically."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "server"))

from live_server import LiveServer as ServerProcess  # noqa: E402
SCREENSHOTS = REPO / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TICK_INTERVAL = 0.5
LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 820, "height": 1180}


class LiveServer:
    """The real server (tests/server/live_server.py) with a fast tick and frequent anomalies.

    It can be killed and started again on the same port and database; it
    counts as up once /health says 200, i.e. the scheduler is ticking.
    """

    def __init__(self, workdir: Path, **settings):
        self.process = ServerProcess(workdir, database=workdir / "anomaly.db", settings={
            "TICK_INTERVAL": TICK_INTERVAL, "INJECTION_RATE": 0.05, "SEED": 7, "SYNCHRONOUS": "NORMAL",
            **settings})
        self.base_url = f"http://127.0.0.1:{self.process.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self, timeout: float = 40.0) -> None:
        self.process.start(timeout=timeout)
        deadline = time.monotonic() + timeout
        while self.process.get("/health")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not become healthy in {timeout} s:\n{self.process.log()}")
            time.sleep(0.2)

    def kill(self) -> None:
        """Stop the server abruptly, the way a crash or an OOM kill would."""
        self.process.kill()

    # Small API helpers used by several tests -------------------------------------------------

    def get(self, path: str, **params):
        response = requests.get(self.url(path), params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def submit(self, payload: dict) -> requests.Response:
        return requests.post(self.url("/api/submit"), json=payload, timeout=15)


class PageProbe:
    """What a page did that a test must know about: JavaScript dialogs and errors."""

    def __init__(self, page):
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


def open_dashboard(browser, server: LiveServer, viewport=LAPTOP, timeout=30000, **context_options):
    context = browser.new_context(viewport=viewport, **context_options)
    page = context.new_page()
    probe = PageProbe(page)
    page.goto(server.url("/"))
    # Generous: the machine is shared, and a loaded one takes seconds to start Chromium's page.
    page.wait_for_function("() => window.dashboard && window.dashboard.connection === 'live'", timeout=timeout)
    return context, page, probe


# Reads a chart back through the hook the page exposes (window.dashboard.charts[name]).
CHART_SNAPSHOT_JS = """(name) => {
  const chart = window.dashboard.charts[name];
  if (!chart) return null;
  return chart.data.datasets.map(d => ({
    role: d.role, label: d.label, n: d.data.length,
    ids: d.role === 'marker' ? d.data.map(p => p.id) : [],
    lastX: d.data.length ? d.data[d.data.length - 1].x : null,
  }));
}"""

LINE_POINTS_JS = """(name) => {
  const chart = window.dashboard.charts[name];
  if (!chart) return 0;
  const line = chart.data.datasets.find(d => d.role === 'line');
  return line ? line.data.length : 0;
}"""

LAST_X_JS = """(name) => {
  const line = window.dashboard.charts[name].data.datasets.find(d => d.role === 'line');
  return line.data.length ? line.data[line.data.length - 1].x : 0;
}"""

MARKER_IDS_JS = """(name) => {
  const chart = window.dashboard.charts[name];
  if (!chart) return [];
  return chart.data.datasets.filter(d => d.role === 'marker').flatMap(d => d.data.map(p => p.id));
}"""


def stream_config(body: dict, source: str) -> dict:
    """The config of ``source`` from a GET /api/configure answer ({source, config} or {streams})."""
    if "config" in body:
        return body["config"]
    return body["streams"][source]


def warm_up(server, source: str, seed: int, field_values=None, batch: int = 40, rounds: int = 8) -> list[dict]:
    """Feed ``source`` normal points (around 10, or around ``field_values``) until it stops warming up."""
    rng = np.random.default_rng(seed)
    results: list[dict] = []
    for _ in range(rounds):
        points = []
        for _ in range(batch):
            if field_values is None:
                points.append({"source": source, "value": float(10 + rng.normal(0, 0.5))})
            else:
                points.append({"source": source, "values": {
                    field: float(centre + rng.normal(0, 0.5)) for field, centre in field_values.items()}})
        response = server.submit({"points": points})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        if not results[-1]["warming_up"]:
            return results
    raise AssertionError(f"{source} still warming up after {batch * rounds} points")


def spike(server, source: str, values=None) -> dict:
    """Submit a far-out point to ``source`` and return the server's verdict, which is an anomaly.

    Should the engine score the spike under the stream's ensemble threshold, the test lowers that
    test stream's threshold just under the score (through POST /api/configure, as a user would)
    and submits the same spike again: the page is under test here, not the engine's calibration.
    """
    payload = {"source": source, "value": 1000.0} if values is None else {"source": source, "values": values}
    for _ in range(3):
        response = server.submit(payload)
        assert response.status_code == 200, response.text
        verdict = response.json()["results"][0]
        if verdict["is_anomaly"]:
            return verdict
        assert verdict["score"] > 0.05, f"the engine does not see the spike at all: {verdict}"
        configured = requests.post(server.url("/api/configure"), timeout=10, json={
            "source": source, "detector": "ensemble", "threshold": round(verdict["score"] * 0.9, 4)})
        assert configured.status_code == 200, configured.text
    raise AssertionError(f"{source}: the spike is never flagged: {verdict}")
