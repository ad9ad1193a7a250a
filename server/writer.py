"""The single database writer: one thread, one connection, a bounded queue, group commit.

Every write in the server is a :class:`WriteJob` handed to :meth:`Writer.submit`.
The writer takes whatever jobs are waiting (up to ``max_batch``), applies them
in ONE transaction -- each inside its own savepoint, so one failing job is
rolled back alone and reported to its caller -- commits, publishes the batch's
push events in id order, and only then wakes the callers.

Durability: a caller whose :meth:`WriteJob.wait` has returned knows its rows
are committed.  With ``synchronous=FULL`` (the default) in WAL mode, SQLite has
fsynced the write-ahead log before COMMIT returned, so the rows survive a
crash of the server process, a kernel panic or a power cut (given a disk that
honours fsync).  With ``synchronous=NORMAL`` they survive a crash of the
process but the last transactions may be lost if the machine itself fails.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

import sqlite_utils

from .concurrency import DedicatedThread
from .row_ids import keep_next_row_id, next_row_id
from .scheduler import SchedulerLock
from .storage import open_writer
from .validation import is_client_error

__all__ = ["Transaction", "WriteJob", "WriteTimeout", "Writer", "WriterBusy", "WriterError",
           "WriterStopped", "WriterUnavailable"]

log = logging.getLogger(__name__)

_STOP = object()


class WriterError(RuntimeError):
    """The writer could not take or finish a job."""


class WriterBusy(WriterError):
    """The writer's queue is full: the caller should retry later."""


class WriterStopped(WriterError):
    """The writer is not running."""


class WriterUnavailable(WriterError):
    """Another process writes to this database: this one refuses writes until it is gone."""


class WriteTimeout(WriterError):
    """The job was not committed within the caller's timeout (it may still be, later)."""


class Transaction:
    """What a job sees while the batch transaction is open on the writer thread."""

    def __init__(self, db: sqlite_utils.Database, next_ids: dict[str, int], now: float,
                 observers: list | None = None):
        self.db = db
        self.now = now
        self._next_ids = next_ids
        #: Objects told about what this transaction stores (:meth:`tell_observers`).
        self.observers = observers or []

    def tell_observers(self, hook: str, *args, what: str) -> list:
        """Call ``observer.<hook>(tx, *args)`` on every observer that has the hook; return their push events.

        The hooks: ``points_stored(tx, points)``, ``events_stored(tx, schema, anomalies)``,
        ``import_undone(tx, origin)``, ``stream_deleted(tx, name)`` (e.g. the alert
        lifecycle, which commits with them).  Each runs in a savepoint: one that fails is
        logged (``what`` says on what) and rolled back, and never costs the job its rows.
        """
        pushed: list = []
        for observer in self.observers:
            call = getattr(observer, hook, None)
            if call is None:
                continue
            try:
                with self.db.atomic():
                    pushed += call(self, *args) or []
            except Exception:
                log.exception("writer: %s failed on %s; its changes are rolled back", type(observer).__name__, what)
                observer.rollback()
        return pushed

    def allocate(self, table: str, count: int) -> int:
        """Reserve ``count`` consecutive row ids of ``table``; return the first one.

        Only this thread inserts, so ids can be handed out before the INSERT:
        a job knows its point ids (and event ids) while building its rows.
        """
        first = self._next_ids[table]
        self._next_ids[table] = first + count
        return first

    def keep_next_id(self, table: str) -> None:
        """Before deleting rows of ``table``: keep its ids from being handed out again after a restart."""
        keep_next_row_id(self.db.conn, table, self._next_ids.get(table, 1))


class WriteJob:
    """A unit of work for the writer.  Subclasses implement :meth:`apply`.

    ``apply`` runs on the writer thread inside the batch transaction; what it
    returns becomes :attr:`result`.  It may set :attr:`events` (push events to
    publish once the batch has committed).
    """

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.events: list = []

    def apply(self, tx: Transaction) -> Any:
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the batch holding this job has committed; return the job's result.

        Raises the job's own error, :class:`WriteTimeout`, or the commit's error.
        """
        if not self.done.wait(timeout):
            raise WriteTimeout(f"{type(self).__name__} not committed within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


class Writer:
    """The one thread that writes to the database.

    Parameters
    ----------
    path : Path
        The SQLite file.
    synchronous : {"FULL", "NORMAL"}
        SQLite's ``synchronous`` pragma for the write connection.
    queue_size : int
        Capacity of the job queue (:meth:`submit` raises :class:`WriterBusy` past it).
    on_commit : callable, optional
        Called with the committed batch's events, in id order, before callers wake.
    max_batch : int
        Most jobs grouped into one transaction.
    """

    def __init__(self, path: Path, synchronous: str = "FULL", queue_size: int = 1024,
                 on_commit: Callable[[list], None] | None = None, max_batch: int = 512):
        if queue_size < 1 or max_batch < 1:
            raise ValueError("queue_size and max_batch must be >= 1")
        self.path = Path(path)
        self.synchronous = synchronous
        self.on_commit = on_commit
        self.max_batch = max_batch
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.batches = 0
        self.jobs = 0
        self.last_batch_size = 0
        self.last_commit_s: float | None = None
        self.last_error: str | None = None
        self._db: sqlite_utils.Database | None = None
        self._next_ids: dict[str, int] = {}
        self._os_thread = DedicatedThread("sqlite-writer")
        self._consumer: threading.Thread | None = None
        self._accepting = False
        # Row ids are handed out from counters in memory (see Transaction.allocate), which is
        # only safe while no other process writes: a second server on the same database
        # (while the first lives) would insert duplicate ids.  The first writer holds this
        # lock; another refuses writes (503) and takes over once the holder has exited.
        self._owner = SchedulerLock(self.path.with_name(self.path.name + ".writer.lock"))
        self._reload_ids = False
        #: Told of every batch of stored points inside its transaction
        #: (``points_stored(tx, points)``) and of every rolled-back job (``rollback()``), so
        #: state derived from points (server/alerts) commits with them.
        self.observers: list = []

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> "Writer":
        """Open the write connection (on the writer's own OS thread) and start consuming."""
        if self._consumer is not None:
            raise WriterError("writer already started")
        if not self._owner.acquire():  # before the counters are read
            log.warning("writer: another server (pid %s) writes to %s; this one refuses writes "
                        "until it stops", self._owner.holder(), self.path)
        self._os_thread.run(self._open)
        self._accepting = True
        self._consumer = threading.Thread(target=self._consume, name="sqlite-writer", daemon=True)
        self._consumer.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread and close the connection."""
        if self._consumer is None:
            return
        self._accepting = False
        self.queue.put(_STOP)
        self._consumer.join(timeout)
        if self._consumer.is_alive():
            log.error("writer did not stop within %s s", timeout)
        else:
            self._os_thread.run(self._close)
            self._os_thread.close()
        self._consumer = None
        self._owner.release()

    def stats(self) -> dict:
        """Commits so far, jobs they held, what waits now, and the last commit's duration."""
        return {"batches": self.batches, "jobs": self.jobs, "queued": self.queue.qsize(),
                "last_batch_size": self.last_batch_size,
                "last_commit_ms": None if self.last_commit_s is None else round(self.last_commit_s * 1000, 3),
                "synchronous": self.synchronous, "last_error": self.last_error}

    @property
    def owns_database(self) -> bool:
        """This process is the database's writer (or has just become it)."""
        if self._owner.held:
            return True
        if not self._owner.acquire():
            return False
        log.info("writer: now the only writer of %s", self.path)
        self._reload_ids = True  # the previous holder wrote rows since our counters were read
        return True

    @property
    def alive(self) -> bool:
        return self._consumer is not None and self._consumer.is_alive() and self._accepting

    def _open(self) -> None:
        self._db = open_writer(self.path, self.synchronous)
        self._load_next_ids()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _load_next_ids(self) -> None:
        self._next_ids = {table: next_row_id(self._db.conn, table)
                          for table in ("points", "anomalies", "events")}

    # -- submitting -------------------------------------------------------------------------
    def submit(self, job: WriteJob, timeout: float | None = 0) -> WriteJob:
        """Queue ``job``; wait at most ``timeout`` seconds for room (0: not at all)."""
        if not self._accepting:
            raise WriterStopped("the database writer is not running")
        if not self.owns_database:
            raise WriterUnavailable(f"another server (pid {self._owner.holder()}) writes to this "
                                    "database; this one takes no writes until it stops")
        try:
            if timeout == 0:
                self.queue.put_nowait(job)
            else:
                self.queue.put(job, timeout=timeout)
        except queue.Full:
            raise WriterBusy(f"write queue full ({self.queue.maxsize} jobs waiting)") from None
        return job

    def write(self, job: WriteJob, timeout: float = 10.0) -> Any:
        """Queue ``job`` and wait for its commit; return its result."""
        return self.submit(job, timeout=timeout).wait(timeout)

    # -- the writer thread ------------------------------------------------------------------
    def _consume(self) -> None:
        stopping = False
        while not stopping:
            job = self.queue.get()
            if job is _STOP:
                stopping = True
                batch = []
            else:
                batch = [job]
            # After the stop marker, still commit what callers already queued.
            while len(batch) < self.max_batch:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    continue
                batch.append(more)
            if batch:
                self._run_batch(batch)

    def _run_batch(self, batch: list[WriteJob]) -> None:
        started = time.perf_counter()
        try:
            events = self._os_thread.run(self._commit, batch)
        except Exception as exc:  # the COMMIT itself failed: nothing in the batch is stored
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("writer: batch of %d job(s) failed to commit", len(batch))
            for job in batch:
                job.result, job.events = None, []
                if job.error is None:
                    job.error = WriterError(f"database write failed: {exc}")
                job.done.set()
            return
        self.batches += 1
        self.jobs += len(batch)
        self.last_batch_size = len(batch)
        self.last_commit_s = time.perf_counter() - started
        self.last_error = None
        for job in batch:
            if job.error is None:
                continue
            if is_client_error(job.error):  # answered 4xx to its caller: no fault of the server
                log.debug("writer: %s refused and rolled back: %s", type(job).__name__, job.error)
            else:
                log.warning("writer: %s failed and was rolled back: %s", type(job).__name__, job.error,
                            exc_info=job.error)
        if events and self.on_commit is not None:
            try:
                self.on_commit(events)
            except Exception:
                log.exception("writer: publishing committed events failed")
        for job in batch:
            job.done.set()

    def _commit(self, batch: list[WriteJob]) -> list:
        """Apply ``batch`` in one transaction (runs on the writer's OS thread)."""
        db = self._db
        if self._reload_ids:
            self._reload_ids = False
            self._load_next_ids()
        tx = Transaction(db, self._next_ids, time.time(), self.observers)
        events: list = []
        try:
            with db.atomic():
                for job in batch:
                    saved_ids = dict(self._next_ids)
                    try:
                        with db.atomic():
                            job.result = job.apply(tx)
                    except Exception as exc:
                        self._next_ids.update(saved_ids)
                        job.error, job.result, job.events = exc, None, []
                        self._rolled_back()
                    else:
                        events.extend(job.events)
        except BaseException:
            self._load_next_ids()
            self._rolled_back()
            raise
        return events

    def _rolled_back(self) -> None:
        for observer in self.observers:
            try:
                observer.rollback()
            except Exception:
                log.exception("writer: an observer failed to roll back")
