"""Where each resumable source stands, kept in the database so that a restart continues it.

A source that can resume offers ``position()`` (plain JSON data) and ``resume(position, last)``.
The supervisor saves the position after each batch it stored -- after, not before, so a
crash between the two leaves a position older than the stored events, never newer -- and at
start the source gets it back with the newest stored time of its own events
(:meth:`SourcePositions.last_stored`), which covers the batches stored after the position
was saved.  The built-in EV feed uses it so that a restart neither repeats its sessions (the
same session ids again, and every charger "in use" by the sessions' earlier copies) nor jumps
back in simulated time; a broker consumer will keep its offsets here the same way.

Positions live in ``meta`` under ``source.<name>.position``.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable

from ..writer import Transaction, WriteJob

__all__ = ["SavePositionJob", "SourcePositions"]

log = logging.getLogger(__name__)


def _key(name: str) -> str:
    return f"source.{name}.position"


class SavePositionJob(WriteJob):
    """Record one source's position (replacing the one before)."""

    def __init__(self, name: str, position: dict):
        super().__init__()
        self.key = _key(name)
        self.value = json.dumps(position, allow_nan=False)

    def apply(self, tx: Transaction) -> None:
        tx.db.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value", [self.key, self.value])


class SourcePositions:
    """Saves positions through the writer and reads them (and the sources' last stored events) back.

    Parameters
    ----------
    writer : server.writer.Writer
    open_reader : callable
        Returns a fresh read-only :class:`server.storage.Reader` (closed after use).
    timeout : float
        Seconds a save waits for its commit.
    """

    def __init__(self, writer, open_reader: Callable[[], Any], timeout: float):
        self.writer = writer
        self.open_reader = open_reader
        self.timeout = timeout

    def save(self, name: str, position: dict) -> None:
        self.writer.write(SavePositionJob(name, position), self.timeout)

    def load(self, name: str) -> dict | None:
        """The saved position, or None (never saved, or unreadable: logged)."""
        row = self._one("SELECT value FROM meta WHERE key = ?", [_key(name)])
        if row is None:
            return None
        try:
            position = json.loads(row[0])
        except ValueError:
            log.error("source %s: its saved position is not JSON; starting afresh", name)
            return None
        return position if isinstance(position, dict) else None

    def last_stored(self, origin: str) -> float | None:
        """The event time of the newest stored event of ``origin`` (the events that retention kept)."""
        row = self._one("SELECT timestamp FROM scored_events WHERE origin = ? ORDER BY id DESC LIMIT 1",
                        [origin])
        return None if row is None else float(row[0])

    def _one(self, sql: str, params: list) -> tuple | None:
        reader = self.open_reader()
        try:
            return reader.conn.execute(sql, params).fetchone()
        finally:
            reader.close()
