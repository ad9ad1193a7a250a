"""The background jobs (ticks, retention) and the guard that keeps them to one process.

Exactly one scheduler runs per database: before adding its jobs, a process
takes an exclusive, non-blocking ``flock`` on ``<database>.scheduler.lock``.
A second process (a second gunicorn worker, a second server on the same data,
or the new worker of a graceful reload while the old one drains) does not get
it, logs so, and retries every second; it starts ticking only once the holder
has exited (the kernel releases a dead process's flock).

Every job runs through :func:`guarded`: an exception is logged with its
traceback and the job simply runs again at its next time.
"""
from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from .concurrency import cooperative

__all__ = ["BackgroundJobs", "SchedulerLock", "guarded"]

log = logging.getLogger(__name__)


class SchedulerLock:
    """An exclusive advisory lock on a file, held until :meth:`release` or process exit."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Try once, without waiting; True if this process now holds the lock."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """The pid written by the current holder (for messages)."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def guarded(name: str, fn: Callable[[], Any], on_failure: Callable[[], None] | None = None
            ) -> Callable[[], None]:
    """Wrap a job so that an exception is logged and the scheduler carries on."""
    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("background job %r failed; it will run again at its next time", name)
            if on_failure is not None:
                on_failure()
    run.__name__ = f"guarded_{name}"
    return run


class BackgroundJobs:
    """APScheduler with the tick and retention jobs, started only by the lock holder.

    Parameters
    ----------
    jobs : dict of str to (callable, interval seconds)
        The periodic jobs to run once the lock is held.
    lock : SchedulerLock
    retry_s : float
        Seconds between two attempts at the lock.
    """

    def __init__(self, jobs: dict[str, tuple[Callable[[], Any], float]], lock: SchedulerLock,
                 retry_s: float = 1.0):
        self.jobs = dict(jobs)
        self.lock = lock
        self.retry_s = retry_s
        self.failures = 0
        self.scheduler = None
        self.started_at: float | None = None

    @property
    def running(self) -> bool:
        return self.scheduler is not None and self.scheduler.running and self.lock.held

    def _count_failure(self) -> None:
        self.failures += 1

    def start(self) -> None:
        if self.scheduler is not None:
            return
        if cooperative():
            from apscheduler.schedulers.gevent import GeventScheduler as Scheduler
        else:
            from apscheduler.schedulers.background import BackgroundScheduler as Scheduler
        self.scheduler = Scheduler(job_defaults={"coalesce": True, "max_instances": 1})
        self.scheduler.start()
        self.started_at = time.time()
        if not self._take_lock():
            log.warning("scheduler lock %s is held by pid %s: this process will not tick; "
                        "retrying every %g s", self.lock.path, self.lock.holder(), self.retry_s)
            self.scheduler.add_job(guarded("scheduler-lock", self._retry_lock), "interval",
                                   seconds=self.retry_s, id="scheduler-lock")

    def _take_lock(self) -> bool:
        if not self.lock.acquire():
            return False
        for name, (fn, interval) in self.jobs.items():
            # misfire grace: a run late by up to one interval still runs (then coalesces).
            self.scheduler.add_job(guarded(name, fn, self._count_failure), "interval",
                                   seconds=interval, id=name, misfire_grace_time=max(1, int(interval) + 1),
                                   next_run_time=_now_for(self.scheduler))
        log.info("scheduler lock %s taken by pid %d; jobs: %s", self.lock.path, os.getpid(),
                 ", ".join(f"{n} every {i:g} s" for n, (_, i) in self.jobs.items()))
        return True

    def _retry_lock(self) -> None:
        if self._take_lock():
            self.scheduler.remove_job("scheduler-lock")

    def stop(self) -> None:
        if self.scheduler is not None:
            try:
                self.scheduler.shutdown(wait=True)
            except Exception:
                log.exception("scheduler shutdown failed")
            self.scheduler = None
        self.lock.release()


def _now_for(scheduler):
    from datetime import datetime
    return datetime.now(scheduler.timezone)
