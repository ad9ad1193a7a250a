"""Precision and recall per anomaly type on the built-in EV source's labelled sessions.

``python -m server.pipeline.evaluate [--days 30] [--seed 0] [--batch 1h] [--schema ev_charging]``

Sessions are scored in batches of ``--batch`` of simulated time, in start
order, as a live feed of that cadence would deliver them (a whole day's
file is ``--batch 1d``).  A session counts as found for a type when the
type is among its anomaly types.  A rule over a window (three short
sessions within an hour) marks every session of the window: those of the
same batch at once, those of earlier batches afterwards (the server amends
their stored rows; here they are found by entity and start time).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from generators.ev_charging import KINDS, EVChargingGenerator

from .schema import load_schema, parse_duration
from .scoring import Scorer

__all__ = ["evaluate", "main"]


def evaluate(days: int = 30, seed: int = 0, batch_seconds: float = 3600.0,
             schema_name: str = "ev_charging") -> dict:
    """Score ``days`` of generated sessions; return per-type counts, precision and recall."""
    sessions = EVChargingGenerator(seed=seed).days(days)
    sessions = sessions.sort_values("start_time", kind="stable").reset_index(drop=True)
    schema = load_schema(schema_name)
    scorer = Scorer(schema)
    found = {kind: np.zeros(len(sessions), dtype=bool) for kind in KINDS}
    flagged = np.zeros(len(sessions), dtype=bool)
    started = time.perf_counter()
    buckets = np.floor(sessions["start_time"].to_numpy() / batch_seconds)
    edges = np.flatnonzero(np.diff(buckets)) + 1
    by_entity_and_time: dict[str, dict] = {}
    for lo, hi in zip(np.concatenate([[0], edges]), np.concatenate([edges, [len(sessions)]])):
        batch = scorer.score(sessions.iloc[lo:hi])
        flagged[lo:hi] = batch.is_anomaly
        for i in batch.anomaly_indices():
            for kind in batch.types_of(int(i)):
                if kind in found:
                    found[kind][lo + i] = True
        for marks in batch.earlier:  # sessions of earlier batches, amended where they are stored
            if marks.entity not in by_entity_and_time:
                by_entity_and_time[marks.entity] = dict(zip(
                    zip(sessions[marks.entity].astype(str), sessions[schema.timestamp]), range(len(sessions))))
            lookup = by_entity_and_time[marks.entity]
            indices = [lookup[(str(e), t)] for e, t in zip(marks.ids.tolist(), marks.times.tolist())]
            flagged[indices] = True
            if marks.rule.type in found:
                found[marks.rule.type][indices] = True
    elapsed = time.perf_counter() - started
    labels = sessions["label"].to_numpy(dtype=object)
    result = {"sessions": len(sessions), "seconds": elapsed, "flagged": int(flagged.sum()), "types": {}}
    for kind in KINDS:
        truth = labels == kind
        tp = int((found[kind] & truth).sum())
        result["types"][kind] = {
            "labelled": int(truth.sum()), "found": int(found[kind].sum()), "true_positives": tp,
            "precision": tp / found[kind].sum() if found[kind].any() else float("nan"),
            "recall": tp / truth.sum() if truth.any() else float("nan")}
    normal = labels == ""
    result["normal_flagged"] = int((flagged & normal).sum())
    result["normal"] = int(normal.sum())
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.pipeline.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30, help="simulated days of sessions (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", default="1h", help="simulated time per batch: 5min, 1h, 1d (default 1h)")
    parser.add_argument("--schema", default="ev_charging")
    args = parser.parse_args(argv)
    result = evaluate(args.days, args.seed, parse_duration(args.batch), args.schema)
    print(f"{result['sessions']} sessions ({args.days} days, seed {args.seed}) scored in batches of "
          f"{args.batch} in {result['seconds']:.1f} s")
    table = pd.DataFrame(result["types"]).T[["labelled", "found", "true_positives", "precision", "recall"]]
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"normal sessions flagged with any type (incl. unusual_*): {result['normal_flagged']} of "
          f"{result['normal']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
