"""Tests of the ensemble: what the engine relies on, point-wise evidence below the cap, novelty above it."""
import numpy as np
import pytest

import detectors
from detectors.ensemble import DEFAULT_MEMBERS, POINTWISE_CAP, EnsembleDetector

LIGHT = ("zscore", "mad", "moving_average", "pattern")


def wave(n, seed=0, period=60, noise=0.1):
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(0, noise, n)


def test_default_members_keep_the_promised_detectors_and_add_pattern_novelty():
    for promised in ("zscore", "iqr", "mad", "moving_average", "isolation_forest", "lof", "pattern"):
        assert promised in DEFAULT_MEMBERS
    assert detectors.make("ensemble").members == DEFAULT_MEMBERS


def test_the_attributes_the_engine_relies_on():
    e = EnsembleDetector(members=LIGHT, weights={"mad": 2.0}, member_params={"zscore": {"window": 50}})
    assert e.members == LIGHT and e.weights == {"mad": 2.0} and 0 < e.threshold < 1
    e.reset(3, 1)
    e.step(np.ones((3, 1)))
    assert e.member_scores_.shape == (3, 4) and e.stream_weights_.shape == (3, 4)
    assert e.stream_weights_[:, 1].tolist() == [2.0, 2.0, 2.0]
    assert e.member_thresholds().shape == (4,) and len(e.detectors_) == 4
    assert e.detectors_[0].window == 50
    low, high = e.expected_range()
    assert low.shape == high.shape == (3, 1)


def test_point_wise_evidence_stays_below_the_cap_and_only_novelty_flags():
    x = wave(3000, seed=1)
    x[2000] += 0.8  # a clear outlier, but inside the range the wave has covered
    e = EnsembleDetector(members=LIGHT).reset(1, 1)
    scores, novel = [], []
    for v in x:
        scores.append(e.step(np.array([[v]]))[0])
        novel.append(e.novelty_[0])
    scores, novel = np.array(scores), np.array(novel)
    assert (scores[novel == 0] < POINTWISE_CAP).all()
    assert (novel[scores >= e.threshold] > 0).all()
    # The outlier still ranks above the ordinary points around it.
    assert scores[2000] > np.quantile(scores[1500:2500], 0.99)


def test_a_new_level_alerts_once_and_is_an_episode_while_it_lasts():
    x = np.r_[wave(1500, seed=2), wave(100, seed=3) + 4.0, wave(200, seed=9)]
    e = EnsembleDetector(members=LIGHT)
    scores, anomalous, alerts = e.label_series(x)
    assert scores[1500] >= e.threshold and alerts[1500]
    assert np.flatnonzero(alerts[1000:]).tolist() == [500]            # one alert per incident
    assert anomalous[1500:1600].all()                                 # every point of the shift
    assert not anomalous[1610:].any() and not anomalous[1000:1500].any()  # back to normal: the episode ends
    assert (scores[1501:1600] < e.threshold).all()                   # no second alarm inside it
    assert scores[:1500].max() < scores[1500]


def test_a_climb_to_new_highs_is_one_episode_and_its_score_rises_only_when_it_escalates():
    x = np.r_[wave(1500, seed=4), 1.2 + 0.5 * np.arange(30)]
    e = EnsembleDetector(members=LIGHT)
    scores, anomalous, alerts = e.label_series(x)
    scores, anomalous, alerts = scores[1500:], anomalous[1500:], alerts[1500:]
    flagged = np.flatnonzero(scores >= e.threshold)
    assert alerts.sum() == 1 and alerts[0] and anomalous.all()
    assert flagged[0] == 0 and (np.diff(scores[flagged]) > 0).all()  # inside the episode only a rarer event scores


def test_one_absurd_value_does_not_blind_the_stream():
    """Issue 8: after a submitted 1e300, a 30-sigma value 200 points later alerts as on a fresh stream."""
    fresh = wave(1700, seed=10, noise=0.05)
    blinded = fresh.copy()
    blinded[1400] = 1e300
    for x in (fresh, blinded):
        x[1600] = 1.0 + 30 * 0.05  # 30 noise spreads above the wave's crest
    for x in (fresh, blinded):
        scores, _, alerts = EnsembleDetector(members=LIGHT).label_series(x)
        assert alerts[1600] and scores[1600] >= EnsembleDetector().threshold


def test_the_alert_threshold_is_the_stated_false_alarm_rate():
    from detectors.ensemble import ALERT_THRESHOLD, FALSE_ALARM_RATE
    from detectors.stats import logp_from_score
    assert EnsembleDetector().threshold == ALERT_THRESHOLD
    assert np.exp(logp_from_score(ALERT_THRESHOLD)) == pytest.approx(FALSE_ALARM_RATE)


def test_without_novelty_the_output_is_the_fused_member_score():
    x = wave(600, seed=5)
    x[400] += 2
    e = EnsembleDetector(members=LIGHT, weights={"mad": 3.0}, novelty=False).reset(1, 1)
    for v in x:
        fused = e.step(np.array([[v]]))[0]
        p = np.clip(1 - e.member_scores_[0], 1e-12, 1)
        w = np.array([1.0, 3.0, 1.0, 1.0])
        expected = 1 - np.exp((w * np.log(p)).sum() / w.sum()) if e.seen_[0] > e.warmup else 0.0
        assert fused == pytest.approx(expected, abs=1e-12)


def test_a_new_pattern_inside_the_range_is_flagged_unless_the_stream_disabled_the_pattern_member():
    x = wave(2400, seed=6, period=50, noise=0.03)
    x[2000:2030] = 0.2  # the wave stalls inside its usual range
    e = EnsembleDetector(members=LIGHT).reset(2, 1)
    e.stream_weights_[1, LIGHT.index("pattern")] = 0.0
    scores = np.array([e.step(np.array([[v], [v]])) for v in x])
    assert scores[2000:2040, 0].max() >= e.threshold
    assert scores[1000:2000, 0].max() < e.threshold
    assert scores[2000:2040, 1].max() < e.threshold


def test_novelty_does_not_depend_on_the_stream_s_unit_or_offset():
    x = np.r_[wave(1500, seed=7), wave(60, seed=8) + 2.5]
    a = EnsembleDetector(members=LIGHT).score_series(x)
    b = EnsembleDetector(members=LIGHT).score_series(1000.0 * x + 5e6)
    threshold = EnsembleDetector().threshold
    np.testing.assert_array_equal(a >= threshold, b >= threshold)


def test_bad_parameters_are_a_clear_error():
    with pytest.raises(ValueError, match="settle"):
        EnsembleDetector(settle=0)
    with pytest.raises(ValueError, match="fusion"):
        EnsembleDetector(fusion="mean")
    with pytest.raises(ValueError, match="unknown"):
        EnsembleDetector(members=("zscore", "nope"))
