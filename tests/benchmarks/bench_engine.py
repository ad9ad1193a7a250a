"""Engine throughput and memory: the full ensemble at 10 to 100,000 streams per tick.

Prints points per second, p50/p99 tick time (wall clock), the CPU time of a
tick (median and p99, every thread of the process: with two threads it can
exceed the wall time; on a loaded machine the CPU p99 still shows a code's
slow ticks when the wall times mostly show the load), and resident memory per stream for each size (each measured in a fresh
process, so memory is not shared between sizes), and River's HalfSpaceTrees
(default parameters, one stream, ``score_one`` + ``learn_one``) timed in the
same run as a reference line.  The machine's load average is printed beside
each size: other processes on the cores move the figures.

    python tests/benchmarks/bench_engine.py [--sizes 10 1000 10000 100000] [--ticks 200]
        [--threads 2] [--shard-rows 4096]

100,000 streams take about ten minutes (warm-up included).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def rss_bytes() -> int:
    """Resident set size of this process, from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(n_streams: int, warm_ticks: int, ticks: int, threads: int, shard_rows: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from detectors.engine import Engine

    rng = np.random.default_rng(0)
    engine = Engine(threads=threads, shard_rows=shard_rows)
    before = rss_bytes()
    names = [f"stream{i}" for i in range(n_streams)]
    engine.add_streams(names, ("value",))
    group = engine.group(names)
    level = rng.normal(50, 10, n_streams)
    for _ in range(warm_ticks):
        group.step(level + rng.normal(0, 1, n_streams))
    memory = rss_bytes() - before
    times, cpu = [], []
    for _ in range(ticks):
        values = level + rng.normal(0, 1, n_streams)
        start, start_cpu = time.perf_counter(), time.process_time()
        result = group.step(values)
        result.anomalies()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    times = np.array(times)
    return {
        "streams": n_streams,
        "points_per_s": n_streams / times.mean(),
        "p50_ms": 1e3 * np.percentile(times, 50),
        "p99_ms": 1e3 * np.percentile(times, 99),
        "cpu_ms": 1e3 * np.median(cpu),
        "cpu_p99_ms": 1e3 * np.percentile(cpu, 99),
        "kb_per_stream": memory / n_streams / 1024,
        "load": os.getloadavg()[0],
    }


def river_reference(points: int) -> dict:
    from river import anomaly

    model = anomaly.HalfSpaceTrees()
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, points)
    start = time.perf_counter()
    for v in values:
        x = {"value": float(v)}
        model.score_one(x)
        model.learn_one(x)
    seconds = time.perf_counter() - start
    return {"points_per_s": points / seconds, "us_per_point": 1e6 * seconds / points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000, 100000])
    parser.add_argument("--ticks", type=int, default=200, help="timed ticks per size")
    parser.add_argument("--warm", type=int, default=300, help="ticks before timing (fills windows, fits models)")
    parser.add_argument("--threads", type=int, default=2, help="threads that step a tick's banks")
    parser.add_argument("--shard-rows", type=int, default=4096, help="most streams in one bank")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.warm, args.ticks, args.threads, args.shard_rows)))
        return
    print(f"full ensemble, {args.warm} warm-up ticks then {args.ticks} timed ticks per size, "
          f"{args.threads} thread(s), at most {args.shard_rows} streams per bank")
    print(f"{'streams':>8} {'points/s':>12} {'p50 ms':>9} {'p99 ms':>9} {'CPU ms':>9} {'CPU p99':>9} "
          f"{'KB/stream':>10} {'load':>5}")
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(size), "--ticks", str(args.ticks),
                              "--warm", str(args.warm), "--threads", str(args.threads),
                              "--shard-rows", str(args.shard_rows)], capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"{size} streams failed:\n{out.stderr}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['streams']:>8} {r['points_per_s']:>12,.0f} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} "
              f"{r['cpu_ms']:>9.2f} {r['cpu_p99_ms']:>9.2f} {r['kb_per_stream']:>10.1f} {r['load']:>5.2f}", flush=True)
    ref = river_reference(20000)
    print(f"reference: river HalfSpaceTrees (defaults, 1 stream, score_one+learn_one): "
          f"{ref['points_per_s']:,.0f} points/s ({ref['us_per_point']:.1f} us/point)")
    print("target: p99 per tick <= 150 ms at 10,000 streams and <= 700 ms at 100,000, <= 100 KB per stream")


if __name__ == "__main__":
    main()
