"""The page survives a server crash: it shows the outage, reconnects by itself and fills the gap."""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from web_helpers import LAST_X_JS, LINE_POINTS_JS, SCREENSHOTS, LiveServer

GAP_SOURCE = "web_gap"


@pytest.fixture
def live_server(tmp_path):
    """A server of this test's own (conftest's ``dashboard`` opens the page on it): it is killed
    and restarted, and the user streams other tests leave on the shared one would put this
    test's stream in a paged list without a chart."""
    server = LiveServer(tmp_path)
    server.start()
    yield server
    server.kill()


def test_reconnects_after_server_restart_and_fills_the_gap(dashboard, live_server):
    page, _ = dashboard
    assert live_server.submit({"source": GAP_SOURCE, "value": 1.0}).status_code == 200
    page.wait_for_function(f"(n) => ({LINE_POINTS_JS})(n) >= 1", arg=GAP_SOURCE, timeout=10000)
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", "live")

    live_server.kill()
    expect(connection).not_to_have_attribute("data-state", "live", timeout=10000)
    expect(connection).to_contain_text("connect")  # "Reconnecting…" or "Disconnected"
    expect(page.locator("#stat-server [data-role=value]")).to_have_text("Offline", timeout=10000)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard-disconnected.png"))

    # Keep the page off the stream while the server comes back, so points are produced in a gap
    # the page can only learn about by resuming from its last event id.
    page.route("**/api/stream/**", lambda route: route.abort())
    live_server.start()
    gap_points = []
    for value in (2.0, 3.0, 4.0):
        response = live_server.submit({"source": GAP_SOURCE, "value": value})
        assert response.status_code == 200, response.text
        gap_points.append(response.json()["results"][0]["id"])
    time.sleep(0.5)
    assert page.evaluate(
        "([n, ids]) => window.dashboard.charts[n].data.datasets.find(d => d.role === 'line')"
        ".data.length", [GAP_SOURCE, gap_points]) == 1
    expect(connection).not_to_have_attribute("data-state", "live")

    page.unroute("**/api/stream/**")
    expect(connection).to_have_attribute("data-state", "live", timeout=30000)
    # The missed points arrive (replay from Last-Event-ID and the re-fetch of the window).
    page.wait_for_function(f"(n) => ({LINE_POINTS_JS})(n) >= 4", arg=GAP_SOURCE, timeout=10000)
    assert page.evaluate(
        "(n) => window.dashboard.charts[n].data.datasets.find(d => d.role === 'line').data.map(p => p.y)",
        GAP_SOURCE) == [1.0, 2.0, 3.0, 4.0]
    # And live data flows again.
    before = page.evaluate(LAST_X_JS, "cpu_usage")
    page.wait_for_function(f"([n, x]) => ({LAST_X_JS})(n) > x", arg=["cpu_usage", before], timeout=10000)
    expect(page.locator("#stat-server [data-role=value]")).to_have_text("Online", timeout=10000)
