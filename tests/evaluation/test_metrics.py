"""Evaluation metrics against hand-computed cases and scikit-learn."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve as sk_pr_curve, roc_auc_score

from detectors.evaluation.metrics import (
    Counts,
    EventCounts,
    average_precision,
    best_f1,
    composite_f1,
    event_counts,
    point_adjust,
    point_counts,
    precision_recall_curve,
    prf,
    roc_auc,
    runs_of,
)

# Two events (rows 2-4 and 9), flags: one inside the first event, a run straddling
# nothing at 6-7, and one at the last row.
LABELS = np.array([0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0])
FLAGS = np.array([0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1])


def test_point_counts_by_hand():
    assert point_counts(LABELS, FLAGS) == Counts(tp=1, fp=3, fn=3)
    precision, recall, f1 = prf(1, 3, 3)
    assert (precision, recall) == (0.25, 0.25) and f1 == pytest.approx(0.25)


def test_event_counts_by_hand():
    # First event found; second missed; runs 6-7 and 11 touch no event.
    counts = event_counts(LABELS, FLAGS)
    assert counts == EventCounts(detected=1, missed=1, false_alarms=2)
    assert counts.prf() == (1 / 3, 0.5, pytest.approx(0.4))


def test_a_flagged_run_overlapping_an_event_is_not_a_false_alarm_however_long():
    labels = np.array([0, 0, 0, 1, 1, 0, 0, 0])
    flags = np.array([1, 1, 1, 1, 0, 0, 0, 0])  # starts in normal rows, runs into the event
    assert event_counts(labels, flags) == EventCounts(1, 0, 0)


def test_events_at_the_edges_and_flags_everywhere():
    labels = np.array([1, 1, 0, 0, 1])
    assert runs_of(labels).tolist() == [[0, 2], [4, 5]]
    assert event_counts(labels, np.ones(5, int)) == EventCounts(2, 0, 0)
    assert event_counts(labels, np.zeros(5, int)) == EventCounts(0, 2, 0)
    assert event_counts(np.zeros(4, int), np.array([1, 0, 1, 1])) == EventCounts(0, 0, 2)


def test_composite_f1_cannot_be_won_by_flagging_every_row():
    """Event F1 gives flagging everything 1.0; the composite F1 (point precision, event recall) gives its point F1."""
    labels = np.array([0] * 90 + [1] * 5 + [0] * 3 + [1] * 2)  # 7 % labelled, two events
    everything = np.ones(len(labels), int)
    assert event_counts(labels, everything).prf()[2] == 1.0
    share = labels.mean()
    assert composite_f1(point_counts(labels, everything), event_counts(labels, everything)) == pytest.approx(
        2 * share / (1 + share))
    # One flag in each event, nothing else: precision 1, recall 1.
    exact = np.zeros(len(labels), int)
    exact[[92, 98]] = 1
    assert composite_f1(point_counts(labels, exact), event_counts(labels, exact)) == 1.0
    # One event of two found with one false flag: precision 1/2, event recall 1/2.
    half = np.zeros(len(labels), int)
    half[[10, 92]] = 1
    assert composite_f1(point_counts(labels, half), event_counts(labels, half)) == pytest.approx(0.5)
    assert composite_f1(point_counts(labels, np.zeros(len(labels), int)),
                        event_counts(labels, np.zeros(len(labels), int))) == 0.0


def test_point_adjust_fills_only_hit_events_and_keeps_other_flags():
    adjusted = point_adjust(LABELS, FLAGS)
    assert adjusted.astype(int).tolist() == [0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 1]
    # Inflation: one flag in the 3-row event now counts three true positives.
    assert point_counts(LABELS, adjusted) == Counts(tp=3, fp=3, fn=1)


def test_point_f1_matches_scikit_learn():
    rng = np.random.default_rng(3)
    labels, flags = rng.random(500) < 0.1, rng.random(500) < 0.2
    assert point_counts(labels, flags).f1 == pytest.approx(f1_score(labels, flags))


def test_empty_cases_are_nan_or_zero_not_errors():
    assert math.isnan(prf(0, 0, 0)[0]) and math.isnan(prf(0, 0, 0)[1]) and prf(0, 0, 0)[2] == 0.0
    assert math.isnan(roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert math.isnan(average_precision([0, 0], [0.5, 0.1]))
    assert best_f1([0, 0], [0.5, 0.1])[0] == 0.0
    assert event_counts([], []) == EventCounts(0, 0, 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("levels", [None, 5])  # continuous scores, and heavy ties
def test_ranking_metrics_match_scikit_learn(seed, levels):
    rng = np.random.default_rng(seed)
    labels = rng.random(2000) < 0.07
    scores = rng.normal(size=2000) + 1.2 * labels
    if levels:
        scores = np.round(scores * levels / 4) / levels
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_precision_recall_curve_matches_scikit_learn():
    rng = np.random.default_rng(5)
    labels = rng.random(300) < 0.2
    scores = np.round(rng.random(300) + 0.3 * labels, 2)
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    sk_precision, sk_recall, sk_thresholds = sk_pr_curve(labels, scores)
    # scikit-learn lists thresholds ascending, stops once recall reaches 1, and appends (1, 0).
    n = len(sk_thresholds)
    assert np.allclose(thresholds[::-1][-n:], sk_thresholds)
    assert np.allclose(precision[::-1][-n:], sk_precision[:-1])
    assert np.allclose(recall[::-1][-n:], sk_recall[:-1])


def test_best_f1_is_the_oracle_over_every_threshold():
    rng = np.random.default_rng(9)
    labels = rng.random(400) < 0.1
    scores = np.round(rng.random(400) + 0.5 * labels, 2)
    f1, threshold = best_f1(labels, scores)
    brute = max(f1_score(labels, scores >= t) for t in np.unique(scores))
    assert f1 == pytest.approx(brute)
    assert f1_score(labels, scores >= threshold) == pytest.approx(f1)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="0 and 1"):
        point_counts([0, 2], [0, 1])
    with pytest.raises(ValueError, match="length"):
        event_counts([0, 1, 0], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [0.2, float("nan")])
