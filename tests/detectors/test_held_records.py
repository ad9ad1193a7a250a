"""Held records (``EnsembleDetector(hold_records=True)``): the points of an open episode do not become the record.

An injected level shift learned into the value records lifts the stream's
recent record for the whole value window, so a later, smaller incident of the
same kind sets no record.  With held records the record keeps its pre-episode
value while an episode is open (at most ``episode_memory`` points of it),
unless a later episode reaches as far as an earlier one did (it recurs); the
range still learns, and the fast path equals the streaming path.
"""
import copy

import numpy as np
import pytest

from detectors.ensemble import EnsembleDetector
from detectors.novelty import RecordTracker
from same_paths import assert_bank_equals_steps, assert_block_equals_steps, assert_same_state


def two_incidents(seed=11):
    """Noise with a large shift, then a smaller one inside its range (both well past the noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1.0, 1600)
    x[300:340] += 12.0
    x[1200:1230] += 6.0
    return x


def test_score_then_learn_is_update():
    rng = np.random.default_rng(0)
    U = np.cumsum(rng.normal(0, 1, (300, 2, 3)), axis=0)
    one = RecordTracker(50, 0.01, step=0.25, n_blocks=5).reset(2, 3)
    two = copy.deepcopy(one)
    present = np.array([True, False])
    for u in U:
        expected = one.update(u, present)
        np.testing.assert_array_equal(two.score(u, present), expected)
        two.learn(u, present)
    assert_same_state(one, two)


def test_a_held_point_moves_the_range_but_not_the_record():
    tracker = RecordTracker(window=8, scale=0.5, n_blocks=4).reset(n_streams=2, n_channels=1)
    for u in [1.0, 3.0, 2.0, 2.5]:
        tracker.update(np.array([[u], [u]]), np.array([True, True]))
    tracker.update(np.array([[9.0], [9.0]]), np.array([True, True]), hold=np.array([True, False]))
    recent = np.maximum(tracker.maxima_.max(axis=2), tracker.partial_)[:, 0]
    assert recent.tolist() == [3.0, 9.0]
    assert tracker.high_[:, 0].tolist() == [9.0, 9.0] and tracker.seen_.tolist() == [5, 5]
    # The held stream's next value is judged against its pre-episode record, in the wider range.
    tracker.update(np.array([[5.0], [5.0]]), np.array([True, True]))
    np.testing.assert_allclose(tracker.strength_[:, 0], [(5.0 - 3.0) / 8.0, 0.0])


def test_an_excursion_reached_again_in_a_later_episode_is_learned():
    tracker = RecordTracker(window=100, scale=0.5, n_blocks=4).reset(n_streams=1, n_channels=1)
    on, off = np.array([True]), np.array([False])
    for u in [1.0, 3.0, 2.0, 2.5]:
        tracker.update(np.array([[u]]), on)
    tracker.update(np.array([[9.0]]), on, hold=on)      # the first episode: held back
    tracker.update(np.array([[8.5]]), on, hold=on)      # ... all of it, though lower than its first point
    assert tracker.partial_[0, 0] == 3.0 and tracker.holding_[0, 0] == 9.0
    tracker.update(np.array([[2.0]]), on, hold=off)     # outside the episode: its excursion is an earlier one's
    assert tracker.held_[0, 0] == 9.0 and tracker.holding_[0, 0] == -np.inf
    tracker.update(np.array([[8.0]]), on, hold=on)      # a later episode reaching as far recurs: learned
    assert tracker.partial_[0, 0] == 8.0
    tracker.update(np.array([[9.5]]), on, hold=on)      # beyond both: held back
    assert tracker.partial_[0, 0] == 8.0 and tracker.holding_[0, 0] == 9.5


def test_a_smaller_second_incident_alerts_only_with_held_records():
    x = two_incidents()
    held = EnsembleDetector(hold_records=True).reset(1, 1).step_block(x[:, None])
    learned = EnsembleDetector().reset(1, 1).step_block(x[:, None])
    assert held.alert[300:305].any() and learned.alert[300:305].any()
    assert held.alert[1200:1205].any()
    assert not learned.alert[1200:1230].any()          # the first incident's record hides the second


def test_a_held_new_level_becomes_normal_after_the_episode_memory():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1.0, 2400)
    x[600:] += 10.0                                    # a level that stays
    det = EnsembleDetector(hold_records=True, episode_memory=200).reset(1, 1)
    block = det.step_block(x[:, None])
    assert block.alert[600:605].any()
    assert block.is_anomaly[600:790].all()             # held: still beyond the pre-episode record
    assert not block.is_anomaly[850:1900].any() and not block.alert[850:1900].any()


@pytest.mark.parametrize("d, kwargs", [(1, {}), (8, {}), (1, {"flatline": True, "persistence": True}),
                                       (8, {"novelty_tail": "learned"}), (1, {"novelty_tail": "spread"}),
                                       (8, {"novelty_tail": "spread"}), (1, {"short_records": True})])
def test_block_equals_steps(d, kwargs):
    """The compiled recursion (records and episodes together) scores, flags and learns as the steps do."""
    rng = np.random.default_rng(d)
    n, streams, row = 900, 3, 1
    t = np.arange(n)[:, None]
    X = 20 + 3 * np.sin(2 * np.pi * t / 288 + rng.uniform(0, 6, d)) + rng.normal(0, 0.5, (n, d))
    X[300:320] += 9.0
    X[600:615] += 4.0
    X[450:470, 0] = X[449, 0]
    X[[700, 800, 850], 0] += [12.0, 12.5, 30.0]  # a spike that recurs, then a larger one
    X[rng.choice(n, size=12, replace=False)] = np.nan
    base = EnsembleDetector(hold_records=True, **kwargs).reset(streams, d)
    for _ in range(60):
        base.step(20 + rng.normal(0, 0.5, (streams, d)))
    alerts, _, _ = assert_block_equals_steps(base, X, row)
    assert alerts.sum() >= 1


def test_block_equals_steps_from_an_absurd_first_value():
    """The compiled recursion judges a young stream's extremes at the point the steps do."""
    rng = np.random.default_rng(7)
    X = 20 + rng.normal(0, 0.5, (400, 2))
    X[0, 0] = 1e300
    X[1, 1] = -1e6
    X[300, 0] += 8.0
    base = EnsembleDetector(hold_records=True).reset(3, 2)
    with np.errstate(all="ignore"):
        alerts, _, _ = assert_block_equals_steps(base, X, 1)
    assert alerts[300:305].any()  # the spike alerts: the first value owns neither range nor record


def test_a_bank_of_series_equals_steps():
    group = [two_incidents(seed) for seed in (1, 2, 3)]
    group[1] = group[1][:1100]
    assert_bank_equals_steps(lambda: EnsembleDetector(hold_records=True), [g[:, None] for g in group])
