"""A thousand user streams stay usable: a short page, a compact list, charts only where wanted.

Before the stream browser, 1,009 streams drew 1,009 charts on a 91,601-px page. The streams
are created the way users create them, through /api/submit, on a server of their own whose
user-stream cap is raised.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from web_helpers import LAPTOP, LINE_POINTS_JS, SCREENSHOTS, TABLET, LiveServer, open_dashboard

USER_STREAMS = 1000
CHART_LIMIT = 12  # static/stream-list.js: more matching streams than this in a group make a list


def fleet(i: int) -> str:
    return f"fleet_{i:04d}"


@pytest.fixture(scope="module")
def crowded_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("crowded-server"), MAX_USER_STREAMS=USER_STREAMS + 50)
    server.start()
    try:
        for first in range(0, USER_STREAMS, 500):
            points = [{"source": fleet(i), "value": float(i % 17)} for i in range(first, first + 500)]
            response = server.submit({"points": points})
            assert response.status_code == 200, response.text[:500]
        assert sum(s["kind"] == "user" for s in server.get("/api/status")["streams"]) == USER_STREAMS
        yield server
    finally:
        server.kill()


@pytest.fixture
def crowded_page(browser, crowded_server):
    context, page, probe = open_dashboard(browser, crowded_server, timeout=40000)
    data_requests = []
    page.on("request", lambda r: data_requests.append(r.url) if "/api/data/" in r.url else None)
    page.wait_for_function("(n) => document.getElementById('stream-count').dataset.total == n",
                           arg=USER_STREAMS + 9, timeout=20000)
    yield page, data_requests
    context.close()
    assert probe.errors == [], f"JavaScript errors on the page: {probe.errors}"


def chart_names(page) -> list[str]:
    return page.evaluate("() => Object.keys(window.dashboard.charts)")


def test_thousand_streams_make_a_short_page_with_a_list(crowded_page, crowded_server):
    page, data_requests = crowded_page
    builtin = [s["name"] for s in crowded_server.get("/api/status")["streams"] if s["kind"] == "builtin"]
    user_group = page.locator(".stream-group[data-kind=user]")
    expect(user_group.locator(".stream-group-title .count-badge")).to_have_text("1,000")
    # Built-in streams keep their charts; the thousand user streams are a list, a page at a time.
    page.wait_for_function("(names) => names.every(n => window.dashboard.charts[n])", arg=builtin)
    assert sorted(chart_names(page)) == sorted(builtin)
    rows = user_group.locator(".stream-row")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text(fleet(0))
    height = page.evaluate("() => document.documentElement.scrollHeight")
    assert height < 6000, f"the page is {height} px high"
    # No window was fetched for a stream without a chart.
    page.wait_for_timeout(500)
    assert len(data_requests) <= len(builtin), data_requests

    user_group.locator(".stream-more").click()
    expect(rows).to_have_count(100)

    # A point submitted to a listed stream shows in its row.
    assert crowded_server.submit({"source": fleet(3), "value": 123.5}).status_code == 200
    expect(user_group.locator(f".stream-row[data-stream={fleet(3)}] .stream-row-value")).to_have_text("123.5")

    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "many-streams-laptop.png"))


def test_search_narrows_to_charts_and_pins_stay(crowded_page, crowded_server):
    page, _ = crowded_page
    search = page.get_by_role("searchbox", name="Search streams")

    # A search that leaves few streams draws them as charts, with their stored windows.
    search.fill(fleet(777))
    page.wait_for_function("(n) => Boolean(window.dashboard.charts[n])", arg=fleet(777))
    page.wait_for_function(f"(n) => ({LINE_POINTS_JS})(n) >= 1", arg=fleet(777), timeout=10000)
    expect(page.locator(".chart-card")).to_have_count(1)
    expect(page.locator("#stream-count")).to_contain_text("1 of 1,009")

    # A search that leaves many is a list; a stream picked from it gets a chart.
    search.fill("fleet_00")
    user_group = page.locator(".stream-group[data-kind=user]")
    expect(user_group.locator(".stream-row")).to_have_count(50)
    expect(user_group.locator(".stream-group-title .count-badge")).to_have_text("100")
    assert chart_names(page) == []
    row = user_group.locator(f".stream-row[data-stream={fleet(42)}]")
    row.get_by_role("button", name=f"Show the chart of {fleet(42)}").click()
    expect(row.locator(".stream-pin")).to_have_attribute("aria-pressed", "true")
    page.wait_for_function(f"(n) => ({LINE_POINTS_JS})(n) >= 1", arg=fleet(42), timeout=10000)
    assert chart_names(page) == [fleet(42)]

    # The pinned chart stays when the search is cleared, beside the built-in charts.
    search.fill("")
    expect(user_group.locator(".stream-row")).to_have_count(50)
    page.wait_for_function("() => Object.keys(window.dashboard.charts).length === 10")
    assert fleet(42) in chart_names(page)

    # Only the built-in streams: no list, no user charts.
    page.locator("#stream-kind [data-kind=builtin]").click()
    expect(user_group).to_be_hidden()
    expect(page.locator(".chart-card")).to_have_count(9)

    # A search that finds nothing says so.
    page.locator("#stream-kind [data-kind=all]").click()
    search.fill("no-such-stream")
    expect(page.locator("#charts-empty")).to_have_text("No stream matches \u201cno-such-stream\u201d.")
    search.fill("")

    # Sorting by most anomalies puts a stream with anomalies first.
    top = page.locator("#stream-sort")
    top.select_option("anomalies")
    expect(user_group.locator(".stream-row").first).to_be_visible()


def test_many_streams_screenshots(browser, crowded_server):
    SCREENSHOTS.mkdir(exist_ok=True)
    for size, name in ((LAPTOP, "laptop"), (TABLET, "tablet")):
        context, page, probe = open_dashboard(browser, crowded_server, viewport=size, timeout=40000)
        try:
            expect(page.locator(".stream-group[data-kind=user] .stream-row")).to_have_count(50, timeout=20000)
            page.wait_for_timeout(400)
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=str(SCREENSHOTS / f"many-streams-{name}-full.png"), full_page=True)
            assert probe.errors == []
        finally:
            context.close()
