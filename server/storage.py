"""The SQLite database: schema and its migrations, connections, and the read queries.

Writes never happen here: they go through :class:`server.writer.Writer`, the
one thread that owns the write connection.  Readers open their own read-only
connections (:func:`open_reader`); in WAL mode a reader sees the last committed
state and neither blocks the writer nor waits for it.

Tables
------
``streams``          every stream: fields, kind (builtin/user), description, units, created_at,
                     and for user streams who created it (owner_address, owner_token)
``points``           every scored data point (per-detector scores, severity, explanation, truth)
``anomalies``        the flagged points, kept with their own retention, plus ``detected_at``
``config``           each stream's detector configuration, as set through /api/configure
``events``           the push-event sequence (ids for SSE/WebSocket, replay after Last-Event-ID);
                     an alert transition names its alert (``alert_id``, ``transition``)
``stream_stats``     running counts per stream (points, anomalies, tp, fp, fn), never pruned
``detector_stats``   running count of points each detector fired on
``meta``             small key/value facts (the health probe writes here)
``schema_migrations`` which migrations have been applied
``alerts``, ``silences``, ``alert_audit``, ``outbox``  see server/alerts/schema.py
``feedback``         "not an anomaly" verdicts on anomalies and alerts (server/feedback.py)
``revoked_sessions`` dashboard sessions ended by a logout, until they may be forgotten
                     (server/sessions.py)
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import sqlite_utils

from .alerts.schema import migration_alert_events, migration_alerts
from .pipeline import point
from .pipeline.point import anomaly_from_row

__all__ = ["MIGRATIONS", "Reader", "anomaly_from_row", "migrate", "open_reader", "open_writer",
           "point_from_row", "schema_version"]

#: The columns ``points`` and ``anomalies`` were created with, as migration 1 made them (later
#: migrations add to them; the point's own type, server/pipeline/point.py, lists them today).
_INITIAL_POINT_COLUMNS = {
    "source": str, "tick": int, "timestamp": float, "field_values": str, "score": float,
    "is_anomaly": int, "severity": str, "explanation": str, "detector_scores": str,
    "fired": str, "expected": str, "truth_anomaly": int, "truth_kind": str, "warming_up": int,
}


def _migration_initial(db: sqlite_utils.Database) -> None:
    db["streams"].create({"name": str, "fields": str, "kind": str, "description": str,
                          "units": str, "created_at": float}, pk="name",
                         not_null={"fields", "kind"})
    db["points"].create({"id": int, **_INITIAL_POINT_COLUMNS, "received_at": float}, pk="id",
                        not_null={"source", "timestamp", "field_values", "score", "received_at"})
    db["points"].create_index(["source", "id"])
    db["points"].create_index(["received_at"])
    db["anomalies"].create({"id": int, "point_id": int, **_INITIAL_POINT_COLUMNS, "detected_at": float},
                           pk="id", not_null={"source", "point_id", "detected_at"})
    db["anomalies"].create_index(["source", "id"])
    db["anomalies"].create_index(["detected_at"])
    db["config"].create({"source": str, "config": str, "updated_at": float}, pk="source",
                        not_null={"config"})
    db["events"].create({"id": int, "type": str, "created_ms": int, "tick": int,
                         "first_point_id": int, "last_point_id": int, "anomaly_id": int},
                        pk="id", not_null={"type", "created_ms"})
    db["events"].create_index(["created_ms"])
    db["stream_stats"].create({"source": str, "points": int, "anomalies": int, "tp": int,
                               "fp": int, "fn": int}, pk="source")
    db["detector_stats"].create({"detector": str, "fired": int}, pk="detector")
    db["meta"].create({"key": str, "value": str}, pk="key")


def _migration_episode_counts(db: sqlite_utils.Database) -> None:
    # Live recall counts injected anomalies (episodes), not their points: see server/episodes.py.
    db["stream_stats"].add_column("episodes_caught", int, not_null_default=0)
    db["stream_stats"].add_column("episodes_missed", int, not_null_default=0)


def _migration_stream_owner(db: sqlite_utils.Database) -> None:
    # Who created a user stream (client address, and the token's fingerprint when one was used).
    db["streams"].add_column("owner_address", str)
    db["streams"].add_column("owner_token", str)


def _migration_alert(db: sqlite_utils.Database) -> None:
    # is_anomaly marks every point of an anomalous episode; alert marks the episode's first point.
    db["points"].add_column("alert", int, not_null_default=0)
    db["anomalies"].add_column("alert", int, not_null_default=0)


def _migration_scored_events(db: sqlite_utils.Database) -> None:
    # Entity-keyed events (issue 9): their tables are declared beside their reads.
    from .event_storage import migration_scored_events
    migration_scored_events(db)


def _migration_entity_1_index(db: sqlite_utils.Database) -> None:
    # Storing events is bound by their index inserts (issue 9's ingest bar): see event_storage.
    from .event_storage import migration_entity_1_index
    migration_entity_1_index(db)


def _migration_entity_1_buckets(db: sqlite_utils.Database) -> None:
    # A stored event's index entry in the newest bucket of row ids, not anywhere (issue 9): event_storage.
    from .event_storage import migration_entity_1_buckets
    migration_entity_1_buckets(db)


def _migration_event_id_index(db: sqlite_utils.Database) -> None:
    # An event given again (a re-uploaded file, a retried request) is found and not stored twice: event_storage.
    from .event_storage import migration_event_id_index
    migration_event_id_index(db)


def _migration_amended_by(db: sqlite_utils.Database) -> None:
    # A repeat rule's window completed by a later batch marks its earlier events (issue 9).
    from .event_amendments import migration_amended_by
    migration_amended_by(db)


def _migration_feedback(db: sqlite_utils.Database) -> None:
    # "Not an anomaly" (issue 10): who said it, when, why, about which anomaly or alert, the values
    # the stream was taught, and the last point the engine had scored when it learned them (so a
    # restart re-teaches what its snapshot predates).  An alert resolved by it says so.
    db["feedback"].create({"id": int, "at": float, "verdict": str, "note": str, "actor": str,
                           "address": str, "token": str, "stream": str, "anomaly_id": int,
                           "point_id": int, "alert_id": int, "taught": str, "scored_through": int},
                          pk="id", not_null={"at", "verdict", "stream", "taught", "scored_through"})
    db["feedback"].create_index(["stream", "id"])
    db["feedback"].create_index(["scored_through"])
    db["alerts"].add_column("resolution", str)


def _migration_alert_events_history(db: sqlite_utils.Database) -> None:
    # Alert transitions join the push-event sequence (server/alerts/live.py); the history view
    # reads a stream's points by their own time (server/api_history.py).
    migration_alert_events(db)
    db["points"].create_index(["source", "timestamp"])


def _migration_revoked_sessions(db: sqlite_utils.Database) -> None:
    # A logout ends its session on every worker and after a restart (server/sessions.py).
    from .sessions import migration_revoked_sessions
    migration_revoked_sessions(db)


#: Ordered (version, name, function) migrations.  Append new ones; never edit an applied one.
MIGRATIONS: list[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = [
    (1, "initial schema", _migration_initial),
    (2, "episode counts in stream_stats", _migration_episode_counts),
    (3, "owner of user streams", _migration_stream_owner),
    (4, "alert flag of points and anomalies", _migration_alert),
    (6, "scored events, entity flags, acknowledgements", _migration_scored_events),
    (7, "alerts, silences, audit log, outbox", migration_alerts),
    (8, "not-an-anomaly feedback", _migration_feedback),
    (9, "alert transitions as push events; points by stream and time", _migration_alert_events_history),
    (10, "scored events' first entity index without the schema", _migration_entity_1_index),
    (11, "scored events amended by a later batch", _migration_amended_by),
    (12, "scored events' first entity index in buckets of row ids", _migration_entity_1_buckets),
    (13, "dashboard sessions revoked by a logout", _migration_revoked_sessions),
    (14, "scored events' ids indexed, each event stored once", _migration_event_id_index),
]


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


#: The write connection's page cache, at most (SQLite's default is 2 MB).  A stored event lands
#: at a random place of the newest bucket of the entity index (a user's history); with 2 MB most
#: of those pages were read back from the OS on every batch (measured before the buckets, with
#: one index over every event: about a third of the cost of a stored event).
WRITER_CACHE_MIB = 64


def open_writer(path: Path, synchronous: str = "FULL") -> sqlite_utils.Database:
    """The write connection: WAL journal, the given ``synchronous`` level.

    In WAL mode with ``synchronous=FULL`` SQLite fsyncs the write-ahead log at
    every COMMIT, so a transaction that has committed survives a crash of the
    process, of the OS, or a power cut.  With ``NORMAL`` it survives a crash of
    the process only (the WAL is fsynced at checkpoints).
    """
    if synchronous not in {"FULL", "NORMAL"}:
        raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite_utils.Database(_connect(path, read_only=False))
    db.enable_wal()
    db.execute(f"PRAGMA synchronous = {synchronous}")
    db.execute(f"PRAGMA cache_size = -{WRITER_CACHE_MIB * 1024}")
    db.execute("PRAGMA temp_store = MEMORY")
    return db


def open_reader(path: Path) -> "Reader":
    """A read-only connection of its own (one per request or push client)."""
    return Reader(_connect(path, read_only=True))


def schema_version(db: sqlite_utils.Database) -> int:
    """The highest applied migration, 0 for an empty database."""
    if "schema_migrations" not in db.table_names():
        return 0
    return db.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(db: sqlite_utils.Database,
            migrations: Sequence[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = MIGRATIONS
            ) -> list[int]:
    """Apply, each in its own transaction, the migrations not yet recorded; return their versions.

    ``BEGIN IMMEDIATE`` takes the write lock before looking, so two processes
    starting at once cannot both apply the same migration.
    """
    versions = [v for v, _, _ in migrations]
    if versions != sorted(set(versions)):
        raise ValueError(f"migration versions must be unique and increasing, got {versions}")
    applied = []
    for version, name, apply in migrations:
        db.execute("BEGIN IMMEDIATE")
        try:
            if "schema_migrations" not in db.table_names():
                db["schema_migrations"].create({"version": int, "name": str, "applied_at": float},
                                               pk="version")
            done = db.execute("SELECT 1 FROM schema_migrations WHERE version = ?",
                              [version]).fetchone()
            if not done:
                apply(db)
                db["schema_migrations"].insert({"version": version, "name": name,
                                                "applied_at": time.time()})
                applied.append(version)
            db.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise
    return applied


def _loads(text: str | None, default: Any) -> Any:
    return default if text is None else json.loads(text)


def point_from_row(row: sqlite3.Row) -> dict:
    """A ``points`` row as the API's point object."""
    return point.to_json(point.from_row(row))


class Reader:
    """Read queries on one read-only connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def close(self) -> None:
        self.conn.close()

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, list(params)).fetchall()

    def streams(self) -> list[dict]:
        """Stored streams in creation order, fields and units decoded."""
        rows = self._rows("SELECT * FROM streams ORDER BY rowid")
        return [{"name": r["name"], "fields": tuple(json.loads(r["fields"])), "kind": r["kind"],
                 "description": r["description"], "units": _loads(r["units"], {}),
                 "created_at": r["created_at"],
                 "owner": {"address": r["owner_address"], "token": r["owner_token"]}}
                for r in rows]

    def configs(self) -> dict[str, dict]:
        return {r["source"]: json.loads(r["config"])
                for r in self._rows("SELECT source, config FROM config")}

    def latest_points(self, source: str, limit: int) -> list[dict]:
        """The ``limit`` newest points of ``source``, oldest first."""
        rows = self._rows("SELECT * FROM points WHERE source = ? ORDER BY id DESC LIMIT ?",
                          [source, limit])
        return [point_from_row(r) for r in reversed(rows)]

    def points_between(self, first_id: int, last_id: int) -> list[dict]:
        rows = self._rows("SELECT * FROM points WHERE id BETWEEN ? AND ? ORDER BY id",
                          [first_id, last_id])
        return [point_from_row(r) for r in rows]

    def anomalies(self, source: str | None = None, since: float | None = None,
                  limit: int = 100, until: float | None = None,
                  severities: Sequence[str] | None = None, before: int | None = None) -> list[dict]:
        """Anomalies newest first, optionally of one source, detected at or after ``since`` and
        before ``until``, of the given severities, with an anomaly id below ``before`` (paging)."""
        where, params = [], []
        if source is not None:
            where.append("source = ?")
            params.append(source)
        if since is not None:
            where.append("detected_at >= ?")
            params.append(since)
        if until is not None:
            where.append("detected_at < ?")
            params.append(until)
        if severities:
            where.append(f"severity IN ({','.join('?' * len(severities))})")
            params.extend(severities)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._rows(f"SELECT * FROM anomalies {clause} ORDER BY id DESC LIMIT ?",
                          [*params, limit])
        return [anomaly_from_row(r) for r in rows]

    def anomalies_by_id(self, ids: Sequence[int]) -> dict[int, dict]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._rows(f"SELECT * FROM anomalies WHERE id IN ({marks})", ids)
        return {r["id"]: anomaly_from_row(r) for r in rows}

    def events_after(self, last_id: int, limit: int) -> list[sqlite3.Row]:
        """Events with id > ``last_id`` in id order; the newest ``limit`` of them if more."""
        rows = self._rows("SELECT * FROM events WHERE id > ? ORDER BY id DESC LIMIT ?",
                          [last_id, limit])
        return rows[::-1]

    def last_event_id(self) -> int:
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    def stream_stats(self) -> dict[str, dict]:
        return {r["source"]: dict(r) for r in self._rows("SELECT * FROM stream_stats")}

    def detector_stats(self) -> dict[str, int]:
        return {r["detector"]: r["fired"] for r in self._rows("SELECT * FROM detector_stats")}

    def count(self, table: str) -> int:
        if table not in {"points", "anomalies", "events", "streams", "config"}:
            raise ValueError(f"not a countable table: {table!r}")
        return self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
