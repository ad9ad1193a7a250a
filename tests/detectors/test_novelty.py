"""Tests of the novelty stage: record strengths against a brute-force rolling record, robust learning, episodes."""
import numpy as np
import pandas as pd
import pytest

from detectors.novelty import EpisodeState, RecordTracker


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
        RecordTracker(window=10, scale=1.0, step=0.0).reset(1, 1)
    for params in (dict(settle=0), dict(memory=0), dict(release=1.5)):
        with pytest.raises(ValueError):
            EpisodeState(**params).reset(1, 1)


def test_one_absurd_value_cannot_own_the_record_or_the_range():
    """After a 1e300, a value 10 spreads out is still a strong record; a learned-as-is tracker is blind to it."""
    rng = np.random.default_rng(3)
    u = rng.normal(0, 1, (1300, 1, 1))
    u[1000] = 1e300
    u[1200] = 10.0
    robust, _ = track(RecordTracker(1000, scale=0.01, step=0.25), u)
    naive, _ = track(RecordTracker(1000, scale=0.01), u)
    assert robust[1000, 0, 0] > 1e200          # the absurd value itself is scored as it is
    assert robust[1200, 0, 0] > 0.1            # beats the clipped record by a tenth of the range
    assert naive[1200, 0, 0] == 0.0


@pytest.mark.parametrize("absurd", [1e6, 1e300, -1e300])
def test_an_absurd_first_value_is_judged_once_the_stream_has_a_range(absurd):
    """A young stream learns values as they come; after STEP_AFTER points its extremes are learned as
    winsorising would have learned them then, so a first 1e300 owns neither the range nor the record."""
    rng = np.random.default_rng(5)
    u = rng.normal(10, 1, (600, 1, 1))
    u[0] = absurd
    u[500] = 40.0  # 30 spreads out
    tracker = RecordTracker(1000, scale=0.01, step=0.25)
    strengths, _ = track(tracker, np.concatenate([u, -u], axis=2))
    assert strengths[500, 0, 0] > 0.5
    assert tracker.high_[0, 0] < 50 and tracker.low_[0, 0] > -50  # the range is the stream's, not the absurd value's
    # Without the judgement (nothing is cut while young, and the range keeps the first value) it is blind.
    naive, _ = track(RecordTracker(1000, scale=0.01), np.concatenate([u, -u], axis=2))
    assert naive[500, 0, 0] < 1e-3


def test_a_young_streams_own_extremes_are_kept():
    """An ordinary high first value is no absurd one: it stays the record."""
    rng = np.random.default_rng(6)
    u = rng.normal(10, 1, (40, 1, 1))
    u[0] = 12.4
    assert u[1:].max() < 12.4 and 12.4 - u[1:].max() < 0.25 * np.ptp(u[1:])  # within a step of the others
    tracker = RecordTracker(1000, scale=0.01, step=0.25)
    track(tracker, u)
    assert tracker.high_[0, 0] == 12.4
    assert max(tracker.partial_[0, 0], tracker.maxima_[0, 0].max()) == 12.4


def test_a_real_new_level_moves_the_record_within_a_few_points():
    rng = np.random.default_rng(4)
    u = np.r_[rng.normal(0, 1, 600), rng.normal(50, 1, 40)][:, None, None]
    strengths, _ = track(RecordTracker(500, scale=0.01, step=0.25), u)
    assert strengths[600, 0, 0] > 1.0
    assert (strengths[630:, 0, 0] == 0).all()  # the new level is no longer a record


def test_a_record_counts_only_once_its_channel_has_learned_enough_points():
    rng = np.random.default_rng(6)
    u = rng.normal(0, 1, (80, 1, 1))
    u[[20, 60], 0, 0] = [20.0, 40.0]
    gated, logp = track(RecordTracker(100, scale=0.01, counts_after=30), u)
    assert gated[20, 0, 0] == 0 and logp[20, 0, 0] == 0   # 20 points: the range is not known yet
    assert gated[60, 0, 0] > 0                            # 60 points: a record
    ungated, _ = track(RecordTracker(100, scale=0.01), u)
    assert ungated[20, 0, 0] > 0


def daily_spikes(heights, period=288, seed=5):
    """One channel of Gaussian noise (sd 0.01 around 0.07) with a one-point spike of each height every ``period``."""
    rng = np.random.default_rng(seed)
    u = 0.07 + rng.normal(0, 0.01, (period * (len(heights) + 1), 1, 1))
    at = period * np.arange(1, len(heights) + 1)
    u[at, 0, 0] = heights
    return u, at


def test_a_recurring_excursion_sets_the_record_the_second_time():
    """A daily spike to the same height is a record on its first two days, not for two weeks of step-sized learning."""
    u, at = daily_spikes([1.4, 1.47, 1.33, 1.47, 1.40, 1.53, 1.47, 1.60])
    strengths, _ = track(RecordTracker(4000, scale=0.01, step=0.25), u)
    assert (strengths[at[:2], 0, 0] > 1.0).all()
    assert (strengths[at[2:], 0, 0] < 0.2).all()     # later peaks beat the learned one by a noise's worth only
    assert (strengths[at[[2, 4]], 0, 0] == 0).all()  # no higher than the second


def test_an_excursion_far_above_an_earlier_one_is_not_its_recurrence():
    """A spike twice as high above the record as the last one is another incident: both learned a step at a time."""
    u, at = daily_spikes([0.5, 1.5, 1.5])
    strengths, _ = track(RecordTracker(4000, scale=0.01, step=0.25), u)
    assert (strengths[at, 0, 0] > 1.0).all()         # the third is the second's recurrence: learned after it
    u, at = daily_spikes([0.5, 1.5, 1.5, 1.5])
    strengths, _ = track(RecordTracker(4000, scale=0.01, step=0.25), u)
    assert strengths[at[3], 0, 0] < 0.2


def test_a_recurrence_is_remembered_for_the_window_only():
    """A spike 900 points after another recurs with it under a window of 1,200, not of 600: only then is it learned."""
    u, at = daily_spikes([1.4, 1.4], period=900)
    u[at[1] + 100, 0, 0] = 1.4                       # a third, 100 points after the second
    remembered, _ = track(RecordTracker(1200, scale=0.01, step=0.25), u)
    forgotten, _ = track(RecordTracker(600, scale=0.01, step=0.25), u)
    assert remembered[at[1] + 100, 0, 0] == 0        # the second was learned up to the first's peak
    assert forgotten[at[1] + 100, 0, 0] > 1.0        # the second was cut back: the third is still a record


def run_episodes(state, xs, alerts, novelty=None, evidence=None, centre=0.0, scale=1.0):
    """Feed one stream's points through ``state``; point-wise evidence defaults to "unusual" (log p = -20)."""
    xs = np.asarray(xs, dtype=float)
    state.reset(1, 1)
    novelty = np.zeros(len(xs)) if novelty is None else np.asarray(novelty, dtype=float)
    evidence = np.full(len(xs), -20.0) if evidence is None else np.asarray(evidence, dtype=float)
    out = []
    for x, a, n, e in zip(xs, alerts, novelty, evidence):
        opened, episode = state.update(np.array([[x]]), np.array([a]), np.array([n]), np.array([e]), np.array([True]),
                                       np.full((1, 1), centre), np.full((1, 1), scale))
        out.append((bool(opened[0]), bool(episode[0])))
    return out


def test_an_episode_lasts_while_values_stay_outside_the_range_expected_before_it():
    xs = [0.0, 8.0] + [8.0] * 50 + [0.1, -0.2, 0.3, 0.0]
    alerts = [False, True] + [False] * 54
    out = run_episodes(EpisodeState(settle=3, memory=500), xs, alerts)
    assert [o for o, _ in out].count(True) == 1 and out[1] == (True, True)
    assert all(e for _, e in out[1:54])        # 50 shifted points and the first two normal ones
    assert out[54][1] is False                 # the third normal point in a row ends it
    assert out[0] == (False, False)


def test_noise_inside_an_episode_does_not_split_it():
    xs = [9.0, 0.1, 9.0, 0.0, 0.2, 9.0, 0.0, 0.0, 0.0, 0.0]
    out = run_episodes(EpisodeState(settle=3), xs, [True] + [False] * 9)
    assert [e for _, e in out] == [True] * 8 + [False, False]
    assert sum(o for o, _ in out) == 1


def test_a_long_new_level_becomes_normal_after_the_reference_memory():
    xs = [8.0] * 100
    out = run_episodes(EpisodeState(settle=3, memory=40), xs, [True] + [False] * 99)
    ends = [e for _, e in out].index(False)
    assert 40 < ends <= 44


def test_a_stream_that_wandered_off_without_evidence_is_back_to_normal():
    """Outside the frozen range but usual to the adapted members (a random walk after an alert): the episode ends."""
    xs = [8.0] * 20
    evidence = [-20.0] * 5 + [0.0] * 15
    out = run_episodes(EpisodeState(settle=3), xs, [True] + [False] * 19, evidence=evidence)
    assert [e for _, e in out] == [True] * 7 + [False] * 13


def test_records_keep_an_episode_open_inside_the_range():
    xs = [0.0] * 20
    novelty = [0.0] + [-20.0] * 10 + [0.0] * 9
    out = run_episodes(EpisodeState(settle=3), xs, [True] + [False] * 19, novelty=novelty)
    assert [e for _, e in out] == [True] * 13 + [False] * 7


def test_absent_points_neither_advance_nor_close_an_episode():
    state = EpisodeState(settle=1).reset(2, 1)
    c, s = np.zeros((2, 1)), np.ones((2, 1))
    opened, episode = state.update(np.array([[9.0], [9.0]]), np.array([True, True]), np.zeros(2), np.zeros(2),
                                   np.array([True, True]), c, s)
    assert opened.all() and episode.all()
    opened, episode = state.update(np.array([[0.0], [np.nan]]), np.array([False, False]), np.zeros(2), np.zeros(2),
                                   np.array([True, False]), c, s)
    assert episode.tolist() == [False, False] and state.open_.tolist() == [False, True]
