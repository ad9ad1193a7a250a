"""Background jobs: they log failures and carry on, and only the lock holder runs them."""
from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from server.scheduler import BackgroundJobs, SchedulerLock, guarded
from server_helpers import services_of, wait_for


def test_guarded_logs_the_exception_and_returns(caplog):
    failures = []

    def boom():
        raise RuntimeError("bad item")

    with caplog.at_level(logging.ERROR, logger="server"):
        guarded("demo", boom, on_failure=lambda: failures.append(1))()
    assert failures == [1]
    assert "background job 'demo' failed" in caplog.text and "bad item" in caplog.text


def test_a_failing_job_keeps_running_on_the_real_scheduler(tmp_path, caplog):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) <= 2:
            raise ValueError(f"failure number {len(calls)}")

    jobs = BackgroundJobs({"flaky": (flaky, 0.05)}, SchedulerLock(tmp_path / "lock"))
    with caplog.at_level(logging.ERROR, logger="server"):
        jobs.start()
        try:
            wait_for(lambda: len(calls) >= 5)
        finally:
            jobs.stop()
    assert jobs.failures == 2
    assert "failure number 1" in caplog.text and "failure number 2" in caplog.text


def test_a_failing_generator_costs_only_its_own_stream(app, caplog):
    monitor = services_of(app).monitor

    class Broken:
        fields = ("price",)

        def next(self):
            raise RuntimeError("feed down")

    healthy = monitor.generators["financial"]
    monitor.generators["financial"] = Broken()
    with caplog.at_level(logging.ERROR, logger="server"):
        points = monitor.tick()
    assert len(points) == 8 and "financial" not in {p["source"] for p in points}
    assert "generator 'financial' failed: RuntimeError: feed down" in caplog.text
    monitor.generators["financial"] = healthy
    assert len(monitor.tick()) == 9


def test_the_lock_admits_one_holder(tmp_path):
    first, second = SchedulerLock(tmp_path / "l"), SchedulerLock(tmp_path / "l")
    assert first.acquire() and not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_the_lock_is_exclusive_across_processes(tmp_path):
    path = tmp_path / "l"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(__import__('server').settings.REPO_ROOT)!r})
        from server.scheduler import SchedulerLock
        lock = SchedulerLock({str(path)!r})
        assert lock.acquire()
        print("held", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = SchedulerLock(path)
        assert not lock.acquire()
        assert lock.holder() == str(holder.pid)
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert lock.acquire()  # the kernel released the dead holder's lock
    lock.release()


def test_a_second_scheduler_waits_for_the_lock_then_takes_over(tmp_path):
    ran = []
    first = BackgroundJobs({"job": (lambda: ran.append("first"), 0.05)}, SchedulerLock(tmp_path / "l"))
    second = BackgroundJobs({"job": (lambda: ran.append("second"), 0.05)}, SchedulerLock(tmp_path / "l"),
                            retry_s=0.05)
    first.start()
    second.start()
    try:
        wait_for(lambda: ran.count("first") >= 3)
        assert first.running and not second.running and "second" not in ran
        first.stop()
        wait_for(lambda: "second" in ran)
        assert second.running
    finally:
        first.stop()
        second.stop()


@pytest.mark.timeout(60)
def test_the_app_ticks_on_its_own_and_reports_healthy(make_app):
    app = make_app(SCHEDULER=True, TICK_INTERVAL=0.1)
    client = app.test_client()
    # Three ticks of nine streams committed, with nobody driving them but the scheduler.
    wait_for(lambda: client.get("/api/status").get_json()["points"] >= 27)
    assert services_of(app).monitor.tick_count >= 3
    assert client.get("/health").get_json() == {"status": "ok", "ready": True, "scheduler": True,
                                                "database": True, "scheduler_enabled": True}
