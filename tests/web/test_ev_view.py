"""The EV charging view (issue 9): switching views, uploading sessions, the table, the detail
panel, and a flag-user / acknowledge round trip, against the real server.

The upload, flag and acknowledge tests need the events API (POST /api/upload and the action
endpoints, static/ev-api.js); they are skipped, saying so, on a server without /api/upload.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import requests
from playwright.sync_api import expect

from web_helpers import LAPTOP, SCREENSHOTS, TABLET, open_dashboard


def has_upload(server) -> bool:
    """Whether the server has the events API: an empty upload is refused, not unknown (404)."""
    answer = requests.post(server.url("/api/upload?schema=ev_charging"), data=b"",
                           headers={"Content-Type": "text/csv"}, timeout=15)
    return answer.status_code != 404 or "not found" not in answer.text


def sessions_csv(tag: str) -> tuple[str, dict]:
    """Ordinary sessions, plus one of each anomaly type the EV rules name; ids and users carry
    ``tag``, so each test finds its own sessions among the built-in feed's."""
    day = datetime(2026, 11, 30, tzinfo=timezone.utc)
    lines = ["session_id,user_id,charger_id,start_time,duration,energy,payment,ip_address"]
    for i in range(60):  # ordinary: 20-60 kWh at about 0.4 per kWh
        start = day + timedelta(minutes=37 * i)
        energy = 20 + (i * 7) % 40
        lines.append(f"{tag}n{i:03d},{tag}user{i % 12},{tag}ch{i % 8},{start.isoformat()},{45 + i % 30},"
                     f"{energy},{energy * 0.4:.2f},10.0.0.{i % 50}")
    late = day + timedelta(days=1)
    # Energy over 50 kWh for a payment under 1.
    lines.append(f"{tag}fraud1,{tag}mallory,{tag}ch1,{late.isoformat()},70,58.5,0.20,10.0.9.9")
    for k in range(3):  # three sessions shorter than 5 min within one hour
        lines.append(f"{tag}dos{k},{tag}trudy,{tag}ch2,{(late + timedelta(minutes=10 * k)).isoformat()},2,0.3,"
                     f"0.12,10.0.9.8")
    # Two users on one charger at once.
    lines.append(f"{tag}conflict_a,{tag}alice,{tag}ch5,{(late + timedelta(hours=3)).isoformat()},60,22,8.8,10.0.9.7")
    lines.append(f"{tag}conflict_b,{tag}bob,{tag}ch5,{(late + timedelta(hours=3, minutes=20)).isoformat()},60,21,"
                 f"8.4,10.0.9.6")
    expected = {f"{tag}fraud1": "billing_fraud", f"{tag}dos2": "dos_attack",
                f"{tag}conflict_b": "multi_user_conflict"}
    return "\n".join(lines) + "\n", expected


def upload(page, tag: str) -> dict:
    text, expected = sessions_csv(tag)
    page.set_input_files("#ev-file", files=[{"name": f"{tag}.csv", "mimeType": "text/csv",
                                             "buffer": text.encode()}])
    status = page.locator("#ev-upload-message")
    expect(status).to_contain_text(re.compile(r"66 sessions"), timeout=30000)
    return expected


def search(page, text: str) -> None:
    page.get_by_role("searchbox", name="Search by user or charger").fill(text)


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
    # All and the three types first; other types the data holds (e.g. unusual_energy) after them.
    expect(page.locator("#ev-tabs [role=tab]").nth(3)).to_have_attribute("data-type", "multi_user_conflict")
    assert page.locator("#ev-tabs [role=tab]").evaluate_all("tabs => tabs.slice(0, 4).map(t => t.dataset.type)") == [
        "all", "billing_fraud", "dos_attack", "multi_user_conflict"]
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
    expected = upload(page, "up")
    expect(page.locator("#ev-upload-message")).to_contain_text("up.csv")
    expect(page.locator("#ev-progress")).to_have_js_property("value", 1)
    summary = live_server.get("/api/events/summary?schema=ev_charging")
    expect(page.locator("#ev-stat-sessions [data-role=value]")).not_to_have_text("—")
    assert summary["events"] >= 66

    table = page.locator("#ev-table tbody")
    for session_id, anomaly_type in expected.items():
        search(page, session_id)
        row = table.locator(f"tr[data-session={session_id}]")
        expect(row).to_be_visible(timeout=15000)
        expect(row.locator(f".chip-{anomaly_type}")).to_be_visible()
    # A tab per type narrows the table to that type.
    search(page, "up")
    page.locator("#ev-tabs [data-type=billing_fraud]").click()
    expect(table.locator("tr[data-session=upfraud1]")).to_be_visible()
    expect(table.locator("tr[data-session=updos2]")).to_have_count(0)
    page.locator("#ev-tabs [data-type=all]").click()
    # Search by user or charger.
    search(page, "uptrudy")
    expect(table.locator("tr td:nth-child(4)", has_not_text="uptrudy")).to_have_count(0)
    expect(table.locator("tr[data-session=updos2]")).to_be_visible()
    search(page, "upch5")
    expect(table.locator("tr td:nth-child(5)", has_not_text="upch5")).to_have_count(0)
    expect(table.locator("tr[data-session=upconflict_b]")).to_be_visible()
    # A search that matches nothing says so in the top lists too, not "None yet." (there is data).
    search(page, "zzz_nothing")
    expect(page.locator("#ev-top-users")).to_have_text("None matches these filters.")
    expect(page.locator("#ev-top-chargers")).to_have_text("None matches these filters.")
    search(page, "")
    # Sorting by risk, highest first, then lowest first.
    expect(table.locator("tr[data-session=upfraud1]")).to_be_visible()  # no longer searched away
    risks = [int(r) for r in table.locator("tr td:nth-child(1) .num").all_text_contents()]
    assert risks == sorted(risks, reverse=True)
    page.locator("#ev-table thead button", has_text="Risk").click()
    expect(page.locator("#ev-table thead th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    risks = [int(r) for r in table.locator("tr td:nth-child(1) .num").all_text_contents()]
    assert risks == sorted(risks)
    # The detail panel: the session, its risk, the user's sessions as a chart.
    search(page, "upmallory")
    table.locator("tr[data-session=upfraud1]").click()
    detail = page.locator("#ev-detail")
    expect(detail.locator("#ev-detail-title")).to_have_text("Session upfraud1")
    expect(detail).to_contain_text("upmallory")
    expect(detail).to_contain_text("/ 100 risk")
    expect(detail.locator(".ev-user-note")).to_contain_text("1 session", timeout=10000)
    assert page.evaluate("() => document.querySelectorAll('#ev-detail canvas').length") == 1
    expect(page.locator("#ev-top-users")).to_contain_text("upmallory")
    # Every top row shows its whole session count, with or without the "flagged" badge.
    counts = page.locator("#ev-top-users .ev-top-count, #ev-top-chargers .ev-top-count")
    expect(counts.first).to_be_visible()
    clipped = counts.evaluate_all("els => els.filter(e => e.scrollWidth > e.clientWidth + 1"
                                  " || e.getBoundingClientRect().right > e.closest('button').getBoundingClientRect().right + 1)"
                                  ".map(e => e.textContent)")
    assert clipped == [], clipped
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "ev-uploaded-laptop.png"), full_page=True)


def test_the_same_file_again_says_its_sessions_were_stored_before(ev_page, live_server):
    """Each session is stored once: a file uploaded again stores none, and the panel says how many it skipped."""
    if not has_upload(live_server):
        pytest.skip("this server has no POST /api/upload yet (events API)")
    page, _ = ev_page
    upload(page, "again")
    status = page.locator("#ev-upload-message")
    expect(status).not_to_contain_text("already stored")
    text, _ = sessions_csv("again")
    page.set_input_files("#ev-file", files=[{"name": "again.csv", "mimeType": "text/csv", "buffer": text.encode()}])
    expect(status).to_have_text("again.csv: 0 sessions · 0 anomalies found · 66 already stored, skipped",
                                timeout=30000)


def test_bad_file_is_refused_with_the_servers_reason(ev_page, live_server):
    if not has_upload(live_server):
        pytest.skip("this server has no POST /api/upload yet (events API)")
    page, _ = ev_page
    bad = "session_id,user_id,charger_id,start_time,duration,energy\ns1,u1,c1,08:00,30,12\n"
    answer = requests.post(live_server.url("/api/upload?schema=ev_charging"), files={"file": ("bad.csv", bad, "text/csv")}, timeout=15)
    assert 400 <= answer.status_code < 500, answer.text
    page.set_input_files("#ev-file", files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode()}])
    expect(page.locator("#ev-upload-status")).to_have_class(re.compile("is-error"), timeout=15000)
    message = answer.json()["error"]
    assert "payment" in message  # the server names the missing column
    expect(page.locator("#ev-upload-message")).to_have_text(message)


def test_flag_user_and_acknowledge_round_trip(ev_page, live_server):
    if not has_upload(live_server):
        pytest.skip("this server has no POST /api/upload yet (events API)")
    page, _ = ev_page
    upload(page, "ack")
    search(page, "ackfraud1")
    row = page.locator("#ev-table tbody tr[data-session=ackfraud1]")
    expect(row).to_be_visible(timeout=15000)
    row.click()
    detail = page.locator("#ev-detail")
    detail.get_by_role("button", name="Flag user").click()
    expect(detail.get_by_role("button", name="Unflag user")).to_be_visible(timeout=10000)
    expect(row.locator(".badge-flag")).to_have_text("user flagged")

    detail.get_by_label("Acknowledged by").fill("Dana")
    detail.get_by_label("Note").fill("refund checked")
    detail.get_by_role("button", name="Acknowledge").click()
    expect(detail.locator(".ev-ack-done")).to_contain_text("Acknowledged by Dana", timeout=10000)
    expect(detail.locator(".ev-ack-done")).to_contain_text("refund checked")

    # Both are the server's now.
    flags = live_server.get("/api/flags?schema=ev_charging")["flags"]
    assert {"entity": "user_id", "entity_id": "ackmallory"}.items() <= next(
        f for f in flags if f["entity_id"] == "ackmallory").items()
    [stored] = [e for e in live_server.get("/api/events?schema=ev_charging&user_id=ackmallory")["events"]
                if e["is_anomaly"]]
    assert stored["acknowledged"]["by"] == "Dana" and stored["acknowledged"]["note"] == "refund checked"
    # And a fresh page shows them.
    page.reload()
    search(page, "ackfraud1")
    row = page.locator("#ev-table tbody tr[data-session=ackfraud1]")
    expect(row.locator(".badge-ack")).to_be_visible(timeout=15000)
    expect(row.locator(".badge-flag")).to_have_text("user flagged")

    # Unflagging is the server's too.
    row.click()
    with page.expect_response(lambda r: r.url.endswith("/api/flags") and r.request.method == "DELETE") as cleared:
        detail.get_by_role("button", name="Unflag user").click()
    assert cleared.value.status == 200, cleared.value.text()
    expect(detail.get_by_role("button", name="Flag user")).to_be_visible(timeout=10000)
    assert all(f["entity_id"] != "ackmallory" for f in live_server.get("/api/flags?schema=ev_charging")["flags"])


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


def test_toasts_leave_the_upload_button_clear(ev_page):
    """Pop-ups arriving while the EV view is open sit bottom right, not over "Upload sessions…"."""
    page, _ = ev_page
    for n in range(3):
        page.evaluate("(n) => window.AnomalyWatch.anomalies.notice('Notice ' + n, 'a line of text')", n)
    expect(page.locator(".toast-notice")).to_have_count(3)
    button = page.locator(".ev-upload-button").bounding_box()
    pile = page.locator("#toasts").bounding_box()
    assert pile["height"] > 0
    overlap_x = min(button["x"] + button["width"], pile["x"] + pile["width"]) - max(button["x"], pile["x"])
    overlap_y = min(button["y"] + button["height"], pile["y"] + pile["height"]) - max(button["y"], pile["y"])
    assert overlap_x <= 0 or overlap_y <= 0, (button, pile)
    # Back on the live streams they sit top right again, clear of the forms at the bottom.
    page.go_back()
    expect(page.locator("main.layout")).to_be_visible()
    assert page.locator("#toasts").bounding_box()["y"] < 200


def test_long_table_shows_more_by_pages(ev_page, live_server):
    if not has_upload(live_server):
        pytest.skip("this server has no POST /api/upload yet (events API)")
    page, _ = ev_page
    day = datetime(2026, 11, 29, tzinfo=timezone.utc)
    lines = ["session_id,user_id,charger_id,start_time,duration,energy,payment"]
    for i in range(130):  # each one energy over 50 kWh for a payment under 1: billing fraud by rule
        lines.append(f"pg{i:03d},pguser{i},pgch{i % 9},{(day + timedelta(minutes=90 * i)).isoformat()},80,58.5,0.20")
    page.set_input_files("#ev-file", files=[{"name": "pages.csv", "mimeType": "text/csv",
                                             "buffer": ("\n".join(lines) + "\n").encode()}])
    expect(page.locator("#ev-upload-message")).to_contain_text("130 sessions", timeout=30000)
    search(page, "pguser")
    rows = page.locator("#ev-table tbody tr")
    more = page.locator("#ev-more")
    expect(rows).to_have_count(50, timeout=15000)
    expect(more).to_have_text("Show 50 more (80 not shown)")
    more.click()
    expect(rows).to_have_count(100)
    expect(more).to_have_text("Show the other 30")
    more.click()
    expect(rows).to_have_count(130)
    expect(more).to_be_hidden()


def test_the_built_in_feed_says_its_time_is_simulated(ev_page):
    # Its sessions start on 1 Jan 2026 and run 600 x the clock: without this, the table's dates
    # read as wrong.
    page, _ = ev_page
    note = page.locator("#ev-clock")
    expect(note).to_be_visible(timeout=30000)
    expect(note).to_contain_text(re.compile(r"Built-in feed: sessions in simulated time \(600× real time\), now at \w+ \d+"))


REFRESH_DURING_REFRESH_JS = """async () => {
  const store = window.AnomalyWatch.ev.store, api = window.AnomalyWatch.ev.api, summary = api.summary;
  while (store.state.loading) await store.state.loading;
  let calls = 0, release = null;
  api.summary = () => {
    calls += 1;
    if (calls > 1) return summary();
    return new Promise(resolve => { release = () => resolve(summary()); });
  };
  try {
    const first = store.refresh();
    store.refresh();  // asked while the first is in flight (e.g. a pushed batch): must not be lost
    release();
    await first;
    return calls;
  } finally {
    api.summary = summary;
  }
}"""


def test_a_refresh_asked_during_one_runs_after_it(ev_page):
    # The cards come from the summary: a batch pushed while a reload was in flight used to be
    # counted only at the next 15 s poll (the table showed 2 sessions, the cards 1).
    page, _ = ev_page
    assert page.evaluate(REFRESH_DURING_REFRESH_JS) == 2
