"""The history view (issue 10): presets, a custom from/to, drag-to-zoom, zoom buttons and Back,
over a week of stored points with one spike, against the real server (which downsamples)."""
from __future__ import annotations

import time

import numpy as np
import pytest
from playwright.sync_api import expect

SOURCE = "web_history"
WEEK = 7 * 86400

RANGE_JS = "() => Object.assign({}, window.dashboard.history.range.current)"
ANSWER_JS = """() => { const a = window.dashboard.history.chart.answer; return a && {
  source: a.source, from: a.from, to: a.to, total: a.total, resolution: a.resolution,
  buckets: a.buckets ? a.buckets.length : null, points: a.points ? a.points.length : null,
  anomalies: a.anomalies.map(x => x.id) }; }"""
MARKERS_JS = """() => { const c = window.dashboard.history.chart.chart;
  return c.data.datasets.find(d => d.role === 'marker').data.map(p => p.id); }"""


@pytest.fixture(scope="module")
def stored_week(live_server):
    """3,000 points over the last week (their own timestamps), with a spike 3 days ago."""
    now = time.time()
    rng = np.random.default_rng(5)
    stamps = np.sort(now - rng.uniform(60, WEEK - 60, 3000))
    values = 10 + rng.normal(0, 0.3, 3000)
    spike = int(np.searchsorted(stamps, now - 3 * 86400))
    values[spike] = 400.0
    results = []
    for start in range(0, 3000, 1000):
        points = [{"source": SOURCE, "value": float(v), "timestamp": float(t)}
                  for t, v in zip(stamps[start:start + 1000], values[start:start + 1000])]
        answer = live_server.submit({"points": points})
        assert answer.status_code == 200, answer.text
        results += answer.json()["results"]
    assert results[spike]["is_anomaly"], results[spike]
    return {"now": now, "stamps": stamps, "spike_id": results[spike]["id"],
            "spike_at": float(stamps[spike])}


def open_history(page, live_server):
    page.click("#view-link-history")
    expect(page.locator("#hist-view")).to_be_visible()
    page.fill("#hist-stream", SOURCE)  # the picker's search
    page.click(f"#hist-stream-list [data-stream='{SOURCE}']")


def wait_answer(page, check: str, timeout=15000):
    page.wait_for_function(f"() => {{ const a = ({ANSWER_JS})(); return a && a.source === '{SOURCE}' && ({check}); }}",
                           timeout=timeout)
    return page.evaluate(ANSWER_JS)


def test_presets_downsample_a_week_and_mark_the_spike(dashboard, live_server, stored_week):
    page, _ = dashboard
    open_history(page, live_server)
    page.click("#hist-presets [data-seconds='604800']")
    expect(page.locator("#hist-presets [data-seconds='604800']")).to_have_attribute("aria-pressed", "true")
    answer = wait_answer(page, "a.to - a.from > 6 * 86400")
    assert answer["total"] == 3000 and answer["resolution"] == "buckets"
    assert answer["buckets"] <= 2000  # bounded by the chart's width
    assert stored_week["spike_id"] in answer["anomalies"]
    assert stored_week["spike_id"] in page.evaluate(MARKERS_JS)
    expect(page.locator("#hist-summary")).to_contain_text("downsampled by the server")
    # The band keeps the spike: some bucket's max is the spike's 400.
    top = page.evaluate("""() => Math.max(...window.dashboard.history.chart.chart.data.datasets
        .find(d => d.role === 'high').data.map(p => p.y))""")
    assert top == 400.0

    page.click("#hist-presets [data-seconds='900']")
    answer = wait_answer(page, "a.to - a.from < 1000")
    assert answer["to"] - answer["from"] == pytest.approx(900, abs=1)
    assert answer["total"] < 50 and answer["resolution"] == "raw"
    # Zooming out of a range that ends now widens it into the past: it still ends now.
    page.click("#hist-zoom-out")
    wider = wait_answer(page, "a.to - a.from > 1000")
    assert wider["to"] - wider["from"] == pytest.approx(1800, abs=1)
    assert wider["to"] == pytest.approx(answer["to"], abs=5)


def test_custom_range_drag_to_zoom_zoom_buttons_and_back(dashboard, live_server, stored_week):
    page, _ = dashboard
    open_history(page, live_server)
    # A custom range of two hours around the spike (datetime-local is the page's local time).
    start, end = stored_week["spike_at"] - 3600, stored_week["spike_at"] + 3600
    local = page.evaluate("""([a, b]) => [a, b].map(s => { const d = new Date(s * 1000);
        const p = n => String(n).padStart(2, '0');
        return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`; })""",
                          [start, end])
    page.fill("#hist-from", local[0])
    page.fill("#hist-to", local[1])
    page.click("#hist-custom button[type=submit]")
    answer = wait_answer(page, f"Math.abs(a.from - {start}) < 1.5")
    assert answer["to"] == pytest.approx(end, abs=1.5)
    assert answer["resolution"] == "raw" and stored_week["spike_id"] in answer["anomalies"]
    expect(page.locator("#hist-presets [aria-pressed='true']")).to_have_count(0)

    # Drag across the middle half of the plot: the range narrows to about that half.
    area = page.evaluate("() => { const a = window.dashboard.history.chart.chart.chartArea;"
                         " return {left: a.left, right: a.right, top: a.top, bottom: a.bottom}; }")
    box = page.locator("#hist-chart").bounding_box()
    y = box["y"] + (area["top"] + area["bottom"]) / 2
    width = area["right"] - area["left"]
    page.mouse.move(box["x"] + area["left"] + width * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + area["left"] + width * 0.5, y, steps=5)
    page.mouse.move(box["x"] + area["left"] + width * 0.75, y, steps=5)
    page.mouse.up()
    zoomed = wait_answer(page, "a.to - a.from < 5000")
    span = zoomed["to"] - zoomed["from"]
    assert 3000 < span < 4200, span  # half of two hours, give or take a pixel's worth
    assert zoomed["from"] == pytest.approx(start + 1800, abs=120)
    expect(page.locator("#hist-selection")).to_be_hidden()

    page.click("#hist-zoom-out")
    out = wait_answer(page, f"a.to - a.from > {span * 1.5}")
    assert out["to"] - out["from"] == pytest.approx(2 * span, rel=0.01)
    page.click("#hist-zoom-in")
    wait_answer(page, f"a.to - a.from < {span * 1.5}")

    page.click("#hist-back")  # back to the zoomed-out range
    back = wait_answer(page, f"a.to - a.from > {span * 1.5}")
    assert back["from"] == pytest.approx(out["from"], abs=0.01)


def test_a_bad_custom_range_is_refused_in_the_page(dashboard, live_server, stored_week):
    page, _ = dashboard
    open_history(page, live_server)
    before = page.evaluate(RANGE_JS)
    page.fill("#hist-from", "2026-06-02T10:00:00")
    page.fill("#hist-to", "2026-06-01T10:00:00")
    page.click("#hist-custom button[type=submit]")
    expect(page.locator("#hist-message")).to_contain_text("after the start")
    assert page.evaluate(RANGE_JS) == before
