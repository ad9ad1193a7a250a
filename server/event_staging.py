"""Large batches of event rows are bound in a child process, so the writer copies them without the GIL.

Why: Python's sqlite3 gives up the GIL and takes it back for every row it inserts, so the
writer thread waited on the scoring thread for each of 10,000 rows of a batch (measured beside a
busy thread: ~80 µs of wall per event for ~12 µs of CPU).  Here the server serialises a batch's
rows (already plain tuples; marshal) into a file, a child process (:mod:`server.event_staging_child`,
its own interpreter and GIL) inserts them into a scratch SQLite file of their own, and the writer,
just before the batch's one transaction, ATTACHes that file (as ``staged_N``) and inside it copies
the rows into ``scored_events`` with a single ``INSERT ... SELECT``: SQLite does the copy without
asking for the GIL again.

Nothing about durability or atomicity changes: a batch's rows, its push event, amendments and
alerts still commit in one transaction of the one write connection (WAL, ``synchronous=FULL``);
a scratch file is never the record (not fsynced, deleted once copied; the folder with the child).  A child that dies,
fails a batch or does not answer within ``timeout`` fails that batch's write with
:class:`StagingFailed` (its import is undone as for any failed write), is stopped, and the next
batch starts a new one.  The child ends with the server: at the end of its input (the server's
end closes the pipe) or when it sees its parent gone.

At most :data:`OUTSTANDING` batches are staged at once (SQLite attaches at most ten files to a
connection); past that a batch is inserted by the writer itself, as smaller ones are.

Threads: :meth:`Stager.stage` runs on the scoring thread, :meth:`Stager.wait` and
:meth:`Stager.attach` on the writer's, both real OS threads under gevent, so the pipes are
used with plain blocking calls (and gevent's patched ``select`` is bypassed).
"""
from __future__ import annotations

import logging
import marshal
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .writer import WriterError

__all__ = ["STAGED_ROWS_AT_LEAST", "Stager", "StagingFailed", "Ticket"]

log = logging.getLogger(__name__)

#: Batches of fewer rows are inserted by the writer itself: a round trip to the child (a
#: file of rows and two messages) costs about a millisecond, what ~100 rows cost to insert, and
#: a live source's small batches would wait on it for nothing.
STAGED_ROWS_AT_LEAST = 1000
#: Batches staged and not yet copied (or given up), at most: each is a file the writer attaches.
OUTSTANDING = 8
#: Seconds the child gets to say it is ready.
START_TIMEOUT_S = 10.0
_CHILD = Path(__file__).resolve().with_name("event_staging_child.py")
#: Scratch folders are ``<temp dir>/anomaly-staging-<server pid>-<random>``.
_SCRATCH_PREFIX = "anomaly-staging-"


class StagingFailed(WriterError):
    """The staging process could not stage a batch (it died, failed or did not answer)."""


def _original(module: str, name: str):
    """``module.name`` as it was before gevent's monkey-patching (itself without gevent)."""
    if "gevent" in sys.modules:
        from gevent.monkey import get_original

        return get_original(module, name)
    return getattr(__import__(module), name)


def _remove_stale_scratch() -> None:
    """Remove the scratch folders of servers that are gone: a child removes its own when it ends,
    unless it was killed with its server (``kill -9`` of the process group)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_SCRATCH_PREFIX}*-*"):
        pid = folder.name[len(_SCRATCH_PREFIX):].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # another user's process: alive
            pass


class _Process:
    """A child started with ``posix_spawn``, its ``commands`` pipe as stdin and ``answers`` as stdout.

    Not ``subprocess``: under gevent that module is patched, and its Popen, called from the
    scoring thread (a real OS thread, not the event loop's), failed, as did gevent's
    ``posix_spawn`` (it watches the child from the event loop); ``posix_spawn`` and ``waitpid``
    are used as they were before gevent's patching.
    """

    def __init__(self, argv: list[str], commands: int, answers: int):
        self.returncode: int | None = None
        self._gone = False
        spawn = _original("os", "posix_spawn")
        self.pid = spawn(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, commands, 0),
                                                                  (os.POSIX_SPAWN_DUP2, answers, 1)])

    def poll(self) -> int | None:
        """Its exit code (minus the signal that killed it), None while it runs or when unknown."""
        if self.returncode is None and not self._gone:
            try:
                pid, status = _original("os", "waitpid")(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else (a gevent child watcher)
                self._gone = True
                return None
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    @property
    def running(self) -> bool:
        return self.poll() is None and not self._gone

    def wait(self, timeout: float) -> int | None:
        """Its exit code once it has exited (None if unknown); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while self.running:
            if time.monotonic() > deadline:
                raise TimeoutError(f"pid {self.pid} still runs after {timeout} s")
            _original("time", "sleep")(0.005)  # a real OS thread: not gevent's sleep
        return self.returncode

    def kill(self) -> None:
        if self.running:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@dataclass(frozen=True)
class Ticket:
    """One staged batch: which child stages it, its number and row count, its scratch file."""

    child: "_Child"
    number: int
    rows: int

    @property
    def database(self) -> Path:
        return self.child.scratch / f"{self.number}.db"

    @property
    def name(self) -> str:
        """The name its file is attached under."""
        return f"staged_{self.number}"


class _Child:
    """One staging process and its two pipes."""

    def __init__(self) -> None:
        _remove_stale_scratch()
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}{os.getpid()}-"))
        commands_read, self._commands = os.pipe()
        self._answers, answers_write = os.pipe()
        try:
            self.process = _Process([sys.executable, str(_CHILD), str(self.scratch)], commands_read,
                                    answers_write)
        except BaseException:
            for fd in (commands_read, self._commands, self._answers, answers_write):
                os.close(fd)
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        os.close(commands_read)
        os.close(answers_write)
        self._pending = b""
        #: Answers read but not yet asked for, by batch number: None (staged) or why it failed.
        self._answered: dict[int, str | None] = {}
        #: Numbers of batches nobody will wait for (their write was never queued).
        self._abandoned: set[int] = set()
        self._send_lock = threading.Lock()
        #: One reader of the answers at a time; the state lock guards the two collections above.
        self._read_lock = threading.Lock()
        self._state_lock = threading.Lock()
        #: Why the child is of no more use (None while it works).
        self.failure: str | None = None
        ready = self._next_line(time.monotonic() + START_TIMEOUT_S)
        if ready != "ready":
            self._fail(f"the staging process started with {ready!r}, not 'ready'")
            raise StagingFailed(self.failure)

    def send(self, line: str) -> None:
        if self.failure is not None:
            raise StagingFailed(self.failure)
        try:
            with self._send_lock:
                os.write(self._commands, (line + "\n").encode())
        except (OSError, TypeError) as exc:  # a broken pipe (the child is gone), or it was stopped
            self._fail(f"the staging process (pid {self.process.pid}) stopped taking batches: {exc}")
            raise StagingFailed(self.failure) from None

    def answer(self, number: int, deadline: float) -> None:
        """Return once batch ``number`` is staged; raises :class:`StagingFailed`."""
        with self._read_lock:
            while True:
                with self._state_lock:
                    if number in self._answered:
                        failed = self._answered.pop(number)
                        break
                if self.failure is not None:
                    raise StagingFailed(self.failure)
                self._record(self._next_line(deadline))
        if failed is not None:
            raise StagingFailed(f"the staging process could not stage a batch: {failed}")

    def abandon(self, number: int) -> None:
        """Batch ``number`` will not be waited for: its file goes once staged (without waiting)."""
        with self._state_lock:
            if number in self._answered:
                self._answered.pop(number)
                answered = True
            else:
                self._abandoned.add(number)
                answered = False
        if answered:
            self.remove(number)

    def remove(self, number: int) -> None:
        for suffix in (".db", ".rows"):
            (self.scratch / f"{number}{suffix}").unlink(missing_ok=True)

    def _record(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        number, _, detail = rest.partition(" ")
        if word not in ("staged", "failed") or not number.isdigit():
            self._fail(f"the staging process answered {line!r}")
            return
        with self._state_lock:
            abandoned = int(number) in self._abandoned
            if abandoned:
                self._abandoned.discard(int(number))
            else:
                self._answered[int(number)] = detail if word == "failed" else None
        if abandoned:
            self.remove(int(number))

    def _next_line(self, deadline: float) -> str:
        select = _original("select", "select")
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            ready = select([self._answers], [], [], left)[0] if left > 0 else []
            if not ready:
                self._fail(f"the staging process (pid {self.process.pid}) did not answer within the write "
                           "timeout; it was stopped")
                raise StagingFailed(self.failure)
            chunk = os.read(self._answers, 65536)
            if not chunk:
                self._fail(f"the staging process (pid {self.process.pid}) exited ({self._exit_status()}) "
                           "before staging the batch")
                raise StagingFailed(self.failure)
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode()

    def _exit_status(self) -> str:
        try:
            code = self.process.wait(timeout=1.0)
        except TimeoutError:
            return "its output closed, the process still running"
        if code is None:
            return "exit status unknown"
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
            log.error("event staging: %s", reason)
        self.stop(kill=True)

    def stop(self, kill: bool = False, timeout: float = 5.0) -> None:
        """End the child: close its input (it removes its scratch folder and exits), or kill it."""
        with self._send_lock:
            fd, self._commands = self._commands, None
        if fd is not None:
            os.close(fd)
        if kill:
            self.process.kill()
        try:
            self.process.wait(timeout=timeout)
        except TimeoutError:
            self.process.kill()
            log.error("event staging: pid %s did not exit within %s s of its input's end; killed it",
                      self.process.pid, timeout)
        shutil.rmtree(self.scratch, ignore_errors=True)
        if self.failure is None:
            self.failure = "the staging process was stopped"

    def close_answers(self) -> None:
        fd, self._answers = self._answers, None
        if fd is not None:
            os.close(fd)


class Stager:
    """The server's side of the staging process: started on first use, again after a failure.

    Parameters
    ----------
    timeout : float
        Seconds :meth:`wait` waits for a batch to be staged before the batch fails.
    """

    def __init__(self, timeout: float = 30.0):
        self.timeout = timeout
        self._child: _Child | None = None
        self._lock = threading.Lock()
        self._numbers = 0
        #: Names of the batches staged and not yet released (their files stay attached till then).
        self._outstanding: set[str] = set()
        self._closed = False
        #: Batches staged and children started so far (for the benchmark and tests).
        self.staged = self.started = 0

    @property
    def pid(self) -> int | None:
        """The running child's process id, if one runs."""
        child = self._child
        return None if child is None or child.failure is not None else child.process.pid

    def stage(self, rows: list[tuple], **more: list[tuple]) -> Ticket | None:
        """Hand ``rows`` (the table ``staged``) and the ``more`` tables (by name) to the child, as
        tuples of 1 to 9 values, and return at once, before they are staged; None when
        :data:`OUTSTANDING` batches are staged already (the writer inserts it)."""
        if not rows:
            raise ValueError("nothing to stage")
        tables = {"staged": rows, **more}
        # marshal writes plain tuples of text and numbers ~4x faster than pickle (0.5 against 2 µs
        # per row, measured), on the scoring thread, which holds the GIL; the child is the same
        # interpreter (sys.executable), as marshal's format requires.  Other values: pickle.
        try:
            data, form = marshal.dumps(tables), "marshal"
        except ValueError:
            data, form = pickle.dumps(tables, protocol=pickle.HIGHEST_PROTOCOL), "pickle"
        with self._lock:
            if self._closed:
                raise StagingFailed("event staging is closed")
            if len(self._outstanding) >= OUTSTANDING:
                return None
            child = self._running_child()
            self._numbers += 1
            ticket = Ticket(child, self._numbers, len(rows))
            self._outstanding.add(ticket.name)
        # Written to a file, not the pipe: a pipe holds 64 KiB, and the child reads only between
        # batches, so the scoring thread would wait for the batch the child is inserting.
        try:
            (child.scratch / f"{ticket.number}.rows").write_bytes(data)
            child.send(f"stage {ticket.number} {form}")
        except BaseException as exc:
            self.release(ticket, waited=True)
            if isinstance(exc, OSError):
                raise StagingFailed(f"could not hand a batch to the staging process: {exc}") from None
            raise
        self.staged += 1
        return ticket

    def wait(self, ticket: Ticket, timeout: float | None = None) -> None:
        """Block until ``ticket``'s rows are in its scratch file.  Raises :class:`StagingFailed`
        (the ticket is then released)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            ticket.child.answer(ticket.number, deadline)
        except BaseException:
            self.release(ticket, waited=True)
            raise

    def attach(self, conn, ticket: Ticket) -> None:
        """Attach ``ticket``'s scratch file to ``conn`` as :attr:`Ticket.name` (outside a
        transaction: SQLite attaches and detaches only there), first detaching the files of
        released batches."""
        with self._lock:
            outstanding = set(self._outstanding)
        for row in conn.execute("PRAGMA database_list").fetchall():
            if row[1].startswith("staged_") and row[1] not in outstanding:
                conn.execute(f"DETACH DATABASE {row[1]}")
        conn.execute(f"ATTACH DATABASE ? AS {ticket.name}", [str(ticket.database)])

    def release(self, ticket: Ticket, waited: bool = False) -> None:
        """``ticket``'s rows are no longer needed (copied, or their batch failed or was never
        queued; ``waited``: its answer came, or never will); returns at once."""
        with self._lock:
            if ticket.name not in self._outstanding:
                return
            self._outstanding.discard(ticket.name)
        if ticket.child.failure is not None:
            return  # its scratch folder went with it
        if waited:
            ticket.child.remove(ticket.number)  # attached, its file lives on until detached
        else:
            ticket.child.abandon(ticket.number)

    def _running_child(self) -> _Child:
        if self._child is None or self._child.failure is not None:
            if self._child is not None:
                self._child.close_answers()
            self._child = _Child()
            self.started += 1
            log.info("event staging: process %s started", self._child.process.pid)
        return self._child

    def close(self) -> None:
        """Stop the child (after the batches it was given)."""
        with self._lock:
            self._closed = True
            child, self._child = self._child, None
        if child is not None:
            child.stop()
            child.close_answers()
