"""How often the default ensemble alerts on streams with nothing to find: the false-alarm rate it states, measured.

The README's "Alert threshold" says the default alerts on about
``FALSE_ALARM_RATE`` of the points of a stream behaving normally.  This
script scores seeded null streams (no anomalies by construction) of four
families and prints the alerts per judged point of each:

* ``gaussian``: independent standard normal noise;
* ``student_t3``: independent Student t noise with 3 degrees of freedom (heavy tails);
* ``ar1``: an AR(1) process with coefficient 0.9 (slow, correlated wandering);
* ``seasonal``: a daily cycle of 288 points (five-minute data) plus noise.

Each family has ``--streams`` streams of ``--points`` points, scored as one
bank (``EnsembleDetector._run``, the path the evaluation takes); the points
from ``--judge-from`` on are judged (a stream is young before).  With
``--fields N`` each stream has ``N`` independent fields of its family (a
server's metrics, say): the stated rate is per stream, whatever its fields.

Run: ``nice .venv/bin/python tests/benchmarks/bench_null_rate.py [--streams 200 --points 3000]``
(``--novelty-tail learned`` for the learned tail only; both by default).

Measured (defaults, seed 0, 2026-12-02), alerts per judged point, and times the stated 1e-5:
fixed scale ("range", the default) gaussian 6.4e-4 (64x), student_t3 1.3e-3 (129x), ar1 7.8e-4
(78x), seasonal 4.7e-4 (47x); learned tail 3.0e-5 (3.0x), 2.3e-4 (23x), 7.5e-6 (0.8x), 5.0e-6 (0.5x).
On 2026-12-04, with each channel's share of the rate and the z-score member's F law, the fixed
scale: 4.8e-4 (48x), 1.2e-3 (117x), 5.7e-4 (57x), 3.2e-4 (32x); ``--fields 38 --streams 100``
gaussian 5.0e-3 (501x, 16 % of the points marked anomalous), ar1 4.2e-3 (421x, 17 %).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from detectors.ensemble import FALSE_ALARM_RATE, NOVELTY_TAILS, EnsembleDetector  # noqa: E402

#: Points of one day of five-minute data: the seasonal family's period.
DAY = 288


def null_streams(family: str, streams: int, points: int, seed: int, fields: int = 1) -> np.ndarray:
    """``(points, streams)`` values of one null family (see the module docstring), seeded;
    ``(points, streams, fields)`` with several independent fields per stream."""
    if fields > 1:
        return null_streams(family, streams * fields, points, seed).reshape(points, streams, fields)
    rng = np.random.default_rng([seed, sum(map(ord, family))])
    if family == "gaussian":
        return rng.normal(size=(points, streams))
    if family == "student_t3":
        return rng.standard_t(3, size=(points, streams))
    if family == "ar1":
        shocks = rng.normal(size=(points, streams))
        values = np.zeros((points, streams))
        for t in range(1, points):  # a recursion over time, vectorised over streams (test data, not a hot path)
            values[t] = 0.9 * values[t - 1] + shocks[t]
        return values
    if family == "seasonal":
        phase = rng.uniform(0, 2 * np.pi, streams)
        cycle = 3.0 * np.sin(2 * np.pi * np.arange(points)[:, None] / DAY + phase)
        return 10.0 + cycle + rng.normal(size=(points, streams))
    raise ValueError(f"unknown null family {family!r}")


FAMILIES = ("gaussian", "student_t3", "ar1", "seasonal")


def null_alert_rate(values: np.ndarray, judge_from: int, **params) -> tuple[int, int, int]:
    """``(alerts, anomalous points, judged points)`` of the ensemble on the columns of ``values`` as streams
    (``values[:, i]`` is stream ``i``'s, of one field or several)."""
    detector = EnsembleDetector(**params)
    _, anomalous, alerts = detector._run([values[:, i] for i in range(values.shape[1])], None, True)
    judged = slice(judge_from, None)
    return (int(sum(a[judged].sum() for a in alerts)), int(sum(a[judged].sum() for a in anomalous)),
            int(sum(len(a[judged]) for a in alerts)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--points", type=int, default=3000)
    parser.add_argument("--judge-from", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fields", type=int, default=1, help="independent fields per stream (default: 1)")
    parser.add_argument("--novelty-tail", nargs="*", default=["range", "learned"], choices=NOVELTY_TAILS)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    args = parser.parse_args(argv)
    print(f"stated rate {FALSE_ALARM_RATE:.0e} per point per stream; "
          f"{args.streams} streams x {args.points} points of {args.fields} field(s), judged from {args.judge_from}, "
          f"seed {args.seed}")
    for family in args.families:
        values = null_streams(family, args.streams, args.points, args.seed, args.fields)
        for tail in args.novelty_tail:
            wall, cpu = time.perf_counter(), time.process_time()
            alerts, anomalous, judged = null_alert_rate(values, args.judge_from, novelty_tail=tail)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"{family:>11} {tail:>7}: {alerts:4d} alerts / {judged} points = {alerts / judged:.1e} per point "
                  f"({alerts / judged / FALSE_ALARM_RATE:5.1f}x stated), anomalous {anomalous / judged:.1e}; "
                  f"{wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
