"""Where the default ensemble spends its tick: time and state per member at many streams.

Steps the default ensemble over ``--streams`` univariate streams (a noisy
daily wave with a level per stream) and prints, for every member and for the
ensemble's own fusion and novelty stage, the p50/p99 time of one tick and the
bytes of numpy state per stream.  Each member is timed inside the ensemble's
own step, so the figures add up to the ensemble's tick.

    python tests/benchmarks/bench_ensemble.py [--streams 10000] [--warm 300] [--ticks 100]

Until a stream has seen the pattern member's history (1024 points) the
member also masks the lags it cannot use yet, so a warm-up shorter than that
gives slightly pessimistic pattern figures.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import detectors  # noqa: E402
from detectors.base import Detector  # noqa: E402


class Timed:
    """Wrap a member's ``step`` to record its wall time per tick."""

    def __init__(self, detector: Detector):
        self.detector, self.times = detector, []
        self.inner = detector.step
        detector.step = self

    def __call__(self, X):
        start = time.perf_counter()
        out = self.inner(X)
        self.times.append(time.perf_counter() - start)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--warm", type=int, default=300)
    parser.add_argument("--ticks", type=int, default=100)
    args = parser.parse_args()

    S = args.streams
    rng = np.random.default_rng(0)
    level = rng.normal(50, 10, S)
    phase = rng.uniform(0, 2 * np.pi, S)
    ensemble = detectors.make("ensemble").reset(S, 1)

    def tick(t):
        return (level + 5 * np.sin(2 * np.pi * t / 288 + phase) + rng.normal(0, 1, S))[:, None]

    for t in range(args.warm):
        ensemble.step(tick(t))
    timers = [Timed(d) for d in ensemble.detectors_]
    total = []
    for t in range(args.warm, args.warm + args.ticks):
        X = tick(t)
        start = time.perf_counter()
        ensemble.step(X)
        total.append(time.perf_counter() - start)
    total = np.array(total)
    members = np.sum([np.array(tm.times) for tm in timers], axis=0)
    rows = [(name, np.array(tm.times), d.state_bytes())
            for name, tm, d in zip(ensemble.members, timers, ensemble.detectors_)]
    own = ensemble.state_bytes() - sum(b for _, _, b in rows)
    rows.append(("(fusion + novelty)", total - members, own))
    rows.append(("ensemble", total, ensemble.state_bytes()))
    print(f"{S} streams, {args.ticks} ticks after {args.warm} warm-up ticks")
    print(f"{'part':20s} {'p50 ms':>8s} {'p99 ms':>8s} {'KB/stream':>10s}")
    for name, times, nbytes in rows:
        p50, p99 = 1e3 * np.percentile(times, 50), 1e3 * np.percentile(times, 99)
        print(f"{name:20s} {p50:8.1f} {p99:8.1f} {nbytes / S / 1024:10.1f}")


if __name__ == "__main__":
    main()
