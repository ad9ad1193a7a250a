"""The dashboard, used as a person would use it, against the real server.

Anomalies are made deterministic by submitting a warmed-up user stream's far-out point
through /api/submit; the built-in streams (high injection rate) add their own.
"""
from __future__ import annotations

import re
import time

import requests
from playwright.sync_api import expect

from web_helpers import (CHART_SNAPSHOT_JS, LAPTOP, LAST_X_JS, LINE_POINTS_JS, MARKER_IDS_JS, SCREENSHOTS,
                         TABLET, open_dashboard, spike, stream_config, warm_up)


def test_every_stream_gets_a_live_chart_that_slides(dashboard, live_server):
    page, _ = dashboard
    streams = live_server.get("/api/status")["streams"]
    names = [s["name"] for s in streams]
    assert len(names) >= 9

    page.wait_for_function(
        """(names) => names.every(n => {
             const c = window.dashboard.charts[n];
             return c && c.data.datasets.some(d => d.role === 'line' && d.data.length >= 5);
           })""", arg=names, timeout=15000)

    # One line per field: multivariate streams draw several lines.
    for stream in streams:
        snapshot = page.evaluate(CHART_SNAPSHOT_JS, stream["name"])
        assert [d["label"] for d in snapshot if d["role"] == "line"] == stream["fields"]
        assert all(d["n"] <= 60 for d in snapshot)

    # Push keeps the charts moving.
    first = names[0]
    before = page.evaluate(LAST_X_JS, first)
    page.wait_for_function(f"([n, x]) => ({LAST_X_JS})(n) > x", arg=[first, before], timeout=10000)

    titles = page.locator(".chart-title").all_text_contents()
    assert set(names) <= set(titles)
    expect(page.locator("#stat-points [data-role=value]")).not_to_have_text("—")
    expect(page.locator("#stat-server [data-role=value]")).to_have_text("Online")


def test_windows_are_filled_from_history_on_load(browser, live_server):
    # A fresh page starts with the stored window, not an empty chart that fills tick by tick.
    name = live_server.get("/api/status")["streams"][0]["name"]
    deadline = time.monotonic() + 20
    while len(stored := live_server.get(f"/api/data/{name}", limit=60)["points"]) < 30:
        assert time.monotonic() < deadline, "the server stopped ticking"
        time.sleep(0.5)
    opened_at = time.time()
    context, page, _ = open_dashboard(browser, live_server)
    try:
        page.wait_for_function(f"([n, k]) => ({LINE_POINTS_JS})(n) >= k", arg=[name, 30], timeout=5000)
        window = page.evaluate(
            "(n) => window.dashboard.streams.get(n).points.map(p => ({id: p.id, t: p.timestamp}))", name)
        assert stored[-1]["id"] in {p["id"] for p in window}
        assert window[0]["t"] < opened_at - 10  # history from before the page existed
        assert len(window) <= 60
    finally:
        context.close()


def test_anomaly_shows_marker_popup_and_history_row(dashboard, live_server):
    page, _ = dashboard
    page.locator("#streams-title").click()  # a user gesture: browsers only start audio after one
    page.wait_for_function("() => window.AlertSound.state() === 'running'")
    source = "web_spike"
    warm_up(live_server, source, seed=1)
    # A stream created by /api/submit after the page loaded gets its own chart.
    page.wait_for_function("(n) => Boolean(window.dashboard.charts[n])", arg=source, timeout=10000)

    verdict = spike(live_server, source)

    page.wait_for_function(f"([n, id]) => ({MARKER_IDS_JS})(n).includes(id)", arg=[source, verdict["id"]],
                           timeout=10000)
    toast = page.locator(".toast", has_text=source).first
    expect(toast).to_be_visible()
    expect(toast).to_have_attribute("role", "status")
    expect(page.locator("#toasts")).to_have_attribute("aria-live", "polite")
    expect(page.locator(".history-row", has_text=source).first).to_be_visible()
    expect(page.locator(".chart-card", has_text=source).locator(".chart-status")).to_have_text("anomaly")
    # The alert tone was scheduled through Web Audio.
    assert page.evaluate("() => window.AlertSound.stats.played") >= 1


def test_detail_dialog_opens_from_history_row_and_marker(dashboard, live_server):
    page, _ = dashboard
    source = "web_detail"
    warm_up(live_server, source, seed=2)
    verdict = spike(live_server, source)

    row = page.locator(".history-row", has_text=source).first
    expect(row).to_be_visible(timeout=10000)
    row.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#detail")
    expect(dialog).to_be_visible()
    expect(page.locator("#detail-title")).to_have_text(f"Anomaly on {source}")
    body = page.locator("#detail-body")
    expect(body).to_contain_text("Expected range")
    for detector, score in verdict["detectors"].items():
        expect(body.locator("tbody tr", has_text=detector).first).to_contain_text(f"{score:.3f}")
    expect(body).to_contain_text(f"{verdict['score']:.3f}")
    expect(body).to_contain_text(verdict["severity"])
    assert verdict["values"]["value"] > verdict["expected"]["value"][1]
    expect(body.locator("tbody tr", has_text="value").first).to_contain_text("above")

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.evaluate("() => document.activeElement.classList.contains('history-row')")

    # The red marker on the chart opens the same dialog.
    page.wait_for_function(f"([n, id]) => ({MARKER_IDS_JS})(n).includes(id)", arg=[source, verdict["id"]])
    card = page.locator(".chart-card", has=page.locator(".chart-title", has_text=re.compile(f"^{source}$")))
    card.scroll_into_view_if_needed()
    position = page.evaluate(
        """([n, id]) => {
             const chart = window.dashboard.charts[n];
             chart.update('none');
             for (let i = 0; i < chart.data.datasets.length; i++) {
               const ds = chart.data.datasets[i];
               if (ds.role !== 'marker') continue;
               const k = ds.data.findIndex(p => p.id === id);
               if (k >= 0) { const el = chart.getDatasetMeta(i).data[k]; return {x: el.x, y: el.y}; }
             }
             return null;
           }""", [source, verdict["id"]])
    assert position is not None
    card.locator("canvas").click(position=position)
    expect(dialog).to_be_visible()
    expect(page.locator("#detail-subtitle")).to_contain_text(f"point #{verdict['id']}")
    page.locator("#detail .icon-btn").click()
    expect(dialog).to_be_hidden()


def _shown(value: float) -> str:
    """A threshold as the tuning panel shows it (JavaScript's ``String(Number(v.toPrecision(6)))``)."""
    text = repr(float(f"{value:.6g}"))
    return text[:-2] if text.endswith(".0") else text


def test_threshold_change_in_panel_reaches_server(dashboard, live_server):
    page, _ = dashboard
    page.select_option("#tune-stream", "cpu_usage")
    row = page.locator("form.detector-row[data-detector=zscore]")
    threshold = row.locator("input[name=threshold]")
    before = stream_config(live_server.get("/api/configure", source="cpu_usage"), "cpu_usage")
    expect(threshold).to_have_value(_shown(before["detectors"]["zscore"]["threshold"]))

    threshold.fill("0.987")
    row.get_by_role("button", name="Apply zscore settings").click()
    expect(row.locator(".form-message")).to_contain_text("Saved zscore on cpu_usage")
    after = stream_config(live_server.get("/api/configure", source="cpu_usage"), "cpu_usage")
    assert after["detectors"]["zscore"]["threshold"] == 0.987

    # The ensemble threshold has its own control; it shows six significant digits and
    # an Apply with nothing typed sends nothing (the rounded value never replaces the server's).
    ensemble = page.locator("#tune-ensemble input[name=threshold]")
    expect(ensemble).to_have_value(_shown(before["threshold"]))
    page.locator("#tune-ensemble button").click()
    expect(page.locator("#tune-ensemble .form-message")).to_contain_text("Nothing changed")
    assert stream_config(live_server.get("/api/configure", source="cpu_usage"),
                         "cpu_usage")["threshold"] == before["threshold"]
    ensemble.fill("0.995")
    page.locator("#tune-ensemble button").click()
    expect(page.locator("#tune-ensemble .form-message")).to_contain_text("Saved ensemble")
    assert stream_config(live_server.get("/api/configure", source="cpu_usage"), "cpu_usage")["threshold"] == 0.995

    # Switching a detector off is immediate.
    row.locator("input[name=enabled]").uncheck()
    expect(row.locator(".form-message")).to_contain_text("enabled false")
    assert stream_config(live_server.get("/api/configure", source="cpu_usage"),
                         "cpu_usage")["detectors"]["zscore"]["enabled"] is False
    row.locator("input[name=enabled]").check()
    expect(row.locator(".form-message")).to_contain_text("enabled true")

    # The server's validation message is shown as is, and the field goes back to the running value.
    refused = requests.post(live_server.url("/api/configure"), timeout=10,
                            json={"source": "cpu_usage", "detector": "zscore", "threshold": 7})
    assert refused.status_code == 400
    threshold.fill("7")
    threshold.press("Enter")
    message = row.locator(".form-message")  # next to the row the user edited
    expect(message).to_have_text(refused.json()["error"])
    expect(message).to_have_class(re.compile("is-error"))
    expect(threshold).to_have_value("0.987")


def test_submit_form_round_trip(dashboard, live_server):
    page, _ = dashboard
    page.fill("#submit-source", "machine_health")
    page.fill("#submit-values", "temperature=71.5, vibration=0.25")
    page.get_by_role("button", name="Score point").click()
    verdict = page.locator("#submit-verdict")
    expect(verdict).to_be_visible()
    expect(verdict).to_contain_text("machine_health")
    stored = [p for p in live_server.get("/api/data/machine_health", limit=100)["points"]
              if p["values"] == {"temperature": 71.5, "vibration": 0.25}]
    assert len(stored) == 1
    point = stored[0]
    expect(verdict.locator(".verdict-flag")).to_have_text("Anomaly" if point["is_anomaly"] else "Normal")
    expect(verdict).to_contain_text(f"score {point['score']:.3f}")
    expect(verdict.locator(".verdict-explain")).not_to_be_empty()

    # A new stream from the form, several fields and an explicit timestamp.
    page.fill("#submit-source", "web_form")
    page.fill("#submit-values", "left=1.5; right=-2")
    page.fill("#submit-timestamp", "2026-01-02T03:04:05")
    page.get_by_role("button", name="Score point").click()
    expect(verdict).to_contain_text("web_form")
    expected_ts = page.evaluate("() => new Date('2026-01-02T03:04:05').getTime() / 1000")
    [point] = live_server.get("/api/data/web_form")["points"]
    assert point["values"] == {"left": 1.5, "right": -2.0}
    assert point["timestamp"] == expected_ts
    page.wait_for_function("() => Boolean(window.dashboard.charts['web_form'])")
    assert [d["label"] for d in page.evaluate(CHART_SNAPSHOT_JS, "web_form") if d["role"] == "line"] == [
        "left", "right"]
    page.fill("#submit-timestamp", "")

    # A wrong field set is refused by the server; the page shows its message.
    refused = live_server.submit({"source": "machine_health", "value": 42})
    assert 400 <= refused.status_code < 500, refused.text  # 409 since issue 7: a conflict with the stream's fields
    page.fill("#submit-source", "machine_health")
    page.fill("#submit-values", "42")
    page.get_by_role("button", name="Score point").click()
    expect(page.locator("#submit-message")).to_have_text(refused.json()["error"])
    expect(verdict).to_be_hidden()


def test_markup_from_the_server_is_shown_as_text(dashboard, live_server):
    page, probe = dashboard
    markup = "<img src=x onerror=alert(1)>"
    accepted = live_server.submit({"source": markup, "value": 1.0})
    if accepted.status_code == 200:
        source, field = markup, None
    else:  # the server refuses such stream names: try the markup as a field name instead
        source, field = "web_markup", "<b>bold</b>"
        probe_response = live_server.submit({"source": source, "values": {field: 1.0}})
        assert probe_response.status_code == 200, probe_response.text

    if field is None:
        warm_up(live_server, source, seed=3)
        spike(live_server, source)
    else:
        warm_up(live_server, source, seed=3, field_values={field: 10.0})
        spike(live_server, source, values={field: 1000.0})

    expect(page.locator(".history-row", has_text=source).first).to_be_visible(timeout=10000)
    title = page.locator(".chart-title", has_text=source)
    expect(title).to_have_text(source)
    if field is not None:
        expect(page.locator(".legend-field", has_text=field)).to_have_text(field)
    page.locator(".history-row", has_text=source).first.click()
    expect(page.locator("#detail-title")).to_have_text(f"Anomaly on {source}")
    page.keyboard.press("Escape")

    assert page.evaluate("() => document.querySelectorAll('img').length") == 0
    assert page.evaluate("() => document.querySelectorAll('main b, #toasts b, #detail b').length") == 0
    page.wait_for_timeout(300)
    assert probe.dialogs == []


def test_mute_switch_is_remembered_across_reloads(dashboard, live_server):
    page, _ = dashboard
    switch = page.get_by_role("switch", name=re.compile("Sound"))
    expect(switch).to_have_attribute("aria-checked", "true")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false")
    page.reload()
    expect(page.get_by_role("switch", name=re.compile("Sound"))).to_have_attribute("aria-checked", "false")

    # Muted: an anomaly still pops up, but no tone is played.
    page.locator("#streams-title").click()
    page.wait_for_function("() => window.AlertSound.state() === 'running'")
    source = "web_muted"
    warm_up(live_server, source, seed=5)
    spike(live_server, source)
    expect(page.locator(".toast", has_text=source).first).to_be_visible(timeout=10000)
    assert page.evaluate("() => window.AlertSound.stats.played") == 0
    assert page.evaluate("() => window.AlertSound.stats.skipped") >= 1
    page.get_by_role("switch", name=re.compile("Sound")).click()
    page.reload()
    expect(page.get_by_role("switch", name=re.compile("Sound"))).to_have_attribute("aria-checked", "true")


def test_keyboard_reaches_every_control(dashboard):
    page, _ = dashboard
    page.wait_for_selector("form.detector-row")
    wanted = {"skip-link", "sound-switch", "history-toggle", "submit-source", "submit-values", "submit-timestamp",
              "Score point", "tune-stream", "threshold", "window", "weight", "enabled", "Apply"}
    reached = set()
    outlines = {}
    for _ in range(150):  # from the top of the page, Tab by Tab
        page.keyboard.press("Tab")
        info = page.evaluate("""() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {id: el.id, cls: el.className, name: el.getAttribute('name'),
                    text: (el.textContent || '').trim().slice(0, 30), outline: style.outlineStyle};
        }""")
        key = info["id"] or info["name"] or info["text"] or info["cls"]
        reached.add(key)
        outlines[key] = info["outline"]
        if wanted <= reached:
            break
    assert wanted <= reached, f"not reachable by Tab: {sorted(wanted - reached)}"
    # A visible focus ring on keyboard focus.
    assert outlines["sound-switch"] != "none"
    assert outlines["history-toggle"] != "none"

    # The history panel collapses and expands from the keyboard.
    toggle = page.locator("#history-toggle")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#history-body")).to_be_hidden()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")


def test_screenshots_laptop_tablet_and_detail(browser, live_server):
    SCREENSHOTS.mkdir(exist_ok=True)
    source = "web_screens"
    warm_up(live_server, source, seed=4)
    for size, name in ((LAPTOP, "laptop"), (TABLET, "tablet")):
        context, page, probe = open_dashboard(browser, live_server, viewport=size, reduced_motion="reduce")
        try:
            page.wait_for_function(f"(n) => ({LINE_POINTS_JS})(n) >= 40", arg="cpu_usage", timeout=20000)
            if name == "laptop":
                spike(live_server, source)
                expect(page.locator(".toast").first).to_be_visible(timeout=10000)
            page.wait_for_timeout(400)
            # The user asked for less motion: the pulsing live dot and toast slides stop.
            assert page.evaluate(
                "() => getComputedStyle(document.querySelector('.connection-dot')).animationName") == "none"
            # Nothing overflows sideways at this width.
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"))
            if name == "laptop":
                page.screenshot(path=str(SCREENSHOTS / "dashboard-laptop-full.png"), full_page=True)
                page.locator(".history-row").first.click()
                expect(page.locator("#detail")).to_be_visible()
                page.wait_for_timeout(200)
                page.screenshot(path=str(SCREENSHOTS / "dashboard-detail.png"))
            assert probe.errors == []
        finally:
            context.close()
