"""Tests of the novelty stage: record strengths against a brute-force rolling record, and the alarm hold-off."""
import numpy as np
import pandas as pd
import pytest

from detectors.novelty import HoldOff, RecordTracker


def brute_strength(u, window, warmup=0, mature=1):
    """Record strength of every value of ``u`` (T,) against the previous ``window`` learned values."""
    s = pd.Series(np.where(np.arange(len(u)) < warmup, np.nan, u))
    recent = s.rolling(window, min_periods=1).max().shift(1)
    spread = (s.expanding().max() - s.expanding().min()).shift(1)
    learned = np.maximum(np.arange(len(u)) - warmup, 1)
    strength = ((s - recent) / spread).to_numpy() * np.minimum(1.0, learned / mature)
    return np.where(np.isfinite(strength) & (strength > 0), strength, 0.0)


def track(tracker, U, present=None):
    """Feed ``U`` (T, S, C) through a fresh tracker; return the strengths and log probabilities, each (T, S, C)."""
    T, S, C = U.shape
    tracker.reset(S, C)
    present = np.ones((T, S), dtype=bool) if present is None else present
    strengths, logps = [], []
    for t in range(T):
        logps.append(tracker.update(U[t], present[t]))
        strengths.append(tracker.strength_.copy())
    return np.array(strengths), np.array(logps)


@pytest.mark.parametrize("warmup, mature", [(0, 1), (25, 1), (0, 150)])
def test_strength_equals_a_brute_force_rolling_record(warmup, mature):
    rng = np.random.default_rng(0)
    u = np.cumsum(rng.normal(0, 1, (600, 2, 3)), axis=0)  # random walks set many records
    window = 40
    # One slot per block makes the recent maximum exact.
    strengths, _ = track(RecordTracker(window, scale=0.01, warmup=warmup, mature=mature, n_blocks=window), u)
    for s in range(2):
        for c in range(3):
            expected = brute_strength(u[:, s, c], window, warmup, mature)
            np.testing.assert_allclose(strengths[:, s, c], expected, atol=1e-12)


def test_blocked_window_lies_between_its_shortest_and_longest_span():
    rng = np.random.default_rng(1)
    u = rng.normal(0, 1, (2000, 1, 1))
    strengths, _ = track(RecordTracker(100, scale=0.01, n_blocks=4), u)
    longest, shortest = brute_strength(u[:, 0, 0], 100), brute_strength(u[:, 0, 0], 75)
    got = strengths[:, 0, 0]
    assert ((got >= longest - 1e-12) & (got <= shortest + 1e-12)).all()


def test_log_probability_reads_a_record_against_the_points_it_beats():
    u = np.array([0.0, 1.0, 0.5, 3.0, 2.0] + [0.1] * 20 + [4.0])[:, None, None]
    strengths, logps = track(RecordTracker(window=10, scale=0.25, n_blocks=10), u)
    # 3.0 beats 1.0 by 2 ranges (range 0..1) after 3 points: p = exp(-2 / 0.25) / 3.
    assert strengths[3, 0, 0] == pytest.approx(2.0)
    assert logps[3, 0, 0] == pytest.approx(-np.log(3) - 8.0)
    # 4.0 beats the last 10 points (all 0.1) by 3.9 / 3 ranges: n is capped at the window.
    assert logps[-1, 0, 0] == pytest.approx(-np.log(10) - (3.9 / 3.0) / 0.25)
    assert (logps[(strengths == 0)] == 0).all()


def test_absent_rows_neither_score_nor_learn():
    rng = np.random.default_rng(2)
    u = rng.normal(0, 1, (300, 1, 1))
    present = rng.random((300, 1)) < 0.6
    gappy, _ = track(RecordTracker(30, scale=0.01, n_blocks=30), u, present)
    dense, _ = track(RecordTracker(30, scale=0.01, n_blocks=30), u[present[:, 0]])
    assert (gappy[~present[:, 0]] == 0).all()
    np.testing.assert_allclose(gappy[present[:, 0]], dense)


def test_bad_parameters_are_a_clear_error():
    for params in (dict(window=1, scale=1.0), dict(window=10, scale=0.0), dict(window=10, scale=1.0, mature=0)):
        with pytest.raises(ValueError):
            RecordTracker(**params).reset(1, 1)
    with pytest.raises(ValueError):
        HoldOff(-1).reset(1)


def test_hold_off_silences_a_stream_for_its_next_points_only():
    hold = HoldOff(ticks=3).reset(2)
    scores = np.array([[0.9, 0.1], [0.9, 0.9], [0.9, 0.9], [0.9, 0.1], [0.9, 0.1], [0.1, 0.1]])
    present = np.array([[True, True], [True, True], [False, True], [True, True], [True, True], [True, True]])
    held = np.array([hold.update(s, p, 0.5) for s, p in zip(scores, present)])
    # Stream 0: alarm, then 3 present points held (the absent tick does not count), then a new alarm.
    assert held[:, 0].tolist() == [False, True, False, True, True, False]
    # Stream 1: its first alarm comes on the second tick.
    assert held[:, 1].tolist() == [False, False, True, True, True, False]


def test_a_rarer_event_breaks_through_the_hold_off_and_restarts_it():
    hold = HoldOff(ticks=3).reset(1)
    scores = [0.7, 0.65, 0.95, 0.9, 0.9, 0.9, 0.8]
    held = [bool(hold.update(np.array([s]), np.array([True]), 0.6)[0]) for s in scores]
    assert held == [False, True, False, True, True, True, False]
