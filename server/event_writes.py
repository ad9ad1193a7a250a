"""Write jobs for scored events and the actions on them (run by the single writer thread).

:class:`ScoredEventsJob` stores whole batches.  On the caller's thread it
builds every event's row column-wise (pandas encodes the fields of all events
as JSON in one call; only the anomalous events go through the typed event),
so the writer thread only binds the rows and inserts them in one
``executemany`` (SQLite encodes the ``entities`` object itself).  It also
records one push event per batch (type ``events``: counts and the riskiest
anomalies), which :func:`events_push` rebuilds for a resuming client.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Iterable

import numpy as np

from .event_amendments import amend_earlier
from .event_storage import ENTITY_COLUMNS
from .events import Event, dumps
from .pipeline.event import ScoredEvent, sqlite_columns, to_json, to_row
from .writer import Transaction, WriteJob

if TYPE_CHECKING:  # both import pandas (and scipy): the server's start loads this module without them
    import pandas as pd

    from .pipeline.scoring import ScoredBatch

__all__ = ["AcknowledgeJob", "DeleteImportJob", "EventPruneJob", "FlagJob", "ScoredEventsJob", "event_batch_push", "events_push", "PUSHED_ANOMALIES"]

#: The riskiest anomalies of a batch carried in its push event (the rest are a GET away).
PUSHED_ANOMALIES = 20
_DATA_COLUMNS = tuple(sqlite_columns(ScoredEvent))
#: Bound per event, in this order, then its entity ids; ``entities`` is built by SQLite from the
#: ids, and ``received_at`` (the commit's time) is part of the statement.
_PER_EVENT = (*(c for c in _DATA_COLUMNS if c != "entities"), "origin")


def _json_lines(frame: pd.DataFrame) -> list[str]:
    """Each row of ``frame`` as a JSON object, encoded by pandas' C encoder in one call."""
    if frame.empty:
        return []
    text = frame.to_json(orient="records", double_precision=15)
    # Split the array between objects with two C-speed passes (pandas' own lines=True does
    # this in slow Python).  The encoder escapes control characters, so a raw newline can only
    # be one put here; a value holding "},{" would mis-split, which the count shows: then take
    # the slow way.
    parts = text[1:-1].replace("},{", "}\n{").split("\n")
    if len(parts) == len(frame):
        return parts
    return frame.to_json(orient="records", lines=True, double_precision=15).splitlines()


def _strings(values) -> list:
    """A column of ids as Python str (what a CSV gives already; a live source may give numbers)."""
    import pandas as pd

    values = np.asarray(values, dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # one C scan, no copy
        return values.tolist()
    return values.astype(str).tolist()


def _insert_sql(entity_keys: tuple[str, ...], received_at: float) -> str:
    """The INSERT of one event: :data:`_PER_EVENT` and the entity ids as ``?1, ?2, ...``;
    ``entities`` is ``json_object`` over the same ids (encoded in C, bound once), and
    ``received_at`` a literal (a float's repr is exact), so a row is a plain tuple
    built on the caller's thread and the writer thread binds it as it is.
    """
    ids = [f"?{len(_PER_EVENT) + 1 + j}" for j in range(len(entity_keys))]
    entities = ", ".join(f"{_sql_text(k)}, {p}" for k, p in zip(entity_keys, ids))
    columns = (*_PER_EVENT, *ENTITY_COLUMNS[:len(entity_keys)], "entities", "received_at")
    params = [f"?{i + 1}" for i in range(len(_PER_EVENT))] + ids
    return (f"INSERT INTO scored_events ({', '.join(columns)}) "
            f"VALUES ({', '.join(params)}, json_object({entities}), {float(received_at)!r})")


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class ScoredEventsJob(WriteJob):
    """Store a scored batch; the result is ``(first row id, anomaly JSON objects)``."""

    def __init__(self, batch: ScoredBatch, origin: str):
        super().__init__()
        self.batch = batch
        self.origin = origin
        # Encoded here, on the caller's thread, so the writer thread only binds and inserts.
        self.rows = self._rows()

    def _rows(self) -> list[tuple]:
        """One tuple per event: its :data:`_PER_EVENT` values, then its entity ids."""
        import pandas as pd

        batch, schema = self.batch, self.batch.schema
        n = len(batch)
        features = pd.DataFrame({k: v for k, v in batch.features.items() if k != schema.truth})
        truth = batch.features[schema.truth].tolist() if schema.truth else [None] * n
        columns = {
            "schema": [schema.name] * n,
            "event_id": _strings(batch.features[schema.id]),
            "timestamp": np.asarray(batch.features[schema.timestamp], dtype=float).tolist(),
            "fields": _json_lines(features),
            "risk": batch.risk.astype(int).tolist(),
            # NULL: the field's default (ScoredEvent), not written for every ordinary event.
            "severity": [None] * n, "is_anomaly": [0] * n, "types": [None] * n,
            "explanation": [None] * n, "signals": [None] * n,
            "flagged": batch.flagged.astype(int).tolist(),
            "truth": [t or None for t in truth],
            "origin": [self.origin] * n,
        }
        # Anomalies carry types, signals and explanations: those few go through the typed event.
        #: (row in the batch, the anomaly's JSON object) per anomalous event.
        self.anomalies: list[tuple[int, dict]] = []
        for i, event in zip(batch.anomaly_indices().tolist(), batch.anomalies()):
            event = dataclasses.replace(event, flagged=bool(batch.flagged[i]))
            stored = to_row(event)
            for c in _PER_EVENT:
                if c in stored:
                    columns[c][i] = stored[c]
            self.anomalies.append((i, to_json(event)))
        ids = [_strings(batch.features[e]) for e in schema.entities]
        return list(zip(*(columns[c] for c in _PER_EVENT), *ids))

    def apply(self, tx: Transaction):
        n = len(self.rows)
        conn = tx.db.conn
        # Row ids from the table itself: only this thread inserts, inside this transaction, so
        # SQLite gives the rows first, first + 1, ... (max(rowid) + 1 each), checked below.
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM scored_events").fetchone()[0]
        conn.executemany(_insert_sql(tuple(self.batch.schema.entities), tx.now), self.rows)
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        if n and last != first + n - 1:
            raise RuntimeError(f"scored events got row ids up to {last}, expected {first + n - 1}")
        anomalies = [{"id": first + i, **event, "origin": self.origin, "received_at": tx.now,
                      "acknowledged": None} for i, event in self.anomalies]
        event_id = tx.allocate("events", 1)
        tx.db.conn.execute(
            "INSERT INTO events (id, type, created_ms, tick, first_point_id, last_point_id, anomaly_id) "
            "VALUES (?, 'events', ?, NULL, ?, ?, NULL)", [event_id, int(tx.now * 1000), first, first + n - 1])
        # Events of earlier batches that this one's evidence flags (server/event_amendments.py).
        self.amended = amend_earlier(tx, self.batch, event_id) if self.batch.earlier else []
        self.events = [events_push(event_id, self.batch.schema.name, self.origin, n, anomalies,
                                   [a.stored for a in self.amended])]
        # Alerts per (schema, entity, type), committed with these events (server/alerts/).
        self.events += tx.tell_observers("events_stored", self.batch.schema,
                                         anomalies + [a.for_alerts() for a in self.amended], what="stored events")
        return first, anomalies


def events_push(event_id: int, schema: str, origin: str, count: int, anomalies: list[dict],
                amended: list[dict] = (), published_ms: int | None = None) -> Event:
    """The push event of one stored batch: counts, types and its riskiest anomalies, and the events
    of earlier batches it amended (server/event_amendments.py), as they now stand."""
    types: dict[str, int] = {}
    for a in anomalies:
        for t in a["types"]:
            types[t] = types.get(t, 0) + 1
    riskiest = sorted(anomalies, key=lambda a: -a["risk"])[:PUSHED_ANOMALIES]
    head = (f'"type":"events","id":{event_id},"schema":{dumps(schema)},"origin":{dumps(origin)},'
            f'"count":{count},"anomaly_count":{len(anomalies)},"types":{dumps(types)},'
            f'"anomalies":{dumps(riskiest)},"amended":{dumps(list(amended)[:PUSHED_ANOMALIES])}')
    return Event(event_id, "events", head, published_ms=published_ms)


def event_batch_push(reader, row) -> Event | None:
    """Rebuild a stored ``events`` push event (a resuming client) from its rows of scored events;
    None when retention or an undone import removed them."""
    from .event_storage import event_from_row

    conn = reader.conn
    first, last = row["first_point_id"], row["last_point_id"]
    head = conn.execute("SELECT schema, origin, count(*) FROM scored_events WHERE id BETWEEN ? AND ?",
                        [first, last]).fetchone()
    if head is None or not head[2]:
        return None
    joined = ("SELECT e.*, a.acknowledged_by, a.acknowledged_at, a.note FROM scored_events e "
              "LEFT JOIN acknowledgements a ON a.event_row = e.id ")
    rows = conn.execute(joined + "WHERE e.id BETWEEN ? AND ? AND e.is_anomaly = 1 ORDER BY e.id",
                        [first, last]).fetchall()
    amended = conn.execute(joined + "WHERE e.amended_by = ? ORDER BY e.id", [row["id"]]).fetchall()
    return events_push(row["id"], head[0], head[1], head[2], [event_from_row(r) for r in rows],
                       [event_from_row(r) for r in amended], published_ms=row["created_ms"])


class DeleteImportJob(WriteJob):
    """Remove the events an import stored before it failed, so a file lands whole or not at all."""

    def __init__(self, origin: str):
        super().__init__()
        self.origin = origin

    def apply(self, tx: Transaction) -> int:
        # Its alerts end, while its rows are still here to say which it opened.
        self.events = tx.tell_observers("import_undone", self.origin, what="an undone import")
        return tx.db.conn.execute("DELETE FROM scored_events WHERE origin = ?", [self.origin]).rowcount


class EventPruneJob(WriteJob):
    """Retention of scored events: keep the newest ``keep`` rows and none older than ``max_age_s``
    seconds (0: no age limit), with their acknowledgements.  The result is the rows deleted."""

    def __init__(self, keep: int, max_age_s: float, now: float | None = None):
        super().__init__()
        if keep < 1 or max_age_s < 0:
            raise ValueError("keep must be >= 1 and max_age_s >= 0")
        self.keep, self.max_age_s, self.now = keep, max_age_s, now

    def apply(self, tx: Transaction) -> int:
        conn = tx.db.conn
        row = conn.execute("SELECT id FROM scored_events ORDER BY id DESC LIMIT 1 OFFSET ?",
                           [self.keep - 1]).fetchone()
        cutoff = row[0] if row else 0
        if self.max_age_s > 0:
            now = self.now if self.now is not None else tx.now
            aged = conn.execute("SELECT max(id) FROM scored_events WHERE received_at < ?",
                                [now - self.max_age_s]).fetchone()[0]
            cutoff = max(cutoff, (aged or 0) + 1)
        conn.execute("DELETE FROM acknowledgements WHERE event_row < ?", [cutoff])
        return conn.execute("DELETE FROM scored_events WHERE id < ?", [cutoff]).rowcount


class FlagJob(WriteJob):
    """Flag an entity (or clear its flag); the result is the stored flag (None once cleared)."""

    def __init__(self, schema: str, entity: str, entity_id: str, by: str, note: str, clear: bool = False):
        super().__init__()
        self.key = {"schema": schema, "entity": entity, "entity_id": entity_id}
        self.by, self.note, self.clear = by, note, clear

    def apply(self, tx: Transaction):
        if self.clear:
            tx.db.conn.execute("DELETE FROM entity_flags WHERE schema = ? AND entity = ? AND entity_id = ?",
                               list(self.key.values()))
            return None
        row = {**self.key, "flagged_by": self.by, "flagged_at": tx.now, "note": self.note}
        tx.db["entity_flags"].upsert(row, pk=("schema", "entity", "entity_id"))
        return row


class AcknowledgeJob(WriteJob):
    """Acknowledge an anomalous event: who, when, a note.  Raises LookupError if there is none."""

    def __init__(self, event_row: int, by: str, note: str):
        super().__init__()
        self.event_row, self.by, self.note = event_row, by, note

    def apply(self, tx: Transaction):
        found = tx.db.conn.execute("SELECT is_anomaly FROM scored_events WHERE id = ?",
                                   [self.event_row]).fetchone()
        if found is None or not found[0]:
            raise LookupError(f"no anomalous event with id {self.event_row}")
        row = {"event_row": self.event_row, "acknowledged_by": self.by, "acknowledged_at": tx.now,
               "note": self.note}
        tx.db["acknowledgements"].upsert(row, pk="event_row")
        return {"by": self.by, "at": tx.now, "note": self.note}


def flags_by_key(rows: Iterable[dict]) -> dict[str, dict[str, set]]:
    """``{schema: {entity key: {ids}}}`` from flag rows."""
    out: dict[str, dict[str, set]] = {}
    for row in rows:
        out.setdefault(row["schema"], {}).setdefault(row["entity"], set()).add(row["entity_id"])
    return out

