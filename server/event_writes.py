"""Write jobs for scored events and the actions on them (run by the single writer thread).

:class:`ScoredEventsJob` stores whole batches.  On the caller's thread it
builds every event's row column-wise (orjson encodes each event's fields, less
those stored as columns; only the anomalous events go through the typed event).
The writer thread binds the rows into an in-memory staging table (one
``executemany``; the few anomalies' own columns set there), does the batch's
other writes (its push event, amended earlier events, alerts), signals that it
is staged, and copies the staged rows into ``scored_events`` with one
``INSERT ... SELECT``, which runs without the GIL (see :data:`_STAGED`).  The
push event of a batch (type ``events``: counts and the riskiest anomalies) is
rebuilt by :func:`events_push` for a resuming client.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Iterable

import numpy as np
import orjson

from .event_amendments import amend_earlier
from .event_storage import ENTITY_COLUMNS, EVENTS_WITH_ACKNOWLEDGEMENTS, column_fields
from .events import Event, dumps
from .pipeline.event import ScoredEvent, sqlite_columns, to_json, to_row
from .row_ids import keep_next_row_id, next_row_id
from .validation import NotFound
from .writer import Transaction, WriteJob

if TYPE_CHECKING:  # it imports pandas (and scipy): the server's start loads this module without them
    from .pipeline.scoring import ScoredBatch

__all__ = ["AcknowledgeJob", "DeleteImportJob", "EventPruneJob", "FlagJob", "ImportFinishedJob", "ScoredEventsJob",
           "event_batch_push", "events_push", "id_strings", "undo_unfinished_imports", "unfinished_imports", "PUSHED_ANOMALIES"]

log = logging.getLogger(__name__)

#: The riskiest anomalies of a batch carried in its push event (the rest are a GET away).
PUSHED_ANOMALIES = 20
#: ``meta`` keys of the imports whose batches are being stored: ``import:<origin>``, set in the
#: transaction of an import's first batch and removed by :class:`ImportFinishedJob` (or with its
#: rows by :class:`DeleteImportJob`); one found at start-up was cut short by a crash or a kill,
#: and its rows are removed (:func:`undo_unfinished_imports`), so a file lands whole or not at all.
IMPORT_KEY = "import:"
#: Bound per event, in this order, then its entity ids (``entity_1``...); what a batch shares
#: (``schema``, ``origin``, ``received_at``: the commit's time) is part of the copy's statement, and
#: ``entities`` is left NULL (a read rebuilds it from the entity ids: event_storage).  No value
#: bound is None: Python's sqlite3 binds None through its adapter lookup (attribute look-ups
#: that fail), which made the five NULLs of an ordinary event a third of the writer's
#: instructions per row.  So ``truth`` is bound as text, '' for none (stored NULL by nullif),
#: and the anomaly columns below are left out of the statement.
_PER_EVENT = ("event_id", "timestamp", "fields", "risk", "flagged", "truth")
#: NULL (the typed event's defaults) and ``is_anomaly`` 0 for every event as it is staged; an
#: anomaly's (a few in a thousand) are then set in the staging table by one UPDATE each, so an
#: anomaly reaches ``scored_events`` whole (an UPDATE there grew its row in place).
_ANOMALY_COLUMNS = ("severity", "types", "explanation", "signals")
if {*_PER_EVENT, *_ANOMALY_COLUMNS, "schema", "entities", "is_anomaly"} != set(sqlite_columns(ScoredEvent)):
    raise RuntimeError("every column of a scored event must be written by ScoredEventsJob")


def _json_objects(columns: dict[str, np.ndarray]) -> list[str]:
    """Row ``i`` of ``columns`` as one JSON object per row, keys in the columns' order.

    orjson writes each float's shortest exact form (pandas' encoder, used before, wrote
    15 decimals: some values lost digits, others grew to 17 of them) and NaN as null.  Each
    column is encoded whole (:func:`_json_values`), then a row's texts are put into one
    template: a dict and an orjson call per row were most of the cost of building a row.
    """
    parts, values = [], []
    for key, column in columns.items():
        texts, quoted = _json_values(column)
        # "%" is the template's own marker: a key's is doubled, and its value goes in as %s.
        parts.append(orjson.dumps(key).decode().replace("%", "%%") + (':"%s"' if quoted else ":%s"))
        values.append(texts)
    return list(map(("{" + ",".join(parts) + "}").__mod__, zip(*values)))


def _json_values(column) -> tuple[list[str], bool]:
    """Each value of ``column`` as JSON text, as orjson writes it inside an object, and whether
    the texts leave out the quotes around them (a column of strings only).

    One orjson call encodes the whole column, split where one value ends: numbers and booleans
    hold no comma, and inside an encoded string every quote is escaped (a backslash before it),
    so ``","`` is found only between two strings.  A column of anything else (None among strings,
    a timestamp) is encoded value by value.
    """
    values = np.asarray(column)
    listed = values.tolist()
    if not listed:
        return [], False
    if values.dtype.kind in "biuf":
        return orjson.dumps(listed).decode()[1:-1].split(","), False
    if values.dtype.kind == "U" or _all_strings(values):
        return orjson.dumps(listed).decode()[2:-2].split('","'), True
    dumps = orjson.dumps
    return [dumps(v, default=str).decode() for v in listed], False


def _all_strings(values: np.ndarray) -> bool:
    """Whether every value of an object array is a str (one C scan, no copy)."""
    import pandas as pd

    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string"


def id_strings(values) -> list:
    """A column of ids as Python str (what a CSV gives already; a live source may give numbers), as
    they are stored, and so as an event given again is looked up (server/pipeline/duplicates.py)."""
    values = np.asarray(values, dtype=object)
    if _all_strings(values):
        return values.tolist()
    return values.astype(str).tolist()


#: The write connection's staging table (``temp``: in memory, never in the WAL): a batch's rows are
#: bound into it row by row, then copied into ``scored_events`` by one ``INSERT ... SELECT``.
#: Python's sqlite3 gives up the GIL for every row it steps and takes it back after; bound straight
#: into ``scored_events``, each row's index and page work ran between two such hand-offs, so that
#: work could not overlap the scoring of the next batch (which holds the GIL).  Copied by one
#: statement, it runs in one stretch without the GIL.  No column has a type, so a value is kept as
#: bound until the copy gives it ``scored_events``' affinity, as binding it there directly did.
_STAGED = "temp.staged_events"
_STAGED_COLUMNS = (*_PER_EVENT, *ENTITY_COLUMNS, "is_anomaly", *_ANOMALY_COLUMNS)
_CREATE_STAGED = (f"CREATE TEMP TABLE IF NOT EXISTS staged_events "
                  f"({', '.join(c if c != 'is_anomaly' else 'is_anomaly DEFAULT 0' for c in _STAGED_COLUMNS)})")
_UPDATE_STAGED_ANOMALY = (f"UPDATE {_STAGED} SET is_anomaly = 1, {', '.join(f'{c} = ?' for c in _ANOMALY_COLUMNS)} "
                          f"WHERE rowid = ?")


def _stage_sql(entity_count: int) -> str:
    """The INSERT of one event into the staging table: :data:`_PER_EVENT`, then its entity ids, bound
    as they are; ``truth`` '' is stored NULL, and the columns not named stay NULL (no None bound)."""
    columns = (*_PER_EVENT, *ENTITY_COLUMNS[:entity_count])
    params = [f"?{i + 1}" for i in range(len(columns))]
    truth = _PER_EVENT.index("truth")
    params[truth] = f"nullif({params[truth]}, '')"
    return f"INSERT INTO {_STAGED} ({', '.join(columns)}) VALUES ({', '.join(params)})"


def _copy_sql(schema: str, origin: str, received_at: float) -> str:
    """The staged rows into ``scored_events``, in staging order, row ``r`` taking the id ``?1 - 1 + r``;
    the batch's schema, origin and commit time are literals (a float's repr is exact)."""
    columns = ", ".join(_STAGED_COLUMNS)
    return (f"INSERT INTO scored_events (id, {columns}, schema, origin, received_at) "
            f"SELECT ?1 - 1 + rowid, {columns}, {_sql_text(schema)}, {_sql_text(origin)}, {float(received_at)!r} "
            f"FROM {_STAGED} ORDER BY rowid")


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
        #: True once the writer has staged the rows and done all but the copy into ``scored_events``
        #: (see :data:`_STAGED`), or failed before.  A flag the caller polls, not an Event: it is
        #: set on the writer's OS thread, and under gevent an Event may only be set and waited
        #: on in one thread.
        self.staged = False
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
            "event_id": id_strings(batch.features[schema.id]),
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
        ids = [id_strings(batch.features[e]) for e in schema.entities]
        return list(zip(*(columns[c] for c in _PER_EVENT), *ids))

    def apply(self, tx: Transaction):
        conn = tx.db.conn
        schema = self.batch.schema
        try:
            if self.whole:
                conn.execute("INSERT INTO meta (key, value) VALUES (?, 'in progress') ON CONFLICT (key) DO NOTHING",
                             [IMPORT_KEY + self.origin])
            # Only this thread inserts, inside this transaction: the batch takes the ids from the
            # next one on (past any deleted ones), staged row r (from 1) the id first - 1 + r.
            first = next_row_id(conn, "scored_events")
            conn.execute(_CREATE_STAGED)
            conn.execute(f"DELETE FROM {_STAGED}")  # empty: its rows are numbered from 1 again
            conn.executemany(_stage_sql(len(schema.entities)), self.rows)
            conn.executemany(_UPDATE_STAGED_ANOMALY, [(*values, i + 1) for *values, i in self.anomaly_rows])
            anomalies = [{"id": first + i, **event, "origin": self.origin, "received_at": tx.now,
                          "acknowledged": None} for i, event in self.anomalies]
            n = len(self.rows)
            event_id = tx.allocate("events", 1)
            conn.execute(
                "INSERT INTO events (id, type, created_ms, tick, first_point_id, last_point_id, anomaly_id) "
                "VALUES (?, 'events', ?, NULL, ?, ?, NULL)", [event_id, int(tx.now * 1000), first, first + n - 1])
            # Events of earlier batches that this one's evidence flags (server/event_amendments.py): they
            # are stored already, this batch's own rows not yet.
            self.amended = amend_earlier(tx, self.batch, event_id) if self.batch.earlier else []
            self.events = [events_push(event_id, schema.name, self.origin, n, anomalies,
                                       [a.stored for a in self.amended])]
            # Alerts per (schema, entity, type), committed with these events (server/alerts/).
            self.events += tx.tell_observers("events_stored", schema,
                                             anomalies + [a.for_alerts() for a in self.amended], what="stored events")
        finally:
            # What is left (the copy, then the commit) holds the GIL for a few calls only: the
            # caller may score its next batch meanwhile (server/pipeline/ingest.py).
            self.staged = True
        conn.execute(_copy_sql(schema.name, self.origin, tx.now), [first])
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
    """Acknowledge an anomalous event: who, when, a note.  Raises NotFound if there is none.

    As for an alert (server/alerts/actions.py), the event shows its latest acknowledgement and
    the audit log keeps every one, with the acknowledgement it replaced.
    """

    def __init__(self, event_row: int, actor: dict, note: str):
        super().__init__()
        self.event_row, self.actor, self.note = event_row, actor, note

    def apply(self, tx: Transaction):
        from .alerts.actions import audit

        conn = tx.db.conn
        found = conn.execute("SELECT is_anomaly FROM scored_events WHERE id = ?", [self.event_row]).fetchone()
        if found is None or not found[0]:
            raise NotFound(f"no anomalous event with id {self.event_row}")
        earlier = conn.execute("SELECT acknowledged_by, acknowledged_at, note FROM acknowledgements "
                               "WHERE event_row = ?", [self.event_row]).fetchone()
        by = self.actor["name"]
        row = {"event_row": self.event_row, "acknowledged_by": by, "acknowledged_at": tx.now,
               "note": self.note}
        tx.db["acknowledgements"].upsert(row, pk="event_row")
        replaced = {} if earlier is None else {"replaces": dict(zip(("by", "at", "note"), earlier))}
        audit(tx, self.actor, "acknowledge", detail={"event_id": self.event_row, "note": self.note, **replaced})
        return {"by": by, "at": tx.now, "note": self.note}


def flags_by_key(rows: Iterable[dict]) -> dict[str, dict[str, set]]:
    """``{schema: {entity key: {ids}}}`` from flag rows."""
    out: dict[str, dict[str, set]] = {}
    for row in rows:
        out.setdefault(row["schema"], {}).setdefault(row["entity"], set()).add(row["entity_id"])
    return out

