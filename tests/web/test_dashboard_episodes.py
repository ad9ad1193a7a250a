"""Anomaly state versus alert (issue 8, item 1) as the page shows it.

A point is anomalous (``is_anomaly``) for as long as its stream's episode lasts; only the
episode's first point carries ``alert: true``. The page marks every anomalous point and pops
one toast (and one tone) per episode. A server that does not send ``alert`` makes every
anomalous point its own alert, so the page works with both server versions.
"""
from __future__ import annotations

from playwright.sync_api import expect

from web_helpers import MARKER_IDS_JS, spike, warm_up

HISTORY_ROWS_JS = """(source) => Array.from(document.querySelectorAll('.history-row'))
  .filter(b => b.querySelector('.history-stream').textContent === source).length"""

ALERTED_JS = """(ids) => ids.filter(id => window.dashboard.alerted.includes('p' + id))"""


def test_episode_marks_every_anomalous_point_and_alerts_once(dashboard, live_server):
    """Against the real server: whatever it says, every anomalous point is marked, every alert pops."""
    page, _ = dashboard
    source = "web_episode"
    page.fill("#stream-search", source)  # its card charted however many streams other tests made
    warm_up(live_server, source, seed=11)
    verdicts = [spike(live_server, source)]
    for value in (1010.0, 1020.0, 1030.0, 1040.0):  # the far-out level lasts: one episode
        response = live_server.submit({"source": source, "value": value})
        assert response.status_code == 200, response.text
        verdicts.append(response.json()["results"][0])
    anomalous = [v["id"] for v in verdicts if v["is_anomaly"]]
    alerts = [v["id"] for v in verdicts if v["is_anomaly"] and v.get("alert", True)]
    quiet = [v["id"] for v in verdicts if v["is_anomaly"] and v.get("alert") is False]
    assert alerts, verdicts  # the episode's first point alerts on either server version

    page.wait_for_function(f"([n, ids]) => ids.every(id => ({MARKER_IDS_JS})(n).includes(id))",
                           arg=[source, anomalous], timeout=10000)
    page.wait_for_function(f"(ids) => ({ALERTED_JS})(ids).length === ids.length", arg=alerts, timeout=10000)
    expect(page.locator(".toast", has_text=source).first).to_be_visible()
    assert page.evaluate(HISTORY_ROWS_JS, source) == len(alerts)
    page.wait_for_timeout(500)
    assert page.evaluate(ALERTED_JS, quiet) == []


def latest_window(page, source: str) -> list[dict]:
    return page.evaluate("(n) => window.dashboard.streams.get(n).points.map(p => Object.assign({}, p))", source)


def test_points_that_continue_an_episode_are_marked_without_an_alert(dashboard, live_server):
    """The page's handling of `alert`, fed real stored points through the anomaly widget's entry
    point (AnomalyWatch.anomalies.handle, where live anomaly events arrive), for a server that
    does not send the field yet."""
    page, _ = dashboard
    source = "web_state"
    page.fill("#stream-search", source)  # its card charted however many streams other tests made
    warm_up(live_server, source, seed=12, rounds=8)
    page.wait_for_function("(n) => (window.dashboard.streams.get(n) || {points: []}).points.length >= 4",
                           arg=source, timeout=10000)
    window = latest_window(page, source)[-4:]
    first, *rest = window
    episode = [dict(first, is_anomaly=True, alert=True, severity="high")] + [
        dict(p, is_anomaly=True, alert=False, severity="high") for p in rest]
    page.evaluate("(points) => points.forEach(p => window.AnomalyWatch.anomalies.handle(p, false))", episode)

    ids = [p["id"] for p in episode]
    page.wait_for_function(f"([n, ids]) => ids.every(id => ({MARKER_IDS_JS})(n).includes(id))",
                           arg=[source, ids], timeout=5000)
    # One alert for the episode: one toast, one history row that counts the episode's points.
    assert page.evaluate(ALERTED_JS, ids) == [first["id"]]
    expect(page.locator(".toast", has_text=source)).to_have_count(1)
    assert page.evaluate(HISTORY_ROWS_JS, source) == 1
    row = page.locator(".history-row", has_text=source)
    expect(row.locator(".history-episode")).to_have_text(f"{len(episode)} points")

    # A point inside the episode opens with a note that its alert came earlier.
    page.evaluate("([n, id]) => window.dashboard.openDetail(window.dashboard.anomalies.get('p' + id))",
                  [source, rest[-1]["id"]])
    expect(page.locator("#detail-body")).to_contain_text("continues an anomalous episode")
    page.keyboard.press("Escape")

    # Without the field (an older server), every anomalous point is its own alert.
    legacy = {k: v for k, v in latest_window(page, source)[-5].items() if k != "alert"}
    legacy.update(is_anomaly=True, severity="low")
    page.evaluate("(p) => window.AnomalyWatch.anomalies.handle(p, false)", legacy)
    page.wait_for_function(f"(ids) => ({ALERTED_JS})(ids).length === 1", arg=[legacy["id"]], timeout=5000)
    assert page.evaluate("() => window.AnomalyWatch.points.isAlert({is_anomaly: true})") is True
    assert page.evaluate("() => window.AnomalyWatch.points.isAlert({is_anomaly: false, alert: true})") is False
