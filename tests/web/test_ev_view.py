"""The EV charging view (issue 9): switching views, uploading sessions, the table, the detail
panel, and a flag-user / acknowledge round trip, against the real server.

The upload, flag and acknowledge tests need the events API (POST /api/upload and the action
endpoints, static/ev-api.js); they are skipped, saying so, on a server whose OpenAPI
description does not list /api/upload yet.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import requests
from playwright.sync_api import expect

from web_helpers import LAPTOP, SCREENSHOTS, TABLET, open_dashboard


def has_upload(server) -> bool:
    paths = server.get("/api/openapi.json").get("paths", {})
    return "/api/upload" in paths


def sessions_csv() -> tuple[str, dict]:
    """Ordinary sessions, plus one of each anomaly type the rules name (issue 9's EV rules)."""
    day = datetime(2026, 11, 30, tzinfo=timezone.utc)
    lines = ["session_id,user_id,charger_id,start_time,duration,energy,payment,ip_address"]
    for i in range(60):  # ordinary: 20-60 kWh at about 0.4 per kWh
        start = day + timedelta(minutes=37 * i)
        energy = 20 + (i * 7) % 40
        lines.append(f"n{i:03d},user{i % 12},ch{i % 8},{start.isoformat()},{45 + i % 30},{energy},"
                     f"{energy * 0.4:.2f},10.0.0.{i % 50}")
    late = day + timedelta(days=1)
    lines.append(f"fraud1,mallory,ch1,{late.isoformat()},70,58.5,0.20,10.0.9.9")  # energy > 50, payment < 1
    for k in range(3):  # three sessions shorter than 5 min within one hour
        lines.append(f"dos{k},trudy,ch2,{(late + timedelta(minutes=10 * k)).isoformat()},2,0.3,0.12,10.0.9.8")
    lines.append(f"conflict_a,alice,ch5,{(late + timedelta(hours=3)).isoformat()},60,22,8.8,10.0.9.7")
    lines.append(f"conflict_b,bob,ch5,{(late + timedelta(hours=3, minutes=20)).isoformat()},60,21,8.4,10.0.9.6")
    expected = {"fraud1": "billing_fraud", "dos2": "dos_attack", "conflict_b": "multi_user_conflict"}
    return "\n".join(lines) + "\n", expected


@pytest.fixture
def ev_page(browser, live_server):
    context, page, probe = open_dashboard(browser, live_server)
    page.get_by_role("link", name="EV charging").click()
    expect(page.locator("#ev-view")).to_be_visible()
    yield page, probe
    context.close()
    assert probe.errors == [], f"JavaScript errors on the page: {probe.errors}"


def test_views_switch_by_link_and_address(ev_page, live_server):
    page, _ = ev_page
    assert page.url.endswith("#ev")
    expect(page.get_by_role("link", name="EV charging")).to_have_attribute("aria-current", "page")
    expect(page.locator("main.layout")).to_be_hidden()
    expect(page.locator("#ev-title")).to_have_text("EV charging sessions")
    for card in ("sessions", "critical", "warnings"):
        expect(page.locator(f"#ev-stat-{card} [data-role=value]")).not_to_have_text("")
    expect(page.locator("#ev-tabs [role=tab]")).to_have_count(4)  # All and the three types
    expect(page.locator("#ev-table thead th")).to_have_count(11)
    # Back to the live streams: the charts kept running while hidden.
    page.go_back()
    expect(page.locator("main.layout")).to_be_visible()
    expect(page.locator("#ev-view")).to_be_hidden()
    page.wait_for_function("() => Object.keys(window.dashboard.charts).length >= 9")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_upload_fills_cards_tabs_table_and_detail(ev_page, live_server):
    if not has_upload(live_server):
        pytest.skip("this server has no POST /api/upload yet (events API)")
    page, _ = ev_page
    text, expected = sessions_csv()
    page.set_input_files("#ev-file", files=[{"name": "sessions.csv", "mimeType": "text/csv",
                                             "buffer": text.encode()}])
    status = page.locator("#ev-upload-message")
    expect(status).to_contain_text("sessions.csv", timeout=30000)
    expect(status).to_contain_text(re.compile(r"6[0-9] sessions"), timeout=30000)
    expect(page.locator("#ev-progress")).to_have_js_property("value", 1)

    table = page.locator("#ev-table tbody")
    for session_id, anomaly_type in expected.items():
        row = table.locator(f"tr[data-session={session_id}]")
        expect(row).to_be_visible(timeout=15000)
        expect(row).to_contain_text(anomaly_type.replace("_", " ").split()[0], ignore_case=True)
    # A tab per type narrows the table to that type.
    page.locator("#ev-tabs [data-type=billing_fraud]").click()
    expect(table.locator("tr[data-session=fraud1]")).to_be_visible()
    expect(table.locator("tr[data-session=dos2]")).to_have_count(0)
    page.locator("#ev-tabs [data-type=all]").click()
    # Search by user or charger.
    page.get_by_role("searchbox", name="Search by user or charger").fill("trudy")
    expect(table.locator("tr")).not_to_have_count(0)
    assert set(table.locator("tr td:nth-child(4)").all_text_contents()) == {"trudy"}
    page.get_by_role("searchbox", name="Search by user or charger").fill("")
    # Sorting by risk, highest first, then lowest first.
    risks = [int(r) for r in table.locator("tr td:nth-child(1) .num").all_text_contents()]
    assert risks == sorted(risks, reverse=True)
    page.locator("#ev-table thead button", has_text="Risk").click()
    expect(page.locator("#ev-table thead th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    # The detail panel: the session, its risk, the user's sessions as a chart.
    table.locator("tr[data-session=fraud1]").click()
    detail = page.locator("#ev-detail")
    expect(detail.locator("#ev-detail-title")).to_have_text("Session fraud1")
    expect(detail).to_contain_text("mallory")
    expect(detail).to_contain_text("/ 100 risk")
    expect(detail.locator(".ev-user-note")).to_contain_text("session", timeout=10000)
    top_users = page.locator("#ev-top-users")
    expect(top_users).to_contain_text("mallory")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "ev-uploaded-laptop.png"), full_page=True)


def test_bad_file_is_refused_with_the_servers_reason(ev_page, live_server):
    if not has_upload(live_server):
        pytest.skip("this server has no POST /api/upload yet (events API)")
    page, _ = ev_page
    bad = "session_id,user_id,charger_id,start_time,duration,energy\ns1,u1,c1,08:00,30,12\n"
    answer = requests.post(live_server.url("/api/upload"), files={"file": ("bad.csv", bad, "text/csv")}, timeout=15)
    assert 400 <= answer.status_code < 500, answer.text
    page.set_input_files("#ev-file", files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode()}])
    expect(page.locator("#ev-upload-status")).to_have_class(re.compile("is-error"), timeout=15000)
    expect(page.locator("#ev-upload-message")).to_have_text(answer.json()["error"])


def test_flag_user_and_acknowledge_round_trip(ev_page, live_server):
    if not has_upload(live_server):
        pytest.skip("this server has no POST /api/upload yet (events API)")
    page, _ = ev_page
    text, _ = sessions_csv()
    page.set_input_files("#ev-file", files=[{"name": "sessions.csv", "mimeType": "text/csv",
                                             "buffer": text.encode()}])
    row = page.locator("#ev-table tbody tr[data-session=fraud1]").first
    expect(row).to_be_visible(timeout=30000)
    row.click()
    detail = page.locator("#ev-detail")
    detail.get_by_role("button", name="Flag user").click()
    expect(detail.get_by_role("button", name="Unflag user")).to_be_visible(timeout=10000)
    expect(row.locator(".badge-flag")).to_be_visible()

    detail.get_by_label("Acknowledged by").fill("Dana")
    detail.get_by_label("Note").fill("refund checked")
    detail.get_by_role("button", name="Acknowledge").click()
    expect(detail.locator(".ev-ack-done")).to_contain_text("Acknowledged by Dana", timeout=10000)
    expect(detail.locator(".ev-ack-done")).to_contain_text("refund checked")

    # Both are the server's now: a fresh page shows them.
    page.reload()
    row = page.locator("#ev-table tbody tr[data-session=fraud1]").first
    expect(row.locator(".badge-ack")).to_be_visible(timeout=15000)
    expect(row.locator(".badge-flag")).to_be_visible()


def test_ev_view_screenshots(browser, live_server):
    SCREENSHOTS.mkdir(exist_ok=True)
    for size, name in ((LAPTOP, "laptop"), (TABLET, "tablet")):
        context, page, probe = open_dashboard(browser, live_server, viewport=size)
        try:
            page.get_by_role("link", name="EV charging").click()
            expect(page.locator("#ev-view")).to_be_visible()
            page.wait_for_timeout(400)
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=str(SCREENSHOTS / f"ev-{name}.png"), full_page=True)
            assert probe.errors == []
        finally:
            context.close()
