"""The seasonal member judges a young stream's first points once it has a range to judge them by.

Before :data:`detectors.seasonal.YOUTH` points a stream has no typical residual, so its first points are
learned unclipped: an absurd first value used to own the level and the errors (hence the clip) for tens
of thousands of points, and a 10 sigma spike 500 points later scored about 0.01.
"""
import numpy as np
import pytest

from detectors.seasonal import YOUTH, SeasonalDetector


def cycle_with_a_spike(seed=0, n=800, at=500):
    """``10 + sin(2 pi t / 50)`` plus noise of 0.3, and a spike of mean + 10 sigma at ``at``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 10 + np.sin(2 * np.pi * t / 50) + rng.normal(0, 0.3, n)
    x[at] = np.mean(x[:300]) + 10 * np.std(x[:300])
    return x


@pytest.mark.parametrize("first", [1e300, -1e300, 1e6, -1e6])
def test_an_absurd_first_value_leaves_a_later_spike_flagged(first):
    clean = cycle_with_a_spike()
    blinded = clean.copy()
    blinded[0] = first
    det = SeasonalDetector()
    with np.errstate(all="ignore"):
        scores = det.score_series(blinded)
    reference = SeasonalDetector().score_series(clean)
    assert np.isfinite(scores).all()
    assert scores[500] >= det.threshold and scores[500] >= 0.95 * reference[500]
    # Not only the spike: the stream is judged as the clean one, not blinded nor alarmed everywhere.
    assert np.mean(scores[YOUTH:] >= det.threshold) <= np.mean(reference[YOUTH:] >= det.threshold) + 0.01


def test_an_absurd_value_among_the_first_three_points_is_judged_too():
    """Points 0..2 are all learned unclipped (the errors start from them): any of them can be absurd."""
    clean = cycle_with_a_spike()
    for at in (1, 2):
        blinded = clean.copy()
        blinded[at] = 1e300
        with np.errstate(all="ignore"):
            assert SeasonalDetector().score_series(blinded)[500] >= 0.9


def ordinary_youths():
    """A first point 3 sigma high; a t(3) stream whose young points hold a -11.4 (the others -3.7 .. 1.6)."""
    high_first = cycle_with_a_spike()
    high_first[0] = np.mean(high_first[1:YOUTH]) + 3 * np.std(high_first[1:YOUTH])
    return {"3 sigma first": high_first, "heavy tail": np.random.default_rng(1).standard_t(3, 200)}


@pytest.mark.parametrize("kind", ["3 sigma first", "heavy tail"])
def test_an_ordinary_young_extreme_is_not_cut(kind, monkeypatch):
    """Values of the stream are learned as they came: the state is the one learned without any judgement."""
    x = ordinary_youths()[kind]
    judged = SeasonalDetector()
    scores = judged.score_series(x)
    monkeypatch.setattr(SeasonalDetector, "_judge_youth", lambda self, rows: None)
    unjudged = SeasonalDetector()
    np.testing.assert_array_equal(scores, unjudged.score_series(x))
    for name in ("level_", "error_", "daily_", "weekly_", "hour_error_"):
        np.testing.assert_array_equal(getattr(judged, name), getattr(unjudged, name))


def test_a_constant_young_stream_still_cuts_an_absurd_first_value():
    """Others without a spread are judged by the scale's floor: 1e300 before a flat 10 is cut."""
    x = np.full(300, 10.0)
    x[0] = 1e300
    x[200] = 11.0
    with np.errstate(all="ignore"):
        scores = SeasonalDetector().score_series(x)
    assert scores[200] > 0.99 and scores[YOUTH:200].max() == 0.0


def test_only_the_absurd_field_restarts():
    clean = np.stack([cycle_with_a_spike(0), cycle_with_a_spike(1) * 3], axis=1)
    blinded = clean.copy()
    blinded[0, 0] = 1e300
    a, b = SeasonalDetector().reset(1, 2), SeasonalDetector().reset(1, 2)
    with np.errstate(all="ignore"):
        for i in range(YOUTH + 5):
            a.step(clean[i:i + 1])
            b.step(blinded[i:i + 1])
    np.testing.assert_array_equal(a.level_[0, 1], b.level_[0, 1])
    np.testing.assert_array_equal(a.error_[0, 1], b.error_[0, 1])
    assert abs(b.level_[0, 0] - a.level_[0, 0]) < 1.0


def test_a_daily_cycle_is_learned_after_an_absurd_first_value():
    """Five-minute points, busy by day: after a 1e300 at midnight the shape is learned again, and 3 a.m. at a
    daytime level is flagged while the cycle itself is not."""
    t = 1704067200.0 + np.arange(0, 21 * 86400, 300.0)
    hour = (t % 86400) / 3600
    rng = np.random.default_rng(0)
    x = 20 + 80 * ((hour > 8) & (hour < 20)) + rng.normal(0, 3, t.size)
    at_3am = np.flatnonzero(hour == 3.0)[-1]
    x[at_3am] = 100.0
    x[0] = 1e300
    det = SeasonalDetector()
    with np.errstate(all="ignore"):
        scores = det.score_series(x, timestamps=t)
    assert np.isfinite(scores).all()
    assert scores[at_3am] >= det.threshold
    assert np.mean(scores[7 * 288:] >= det.threshold) < 0.01
    low, high = det.expected_range()         # the point after the last one is a night point
    assert 0 <= low[0, 0] < 20 < high[0, 0] < 40


def test_a_snapshot_without_a_youth_summary_judges_nothing():
    """A stream restored mid-youth from older code has no summary of its first points: it is not judged."""
    x = cycle_with_a_spike()
    x[0] = 1e6
    det = SeasonalDetector().reset(1, 1)
    for i in range(10):
        det.step(x[i:i + 1, None])
    det.young_[:] = 0                        # what restoring a snapshot without the summary leaves
    level = det.level_.copy()
    for i in range(10, YOUTH + 1):
        det.step(x[i:i + 1, None])
    assert det.level_[0, 0] > 1e4 and level[0, 0] > 1e4
