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


def _meet(locks):
    """``call(i)`` for two workers: release lock ``i``, then wait for the other call's lock.

    Both calls return True only if they ran at the same time (a lock's wait releases the GIL
    as numpy's loops do); run one after the other, the first one waits in vain and returns False.
    """
    def call(i):
        locks[i].release()
        return locks[1 - i].acquire(timeout=10)
    return call


def test_two_threads_overlap_calls_that_release_the_gil():
    import threading

    locks = [threading.Lock(), threading.Lock()]
    for lock in locks:
        lock.acquire()
    assert Workers(threads=2).map(_meet(locks), [0, 1]) == [True, True]


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
        native_lock = monkey.get_original("_thread", "allocate_lock")  # blocks the OS thread, not a greenlet
        locks = [native_lock(), native_lock()]
        for lock in locks:
            lock.acquire()

        def call(i):  # both return True only if the two calls ran at the same time
            locks[i].release()
            return locks[1 - i].acquire(True, 10), native_ident()

        results = Workers(threads=2).map(call, [0, 1])
        print(all(met for met, _ in results), len({ident for _, ident in results}))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "2"]


def test_the_first_tick_freezes_the_objects_alive_then_once():
    """After the first tick (kernels loaded) the objects alive are frozen, so full collections skip them."""
    script = textwrap.dedent("""
        import gc
        import numpy as np
        from detectors.engine import Engine
        engine = Engine(members=("zscore", "mad"), shard_rows=4)
        engine.add_streams([f"s{i}" for i in range(8)], ("x",))
        group = engine.group([f"s{i}" for i in range(8)])
        assert gc.get_freeze_count() == 0
        group.step(np.zeros(8))
        frozen = gc.get_freeze_count()
        assert frozen > 1000, frozen
        group.step(np.ones(8))
        assert gc.get_freeze_count() <= frozen  # once per process: nothing made since is frozen
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
