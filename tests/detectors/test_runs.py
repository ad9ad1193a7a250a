"""Tests of runs of events (detectors/runs.py) and stuck readings (detectors/flatline.py)."""

import numpy as np
import pytest
from scipy.special import betaln

from detectors.ensemble import FLATLINE_CAUSE, PERSISTENCE_CAUSE, REFRACTORY, EnsembleDetector
from detectors.flatline import FlatlineTracker
from detectors.runs import RunTracker
from same_paths import assert_block_equals_steps


def _state(tracker):
    return {name: np.array(value, copy=True) for name, value in vars(tracker).items()
            if isinstance(value, np.ndarray)}


def test_a_run_reads_the_counts_before_it_started():
    tracker = RunTracker().reset(1, 1)
    # 20 trials, 4 isolated events, then a run of 3.
    pattern = [True, False, False, False, False] * 4 + [True, True, True]
    logp = [float(tracker.update(np.array([[e]]), np.array([[True]]))[0, 0]) for e in pattern]
    q = (4 + 1) / (20 + 2)                       # Laplace's rule on the 20 trials before the run
    a, b = 0 + 2 * q, (4 - 0) + 2 * (1 - q)      # 4 trials after an event, none repeated it
    expected = [np.log(q) + betaln(a + k, b) - betaln(a, b) for k in range(3)]
    np.testing.assert_allclose(logp[-3:], expected, rtol=1e-12)
    assert logp[-1] < logp[-2] < logp[-3] < 0


def test_a_channel_that_is_no_trial_keeps_its_run_and_counts():
    tracker = RunTracker().reset(1, 2)
    for _ in range(5):
        tracker.update(np.array([[True, True]]), np.array([[True, False]]))
    assert tracker.run_.tolist() == [[5, 0]]
    assert tracker.trials_.tolist() == [[5, 0]] and tracker.events_.tolist() == [[5, 0]]


@pytest.mark.parametrize("cut", [[1500], [1, 2, 700], []])
def test_ticks_at_once_equal_tick_by_tick(cut):
    rng = np.random.default_rng(3)
    T, S, d = 1500, 4, 3
    X = np.round(rng.normal(size=(T, S, d)), 1)     # quantised: many short runs
    X[rng.random((T, S, d)) < 0.2] = 2.0             # and some longer ones
    X[200:260, 1, 2] = 0.5                           # one stuck field
    present = rng.random((T, S)) > 0.2
    X[~present] = np.nan
    one, many = FlatlineTracker().reset(S, d), FlatlineTracker().reset(S, d)
    stepped = np.array([one.update(X[t], present[t]) for t in range(T)])
    pieces = np.split(np.arange(T), cut)
    blocked = np.concatenate([many.update_ticks(X[p], present[p]) for p in pieces])
    np.testing.assert_allclose(blocked, stepped, rtol=0, atol=1e-12)
    assert stepped[200:260, 1].min() < np.log(1e-5)
    np.testing.assert_array_equal(one.last_, many.last_)
    for name, value in _state(one.repeats_).items():
        np.testing.assert_allclose(getattr(many.repeats_, name), value, rtol=0, atol=1e-12, err_msg=name)


def test_a_frozen_continuous_reading_is_rare_and_a_habitual_repeat_is_not():
    rng = np.random.default_rng(5)
    tracker = FlatlineTracker().reset(2, 1)
    continuous = rng.normal(size=2000)
    idle = np.where(np.arange(2000) % 100 < 30, 0.0, rng.normal(size=2000))  # idles for 30 points every 100
    X = np.stack([continuous, idle], axis=1)[:, :, None]
    tracker.update_ticks(X, np.ones((2000, 2), dtype=bool))
    frozen = np.full((30, 2, 1), 1.25)
    logp = tracker.update_ticks(frozen, np.ones((30, 2), dtype=bool))
    assert logp[5, 0] < np.log(1e-5)               # five repeats of a reading that never repeated
    assert logp[-1, 1] > np.log(1e-2)              # a run as long as its usual idle stretch


def test_a_run_over_several_fields_pays_for_watching_them_all():
    one_field, three_fields = FlatlineTracker().reset(1, 1), FlatlineTracker().reset(1, 3)
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(size=(300, 3)), np.full((6, 3), 0.5)])
    x[300:, 1:] = rng.normal(size=(6, 2))          # only the first field freezes
    a = one_field.update_ticks(x[:, None, :1], np.ones((306, 1), dtype=bool))
    b = three_fields.update_ticks(x[:, None, :], np.ones((306, 1), dtype=bool))
    np.testing.assert_allclose(b[-3:], a[-3:] + np.log(3))


def test_the_ensemble_alerts_on_a_stuck_sensor_inside_its_range_and_names_the_cause():
    rng = np.random.default_rng(11)
    x = np.sin(np.arange(1500) / 40.0) + rng.normal(0, 0.1, 1500)
    x[1200:1230] = x[1199]                         # frozen inside the usual range
    det = EnsembleDetector(members=("zscore", "mad"), flatline=True).reset(1, 1)
    block = det.step_block(x[:, None], trace=("cause_",))
    alerts = np.flatnonzero(block.alert[1200:]) + 1200
    assert alerts.tolist() and alerts[0] < 1210
    assert block.traces["cause_"][alerts[0]] == FLATLINE_CAUSE
    assert block.is_anomaly[alerts[0]:1230].all()
    # the episode ends once the stream has been back to normal for REFRACTORY points after the run
    assert not block.is_anomaly[1230 + REFRACTORY + 5:].any()
    assert not EnsembleDetector(members=("zscore", "mad")).reset(1, 1).step_block(x[:, None]).alert[1200:1230].any()


def test_the_ensemble_alerts_on_a_run_of_surprising_points_with_persistence():
    rng = np.random.default_rng(12)
    x = rng.normal(0, 1, 1500)
    x[[300, 600, 900]] = [8.0, -8.0, 8.0]           # earlier glitches widen the stream's range
    x[1200:1220] += 4.0                            # a shift of 4 sigma stays inside it
    plain = EnsembleDetector(members=("zscore", "mad")).reset(1, 1).step_block(x[:, None])
    det = EnsembleDetector(members=("zscore", "mad"), persistence=True).reset(1, 1)
    block = det.step_block(x[:, None], trace=("cause_",))
    assert not plain.is_anomaly[1200:1230].any()
    alerts = np.flatnonzero(block.alert[1200:1220]) + 1200
    assert alerts.tolist() and block.traces["cause_"][alerts[0]] == PERSISTENCE_CAUSE
    assert block.is_anomaly[alerts[0]:1220].all() and not block.is_anomaly[1220 + REFRACTORY + 5:].any()


@pytest.mark.parametrize("d", [1, 8])
def test_ensemble_with_both_run_channels_block_equals_steps(d):
    """The fast path (runs counted with cumulative sums) scores, flags and learns as the streaming path."""
    rng = np.random.default_rng(d)
    n, streams, row = 700, 3, 1
    t = np.arange(n)[:, None]
    X = 20 + 3 * np.sin(2 * np.pi * t / 288 + rng.uniform(0, 6, d)) + rng.normal(0, 0.5, (n, d))
    X[450:470, 0] = X[449, 0]                      # a stuck field
    X[550:570] += 2.5                              # a small shift
    X[rng.choice(n, size=12, replace=False)] = np.nan
    base = EnsembleDetector(flatline=True, persistence=True).reset(streams, d)
    for _ in range(60):
        base.step(20 + rng.normal(0, 0.5, (streams, d)))
    alerts, _, _ = assert_block_equals_steps(base, X, row)
    assert alerts.sum() >= 1


def test_a_run_longer_than_the_memory_is_the_new_normal():
    tracker = RunTracker(memory=5).reset(1, 1)
    events = [True, False, False, False] * 100 + [True] * 8
    logp = np.array([tracker.update(np.array([[e]]), np.array([[True]]))[0, 0] for e in events])
    assert (logp[-8:-3] < 0).all() and (logp[-3:] == 0).all()
    with pytest.raises(ValueError):
        RunTracker(memory=0).reset(1, 1)
