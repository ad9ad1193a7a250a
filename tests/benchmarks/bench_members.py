"""Time and state of single member detectors at many streams: the new members beside the existing ones.

Steps each member alone over ``--streams`` streams of ``--fields`` fields (a
noisy daily wave with a level per stream, five-minute timestamps) and prints
the p50/p99 time of one tick and the bytes of numpy state per stream.

    python tests/benchmarks/bench_members.py [--streams 10000] [--fields 1] [--warm 300] [--ticks 100]
        [--members hotelling,pca_residual,seasonal,discord,pattern,zscore]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import detectors  # noqa: E402

DEFAULT = "hotelling,pca_residual,seasonal,discord,isolation_forest,lof,pattern,zscore"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--fields", type=int, default=1)
    parser.add_argument("--warm", type=int, default=300)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--members", default=DEFAULT)
    args = parser.parse_args()

    S, d = args.streams, args.fields
    rng = np.random.default_rng(0)
    level = rng.normal(50, 10, (S, d))
    phase = rng.uniform(0, 2 * np.pi, (S, d))
    start = 1704067200.0

    def tick(t):
        return level + 5 * np.sin(2 * np.pi * t / 288 + phase) + rng.normal(0, 1, (S, d))

    print(f"{S} streams of {d} field(s), {args.ticks} ticks after {args.warm} warm-up ticks")
    print(f"{'member':18s} {'p50 ms':>8s} {'p99 ms':>8s} {'KB/stream':>10s}")
    for name in args.members.split(","):
        det = detectors.make(name)
        if d > 1 and not det.multivariate:
            print(f"{name:18s} {'univariate only':>28s}")
            continue
        det.reset(S, d)
        for t in range(args.warm):
            det.step(tick(t), np.full(S, start + 300.0 * t))
        times = []
        for t in range(args.warm, args.warm + args.ticks):
            X, when = tick(t), np.full(S, start + 300.0 * t)
            begin = time.perf_counter()
            det.step(X, when)
            times.append(time.perf_counter() - begin)
        p50, p99 = 1e3 * np.percentile(times, 50), 1e3 * np.percentile(times, 99)
        print(f"{name:18s} {p50:8.1f} {p99:8.1f} {det.state_bytes() / S / 1024:10.1f}", flush=True)


if __name__ == "__main__":
    main()
