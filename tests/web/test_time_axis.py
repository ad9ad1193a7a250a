"""Chart axes tick on round values: time axes on round times of the viewer's clock (static/core.js,
AnomalyWatch.timeAxis), not on Chart.js' decimal steps of epoch milliseconds (which put ticks at 10:16:40,
10:33:20); value axes on round numbers, never on the fitted ends (AnomalyWatch.valueAxis)."""
from __future__ import annotations

import math
from datetime import datetime, timezone

from web_helpers import open_dashboard

HOUR = 3_600_000

# A fake axis through the hook, then its labels: what Chart.js does with afterBuildTicks and callback.
TICKS_JS = """([min, max, most]) => {
  const axis = { min: min, max: max, ticks: [{ value: min }] };
  window.AnomalyWatch.timeAxis.ticks(most)(axis);
  return { values: axis.ticks.map(t => t.value),
           labels: axis.ticks.map(t => window.AnomalyWatch.timeAxis.label.call(axis, t.value)) };
}"""


def _ms(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp() * 1000)


def fixed_clock_page(browser, server, when: datetime, timezone_id: str):
    """The dashboard's scripts on a page whose clock reads ``when`` (labels name a year outside the
    viewer's current one), without waiting for its live feed."""
    context = browser.new_context(timezone_id=timezone_id)
    page = context.new_page()
    page.clock.set_fixed_time(when)
    page.goto(server.url("/"))
    page.wait_for_function("() => window.AnomalyWatch && window.AnomalyWatch.fmt", timeout=30000)
    return context, page


def test_ticks_fall_on_round_local_times_with_labels_to_match(browser, live_server):
    # India is UTC+5:30: a round local hour is half past a UTC hour, so rounding in UTC would show.
    context, page = fixed_clock_page(browser, live_server, datetime(2026, 12, 5, 12, tzinfo=timezone.utc),
                                     "Asia/Kolkata")
    try:
        hour = page.evaluate(TICKS_JS, [_ms(2026, 12, 3, 10, 4, 17), _ms(2026, 12, 3, 11, 4, 17), 7])
        assert hour["labels"] == ["15:40", "15:50", "16:00", "16:10", "16:20", "16:30"]
        assert {b - a for a, b in zip(hour["values"], hour["values"][1:])} == {600_000}

        day = page.evaluate(TICKS_JS, [_ms(2026, 12, 2, 11, 4), _ms(2026, 12, 3, 11, 4), 7])
        assert {b - a for a, b in zip(day["values"], day["values"][1:])} == {6 * HOUR}
        assert day["labels"] == ["18:00", "Dec 3 00:00", "06:00", "12:00"]  # midnight names its day
        assert day["values"][1] == _ms(2026, 12, 2, 18, 30)  # local midnight of Dec 3 in India

        week = page.evaluate(TICKS_JS, [_ms(2026, 11, 26, 11, 4), _ms(2026, 12, 3, 11, 4), 7])
        assert week["labels"] == ["Nov 27", "Nov 29", "Dec 1", "Dec 3"]
        assert week["values"][0] == _ms(2026, 11, 26, 18, 30)

        minutes = page.evaluate(TICKS_JS, [_ms(2026, 12, 3, 10, 53, 58), _ms(2026, 12, 3, 10, 55, 56), 5])
        assert minutes["labels"] == ["16:24:00", "16:24:30", "16:25:00", "16:25:30"]

        short = page.evaluate(TICKS_JS, [_ms(2026, 12, 3, 10, 0, 0) + 100, _ms(2026, 12, 3, 10, 0, 0) + 900, 5])
        assert short["values"] == [_ms(2026, 12, 3, 10, 0, 0) + 100]  # under two round times: left alone

        # Days outside the viewer's year name it: Jan 1 of 2025 and of 2030 are not the same day.
        old = page.evaluate(TICKS_JS, [_ms(2024, 12, 26, 11, 4), _ms(2025, 1, 2, 11, 4), 7])
        assert old["labels"] == ["Dec 27, 2024", "Dec 29, 2024", "Dec 31, 2024", "Jan 2, 2025"]
    finally:
        context.close()


def test_dates_and_spans_read_unambiguously(browser, live_server):
    context, page = fixed_clock_page(browser, live_server, datetime(2026, 12, 5, 12, tzinfo=timezone.utc), "UTC")
    try:
        date_time = "(s) => window.AnomalyWatch.fmt.dateTime(s)"
        assert page.evaluate(date_time, _ms(2026, 3, 1, 8, 5, 9) / 1000) == "Mar 1 08:05:09"
        assert page.evaluate(date_time, _ms(2020, 1, 1) / 1000) == "Jan 1, 2020 00:00:00"
        assert page.evaluate(date_time, _ms(2030, 1, 1) / 1000) == "Jan 1, 2030 00:00:00"
        duration = "(s) => window.AnomalyWatch.fmt.duration(s)"
        assert [page.evaluate(duration, s) for s in (0, 0.004, 0.99, 1.5, 75, 7200)] == \
            ["0s", "<0.01s", "0.99s", "1s", "1m 15s", "2h 0m"]
    finally:
        context.close()


def test_live_chart_ticks_fall_on_round_seconds(browser, live_server):
    context, page, probe = open_dashboard(browser, live_server, timezone_id="Asia/Kolkata")
    try:
        # The live charts use it: every tick of every chart's time axis on a round second.
        page.wait_for_function("""() => Object.values(window.dashboard.charts).some(
            chart => chart.scales.x.max - chart.scales.x.min >= 10000)""", timeout=60000)
        steps = page.evaluate("""() => Object.values(window.dashboard.charts)
            .filter(chart => chart.scales.x.max - chart.scales.x.min >= 10000).map(chart => {
              const values = chart.scales.x.ticks.map(t => t.value);
              return values.length > 1 ? [values[0] % 1000, values[1] - values[0]] : null; })""")
        measured = [s for s in steps if s]
        assert measured and all(offset == 0 and step in (1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000)
                                for offset, step in measured), steps
    finally:
        context.close()
    assert probe.errors == []


VALUE_TICKS_JS = """([min, max, most]) => {
  const axis = { min: min, max: max, ticks: [{ value: min }, { value: max }] };
  window.AnomalyWatch.valueAxis.ticks(most)(axis);
  return axis.ticks.map(t => t.value);
}"""


def test_value_axes_label_round_values_only(browser, live_server):
    # A live chart's value axis is fitted to its points; Chart.js would label the fitted ends too
    # (100.1 drawn over 100). Only round values inside the range are ticks.
    context, page, probe = open_dashboard(browser, live_server)
    try:
        assert page.evaluate(VALUE_TICKS_JS, [99.54, 100.1, 4]) == [99.6, 99.8, 100]
        assert page.evaluate(VALUE_TICKS_JS, [12.7, 27.75, 4]) == [15, 20, 25]
        assert page.evaluate(VALUE_TICKS_JS, [-0.013, 0.031, 5]) == [-0.01, 0, 0.01, 0.02, 0.03]
        assert page.evaluate(VALUE_TICKS_JS, [-0.013, 0.031, 4]) == [0, 0.02]
        assert page.evaluate(VALUE_TICKS_JS, [1, 1, 4]) == [1, 1]  # no span: left alone
        assert page.evaluate(VALUE_TICKS_JS, [1e6, 3.5e6, 4]) == [1e6, 2e6, 3e6]

        page.wait_for_function("""() => Object.values(window.dashboard.charts).some(
            chart => chart.scales.y0 && chart.scales.y0.ticks.length > 1)""", timeout=60000)
        axes = page.evaluate("""() => Object.values(window.dashboard.charts).filter(chart => chart.scales.y0)
            .map(chart => ({ min: chart.scales.y0.min, max: chart.scales.y0.max,
                             values: chart.scales.y0.ticks.map(t => t.value) }))""")
        for axis in axes:
            values = axis["values"]
            if len(values) < 2:
                continue
            step = values[1] - values[0]
            mantissa = step / 10 ** math.floor(math.log10(step))
            assert any(abs(mantissa - m) < 1e-6 for m in (1, 2, 2.5, 5, 10)), axis
            assert all(abs(v / step - round(v / step)) < 1e-6 for v in values), axis
            assert axis["min"] <= values[0] and values[-1] <= axis["max"], axis
    finally:
        context.close()
    assert probe.errors == []
