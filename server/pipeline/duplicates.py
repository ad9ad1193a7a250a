"""Each event stored once: a batch's events stored or queued already, or repeated in it, are dropped before scoring.

An event is known by its schema and its id (the schema's ``id`` field, stored as
``event_id``).  A file uploaded twice, a client retrying an upload whose answer it
never got, a feed sending again what it sent before a restart: the events given
again are dropped here, before the scorer sees them, so the per-entity baselines
and rules learn each event once (a duplicate would teach them a second session
of its user, and be scored against a history holding itself), and the counts,
anomalies and alerts are not inflated.  Every source goes through
:meth:`server.pipeline.ingest.Ingest.store`, so one rule holds for uploads,
replays and the EV feed.  The id is the event's identity in its schema: two
sources that number their events alike give different events one id, and the
second is dropped (the bundled generator numbers every seed's sessions from
``S00000000``, as the built-in feed does: a generated file needs ids of its own).

An event is looked for

- among those stored, by the ``event_id`` index of ``scored_events`` (migration 14;
  the design and its measurements: :func:`server.event_storage.migration_event_id_index`),
  on a read connection of its own: in WAL mode it sees what has committed
  without waiting for the writer;
- among the batches queued to the writer and not yet committed: the next batch
  is scored while the writer commits the one before (server/pipeline/ingest.py),
  so the database does not show them yet.  Their ids are held here until their
  write is done, committed (the database shows them) or failed (nothing stored).
  Two imports of one file at once store each event once, whichever queued it
  first (should that import fail and be undone, the other one has dropped those
  events: sent again, they are stored);
- earlier in its own batch: the first of an id's events wins.

Why the first wins, and a file repeating an id is not refused (400): the rule
across requests is that the event stored first stays, and a file is a log read
in order, so the same rule applies inside it (and an id repeated across two of a
file's batches, 10,000 lines apart, is the same case as two files).  A producer
that re-sends an event it is unsure went out (at-least-once delivery) writes it
twice into its export; refusing the whole file for that would make the client
drop the file or dedupe it itself.  A later repeat whose values differ is
dropped too (it is counted with the others): the stored event is not rewritten.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from .event import EventBatch

__all__ = ["FreshEvents", "StoredOnce"]


@dataclass(frozen=True)
class FreshEvents:
    """A batch's events that are new, in their order, and how many of its events were not."""

    batch: EventBatch
    #: The ids of :attr:`batch`'s events (as stored: ``server.event_writes.id_strings``).
    ids: frozenset
    #: Events dropped: stored already, queued to be, or repeating an id earlier in the batch.
    duplicates: int


class StoredOnce:
    """Drops from each batch the events already stored or queued to be (see the module's docstring).

    Not thread-safe: called for one batch at a time, as the ingest scores them (under its lock).

    Parameters
    ----------
    connect : callable
        Opens a read-only connection to the database (on first use; :meth:`close` closes it).
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]):
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        #: (schema, ids, write job) of each batch queued to the writer whose write is not done.
        self._queued: list[tuple[str, frozenset, Any]] = []

    def fresh(self, batch: EventBatch) -> FreshEvents:
        """The events of ``batch`` not stored before it; call :meth:`queued` once they are queued."""
        from ..event_writes import id_strings

        schema = batch.schema.name
        ids = pd.Series(id_strings(batch.frame[batch.schema.id]), dtype=object)
        repeated = ids.duplicated(keep="first").to_numpy()
        given_before = self._stored_or_queued(schema, ids[~repeated].tolist())
        keep = ~repeated & ~ids.isin(given_before).to_numpy()
        kept = int(keep.sum())
        if kept < len(batch):
            batch = EventBatch(batch.schema, batch.frame[keep].reset_index(drop=True), batch.first_line)
        return FreshEvents(batch, frozenset(ids[keep].tolist()), len(ids) - kept)

    def queued(self, fresh: FreshEvents, job) -> None:
        """``fresh``'s events are queued to the writer as ``job``: held as given until its write is done."""
        self._queued.append((fresh.batch.schema.name, fresh.ids, job))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _stored_or_queued(self, schema: str, ids: list[str]) -> set[str]:
        """Those of ``ids`` (no repeats) that ``schema`` has stored, or queued to be.

        The writes found done are let go of before the database is asked, never after: a batch
        that commits in between is then still held here, or already in what the database shows.
        """
        from ..event_storage import stored_event_ids

        self._queued = [q for q in self._queued if not q[2].done.is_set()]
        if self._conn is None:
            self._conn = self._connect()
        found = stored_event_ids(self._conn, schema, ids)
        for queued_schema, queued_ids, _ in self._queued:
            if queued_schema == schema:
                found.update(queued_ids.intersection(ids))
        return found
