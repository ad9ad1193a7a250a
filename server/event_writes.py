"""Write jobs for scored events and the actions on them (run by the single writer thread).

:class:`ScoredEventsJob` stores whole batches.  On the caller's thread it
builds every event's row column-wise (orjson encodes each event's fields, less
those stored as columns; only the anomalous events go through the typed event),
so the writer thread only binds the rows and inserts them in one
``executemany`` (then sets the few anomalies' own columns).  It also
records one push event per batch (type ``events``: counts and the riskiest
anomalies), which :func:`events_push` rebuilds for a resuming client.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import TYPE_CHECKING, Iterable

import numpy as np
import orjson

from .event_amendments import amend_earlier
from .event_storage import ENTITY_COLUMNS, EVENTS_WITH_ACKNOWLEDGEMENTS, column_fields
from .events import Event, dumps
from .pipeline.event import ScoredEvent, sqlite_columns, to_json, to_row
from .row_ids import keep_next_row_id, next_row_id
from .writer import Transaction, WriteJob

if TYPE_CHECKING:  # it imports pandas (and scipy): the server's start loads this module without them
    from .pipeline.scoring import ScoredBatch

__all__ = ["AcknowledgeJob", "DeleteImportJob", "EventPruneJob", "FlagJob", "ImportFinishedJob", "ScoredEventsJob",
           "event_batch_push", "events_push", "undo_unfinished_imports", "unfinished_imports", "PUSHED_ANOMALIES"]

log = logging.getLogger(__name__)

#: The riskiest anomalies of a batch carried in its push event (the rest are a GET away).
PUSHED_ANOMALIES = 20
#: ``meta`` keys of the imports whose batches are being stored: ``import:<origin>``, set in the
#: transaction of an import's first batch and removed by :class:`ImportFinishedJob` (or with its
#: rows by :class:`DeleteImportJob`); one found at start-up was cut short by a crash or a kill,
#: and its rows are removed (:func:`undo_unfinished_imports`), so a file lands whole or not at all.
IMPORT_KEY = "import:"
#: Bound per event, in this order, then its entity ids (``entity_1``...); what a batch shares
#: (``schema``, ``origin``, ``received_at``: the commit's time) is part of the statement, and
#: ``entities`` is left NULL (a read rebuilds it from the entity ids: event_storage).  No value
#: bound is None: Python's sqlite3 binds None through its adapter lookup (attribute look-ups
#: that fail), which made the five NULLs of an ordinary event a third of the writer's
#: instructions per row.  So ``truth`` is bound as text, '' for none (stored NULL by nullif),
#: and the anomaly columns below are literals.
_PER_EVENT = ("event_id", "timestamp", "fields", "risk", "flagged", "truth")
#: NULL (the typed event's defaults) and ``is_anomaly`` 0 for every event as it is inserted; an
#: anomaly's (a few in a thousand) are then set by one UPDATE each.
_ANOMALY_COLUMNS = ("severity", "types", "explanation", "signals")
if {*_PER_EVENT, *_ANOMALY_COLUMNS, "schema", "entities", "is_anomaly"} != set(sqlite_columns(ScoredEvent)):
    raise RuntimeError("every column of a scored event must be written by ScoredEventsJob")
_UPDATE_ANOMALY = (f"UPDATE scored_events SET is_anomaly = 1, {', '.join(f'{c} = ?' for c in _ANOMALY_COLUMNS)} "
                   f"WHERE id = ?")


def _json_objects(columns: dict[str, np.ndarray]) -> list[str]:
    """Row ``i`` of ``columns`` as one JSON object per row, keys in the columns' order.

    orjson writes each float's shortest exact form (pandas' encoder, used before, wrote
    15 decimals: some values lost digits, others grew to 17 of them) and NaN as null.  Each
    column is encoded whole (:func:`_json_values`), then a row's texts are put into one
    template: a dict and an orjson call per row were most of the cost of building a row.
    """
    keys = list(columns)
    # "%" is the template's own marker: a key's is doubled, and its value goes in as %s.
    template = "{" + ",".join(orjson.dumps(k).decode().replace("%", "%%") + ":%s" for k in keys) + "}"
    return [template % row for row in zip(*(_json_values(c) for c in columns.values()))]


def _json_values(column) -> list[str]:
    """Each value of ``column`` as JSON text, as orjson writes it inside an object.

    Numbers and booleans hold no comma, so a numeric column is one orjson call on the whole
    list, split at its commas; text (which may hold commas) is encoded value by value.
    """
    values = np.asarray(column)
    listed = values.tolist()
    if not listed:
        return []
    if values.dtype.kind in "biuf":
        return orjson.dumps(listed).decode()[1:-1].split(",")
    dumps = orjson.dumps
    return [dumps(v, default=str).decode() for v in listed]


def _strings(values) -> list:
    """A column of ids as Python str (what a CSV gives already; a live source may give numbers)."""
    import pandas as pd

    values = np.asarray(values, dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # one C scan, no copy
        return values.tolist()
    return values.astype(str).tolist()


def _insert_sql(schema: str, origin: str, entity_count: int, received_at: float,
                row_id: bool = False) -> str:
    """The INSERT of one event: :data:`_PER_EVENT` and the entity ids bound as ``?1, ?2, ...``,
    the batch's schema, origin and commit time as literals (a float's repr is exact), so a row is
    a plain tuple built on the caller's thread and the writer thread binds it as it is.  With
    ``row_id`` the row's id is bound too, after the rest.
    """
    columns = (*_PER_EVENT, *ENTITY_COLUMNS[:entity_count], "schema", "origin", "received_at",
               "is_anomaly", *_ANOMALY_COLUMNS)
    params = [f"?{i + 1}" for i in range(len(_PER_EVENT) + entity_count)]
    truth = _PER_EVENT.index("truth")
    params[truth] = f"nullif({params[truth]}, '')"
    values = (f"{', '.join(params)}, {_sql_text(schema)}, {_sql_text(origin)}, {float(received_at)!r}, "
              f"0{', NULL' * len(_ANOMALY_COLUMNS)}")
    if row_id:
        columns, values = ("id", *columns), f"?{len(params) + 1}, {values}"
    return f"INSERT INTO scored_events ({', '.join(columns)}) VALUES ({values})"


def _sql_text(text: str) -> str:
    """``text`` as an SQL string literal (a schema's name, an origin the server made)."""
    if "\x00" in text:
        raise ValueError(f"no NUL character can be part of an SQL literal: {text!r}")
    return "'" + text.replace("'", "''") + "'"


class ScoredEventsJob(WriteJob):
    """Store a scored batch; the result is ``(first row id, anomaly JSON objects)``."""

    def __init__(self, batch: ScoredBatch, origin: str, whole: bool = False):
        super().__init__()
        self.batch = batch
        self.origin = origin
        #: A batch of an import stored whole or not at all: its origin is marked in progress.
        self.whole = whole
        # Encoded here, on the caller's thread, so the writer thread only binds and inserts.
        self.rows = self._rows()

    def _rows(self) -> list[tuple]:
        """One tuple per event: its :data:`_PER_EVENT` values, then its entity ids."""
        batch, schema = self.batch, self.batch.schema
        n = len(batch)
        # The id, entity ids and timestamp have columns of their own: the fields JSON leaves
        # them out (142 B less per event) and a read puts them back (event_storage).
        left_out = {*column_fields(schema), schema.truth}
        own = {k: v for k, v in batch.features.items() if k not in left_out}
        truth = batch.features[schema.truth].tolist() if schema.truth else [None] * n
        columns = {
            "event_id": _strings(batch.features[schema.id]),
            "timestamp": np.asarray(batch.features[schema.timestamp], dtype=float).tolist(),
            "fields": _json_objects(own),
            "risk": batch.risk.astype(int).tolist(),
            "flagged": batch.flagged.astype(int).tolist(),
            "truth": [t or "" for t in truth],
        }
        # Anomalies carry types, signals and explanations: those few go through the typed event.
        #: (row in the batch, the anomaly's JSON object) per anomalous event.
        self.anomalies: list[tuple[int, dict]] = []
        #: (its :data:`_ANOMALY_COLUMNS`, row in the batch) per anomalous event.
        self.anomaly_rows: list[tuple] = []
        for i, event in zip(batch.anomaly_indices().tolist(), batch.anomalies()):
            event = dataclasses.replace(event, flagged=bool(batch.flagged[i]))
            # Only its anomaly columns: the fields and entities are stored otherwise.
            stored = to_row(event, _ANOMALY_COLUMNS)
            self.anomaly_rows.append((*(stored[c] for c in _ANOMALY_COLUMNS), i))
            self.anomalies.append((i, to_json(event)))
        ids = [_strings(batch.features[e]) for e in schema.entities]
        return list(zip(*(columns[c] for c in _PER_EVENT), *ids))

    def apply(self, tx: Transaction):
        n = len(self.rows)
        conn = tx.db.conn
        if self.whole:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, 'in progress') ON CONFLICT (key) DO NOTHING",
                         [IMPORT_KEY + self.origin])
        # Only this thread inserts, inside this transaction: the first row takes the next id
        # explicitly (past any deleted ones), and SQLite gives the others first + 1, ...
        # (max(rowid) + 1 each), checked below.
        first = next_row_id(conn, "scored_events")
        statement = (self.batch.schema.name, self.origin, len(self.batch.schema.entities), tx.now)
        if n:
            conn.execute(_insert_sql(*statement, row_id=True), (*self.rows[0], first))
            conn.executemany(_insert_sql(*statement), itertools.islice(self.rows, 1, None))
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        if n and last != first + n - 1:
            raise RuntimeError(f"scored events got row ids up to {last}, expected {first + n - 1}")
        conn.executemany(_UPDATE_ANOMALY, [(*values, first + i) for *values, i in self.anomaly_rows])
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
    rows = conn.execute(EVENTS_WITH_ACKNOWLEDGEMENTS + "WHERE e.id BETWEEN ? AND ? AND e.is_anomaly = 1 ORDER BY e.id",
                        [first, last]).fetchall()
    amended = conn.execute(EVENTS_WITH_ACKNOWLEDGEMENTS + "WHERE e.amended_by = ? ORDER BY e.id", [row["id"]]).fetchall()
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
        keep_next_row_id(tx.db.conn, "scored_events")
        tx.db.conn.execute("DELETE FROM meta WHERE key = ?", [IMPORT_KEY + self.origin])
        return tx.db.conn.execute("DELETE FROM scored_events WHERE origin = ?", [self.origin]).rowcount


class ImportFinishedJob(WriteJob):
    """Every batch of an import is stored: it is no longer in progress (see :data:`IMPORT_KEY`)."""

    def __init__(self, origin: str):
        super().__init__()
        self.origin = origin

    def apply(self, tx: Transaction) -> None:
        tx.db.conn.execute("DELETE FROM meta WHERE key = ?", [IMPORT_KEY + self.origin])


def unfinished_imports(conn) -> list[str]:
    """The origins of imports marked in progress (at start-up: cut short by the last stop)."""
    rows = conn.execute("SELECT substr(key, ?) FROM meta WHERE key >= ? AND key < ? ORDER BY key",
                        [len(IMPORT_KEY) + 1, IMPORT_KEY, IMPORT_KEY[:-1] + chr(ord(IMPORT_KEY[-1]) + 1)]).fetchall()
    return [r[0] for r in rows]


def undo_unfinished_imports(writer, conn, timeout: float) -> int:
    """At start-up, before stored events are replayed to the scorers: remove the rows of every
    import a crash or kill cut short (the client was never told it landed); returns the rows."""
    removed = 0
    for origin in unfinished_imports(conn):
        count = writer.write(DeleteImportJob(origin), timeout)
        log.warning("import %s was cut short by the last stop; removed its %d stored events", origin, count)
        removed += count
    return removed


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
        keep_next_row_id(conn, "scored_events")
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

