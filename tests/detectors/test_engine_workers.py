"""The engine's native worker threads (detectors/workers.py): order, errors, real parallelism, gevent, cleanup."""
import gc
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from detectors.workers import Workers

ROOT = Path(__file__).resolve().parents[2]


def _native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_results_keep_the_items_order():
    assert Workers(threads=2).map(lambda x: x * 10, range(7)) == [0, 10, 20, 30, 40, 50, 60]
    assert Workers(threads=3).map(lambda x: x, []) == []


def test_the_first_items_error_is_raised_after_every_item_ran():
    ran = []

    def call(x):
        ran.append(x)
        if x in (2, 4):
            raise ValueError(f"item {x}")
        return x

    with pytest.raises(ValueError, match="item 2"):
        Workers(threads=2).map(call, range(6))
    assert sorted(ran) == list(range(6))


def test_two_threads_overlap_calls_that_release_the_gil():
    # time.sleep releases the GIL as numpy's loops do: two 0.2 s calls on two threads take about 0.2 s.
    workers = Workers(threads=2)
    workers.map(time.sleep, [0.0, 0.0])  # starts the helper
    start = time.perf_counter()
    workers.map(time.sleep, [0.2, 0.2])
    assert time.perf_counter() - start < 0.35


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts threads in /proc")
def test_the_helper_thread_ends_when_its_workers_are_dropped():
    gc.collect()  # helpers of earlier tests' workers end first
    time.sleep(0.1)
    before = _native_threads()
    workers = Workers(threads=2)
    workers.map(abs, [1, -2])
    assert _native_threads() == before + 1
    del workers
    gc.collect()
    deadline = time.monotonic() + 2
    while _native_threads() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _native_threads() == before


def test_under_gevent_the_helpers_are_native_threads_that_run_side_by_side():
    """With threading monkey-patched (the server's gevent worker), patched threads would be greenlets on one core."""
    script = textwrap.dedent("""
        from gevent import monkey
        monkey.patch_all()
        import time
        from detectors.workers import Workers

        native_ident = monkey.get_original("_thread", "get_ident")
        native_sleep = monkey.get_original("time", "sleep")  # blocks the OS thread, releasing the GIL

        def call(seconds):
            native_sleep(seconds)
            return native_ident()

        workers = Workers(threads=2)
        workers.map(call, [0.0, 0.0])
        start = time.perf_counter()
        idents = workers.map(call, [0.3, 0.3])
        print(len(set(idents)), round(time.perf_counter() - start, 3))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    distinct, seconds = out.stdout.split()
    assert distinct == "2" and float(seconds) < 0.5
