"""The alerts page with many alerts: an upload of EV sessions opens one alert per user, the page
groups them by stream (automatically past 30), by stream and entity on request, and an event
alert's Sessions button opens the EV view on its entity -- against the real server."""
from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from web_helpers import LiveServer

HEADER = "session_id,user_id,charger_id,start_time,duration,energy,payment"
FRAUDS = 40


@pytest.fixture
def live_server(tmp_path):
    """A server of this test's own, without the built-in EV feed, so that the only EV alerts are
    this file's (conftest's ``dashboard`` opens the page on it)."""
    server = LiveServer(tmp_path, EV_FEED=False)
    server.start()
    yield server
    server.kill()


def upload_sessions(server) -> None:
    rows = [f"g{i},W{i},K{i},2026-01-01T0{i % 10}:{i:02d}:00Z,60,62,0.5" for i in range(FRAUDS)]
    rows += [f"b{i},W3,K9,2026-01-02T09:{10 * i:02d}:00Z,2,0.5,0.2" for i in range(3)]  # a DoS burst
    response = requests.post(server.url("/api/upload?schema=ev_charging"), timeout=30,
                             data=("\n".join([HEADER, *rows]) + "\n").encode(),
                             headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    alerts = server.get("/api/incidents", stream="ev_charging", state="firing", limit=1000)["alerts"]
    assert len(alerts) == FRAUDS + 1, [(a["entity"], a["type"]) for a in alerts]


def test_many_alerts_are_grouped_and_an_event_alert_opens_its_sessions(dashboard, live_server):
    page, _ = dashboard
    upload_sessions(live_server)
    page.goto(live_server.url("/#alerts"))
    ev_rows = page.locator("#alerts-table tbody tr.alert-row", has_text="ev_charging / user_id=W")
    header = page.locator('#alerts-table tr.alert-group[data-group="ev_charging"]')

    # automatic: more than 30 firing, so grouped by stream; a group of more than 10 starts closed
    expect(header).to_have_count(1, timeout=15000)
    expect(header).to_contain_text(f"ev_charging — {FRAUDS + 1} alerts, worst critical")
    expect(header.locator("button")).to_have_attribute("aria-expanded", "false")
    expect(ev_rows).to_have_count(0)
    header.locator("button").click()
    expect(header.locator("button")).to_have_attribute("aria-expanded", "true")
    expect(ev_rows).to_have_count(FRAUDS + 1)
    header.locator("button").click()
    expect(ev_rows).to_have_count(0)

    # a text filter opens the groups it leaves
    page.fill("#alerts-search", "dos_attack")
    expect(ev_rows).to_have_count(1)  # W3's DoS attack, shown though its group was closed
    page.fill("#alerts-search", "")

    # by stream and entity: one group per user, W3's holding both of its alerts (open: small)
    page.select_option("#alerts-group", "subject")
    w3 = page.locator('#alerts-table tr.alert-group[data-group="ev_charging / user_id=W3"]')
    expect(w3).to_contain_text("2 alerts, worst critical")
    expect(w3.locator("button")).to_have_attribute("aria-expanded", "true")
    dos = page.locator("#alerts-table tbody tr.alert-row", has_text="dos_attack").filter(has_text="W3")
    expect(dos).to_have_count(1)
    w3.locator("button").click()
    expect(dos).to_have_count(0)
    w3.locator("button").click()
    expect(dos).to_have_count(1)
    expect(dos.locator("[data-action=history]")).to_have_count(0)  # events have no history chart

    # an event alert's sessions: the EV view, searching that user, on that type's tab
    dos.locator("[data-action=sessions]").click()
    expect(page.locator("#ev-view")).to_be_visible()
    expect(page.locator("#ev-search")).to_have_value("W3")
    assert page.evaluate("() => window.AnomalyWatch.ev.store.state.type") == "dos_attack"
    expect(page.locator("#ev-table tbody tr", has_text="W3")).to_have_count(3, timeout=15000)

    # no grouping: every alert a row again
    page.goto(live_server.url("/#alerts"))
    page.select_option("#alerts-group", "none")
    expect(page.locator("#alerts-table tr.alert-group")).to_have_count(0)
    expect(ev_rows).to_have_count(FRAUDS + 1)
