"""The alerts page (issue 10): live rows from alert events, acknowledge, silence (matchers prefilled
from the alert), expire, resolve by hand, and the header's firing badge -- against the real server.

The session's server ticks its built-in streams with injected anomalies, so other alerts come and
go while these tests run: each test makes its own stream and finds its own row by name.
"""
from __future__ import annotations

import requests
from playwright.sync_api import expect

from web_helpers import spike, warm_up


def firing_alert(server, source: str, seed: int) -> dict:
    """Train ``source``, spike it: one firing alert (ALERT_FOR is 0 by default)."""
    warm_up(server, source, seed=seed)
    spike(server, source)
    alerts = server.get("/api/incidents", stream=source, state="firing")["alerts"]
    assert len(alerts) == 1, alerts
    return alerts[0]


def alert_row(page, source: str):
    return page.locator("#alerts-table tbody tr.alert-row", has_text=source)


def shown_alert(page, live_server, source: str, seed: int):
    """A firing alert of a new stream, and its row once the alerts page shows it."""
    alert = firing_alert(live_server, source, seed=seed)
    page.click("#view-link-alerts")
    row = alert_row(page, source)
    expect(row).to_have_count(1, timeout=10000)
    return alert, row


def test_a_new_alert_appears_live_and_is_acknowledged_with_who_and_note(dashboard, live_server):
    page, _ = dashboard
    page.goto(live_server.url("/#alerts"))
    page.wait_for_function("() => window.dashboard && window.dashboard.connection === 'live'", timeout=30000)
    expect(page.locator("#alerts-view")).to_be_visible()
    source = "web_alert_ack"
    alert = firing_alert(live_server, source, seed=21)  # after the page loaded: it comes live

    row = alert_row(page, source)
    expect(row).to_have_count(1, timeout=10000)
    expect(row).to_have_attribute("data-alert-id", str(alert["id"]))
    expect(row).to_contain_text("anomaly")
    expect(page.locator("#alerts-badge")).to_be_visible()  # at least this one fires

    row.locator("[data-action=acknowledge]").click()
    dialog = page.locator("#alert-action")
    expect(dialog).to_be_visible()
    expect(page.locator("#alert-action-subject")).to_contain_text(source)
    page.fill("#alert-action-by", "alice")
    page.fill("#alert-action-note", "looking into it")
    page.click("#alert-action-submit")
    expect(dialog).to_be_hidden()
    expect(row.locator(".badge-ack")).to_have_text("ack: alice")
    expect(row.locator("[data-action=acknowledge]")).to_have_count(0)

    stored = live_server.get(f"/api/incidents/{alert['id']}")
    assert stored["alert"]["acknowledged_by"] == "alice"
    assert stored["alert"]["ack_note"] == "looking into it"
    assert [a["action"] for a in stored["audit"]] == ["acknowledge"]

    # Resolve by hand: the row leaves the firing tab and shows in the resolved one.
    row.locator("[data-action=resolve]").click()
    page.fill("#alert-action-note", "fixed")
    page.click("#alert-action-submit")
    expect(row).to_have_count(0)
    page.click("#alerts-tabs [data-state=resolved]")
    resolved = alert_row(page, source)
    expect(resolved).to_have_count(1, timeout=10000)
    expect(resolved).to_contain_text("resolved by alice")


def test_silence_prefills_matchers_from_the_alert_and_can_be_expired(dashboard, live_server):
    page, _ = dashboard
    source = "web_alert_silence"
    alert, row = shown_alert(page, live_server, source, seed=22)

    row.locator("[data-action=silence]").click()
    expect(page.locator("#alert-silence")).to_be_visible()
    expect(page.locator("#alert-silence-stream")).to_be_checked()
    expect(page.locator("#alert-silence-stream")).to_have_value(source)
    expect(page.locator("#alert-silence-type")).to_have_value(alert["type"])
    expect(page.locator("#alert-silence-severity")).not_to_be_checked()
    page.select_option("#alert-silence-duration", "14400")
    page.fill("#alert-silence-by", "bob")
    page.fill("#alert-silence-comment", "maintenance")
    page.locator("#alert-silence-form button[type=submit]").click()
    expect(page.locator("#alert-silence")).to_be_hidden()

    expect(row.locator(".badge-silenced")).to_be_visible(timeout=10000)
    silence_row = page.locator("#silences-list .silence-row", has_text=source)
    expect(silence_row).to_have_count(1)
    expect(silence_row).to_contain_text("bob")
    silences = requests.get(live_server.url("/api/silences?state=active"), timeout=10).json()["silences"]
    mine = [s for s in silences if s["matchers"].get("stream") == source]
    assert len(mine) == 1 and mine[0]["matchers"] == {"stream": source, "type": alert["type"]}
    assert 4 * 3600 - 120 < mine[0]["ends_at"] - mine[0]["starts_at"] <= 4 * 3600

    silence_row.locator("[data-action=expire]").click()
    expect(silence_row).to_have_count(0, timeout=10000)
    expect(row.locator(".badge-silenced")).to_have_count(0, timeout=10000)
    silence = requests.get(live_server.url("/api/silences?state=expired"), timeout=10).json()["silences"]
    assert any(s["id"] == mine[0]["id"] for s in silence)


def test_the_silence_dialog_shows_the_servers_refusal(dashboard, live_server):
    page, _ = dashboard
    _, row = shown_alert(page, live_server, "web_alert_refused", seed=23)
    row.locator("[data-action=silence]").click()
    page.select_option("#alert-silence-duration", "until")
    page.fill("#alert-silence-until", "2001-01-01T00:00")  # in the past: the server says 409
    page.locator("#alert-silence-form button[type=submit]").click()
    expect(page.locator("#alert-silence-message")).to_contain_text("future")
    expect(page.locator("#alert-silence")).to_be_visible()
    page.click("#alert-silence-cancel")


def test_an_alert_opens_its_stream_in_the_history_view_around_it(dashboard, live_server):
    page, _ = dashboard
    source = "web_alert_history"
    alert, row = shown_alert(page, live_server, source, seed=24)
    row.locator("[data-action=history]").click()
    expect(page.locator("#hist-view")).to_be_visible()
    assert page.evaluate("() => window.location.hash") == "#history"
    expect(page.locator("#hist-stream")).to_have_value(source)
    page.wait_for_function(
        """() => { const a = window.dashboard.history.chart.answer;
                     return a && a.source === '%s' && a.anomalies.length > 0; }""" % source, timeout=15000)
    answer = page.evaluate("() => { const a = window.dashboard.history.chart.answer;"
                           " return {from: a.from, to: a.to, total: a.total}; }")
    assert answer["from"] < alert["started_at"] < answer["to"]
    assert answer["total"] > 0


def test_every_action_of_an_alert_row_is_in_view_on_a_laptop(dashboard, live_server):
    """The table keeps its actions on screen at 1,366 px: no button clipped behind a scroll bar."""
    page, _ = dashboard
    _, row = shown_alert(page, live_server, "web_alert_layout", seed=23)
    expect(row.locator("button")).to_have_count(4)  # history, acknowledge, silence, resolve
    clipped = page.evaluate("""() => {
        const wrap = document.querySelector('#alerts-table').closest('.ev-table-wrap').getBoundingClientRect();
        return [...document.querySelectorAll('#alerts-table tbody tr.alert-row button')]
          .filter(b => { const r = b.getBoundingClientRect(); return r.left < wrap.left || r.right > wrap.right; })
          .map(b => b.textContent);
    }""")
    assert clipped == []
