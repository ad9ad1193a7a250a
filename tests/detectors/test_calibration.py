"""Tests of the per-stream peaks-over-threshold score calibrator."""
import numpy as np
import pytest

from detectors.calibration import TailCalibrator


def fitted(history, **params):
    """A calibrator whose rows were fitted on the columns of ``history`` ``(n, S)``."""
    history = np.asarray(history, dtype=float)
    params.setdefault("memory", len(history))
    cal = TailCalibrator(**params).reset(history.shape[1])
    rows = np.arange(history.shape[1])
    cal.push(rows, history.T)
    cal.fit(rows)
    return cal


def test_scores_read_as_one_minus_tail_probability():
    """Fresh draws from the distribution the state was fitted on: P(score > 1 - p) ~ p."""
    rng = np.random.default_rng(0)
    draws = rng.gamma(2.0, 1.0, (4000, 3)) * np.array([1.0, 10.0, 0.01])  # three scales
    cal = fitted(draws[:2000])
    fresh = draws[2000:]
    scores = np.stack([cal.level(np.full(2000, i), fresh[:, i]) for i in range(3)], axis=1)
    for level, tolerance in ((0.5, 0.04), (0.9, 0.02), (0.99, 0.006)):
        np.testing.assert_allclose((scores > level).mean(axis=0), 1 - level, atol=tolerance)


def test_monotone_in_the_raw_score_for_a_fixed_state():
    rng = np.random.default_rng(1)
    cal = fitted(rng.lognormal(0, 1, (300, 5)))
    raw = np.sort(np.r_[rng.uniform(-1, 30, 2000), cal.knots_.ravel()])
    for row in range(5):
        scores = cal.level(np.full(raw.size, row), raw)
        assert (np.diff(scores) >= 0).all()
        assert scores[0] == 0.0 and scores[-1] > 0.999
        assert ((scores >= 0) & (scores <= 1)).all()


def test_continuous_at_the_tail_threshold():
    rng = np.random.default_rng(2)
    cal = fitted(rng.exponential(1.0, (500, 1)), tail=0.1)
    u = float(cal.knots_[0, -1])
    below, at, above = cal.level(np.zeros(3, dtype=int), np.array([u - 1e-6, u, u + 1e-6]))
    assert below == pytest.approx(0.9, abs=1e-4) and at == pytest.approx(0.9) and above == pytest.approx(0.9, abs=1e-4)


def test_state_changes_only_when_fitted():
    rng = np.random.default_rng(3)
    cal = fitted(rng.normal(0, 1, (200, 2)))
    probe = np.array([0.5, 2.5])
    before = cal.level(np.array([0, 1]), probe)
    cal.push(np.array([0, 1]), np.array([100.0, 100.0]))
    np.testing.assert_array_equal(cal.level(np.array([0, 1]), probe), before)
    cal.fit(np.array([1]))  # only row 1 learns from the pushed score
    after = cal.level(np.array([0, 1]), probe)
    assert after[0] == before[0] and after[1] != before[1]


def test_rows_are_calibrated_only_after_enough_scores():
    cal = TailCalibrator(memory=64, min_scores=10).reset(2)
    assert (cal.level(np.array([0, 1]), np.array([5.0, 5.0])) == 0).all()
    cal.push(np.array([0, 1]), np.tile(np.arange(12.0), (2, 1)) * np.array([[1.0], [np.nan]]))
    cal.fit(np.array([0, 1]))
    assert cal.fitted_.tolist() == [True, False]  # row 1 pushed only NaN: nothing remembered
    assert cal.level(np.array([0]), np.array([20.0]))[0] > 0.99


def test_memory_keeps_the_most_recent_scores():
    cal = TailCalibrator(memory=50).reset(1)
    for value in (1.0, 1000.0):
        cal.push(np.array([0]), np.full((1, 60), value))
    cal.fit(np.array([0]))
    np.testing.assert_array_equal(cal.knots_[0], 1000.0)


def test_constant_history_flags_any_larger_score():
    cal = fitted(np.full((100, 1), 0.25))
    scores = cal.level(np.zeros(3, dtype=int), np.array([0.2, 0.25, 0.26]))
    assert scores[0] == 0.0 and scores[1] == pytest.approx(0.9) and scores[2] > 0.999


@pytest.mark.parametrize("params", [{"tail": 0.0}, {"tail": 0.7}, {"n_knots": 1}, {"memory": 3}, {"min_scores": 1}])
def test_bad_parameters_are_value_errors(params):
    with pytest.raises(ValueError):
        TailCalibrator(**params).reset(1)


def test_update_refits_every_so_many_scores():
    cal = TailCalibrator(memory=64, every=16).reset(2)
    rows = np.array([0, 1])
    for i in range(15):
        cal.update(rows, np.array([float(i), 2.0 * i]))
    assert not cal.fitted_.any()
    cal.update(rows, np.array([15.0, 30.0]))  # the 16th score of each row
    assert cal.fitted_.all()
    knots = cal.knots_.copy()
    cal.update(rows[:1], np.array([1000.0]))
    np.testing.assert_array_equal(cal.knots_, knots)  # not a multiple of 16: no refit


def test_one_absurd_raw_score_does_not_stretch_the_tail():
    """Robust learning: the tail scale comes from the median excess, so a single 1e300 barely moves it."""
    rng = np.random.default_rng(8)
    raw = rng.exponential(1.0, 256)
    clean = TailCalibrator(tail=0.1, memory=256).reset(1)
    dirty = TailCalibrator(tail=0.1, memory=256).reset(1)
    clean.push(np.arange(1), raw[None, :])
    raw[100] = 1e300
    dirty.push(np.arange(1), raw[None, :])
    clean.fit(np.arange(1))
    dirty.fit(np.arange(1))
    probe = np.array([8.0])
    assert dirty.level(np.arange(1), probe)[0] > 0.99
    assert abs(float(dirty.transform(np.arange(1), probe)[0] - clean.transform(np.arange(1), probe)[0])) < 0.02


@pytest.mark.parametrize("d, n", [(1, 10), (5, 20), (38, 100)])
def test_hotelling_law_gives_a_new_gaussian_point_its_stated_tail(d, n):
    """A point against the mean and unbiased covariance of ``n`` earlier ones is as rare as the F law says."""
    from detectors.stats import hotelling_logp

    rng = np.random.default_rng(d)
    trials = 4000
    windows, points = rng.normal(size=(trials, n, d)), rng.normal(size=(trials, d))
    mean = windows.mean(axis=1)
    dev = windows - mean[:, None, :]
    cov = np.matmul(dev.transpose(0, 2, 1), dev) / (n - 1)
    resid = points - mean
    t2 = np.einsum("si,si->s", resid, np.linalg.solve(cov, resid[:, :, None])[:, :, 0])
    p = np.exp(hotelling_logp(t2, d, n))
    assert 0.07 < np.mean(p < 0.1) < 0.13 and 0.004 < np.mean(p < 0.01) < 0.02


def test_zscore_member_is_calibrated_on_many_gaussian_fields_by_step_and_by_block():
    """Before the F law, 38 Gaussian fields against 100 points scored 'rarer than 1 %' at about half of the points."""
    from detectors.stats import logp_from_score
    from detectors.zscore import ZScoreDetector

    rng = np.random.default_rng(38)
    x = rng.normal(size=(700, 12, 38))
    det = ZScoreDetector().reset(12, 38)
    stepped = np.array([det.step(x[t]) for t in range(700)])[200:]
    block = ZScoreDetector().score_series(x[:, 0, :])[200:]
    for scores in (stepped, block):
        rare = np.exp(logp_from_score(scores)) < 0.01
        assert 0.003 < rare.mean() < 0.025
