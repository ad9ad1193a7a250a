"""Time one tick of the Isolation Forest and LOF detectors at several bank sizes; print ms and bytes per stream.

Each bank is fed a noisy sine per stream (random phases) past its warm-up and
first fits, then ``--ticks`` further ticks are timed one by one, so the
figures include the staggered refits in steady state.  Bytes per stream are
the summed ``nbytes`` of every ndarray the detector holds (including its
helpers) divided by the number of streams.

Run: ``.venv/bin/python tests/benchmarks/bench_forest_lof.py [--streams 10 1000 10000] [--fields 1 3]``
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from detectors.isolation_forest import IsolationForestDetector  # noqa: E402
from detectors.lof import LocalOutlierFactorDetector  # noqa: E402

DETECTORS = {"isolation_forest": IsolationForestDetector, "lof": LocalOutlierFactorDetector}


def ticks(n_streams: int, n_fields: int, seed: int = 0):
    """Endless ticks of noisy sines, one random phase and period per stream and field."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, (n_streams, n_fields))
    period = rng.uniform(20, 200, (n_streams, n_fields))
    t = 0
    while True:
        yield np.sin(2 * np.pi * t / period + phase) + 0.1 * rng.standard_normal((n_streams, n_fields))
        t += 1


def bench(name: str, n_streams: int, n_fields: int, n_ticks: int) -> dict:
    det = DETECTORS[name]().reset(n_streams, n_fields)
    source = ticks(n_streams, n_fields)
    # Warm-up, the first fits (spread over ticks by the refit budget) and one refit period.
    settle = det.schedule_.first + int(np.ceil(n_streams / det.schedule_.budget_)) + det.refit_every
    for _ in range(settle):
        det.step(next(source))
    assert det.fitted_.all(), "benchmark must time fitted streams"
    wall = np.empty(n_ticks)
    cpu = np.empty(n_ticks)
    for i in range(n_ticks):
        tick = next(source)
        start, start_cpu = time.perf_counter(), time.process_time()
        det.step(tick)
        wall[i] = time.perf_counter() - start
        cpu[i] = time.process_time() - start_cpu
    return {
        "p50_ms": 1e3 * np.percentile(wall, 50),
        "p99_ms": 1e3 * np.percentile(wall, 99),
        "max_ms": 1e3 * wall.max(),
        "cpu_p50_ms": 1e3 * np.percentile(cpu, 50),
        "cpu_p99_ms": 1e3 * np.percentile(cpu, 99),
        "bytes_per_stream": det.state_bytes() / n_streams,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--fields", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--ticks", type=int, default=256, help="timed ticks per configuration")
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS))
    args = parser.parse_args(argv)
    # Wall-clock figures are what a tick costs; CPU figures are the same ticks measured in this
    # process's CPU time, which other busy processes on a shared machine inflate much less.
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        f"{'detector':<17}{'streams':>8}{'fields':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'cpu p50':>9}{'cpu p99':>9}{'B/stream':>10}"
    )
    for n_fields in args.fields:
        for n_streams in args.streams:
            for name in args.detectors:
                r = bench(name, n_streams, n_fields, args.ticks)
                print(
                    f"{name:<17}{n_streams:>8}{n_fields:>7}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                    f"{r['max_ms']:>9.2f}{r['cpu_p50_ms']:>9.2f}{r['cpu_p99_ms']:>9.2f}{r['bytes_per_stream']:>10.0f}",
                    flush=True,
                )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
