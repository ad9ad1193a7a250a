"""Detection metrics on labelled rows: point-wise, event-wise, point-adjusted, and threshold-free.

Every function takes plain numpy arrays of the *judged* rows only (the
caller drops warm-up rows first): ``labels`` (1 inside a labelled anomaly),
``flags`` (1 where the detector raised its own flag) and/or ``scores``
(higher means more anomalous).  An **event** is a maximal run of
consecutive label-1 rows.

* :func:`point_counts` / :func:`prf` -- point-wise precision, recall, F1 of
  the flags: each row is one sample.
* :func:`event_counts` -- event-wise: an event is *detected* when any flagged
  row falls inside it; a *false alarm* is a maximal run of flagged rows that
  touches no event.  Event recall = detected / events; event precision =
  detected / (detected + false-alarm runs).  Both sides count incidents, not
  rows, as in telemanom's SMAP/MSL protocol: a flagged run that overlaps an
  event is not a false alarm, however long, and many flagged runs inside one
  event count once.
* :func:`composite_f1` -- the harmonic mean of point-wise precision and
  event-wise recall (Garg et al., 2021): incidents found, paid for by every
  normal row flagged.  Unlike the event-wise F1 it cannot be won by flagging
  everything (one flagged run that covers every event is no false alarm, so
  flagging every row earns event F1 1.0; its composite F1 is ``2r / (1 + r)``
  for a labelled share ``r``, as its point F1).
* :func:`point_adjust` -- the point-adjusted flags (Xu et al., 2018): one flag
  inside an event marks the whole event as flagged.  **This inflates
  scores** (one lucky flag in a 1,000-row event earns 1,000 true positives);
  report it only beside the point-wise figures.
* :func:`roc_auc`, :func:`average_precision` -- threshold-free ranking
  quality of the scores (the same definitions as scikit-learn's
  ``roc_auc_score`` and ``average_precision_score``; ties handled the same
  way).
* :func:`best_f1` -- the best point-wise F1 over every threshold, picked
  **with the labels** (an oracle threshold): an upper bound on what the
  scores allow, never a result a detector could reach on its own.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Counts",
    "EventCounts",
    "events_of",
    "runs_of",
    "point_counts",
    "event_counts",
    "point_adjust",
    "composite_f1",
    "prf",
    "roc_auc",
    "average_precision",
    "precision_recall_curve",
    "best_f1",
]


def _binary(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype != bool:
        if array.size and not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0 and 1")
        array = array.astype(bool)
    return array


def _same_length(*arrays) -> None:
    if len({len(a) for a in arrays}) > 1:
        raise ValueError(f"arrays differ in length: {[len(a) for a in arrays]}")


def runs_of(mask) -> np.ndarray:
    """Return the maximal runs of True in ``mask`` as an ``(n, 2)`` array of ``[start, stop)`` rows.

    >>> runs_of([0, 1, 1, 0, 0, 1]).tolist()
    [[1, 3], [5, 6]]
    >>> runs_of([0, 0]).shape
    (0, 2)
    """
    mask = _binary(mask, "mask").astype(np.int8)
    edges = np.diff(np.concatenate(([0], mask, [0])))
    return np.column_stack((np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def events_of(labels) -> np.ndarray:
    """Return the events of ``labels`` (maximal runs of 1) as ``[start, stop)`` rows.

    >>> events_of([1, 1, 0, 1]).tolist()
    [[0, 2], [3, 4]]
    """
    return runs_of(labels)


@dataclass(frozen=True)
class Counts:
    """Point-wise confusion counts of flags against labels."""

    tp: int
    fp: int
    fn: int

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return prf(self.tp, self.fp, self.fn)[0]

    @property
    def recall(self) -> float:
        return prf(self.tp, self.fp, self.fn)[1]

    @property
    def f1(self) -> float:
        return prf(self.tp, self.fp, self.fn)[2]


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Return ``(precision, recall, F1)`` from counts; NaN where a ratio has nothing to count.

    Precision is NaN without any flag, recall NaN without any positive; F1 is
    0 when either is 0 or NaN (no flags, or nothing to find, earns nothing).

    >>> prf(3, 1, 2)
    (0.75, 0.6, 0.6666666666666666)
    >>> prf(0, 0, 5)
    (nan, 0.0, 0.0)
    """
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return precision, recall, f1


def composite_f1(point: "Counts", event: "EventCounts") -> float:
    """The harmonic mean of point-wise precision and event-wise recall; 0 when either is 0 or NaN.

    >>> composite_f1(Counts(tp=2, fp=2, fn=0), EventCounts(detected=1, missed=1, false_alarms=0))
    0.5
    >>> composite_f1(Counts(tp=0, fp=0, fn=4), EventCounts(detected=0, missed=2, false_alarms=0))
    0.0
    """
    precision, recall = point.precision, event.prf()[1]
    if not precision > 0 or not recall > 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def point_counts(labels, flags) -> Counts:
    """Count flagged labelled rows (tp), flagged normal rows (fp) and unflagged labelled rows (fn).

    >>> point_counts([0, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0])
    Counts(tp=1, fp=1, fn=2)
    """
    labels, flags = _binary(labels, "labels"), _binary(flags, "flags")
    _same_length(labels, flags)
    tp = int(np.count_nonzero(labels & flags))
    return Counts(tp, int(np.count_nonzero(flags)) - tp, int(np.count_nonzero(labels)) - tp)


@dataclass(frozen=True)
class EventCounts:
    """Event-wise counts: events detected and missed, and flagged runs outside every event."""

    detected: int
    missed: int
    false_alarms: int

    def __add__(self, other: "EventCounts") -> "EventCounts":
        return EventCounts(self.detected + other.detected, self.missed + other.missed,
                           self.false_alarms + other.false_alarms)

    @property
    def events(self) -> int:
        return self.detected + self.missed

    def prf(self) -> tuple[float, float, float]:
        """``(precision, recall, F1)`` with detected events as true positives."""
        return prf(self.detected, self.false_alarms, self.missed)


def event_counts(labels, flags) -> EventCounts:
    """Count detected events, missed events, and flagged runs that touch no event.

    An event is a maximal run of label-1 rows; it is detected when at least
    one of its rows is flagged.  A false alarm is a maximal run of flagged
    rows none of which is labelled.

    >>> labels = [0, 1, 1, 1, 0, 0, 0, 1, 0, 0]
    >>> flags  = [1, 1, 0, 1, 0, 1, 1, 0, 0, 1]
    >>> event_counts(labels, flags)   # first event found (by two runs: once); runs 5-6 and 9 touch none
    EventCounts(detected=1, missed=1, false_alarms=2)
    """
    labels, flags = _binary(labels, "labels"), _binary(flags, "flags")
    _same_length(labels, flags)
    events = runs_of(labels)
    # Flagged rows per event, from one cumulative sum: no loop over events.
    flagged_before = np.concatenate(([0], np.cumsum(flags)))
    detected = int(np.count_nonzero(flagged_before[events[:, 1]] > flagged_before[events[:, 0]]))
    runs = runs_of(flags)
    labelled_before = np.concatenate(([0], np.cumsum(labels)))
    clean_runs = int(np.count_nonzero(labelled_before[runs[:, 1]] == labelled_before[runs[:, 0]]))
    return EventCounts(detected, len(events) - detected, clean_runs)


def point_adjust(labels, flags) -> np.ndarray:
    """Return the point-adjusted flags: every row of an event with any flag counts as flagged.

    **Inflating:** point-wise F1 of these flags rewards one flag in a long
    event as if the whole event were found (Kim et al., AAAI 2022).

    >>> point_adjust([0, 1, 1, 1, 0], [0, 0, 1, 0, 1]).astype(int).tolist()
    [0, 1, 1, 1, 1]
    """
    labels, flags = _binary(labels, "labels"), _binary(flags, "flags")
    _same_length(labels, flags)
    events = runs_of(labels)
    flagged_before = np.concatenate(([0], np.cumsum(flags)))
    hit = events[flagged_before[events[:, 1]] > flagged_before[events[:, 0]]]
    # Mark each hit event's rows with a +1/-1 difference array, then integrate.
    marks = np.zeros(len(labels) + 1, dtype=np.int64)
    np.add.at(marks, hit[:, 0], 1)
    np.add.at(marks, hit[:, 1], -1)
    return flags | (np.cumsum(marks[:-1]) > 0)


def _scores(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=float)
    labels = _binary(labels, "labels")
    if scores.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {scores.shape}")
    _same_length(scores, labels)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return scores, labels


def precision_recall_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(precision, recall, thresholds)`` at every distinct score, highest threshold first.

    At ``thresholds[k]`` the rows with ``score >= thresholds[k]`` are flagged.

    >>> p, r, t = precision_recall_curve([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.4])
    >>> p.tolist(), r.tolist(), t.tolist()
    ([1.0, 0.6666666666666666, 0.5], [0.5, 1.0, 1.0], [0.9, 0.4, 0.1])
    """
    scores, labels = _scores(scores, labels)
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], labels[order]
    # The curve is read after the last row of each run of equal scores.
    ends = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True]) if len(ranked) else np.zeros(0, int)
    tp = np.cumsum(hits)[ends]
    flagged = ends + 1
    positives = int(labels.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / positives if positives else np.full(len(ends), np.nan)
    return tp / flagged, recall, ranked[ends]


def average_precision(labels, scores) -> float:
    """Area under the precision-recall curve as a step sum, ``sum_k (R_k - R_{k-1}) P_k``.

    The same definition as scikit-learn's ``average_precision_score`` (no
    interpolation); NaN when no row is labelled.

    >>> average_precision([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.4])
    0.8333333333333333
    """
    precision, recall, _ = precision_recall_curve(labels, scores)
    if not len(recall) or np.isnan(recall).all():
        return float("nan")
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: the chance a random labelled row outscores a random normal one (ties count half).

    Computed from average ranks (the Mann-Whitney statistic), which equals
    scikit-learn's ``roc_auc_score``; NaN when either class is empty.

    >>> roc_auc([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.4])
    0.875
    """
    scores, labels = _scores(scores, labels)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if not positives or not negatives:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    # Average 1-based rank of each run of equal scores.
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    stops = np.r_[starts[1:], len(ranked)]
    ranks = np.empty(len(ranked))
    ranks[order] = np.repeat((starts + stops + 1) / 2.0, stops - starts)
    rank_sum = float(ranks[labels].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def best_f1(labels, scores) -> tuple[float, float]:
    """Return ``(F1, threshold)`` of the best point-wise F1 over every threshold **chosen with the labels**.

    An oracle: it shows what the scores could give with a perfect threshold,
    not what the detector gives.  Flags are ``score >= threshold``; ties in F1
    go to the highest threshold.  ``(0.0, nan)`` when nothing is labelled.

    >>> best_f1([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.4])
    (0.8, 0.4)
    """
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    if not len(thresholds) or np.isnan(recall).all():
        return 0.0, float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])
