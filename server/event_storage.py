"""Storage of scored events and of the actions on them: the tables, and the read queries.

Tables (migration 6; migrations 10 and 12 changed the ``entity_1`` index, 14 indexed ``event_id``)
---------------------------------------------------------------------------------------------------
``scored_events``   every scored event of every schema: the columns of
                    :class:`~server.pipeline.event.ScoredEvent` (derived from it), plus the
                    event's entity ids in ``entity_1..3`` (the schema's entity keys in order;
                    the first indexed for every event in buckets of row ids, so "this user's
                    sessions" is a few index ranges: :func:`entity_equals`), ``origin``
                    (upload, replay, ev_charging feed) and ``received_at``; its ``fields``
                    JSON leaves out the fields that are columns (:func:`column_fields`), and
                    ``entities`` is NULL: both are rebuilt when read (:func:`event_from_row`);
                    ``event_id`` is indexed, so an event is stored once (:func:`stored_event_ids`)
``entity_flags``    flagged entities (schema, key, id) with who, when and a note; a flagged
                    entity's events are marked ``flagged`` from then on
``acknowledgements`` one row per acknowledged anomalous event: who, when, a note

Writes go through the single writer (:mod:`server.event_writes`); this module
only creates tables and reads.
"""
from __future__ import annotations

import functools
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import sqlite_utils

from .pipeline.event import ScoredEvent, from_row, sqlite_columns, to_json

__all__ = ["ENTITY_BUCKET_BITS", "ENTITY_COLUMNS", "EVENTS_WITH_ACKNOWLEDGEMENTS", "EventReader", "column_fields",
           "entity_equals", "event_from_row", "migration_entity_1_buckets", "migration_entity_1_index",
           "migration_event_id_index", "migration_scored_events", "register_schema_files", "STORED_EVENT_IDS",
           "stored_event_ids"]

#: Columns holding an event's entity ids, in its schema's entity order.
ENTITY_COLUMNS = ("entity_1", "entity_2", "entity_3")
#: The first entity's index is ``(id >> ENTITY_BUCKET_BITS, entity_1)``: row ids in buckets of
#: 65,536 events, then the id (see :func:`migration_entity_1_buckets`).  The queries must use the
#: index's own expression, so a new value needs a migration that rebuilds the index.
ENTITY_BUCKET_BITS = 16
#: Stored events with their acknowledgement, if any, as :func:`event_from_row` reads them
#: (``e`` the event, ``a`` its acknowledgement): a WHERE clause follows.
EVENTS_WITH_ACKNOWLEDGEMENTS = ("SELECT e.*, a.acknowledged_by, a.acknowledged_at, a.note FROM scored_events e "
                                "LEFT JOIN acknowledgements a ON a.event_row = e.id ")


def migration_scored_events(db: sqlite_utils.Database) -> None:
    """Migration 6: scored events, entity flags and acknowledgements."""
    columns = {"id": int, **sqlite_columns(ScoredEvent), **{c: str for c in ENTITY_COLUMNS},
               "origin": str, "received_at": float}
    db["scored_events"].create(columns, pk="id",
                               not_null={"schema", "event_id", "timestamp", "received_at"})
    # Every index costs each of the many inserts: anomalies (a few percent of events) get a
    # partial one; an entity column only where the schema has that many entity keys.
    db.execute("CREATE INDEX idx_scored_events_anomalies ON scored_events (schema, id) WHERE is_anomaly = 1")
    # The first entity key (the user, for EV charging) is indexed for all its events, for its
    # history; the others for their anomalies (searched and ranked), not every event.
    db.execute("CREATE INDEX idx_scored_events_entity_1 ON scored_events (schema, entity_1, id)")
    for column in ENTITY_COLUMNS[1:]:
        db.execute(f"CREATE INDEX idx_scored_events_{column} ON scored_events (schema, {column}, id) "
                   f"WHERE is_anomaly = 1 AND {column} IS NOT NULL")
    db["entity_flags"].create({"schema": str, "entity": str, "entity_id": str, "flagged_by": str,
                               "flagged_at": float, "note": str},
                              pk=("schema", "entity", "entity_id"))
    db["acknowledgements"].create({"event_row": int, "acknowledged_by": str,
                                   "acknowledged_at": float, "note": str}, pk="event_row",
                                  foreign_keys=[("event_row", "scored_events", "id")])


def migration_entity_1_index(db: sqlite_utils.Database) -> None:
    """Migration 10: every event's first entity id indexed as ``(entity_1)`` alone.

    A row id ends every index entry, so ``(entity_1)`` keeps one user's events
    in id order as ``(schema, entity_1, id)`` did, in fewer bytes; the schema
    is checked on the rows found (entity ids of different schemas rarely
    meet).  This index takes every inserted event at a random place, the
    costliest part of storing one (measured in tests/benchmarks/bench_ingest.py).
    """
    db.execute("DROP INDEX IF EXISTS idx_scored_events_entity_1")
    db.execute("CREATE INDEX idx_scored_events_entity_1 ON scored_events (entity_1)")


def migration_entity_1_buckets(db: sqlite_utils.Database) -> None:
    """Migration 12: the first entity id indexed within buckets of :data:`ENTITY_BUCKET_BITS` row ids.

    Indexed by ``(entity_1)`` alone, each stored event went to a random
    place of an index over every event kept (up to a million): a batch of
    10,000 events over 100,000 users changed most of its leaf pages, each
    written whole to the WAL, fsynced, and written again by the checkpoint.
    It was more than half the bytes written per event, and they grew with the
    events kept (tests/benchmarks/bench_ingest.py: 722 MiB written for
    500,000 events, 387 MiB in buckets).  Keyed first by the bucket of the
    row id, a batch's entries go to the newest bucket's part of the index
    only, at most 65,536 entries, whatever is kept.  A lookup by user probes
    each bucket kept (16 at a million events): :func:`entity_equals`.
    """
    db.execute("DROP INDEX IF EXISTS idx_scored_events_entity_1")
    db.execute(f"CREATE INDEX idx_scored_events_entity_1 ON scored_events (id >> {ENTITY_BUCKET_BITS}, entity_1)")


def migration_event_id_index(db: sqlite_utils.Database) -> None:
    """Migration 14: every event's id indexed, so an event already stored is found and not stored again.

    Chosen by measurement: ``tests/benchmarks/bench_dedup.py`` (200,000 new events in batches of
    10,000 onto 1,000,000 stored, synchronous=FULL, on 2 busy cores: rows/s vary by 10-20 % run to
    run).  Rows/s of look-up plus store; bytes written per event (WAL and checkpoints); look-up
    per event of ids all stored already (a file sent again); the build from a million events:

    =================================  ============================  ============================  =======
    design                             sequential ids                random ids (UUIDs)            build
    =================================  ============================  ============================  =======
    none (before)                      55,000/s  610 B               56,000/s  677 B               --
    index ``(event_id)``: this one     50,000/s  655 B   5.4 us      31,000/s  1,766 B  11.3 us    1.5 s
    index ``(schema, event_id)``       62,000/s  667 B   3.4 us      29,000/s  2,052 B   6.9 us    1.5 s
    64-bit id hashes, rowid table      17,000/s  4,499 B 7.6 us      19,000/s  4,590 B   7.6 us    7.6 s
    the same, ``WITHOUT ROWID``        26,000/s  4,242 B 6.9 us      20,000/s  4,329 B   7.5 us    4.9 s
    =================================  ============================  ============================  =======

    End to end (the upload path: check, score, store, push), 28,300 -> 24,400 rows/s with
    sequential ids and 29,200 -> 26,400 with random ones; the same file again, 92,000-142,000
    rows/s, nothing stored.  Ids given in order (the EV feed's ``S00000042``, a charge point's
    transaction counter) go to the right edge of this index, as row ids do, not to a random
    place as the first entity's did (migration 12); random ids do, and write about a kilobyte
    more per event.  A table of hashed ids is random whatever the ids (the hash undoes their
    order), so it lost either way.  ``(event_id)`` alone, as ``entity_1`` (migration 10): fewer
    bytes written by every event, for a slower look-up of the ids found (the schema is checked on
    their rows; the ids of two schemas rarely meet).  Not UNIQUE: a database may hold repeats
    stored before this migration (kept as they were; the ingest stores no new one), and a UNIQUE
    index would refuse to build there.
    """
    db.execute("CREATE INDEX IF NOT EXISTS idx_scored_events_event_id ON scored_events (event_id)")


#: The ids of a JSON list (``?1``) that schema ``?2`` has stored: one look-up of the id index per id.
STORED_EVENT_IDS = ("SELECT DISTINCT event_id FROM scored_events "
                    "WHERE event_id IN (SELECT value FROM json_each(?1)) AND schema = ?2")


def stored_event_ids(conn: sqlite3.Connection, schema: str, ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` that ``schema`` has an event stored with."""
    if not ids:
        return set()
    return {row[0] for row in conn.execute(STORED_EVENT_IDS, [json.dumps(list(ids)), schema])}


def entity_equals(column: str, table: str = "") -> str:
    """SQL true where entity column ``column`` (one of :data:`ENTITY_COLUMNS`) equals one parameter (``?``).

    ``table`` is the alias the query gives ``scored_events`` (``""``: none).
    The first entity goes through its bucketed index: the buckets from the
    oldest row kept to the newest are listed by a recursive CTE (each bound a
    row id look-up), and the index is probed once per bucket; an empty table
    lists none.  The expression on the id must be the index's own for SQLite to
    use it.  The other entity columns are compared as they are.
    """
    prefix = f"{table}." if table else ""
    if column != ENTITY_COLUMNS[0]:
        return f"{prefix}{column} = ?"
    bits = ENTITY_BUCKET_BITS
    buckets = (f"WITH RECURSIVE entity_buckets(bucket) AS ("
               f"SELECT (SELECT min(id) FROM scored_events) >> {bits} "
               f"UNION ALL SELECT bucket + 1 FROM entity_buckets "
               f"WHERE bucket < (SELECT max(id) FROM scored_events) >> {bits}) "
               f"SELECT bucket FROM entity_buckets")
    return f"({prefix}id >> {bits}) IN ({buckets}) AND {prefix}{column} = ?"


def column_fields(schema) -> tuple[str, ...]:
    """The fields of a schema's events that are columns of ``scored_events`` as well: its id,
    entity keys and timestamp.  The stored ``fields`` JSON leaves them out (a sixth of an
    event's bytes, written once per event) and :func:`event_from_row` puts them back."""
    return (schema.id, *schema.entities, schema.timestamp)


#: The schema files this process serves, by name (:class:`server.pipeline.ingest.Ingest` registers
#: them): a schema declared in a file of one's own is read with its own keys.
_SCHEMA_FILES: dict[str, Path] = {}


def register_schema_files(files: Mapping[str, Path]) -> None:
    """Read the events of these schemas with the layouts their files declare."""
    _SCHEMA_FILES.update(files)
    _layout.cache_clear()


@functools.lru_cache(maxsize=None)
def _layout(schema_name: str) -> tuple[str, tuple[str, ...], str] | None:
    """A schema's id field, entity keys and timestamp field (its declaration, read once): a served
    file's, else a bundled schema's of that name."""
    from .pipeline.schema import SchemaError, load_schema

    try:
        schema = load_schema(_SCHEMA_FILES.get(schema_name, schema_name))
    except SchemaError:
        return None  # a schema no longer declared: its events read as stored
    return schema.id, tuple(schema.entities), schema.timestamp


def _stored_entities(row: sqlite3.Row, layout) -> dict | None:
    """The event's entities object when it is stored NULL: the ids are in the entity columns
    already (SQLite building the JSON cost a tenth of the writer's work per event), so it is
    rebuilt from those columns under the schema's entity keys.  None when it was stored."""
    if row["entities"] is not None:  # stored before the ids were kept in their columns only
        return None
    keys = layout[1] if layout else ENTITY_COLUMNS
    return {k: row[c] for k, c in zip(keys, ENTITY_COLUMNS) if row[c] is not None}


def _all_fields(event: dict, layout) -> dict:
    """The event's fields with its id, entity ids and timestamp back from their columns, placed
    first (where ev_charging declares them); a field the JSON still has (an event stored
    before they were left out) keeps its stored value and place."""
    if layout is None:
        return event["fields"]
    id_key, _, time_key = layout
    return {id_key: event["event_id"], **event["entities"], time_key: event["timestamp"], **event["fields"]}


def event_from_row(row: sqlite3.Row) -> dict:
    """A ``scored_events`` row (joined with its acknowledgement, if any) as the API's JSON."""
    layout = _layout(row["schema"])
    entities = _stored_entities(row, layout)
    if entities is None:
        event = to_json(from_row(ScoredEvent, row))
    else:  # decoded as an empty object, then given the rebuilt one (plain strings already)
        event = to_json(from_row(ScoredEvent, {**dict(row), "entities": "{}"}))
        event["entities"] = entities
    event["fields"] = _all_fields(event, layout)
    event = {"id": row["id"], **event, "origin": row["origin"], "received_at": row["received_at"]}
    keys = row.keys()
    ack = None
    if "acknowledged_by" in keys and row["acknowledged_at"] is not None:
        ack = {"by": row["acknowledged_by"], "at": row["acknowledged_at"], "note": row["note"]}
    event["acknowledged"] = ack
    return event


class EventReader:
    """Read queries on scored events and actions, on one read-only connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def close(self) -> None:
        self.conn.close()

    def _select(self, where: list[str], params: list, order: str, limit: int) -> list[dict]:
        return list(self._iterate(where, params, order, limit))

    def _iterate(self, where: list[str], params: list, order: str, limit: int) -> Iterator[dict]:
        """The events found, read from the cursor one at a time."""
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        cursor = self.conn.execute(
            f"{EVENTS_WITH_ACKNOWLEDGEMENTS}{clause} ORDER BY {order} LIMIT ?",
            [*params, limit])
        return (event_from_row(r) for r in cursor)

    def anomalies(self, schema: str, entities: Sequence[str], **filters) -> list[dict]:
        """Anomalous events of ``schema``: :meth:`iter_anomalies` as a list."""
        return list(self.iter_anomalies(schema, entities, **filters))

    def iter_anomalies(self, schema: str, entities: Sequence[str], *, kind: str | None = None,
                       entity: dict[str, str] | None = None, min_risk: int | None = None,
                       acknowledged: bool | None = None, before_id: int | None = None,
                       limit: int = 100, order: str = "id") -> Iterator[dict]:
        """Anomalous events of ``schema``, newest first (or by risk), with optional filters,
        read one at a time (an export of many holds one in memory).

        ``kind`` is an anomaly type; ``entity`` maps an entity key of the
        schema to an id (e.g. ``{"user_id": "U0042"}``).
        """
        where, params = ["e.schema = ?", "e.is_anomaly = 1"], [schema]
        self._filters(where, params, entities, entity, kind, min_risk, acknowledged, before_id)
        sort = "e.risk DESC, e.id DESC" if order == "risk" else "e.id DESC"
        return self._iterate(where, params, sort, limit)

    def events(self, schema: str, entities: Sequence[str], *, entity: dict[str, str] | None = None,
               before_id: int | None = None, limit: int = 100) -> list[dict]:
        """Events of ``schema`` (anomalous or not), newest first; e.g. one user's recent sessions."""
        where, params = ["e.schema = ?"], [schema]
        self._filters(where, params, entities, entity, None, None, None, before_id)
        return self._select(where, params, "e.id DESC", limit)

    def event(self, row_id: int) -> dict | None:
        found = self._select(["e.id = ?"], [row_id], "e.id", 1)
        return found[0] if found else None

    @staticmethod
    def _filters(where, params, entities, entity, kind, min_risk, acknowledged, before_id) -> None:
        for key, value in (entity or {}).items():
            where.append(entity_equals(ENTITY_COLUMNS[list(entities).index(key)], "e"))
            params.append(value)
        if kind is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(e.types) WHERE json_each.value = ?)")
            params.append(kind)
        if min_risk is not None:
            where.append("e.risk >= ?")
            params.append(min_risk)
        if acknowledged is not None:
            where.append("a.event_row IS NOT NULL" if acknowledged else "a.event_row IS NULL")
        if before_id is not None:
            where.append("e.id < ?")
            params.append(before_id)

    def summary(self, schema: str, entities: Sequence[str], top: int = 10) -> dict:
        """Counts for the schema's view: events, anomalies by severity and type, and the top entities
        by their highest risk, then by their number of anomalous events (as the view draws them)."""
        conn = self.conn
        total, anomalous = conn.execute(
            "SELECT count(*), coalesce(sum(is_anomaly), 0) FROM scored_events WHERE schema = ?",
            [schema]).fetchone()
        severities = dict(conn.execute(
            "SELECT severity, count(*) FROM scored_events WHERE schema = ? AND is_anomaly = 1 "
            "GROUP BY severity", [schema]).fetchall())
        types = dict(conn.execute(
            "SELECT j.value, count(*) FROM scored_events e, json_each(e.types) j "
            "WHERE e.schema = ? AND e.is_anomaly = 1 GROUP BY j.value ORDER BY count(*) DESC",
            [schema]).fetchall())
        acknowledged = conn.execute(
            "SELECT count(*) FROM acknowledgements a JOIN scored_events e ON e.id = a.event_row "
            "WHERE e.schema = ?", [schema]).fetchone()[0]
        top_entities = {}
        for key, column in zip(entities, ENTITY_COLUMNS):
            rows = conn.execute(
                f"SELECT {column} AS id, count(*) AS anomalies, max(risk) AS max_risk, "
                f"sum(risk) AS total_risk FROM scored_events WHERE schema = ? AND is_anomaly = 1 "
                f"GROUP BY {column} ORDER BY max_risk DESC, anomalies DESC, id LIMIT ?", [schema, top]).fetchall()
            top_entities[key] = [dict(r) for r in rows]
        return {"schema": schema, "events": total, "anomalies": anomalous,
                "severities": {k: v for k, v in severities.items() if k is not None},
                "types": types, "acknowledged": acknowledged, "top": top_entities,
                "flagged": self.flags(schema)}

    def flags(self, schema: str | None = None) -> list[dict]:
        sql = "SELECT * FROM entity_flags"
        params: list[Any] = []
        if schema is not None:
            sql += " WHERE schema = ?"
            params.append(schema)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY flagged_at", params).fetchall()]


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
