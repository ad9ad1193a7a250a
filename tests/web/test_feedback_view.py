"""'Not an anomaly' from the detail dialog, against the real server: the button teaches the stream,
a toast says so, the dialog remembers it, and the server has stored the verdict and resolved the alert."""
from __future__ import annotations

from playwright.sync_api import expect

from web_helpers import spike, warm_up


def test_not_an_anomaly_button_teaches_the_stream_and_shows_a_toast(dashboard, live_server):
    page, _ = dashboard
    source = "web_feedback"
    warm_up(live_server, source, seed=5)
    verdict = spike(live_server, source)

    row = page.locator(".history-row", has_text=source).first
    expect(row).to_be_visible(timeout=10000)
    row.click()
    dialog = page.locator("#detail")
    expect(dialog).to_be_visible()
    button = page.locator("#detail-not-anomaly")
    expect(button).to_have_text("Not an anomaly")
    page.locator("#detail .detail-feedback input[name=note]").fill("a known batch job")
    button.click()

    toast = page.locator(".toast-notice")
    expect(toast).to_contain_text("Not an anomaly")
    expect(toast).to_contain_text(f"{source} learned these values")
    expect(button).to_have_text("Marked as not an anomaly")
    expect(button).to_be_disabled()
    expect(page.locator("#detail .detail-feedback .form-message")).to_contain_text(f"{source} learned these values")

    [stored] = live_server.get("/api/feedback", stream=source)["feedback"]
    assert stored["point_id"] == verdict["id"] and stored["note"] == "a known batch job"
    alert = live_server.get(f"/api/incidents/{stored['alert_id']}")["alert"]
    assert alert["state"] == "resolved" and alert["resolution"] == "not an anomaly"
    expect(toast).to_contain_text(f"alert #{alert['id']} is resolved")

    # Reopened, the dialog remembers the verdict.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    row.click()
    expect(page.locator("#detail-not-anomaly")).to_have_text("Marked as not an anomaly")
