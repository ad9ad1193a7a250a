"""The staging process: binds a batch's event rows into a scratch SQLite file, off the server's GIL.

Started by :mod:`server.event_staging` as ``python event_staging_child.py SCRATCH_DIR`` (by its
path, not ``-m``: it imports the standard library only, so it starts in tens of milliseconds and
never loads the server's package).  Its own interpreter binds the rows, so the server's writer
thread no longer gives up and takes back the server's GIL for every row it inserts: the writer
ATTACHes the batch's file and copies it into ``scored_events`` with one ``INSERT ... SELECT``,
inside the same transaction as the batch's push event, amendments and alerts.

A scratch file holds no record: one per batch, written without a journal and never fsynced
(the writer's transaction makes the rows durable), deleted by the server once copied, and the
whole folder when this process ends.  A file per batch, rather than one shared table, costs no
DELETE and no WAL checkpoint per batch (measured: they doubled this process's CPU per row).

Protocol (one line each way per message; the server is the only writer of stdin):

- ``stage N FORM``: load the tables in ``SCRATCH_DIR/N.rows`` (a dict of table name to rows,
  each a list of tuples of 1 to :data:`COLUMNS` values, written by ``FORM``: ``marshal`` or
  ``pickle``), delete that file, insert each table's rows into that table of the new file
  ``SCRATCH_DIR/N.db`` (row ids 1, 2, ...; a table without rows is not created) and answer
  ``staged N`` or ``failed N REASON``.
- End of input (the server closed the pipe or died), or the server's process gone: remove
  ``SCRATCH_DIR`` and exit.
"""
from __future__ import annotations

import marshal
import os
import pickle
import select
import shutil
import sqlite3
import sys
from pathlib import Path

#: Values per staged row, at most: a scored event's six per-event values and three entity ids.
COLUMNS = 9
#: Seconds between looks at whether the server that started this process still runs: its end
#: normally closes the pipe, but a process it forked meanwhile could hold the pipe open.
PARENT_CHECK_S = 1.0


def stage(path: Path, tables: dict) -> None:
    """Write each table's rows into the new database ``path`` (untyped columns ``v1...``, so values
    keep their type), in one transaction, without a journal or fsync."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        for name, rows in tables.items():
            if not (name.isidentifier() and name.isascii()):
                raise ValueError(f"not a table name: {name!r}")
            if not rows:
                continue
            width = len(rows[0])
            if not 0 < width <= COLUMNS or any(len(row) != width for row in rows):
                raise ValueError(f"staged rows have 1 to {COLUMNS} values, all as many as the first ({width})")
            conn.execute(f"CREATE TABLE {name} ({', '.join(f'v{i}' for i in range(1, width + 1))})")
            conn.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * width)})", rows)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _lines(fd: int, parent: int):
    """The lines read from ``fd`` until its end or the parent's exit."""
    pending = b""
    while True:
        ready, _, _ = select.select([fd], [], [], PARENT_CHECK_S)
        if not ready:
            if os.getppid() != parent:
                return
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode()


def serve(scratch: Path, parent: int, commands: int = 0, answers: int = 1) -> None:
    def answer(text: str) -> None:
        os.write(answers, (text.replace("\n", " ") + "\n").encode())

    answer("ready")
    for line in _lines(commands, parent):
        word, _, rest = line.partition(" ")
        if word != "stage":
            continue
        number, _, form = rest.partition(" ")
        source, target = scratch / f"{int(number)}.rows", scratch / f"{int(number)}.db"
        try:
            # loads of the bytes: marshal.load reads a file object in small pieces (6 µs per row).
            tables = (marshal if form == "marshal" else pickle).loads(source.read_bytes())
            source.unlink()
            stage(target, tables)
        except Exception as exc:  # told to the server, which fails the batch's write
            target.unlink(missing_ok=True)
            answer(f"failed {number} {type(exc).__name__}: {exc}")
        else:
            answer(f"staged {number}")


def main(argv: list[str]) -> int:
    scratch = Path(argv[1])
    parent = os.getppid()
    try:
        serve(scratch, parent)
    except BrokenPipeError:  # the server is gone
        pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
