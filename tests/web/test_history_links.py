"""Ways into the history view (issue 10): a live chart card's "History" button and the detail
dialog's open that stream around that time, and the view's stream picker finds any of hundreds
of streams by search (keyboard or pointer), against the real server."""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from web_helpers import LINE_POINTS_JS, LiveServer, open_dashboard

LINKED = "web_link"
LINES = 300  # user streams besides LINKED: far more than the picker lists at once (50)
SPACING_S = 7.0
CONTAINS = "baseline_001"  # sorts before line_*, but only contains the query "line_00"

ANSWER_JS = """() => { const a = window.dashboard.history.chart.answer;
  return a && {source: a.source, from: a.from, to: a.to, total: a.total}; }"""


def line(i: int) -> str:
    return f"line_{i:03d}"


@pytest.fixture(scope="module")
def many_streams(tmp_path_factory):
    """A server of its own (the user-stream cap raised) with 300 one-point streams and LINKED,
    whose 200 points end now, SPACING_S apart."""
    server = LiveServer(tmp_path_factory.mktemp("history-links"), MAX_USER_STREAMS=LINES + 50)
    server.start()
    try:
        now = time.time()
        stamps = [now - SPACING_S * (199 - i) for i in range(200)]
        points = [{"source": LINKED, "value": 5.0 + (i % 7) * 0.1, "timestamp": t} for i, t in enumerate(stamps)]
        points += [{"source": line(i), "value": float(i)} for i in range(LINES)]
        points.append({"source": CONTAINS, "value": 1.0})
        answer = server.submit({"points": points})
        assert answer.status_code == 200, answer.text[:500]
        yield server, stamps
    finally:
        server.kill()


@pytest.fixture
def page(browser, many_streams):
    server, _ = many_streams
    context, page, probe = open_dashboard(browser, server, timeout=40000)
    yield page
    context.close()
    assert probe.errors == [], f"JavaScript errors on the page: {probe.errors}"


def wait_answer(page, source: str, check: str = "true"):
    page.wait_for_function(f"() => {{ const a = ({ANSWER_JS})(); return a && a.source === {source!r} && ({check}); }}",
                           timeout=15000)
    return page.evaluate(ANSWER_JS)


def stored_between(stamps, start, end) -> int:
    return sum(start <= t <= end for t in stamps)


def test_a_chart_cards_history_button_opens_its_stream_around_the_window(page, many_streams):
    _, stamps = many_streams
    page.fill("#stream-search", LINKED)  # one match: its group shows a card, not the compact list
    card = page.locator(f".chart-card[data-stream='{LINKED}']")
    expect(card).to_be_visible()
    page.wait_for_function(f"() => ({LINE_POINTS_JS})({LINKED!r}) === 60", timeout=15000)
    first, last = page.evaluate(f"""() => {{ const p = window.dashboard.streams.get({LINKED!r}).points;
        return [p[0].timestamp, p[p.length - 1].timestamp]; }}""")
    assert last == pytest.approx(stamps[-1]) and first == pytest.approx(stamps[-60])

    # Named by its stream for a screen reader: the page holds one History button per card.
    card.get_by_role("button", name=f"History of {LINKED}", exact=True).click()
    expect(page.locator("#hist-view")).to_be_visible()
    assert page.evaluate("() => window.location.hash") == "#history"
    expect(page.locator("#hist-stream")).to_have_value(LINKED)
    answer = wait_answer(page, LINKED)
    margin = max(300, (last - first) * 0.25)  # static/history-chart.js openAround
    assert answer["from"] == pytest.approx(first - margin, abs=0.01)
    assert answer["to"] == pytest.approx(last + margin, abs=0.01)
    assert answer["total"] == stored_between(stamps, answer["from"], answer["to"]) > 60
    expect(page.locator("#hist-presets [aria-pressed='true']")).to_have_count(0)


def test_the_detail_dialogs_history_button_opens_the_stream_around_the_point(page, many_streams):
    _, stamps = many_streams
    page.fill("#stream-search", LINKED)  # its card on screen, so the page fetches its window
    page.wait_for_function(f"() => ({LINE_POINTS_JS})({LINKED!r}) === 60", timeout=15000)
    at = page.evaluate(f"""() => {{ const p = window.dashboard.streams.get({LINKED!r}).points[10];
        window.dashboard.openDetail(p); return p.timestamp; }}""")
    expect(page.locator("#detail")).to_be_visible()
    page.click("#detail-history")
    expect(page.locator("#detail")).to_be_hidden()
    expect(page.locator("#hist-view")).to_be_visible()
    answer = wait_answer(page, LINKED)
    assert answer["from"] == pytest.approx(at - 300, abs=0.01)
    assert answer["to"] == pytest.approx(at + 300, abs=0.01)
    assert answer["total"] == stored_between(stamps, at - 300, at + 300)


def test_the_picker_finds_any_of_hundreds_of_streams_by_search(page):
    page.click("#view-link-history")
    expect(page.locator("#hist-view")).to_be_visible()
    picker = page.locator("#hist-stream")
    expect(picker).to_have_value(CONTAINS)  # nothing picked before: the first stream by name
    wait_answer(page, CONTAINS)

    picker.click()
    options = page.locator("#hist-stream-list [role='option']")
    expect(options).to_have_count(50)
    known = page.evaluate("() => window.dashboard.streams.size")
    assert known == 9 + LINES + 2  # the built-in streams too
    expect(page.locator("#hist-stream-note")).to_contain_text(f"The first 50 of {known} matches")

    # By keyboard: a part of the name (not its start), two down, Enter.
    picker.press_sequentially("ne_12")
    expect(options).to_have_count(10)
    expect(page.locator("#hist-stream-note")).to_have_text("")
    expect(options.first).to_have_attribute("data-stream", line(120))
    picker.press("ArrowDown")
    picker.press("ArrowDown")
    expect(picker).to_have_attribute("aria-activedescendant", "hist-stream-option-2")
    picker.press("Enter")
    expect(page.locator("#hist-stream-popup")).to_be_hidden()
    expect(picker).to_have_value(line(122))
    assert wait_answer(page, line(122))["total"] == 1

    # By pointer: names that start with the query come before names that merely contain it.
    picker.fill("line_00")
    expect(options).to_have_count(11)
    assert options.evaluate_all("os => os.map(o => o.dataset.stream)") == [line(i) for i in range(10)] + [CONTAINS]
    picker.fill("line_29")
    expect(options).to_have_count(10)
    options.filter(has_text=line(297)).click()
    expect(picker).to_have_value(line(297))
    assert wait_answer(page, line(297))["total"] == 1

    # Escape puts back the stream shown; a search with no match says so.
    picker.fill("no such stream")
    expect(options).to_have_count(0)
    expect(page.locator("#hist-stream-note")).to_contain_text("No stream matches")
    picker.press("Escape")
    expect(picker).to_have_value(line(297))
    expect(page.locator("#hist-stream-popup")).to_be_hidden()
