"""Rows per second of the fast path on one long series: the default ensemble and each member, beside River.

Scores one series of ``--rows`` points (a noisy daily wave with a few
spikes) with ``score_series`` (the block path, :meth:`Detector.step_block`)
at 1, 8 and 38 fields, for the default ensemble and every one of its
members, and the first ``--stepped`` rows through the streaming path (one
``step`` per point) for comparison; then River's HalfSpaceTrees on the same
series in the same run (score_one + learn_one per row, as
``python -m detectors evaluate`` scores it).  A member marked ``loop`` has
no vectorised block path yet and is stepped point by point inside the block.
Rates are given per wall-clock second and per CPU second of the process
(``time.process_time``), the steadier of the two on a shared machine; with
``--repeat N`` each block is scored ``N`` times and the median run is shown,
with the best run's CPU rate beside it.
With ``--bank N``, also one stream's batch of ``--batch`` points submitted
to an engine whose bank holds ``N`` streams: ``Engine.step`` per point (each
tick steps the whole bank) against ``Engine.step_block``.
The machine is shared: the load average is printed beside the figures.

    python tests/benchmarks/bench_fast_path.py [--rows 10000] [--stepped 500] [--fields 1 8 38] [--no-river]
        [--repeat 1] [--bank 1000 --batch 1000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import detectors  # noqa: E402
from detectors.base import Detector  # noqa: E402
from detectors.engine import Engine  # noqa: E402
from detectors.ensemble import DEFAULT_MEMBERS  # noqa: E402


def wave(rows: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(rows)[:, None]
    x = 50 + 5 * np.sin(2 * np.pi * t / 288 + rng.uniform(0, 6, d)) + rng.normal(0, 1, (rows, d))
    x[rng.choice(rows, size=max(1, rows // 1000), replace=False)] += 20
    return x


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:12,.0f}"


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def timed_cpu(call) -> tuple[float, float]:
    """Wall and CPU seconds of ``call()``: on a shared machine the CPU time is the steadier figure."""
    start, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - start, time.process_time() - cpu


def stepped(det: Detector, X: np.ndarray) -> None:
    det.reset(1, X.shape[1])
    for row in X:
        det.step(row[None, :])


def engine_batch(bank: int, batch: int, stepped: int) -> None:
    """One stream's batch in a bank of ``bank`` streams: per-point engine steps against one block."""
    names = [f"s{i}" for i in range(bank)]
    engines = []
    for _ in range(2):
        engine = Engine()
        engine.add_streams(names, ("x",))
        group = engine.group(names)
        rng = np.random.default_rng(0)
        for _ in range(100):  # every stream warmed alike
            group.step(rng.normal(50, 1, (bank, 1)))
        engines.append(engine)
    X = wave(batch, 1, seed=3)
    step = timed(lambda: [engines[0].step({"s7": {"x": float(v)}}) for v in X[:stepped, 0]])
    block = timed(lambda: engines[1].step_block("s7", X))
    print(f"\none stream's batch in a bank of {bank:,} streams (default ensemble, 1 field): "
          f"Engine.step per point {stepped / step:,.0f} points/s (first {stepped}), "
          f"Engine.step_block {batch / block:,.0f} points/s ({batch} points)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--stepped", type=int, default=500, help="rows timed through the streaming path")
    parser.add_argument("--fields", type=int, nargs="+", default=[1, 8, 38])
    parser.add_argument("--no-river", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="score each block this many times: median and best")
    parser.add_argument("--bank", type=int, default=0, help="also time one stream's batch in a bank this large")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    print(f"one series of {args.rows:,} rows; block = score_series (fast path), step = one step() per row "
          f"(first {args.stepped} rows); load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    for d in args.fields:
        X = wave(args.rows, d, seed=d)
        print(f"\n{d} field(s)\n{'detector':18s} {'path':6s} {'block rows/s':>12s} {'step rows/s':>12s} "
              f"{'block rows/CPU s':>16s}" + (f" {'best rows/CPU s':>16s}" if args.repeat > 1 else ""))
        for name in DEFAULT_MEMBERS + ("ensemble",):
            det = detectors.make(name)
            det.score_series(X[:200])  # imports, first calls and compiled kernels (loaded or compiled) out of the timing
            path = "vector" if det._vectorised((), 0) else ("mixed" if name == "ensemble" else "loop")
            runs = [timed_cpu(lambda: det.score_series(X)) for _ in range(max(1, args.repeat))]
            block, block_cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            step = timed(lambda: stepped(detectors.make(name), X[: args.stepped]))
            best = f" {rate(args.rows, min(r[1] for r in runs)):>16s}" if args.repeat > 1 else ""
            print(f"{name:18s} {path:6s} {rate(args.rows, block)} {rate(args.stepped, step)} "
                  f"{rate(args.rows, block_cpu):>16s}{best}", flush=True)
        if not args.no_river:
            from detectors.evaluation.references import half_space_trees

            seconds, cpu = timed_cpu(lambda: half_space_trees(X, warmup=256))
            print(f"{'river HST':18s} {'':6s} {rate(args.rows, seconds)} {'':12s} {rate(args.rows, cpu):>16s}"
                  "   (score_one + learn_one per row)", flush=True)
    if args.bank:
        engine_batch(args.bank, args.batch, min(args.stepped, args.batch))
    print(f"\nload average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")


if __name__ == "__main__":
    main()
