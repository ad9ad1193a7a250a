"""Judge a detector's outputs against the labels: one row of metrics per series and one per dataset.

Only the judged rows count (a series' warm-up rows are dropped first).  A
dataset's row **pools** its series: confusion counts and event counts are
summed over series (so an event never spans two series), and the ranking
metrics (ROC-AUC, PR-AUC) and the oracle F1 are computed over the judged rows
of all its series together -- one threshold for the whole dataset, as one
deployed detector would have.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .metrics import (Counts, EventCounts, average_precision, best_f1, composite_f1, event_counts, point_adjust,
                      point_counts, roc_auc)

__all__ = ["Result", "judge", "judge_dataset", "failed", "format_table", "write_summary", "TABLE_NOTES"]


@dataclass
class Result:
    """Every metric of one detector on one series, or on a dataset's series pooled."""

    dataset: str
    detector: str
    series: str  # the series' name, or "(all N)" for a dataset
    n_series: int = 0
    rows_judged: int = 0
    labelled_rows: int = 0
    point: Counts = field(default_factory=lambda: Counts(0, 0, 0))
    event: EventCounts = field(default_factory=lambda: EventCounts(0, 0, 0))
    point_adjusted: Counts = field(default_factory=lambda: Counts(0, 0, 0))
    roc_auc: float = float("nan")
    pr_auc: float = float("nan")
    oracle_f1: float = float("nan")
    oracle_threshold: float = float("nan")
    flag_rule: str = ""
    seconds: float = float("nan")
    error: str = ""
    nab: dict = field(default_factory=dict)  # NAB profile -> NAB score (nab only)
    rows_total: int = 0  # every row scored, warm-up included (for the speed figure)

    def row(self) -> dict:
        """The result as one flat record (CSV and JSON)."""
        ep, er, ef = self.event.prf()
        record = {
            "dataset": self.dataset, "detector": self.detector, "series": self.series, "n_series": self.n_series,
            "rows_judged": self.rows_judged, "labelled_rows": self.labelled_rows, "events": self.event.events,
            "point_precision": self.point.precision, "point_recall": self.point.recall, "point_f1": self.point.f1,
            "flags": self.point.tp + self.point.fp,
            "event_precision": ep, "event_recall": er, "event_f1": ef,
            "events_detected": self.event.detected, "false_alarm_runs": self.event.false_alarms,
            "composite_f1": composite_f1(self.point, self.event),
            "point_adjusted_f1_inflating": self.point_adjusted.f1,
            "roc_auc": self.roc_auc, "pr_auc": self.pr_auc,
            "oracle_best_f1": self.oracle_f1, "oracle_threshold": self.oracle_threshold,
            "flag_rule": self.flag_rule, "seconds": self.seconds,
            "rows_per_s": self.rows_per_s, "error": self.error,
        }
        record.update({f"nab_{name}": value for name, value in self.nab.items()})
        return record

    @property
    def rows_per_s(self) -> float:
        return self.rows_total / self.seconds if self.seconds and self.seconds > 0 else float("nan")


def judge(labels, scores, flags) -> dict:
    """Every metric of one run of judged rows.

    >>> m = judge(np.array([0, 1, 1, 0, 0]), np.array([0.1, 0.9, 0.2, 0.3, 0.0]), np.array([0, 1, 0, 0, 0]))
    >>> m["point"], m["event"], m["roc_auc"], m["oracle_f1"]
    (Counts(tp=1, fp=0, fn=1), EventCounts(detected=1, missed=0, false_alarms=0), 0.8333333333333334, 0.8)
    """
    labels = np.asarray(labels).astype(bool)
    flags = np.asarray(flags).astype(bool)
    oracle_f1, oracle_threshold = best_f1(labels, scores)
    return {
        "point": point_counts(labels, flags),
        "event": event_counts(labels, flags),
        "point_adjusted": point_counts(labels, point_adjust(labels, flags)),
        "roc_auc": roc_auc(labels, scores),
        "pr_auc": average_precision(labels, scores),
        "oracle_f1": oracle_f1,
        "oracle_threshold": oracle_threshold,
    }


def judge_dataset(dataset: str, detector: str, series, outputs, flag_rule: str = "",
                  seconds: float = float("nan")) -> tuple[Result, list[Result]]:
    """Return the dataset's pooled result and one result per series."""
    per_series = []
    for s, out in zip(series, outputs):
        judged = s.judged
        metrics = judge(s.labels[judged], out.scores[judged], out.flags[judged])
        per_series.append(Result(dataset, detector, s.name, 1, s.n_rows - s.warmup, int(s.labels[judged].sum()),
                                 flag_rule=flag_rule, rows_total=s.n_rows, **metrics))
    labels = np.concatenate([s.labels[s.judged] for s in series]).astype(bool)
    scores = np.concatenate([o.scores[s.judged] for s, o in zip(series, outputs)])
    oracle_f1, oracle_threshold = best_f1(labels, scores)
    pooled = Result(
        dataset, detector, f"(all {len(series)})", len(series), len(labels), int(labels.sum()),
        point=sum((r.point for r in per_series), Counts(0, 0, 0)),
        event=sum((r.event for r in per_series), EventCounts(0, 0, 0)),
        point_adjusted=sum((r.point_adjusted for r in per_series), Counts(0, 0, 0)),
        roc_auc=roc_auc(labels, scores), pr_auc=average_precision(labels, scores),
        oracle_f1=oracle_f1, oracle_threshold=oracle_threshold,
        flag_rule=flag_rule, seconds=seconds, rows_total=sum(s.n_rows for s in series),
    )
    return pooled, per_series


def failed(dataset: str, detector: str, series, error: Exception, seconds: float, flag_rule: str = "") -> Result:
    """The dataset row of a detector that could not run on it: no metrics, the error's first line."""
    message = " ".join(str(error).split()) or type(error).__name__
    return Result(dataset, detector, f"(all {len(series)})", len(series),
                  sum(s.n_rows - s.warmup for s in series), sum(int(s.labels[s.judged].sum()) for s in series),
                  flag_rule=flag_rule, seconds=seconds, error=f"{type(error).__name__}: {message}",
                  rows_total=sum(s.n_rows for s in series))


TABLE_NOTES = (
    "P/R/F1: point-wise, at the detector's own flags (no labels used to set them).  "
    "ev P/R/F1: event-wise (an event is found by any flag inside it; a flagged run touching no event is "
    "one false alarm; flagging every row earns 1.0).  cF1: composite F1, point precision with event recall "
    "(flagging every row earns only its point F1).  PA-F1: point-adjusted F1, INFLATES (one flag counts a whole "
    "event).  every_row: the floor, every judged row flagged.  "
    "ROC, PR: areas under the curves of the scores.  F1*: best point-wise F1 at an ORACLE threshold "
    "chosen with the labels (not reachable by the detector).  Rows of a dataset are pooled over its series."
)


def _cell(value, digits: int = 3) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def format_table(results) -> str:
    """One line per dataset x detector with every metric and the run time."""
    header = (f"{'dataset':<7} {'detector':<18} {'series':>6} {'P':>6} {'R':>6} {'F1':>6} {'evP':>6} {'evR':>6} "
              f"{'evF1':>6} {'cF1':>6} {'PA-F1!':>6} {'ROC':>6} {'PR':>6} {'F1*':>6} {'sec':>7} {'rows/s':>8}  flags")
    lines = [header]
    for r in results:
        record = r.row()
        if r.error:
            lines.append(f"{r.dataset:<7} {r.detector:<18} {r.n_series:>6}  failed after {r.seconds:.1f} s: {r.error}")
            continue
        cells = [record[k] for k in ("point_precision", "point_recall", "point_f1", "event_precision",
                                     "event_recall", "event_f1", "composite_f1", "point_adjusted_f1_inflating", "roc_auc",
                                     "pr_auc", "oracle_best_f1")]
        lines.append(f"{r.dataset:<7} {r.detector:<18} {r.n_series:>6} " + " ".join(f"{_cell(c):>6}" for c in cells)
                     + f" {_cell(r.seconds, 1):>7} {_cell(r.rows_per_s, 0):>8}  {r.flag_rule}")
    return "\n".join(lines)


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_summary(out_dir, datasets: list, per_series: list, settings: dict) -> list[Path]:
    """Write ``summary.csv`` and ``summary.json`` (dataset rows) and ``series.csv`` (series rows) under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, results in (("summary.csv", datasets), ("series.csv", per_series)):
        records = [r.row() for r in results]
        columns = list(dict.fromkeys(k for rec in records for k in rec))
        with open(out / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(records)
        written.append(out / name)
    payload = {"settings": settings, "notes": TABLE_NOTES,
               "results": [{k: _jsonable(v) for k, v in r.row().items()} for r in datasets]}
    (out / "summary.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    written.append(out / "summary.json")
    return written
