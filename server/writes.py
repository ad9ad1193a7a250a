"""The write jobs: what the writer thread does to the database, one class per kind of write."""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import replace
from typing import Iterable

from .events import anomaly_event, dumps, tick_event
from .pipeline import point
from .pipeline.point import ScoredPoint
from .writer import Transaction, WriteJob

__all__ = ["ConfigJob", "DeleteStreamJob", "PointsJob", "ProbeJob", "PruneJob", "StreamsJob"]

def _insert_sql(table: str, columns: Iterable[str]) -> str:
    columns = tuple(columns)
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})")


_INSERT_POINT = _insert_sql("points", (*point.ROW_COLUMNS, "received_at"))
# An anomaly row is its point's row with the point's id moved to point_id and an id of its own.
_INSERT_ANOMALY = _insert_sql("anomalies", (*point.ROW_COLUMNS[1:], "id", "point_id", "detected_at"))
_INSERT_EVENT = _insert_sql("events", ("id", "type", "created_ms", "tick", "first_point_id",
                                       "last_point_id", "anomaly_id"))
_BUMP_STREAM_STATS = (
    "INSERT INTO stream_stats (source, points, anomalies, tp, fp, fn, episodes_caught, episodes_missed) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(source) DO UPDATE SET points = points + excluded.points, "
    "anomalies = anomalies + excluded.anomalies, tp = tp + excluded.tp, "
    "fp = fp + excluded.fp, fn = fn + excluded.fn, "
    "episodes_caught = episodes_caught + excluded.episodes_caught, "
    "episodes_missed = episodes_missed + excluded.episodes_missed")
_BUMP_DETECTOR_STATS = (
    "INSERT INTO detector_stats (detector, fired) VALUES (?, ?) "
    "ON CONFLICT(detector) DO UPDATE SET fired = fired + excluded.fired")


class PointsJob(WriteJob):
    """Store one tick's (or one submit call's) scored points, their anomalies and push events.

    Parameters
    ----------
    points : list of ScoredPoint
        Without ``id``, in the order they were scored (a mapping in the point's JSON
        form is read into a ScoredPoint: tools and tests build points by hand).
    tick : int or None
        The scheduler tick that produced them (None for a submit).
    origin : {"scheduler", "submit"}
        Who produced them; carried by the tick event.
    new_streams : list of dict
        User streams created by this submit, stored in the same transaction.

    The result is the points' JSON objects with their ``id`` set.  Events: one
    tick event, then one anomaly event per flagged point, with consecutive ids.
    """

    def __init__(self, points: list[ScoredPoint], tick: int | None, origin: str,
                 new_streams: Iterable[dict] = ()):
        super().__init__()
        if not points:
            raise ValueError("a PointsJob needs at least one point")
        self.points = [p if isinstance(p, ScoredPoint) else point.from_json(p) for p in points]
        self.tick = tick
        self.origin = origin
        self.new_streams = list(new_streams)

    def apply(self, tx: Transaction) -> list[dict]:
        conn = tx.db.conn
        if self.new_streams:
            StreamsJob(self.new_streams, replace=False).apply(tx)
        first_id = tx.allocate("points", len(self.points))
        stored = [replace(p, id=first_id + i, tick=self.tick) for i, p in enumerate(self.points)]
        rows = [point.to_row(p) for p in stored]
        conn.executemany(_INSERT_POINT, [(*row, tx.now) for row in rows])
        # Encoded here, on the writer thread, so the event loop only splices strings.
        points = [point.to_json(p) for p in stored]

        flagged = [n for n, p in enumerate(stored) if p.is_anomaly]
        first_anomaly = tx.allocate("anomalies", len(flagged))
        anomalies = [dict(points[n], anomaly_id=first_anomaly + i, detected_at=tx.now)
                     for i, n in enumerate(flagged)]
        conn.executemany(_INSERT_ANOMALY, [(*rows[n][1:], a["anomaly_id"], a["id"], a["detected_at"])
                                           for n, a in zip(flagged, anomalies)])

        created_ms = int(tx.now * 1000)
        first_event = tx.allocate("events", 1 + len(anomalies))
        event_rows = [(first_event, "tick", created_ms, self.tick, points[0]["id"],
                       points[-1]["id"], None)]
        event_rows += [(first_event + 1 + i, "anomaly", created_ms, self.tick, a["id"], a["id"],
                        a["anomaly_id"]) for i, a in enumerate(anomalies)]
        conn.executemany(_INSERT_EVENT, event_rows)
        self._bump_stats(conn, stored)
        observed: list = []  # push events of observers (alert transitions), after the anomalies'
        # Observers see the points' JSON, plus the entity and the anomaly types a point names
        # (alerts are per entity and type).
        seen = [j if p.entity is None and not p.anomaly_types
                else dict(j, entity=p.entity, anomaly_types=list(p.anomaly_types))
                for j, p in zip(points, stored)]
        observed += tx.tell_observers("points_stored", seen, what="stored points")

        self.events = [tick_event(first_event, self.tick, self.origin, points)]
        self.events += [anomaly_event(first_event + 1 + i, a) for i, a in enumerate(anomalies)]
        self.events += observed
        return points

    @staticmethod
    def _bump_stats(conn, points: list[ScoredPoint]) -> None:
        per_source: dict[str, list[int]] = {}
        fired: Counter = Counter()
        for p in points:
            counts = per_source.setdefault(p.source, [0, 0, 0, 0, 0, 0, 0])
            # Anomalies count every point of an episode; live precision counts alerts (one per
            # episode), so an incident that lasts is one true or one false positive.
            flagged, alert, truth = p.is_anomaly, p.alert, p.truth
            counts[0] += 1
            counts[1] += int(flagged)
            if truth is not None:
                counts[2] += int(alert and truth.is_anomaly)
                counts[3] += int(alert and not truth.is_anomaly)
                counts[4] += int(not flagged and truth.is_anomaly)
                counts[5] += int(p.episode == "caught")
                counts[6] += int(p.episode == "missed")
            fired.update(p.fired)
        conn.executemany(_BUMP_STREAM_STATS, [(s, *c) for s, c in per_source.items()])
        if fired:
            conn.executemany(_BUMP_DETECTOR_STATS, list(fired.items()))


class StreamsJob(WriteJob):
    """Record streams (name, fields, kind, description, units).

    ``replace=True`` refreshes descriptions of existing rows (built-in streams
    at start-up); ``replace=False`` leaves existing rows alone (user streams).
    """

    def __init__(self, streams: Iterable[dict], replace: bool):
        super().__init__()
        self.streams = list(streams)
        self.replace = replace

    def apply(self, tx: Transaction) -> int:
        rows = [{"name": s["name"], "fields": json.dumps(list(s["fields"])), "kind": s["kind"],
                 "description": s.get("description") or "", "units": dumps(s.get("units") or {}),
                 "created_at": tx.now, "owner_address": (s.get("owner") or {}).get("address"),
                 "owner_token": (s.get("owner") or {}).get("token")} for s in self.streams]
        verb = "INSERT OR IGNORE"
        if self.replace:
            verb = "INSERT"
        sql = (f"{verb} INTO streams (name, fields, kind, description, units, created_at, "
               "owner_address, owner_token) VALUES (:name, :fields, :kind, :description, :units, "
               ":created_at, :owner_address, :owner_token)")
        if self.replace:
            sql += (" ON CONFLICT(name) DO UPDATE SET fields = excluded.fields, kind = excluded.kind,"
                    " description = excluded.description, units = excluded.units")
        tx.db.conn.executemany(sql, rows)
        return len(rows)


class DeleteStreamJob(WriteJob):
    """Delete a user stream with its points, anomalies, configuration and counts.

    Its push events stay (replay skips events whose rows are gone); the name is
    free for a new stream.  The result maps table name to the rows deleted.
    """

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def apply(self, tx: Transaction) -> dict[str, int]:
        conn = tx.db.conn
        deleted = {}
        for table in ("points", "anomalies"):
            tx.keep_next_id(table)
        for table, column in (("points", "source"), ("anomalies", "source"), ("config", "source"),
                              ("stream_stats", "source"), ("streams", "name")):
            deleted[table] = conn.execute(f"DELETE FROM {table} WHERE {column} = ? ",
                                          [self.name]).rowcount
        # The alert lifecycle resolves the stream's open alerts; a failing observer never keeps it alive.
        self.events += tx.tell_observers("stream_deleted", self.name, what="a deleted stream")
        return deleted


class ConfigJob(WriteJob):
    """Persist one stream's detector configuration (the engine's ``config(source)``)."""

    def __init__(self, source: str, config: dict):
        super().__init__()
        self.source = source
        self.config = config

    def apply(self, tx: Transaction) -> None:
        tx.db["config"].upsert({"source": self.source, "config": dumps(self.config),
                                "updated_at": tx.now}, pk="source")


class ProbeJob(WriteJob):
    """A tiny write that proves the database takes writes (for /health)."""

    def apply(self, tx: Transaction) -> float:
        tx.db.conn.execute("INSERT INTO meta (key, value) VALUES ('last_probe', ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value", [str(tx.now)])
        return tx.now


class PruneJob(WriteJob):
    """Apply retention: keep ``keep_points`` points and anomalies per stream, ``keep_events``
    events, and nothing older than ``max_age_s`` seconds (0: no age limit).

    The result maps table name to the number of rows deleted.
    """

    def __init__(self, keep_points: int, keep_events: int, max_age_s: float,
                 now: float | None = None):
        super().__init__()
        if keep_points < 1 or keep_events < 1 or max_age_s < 0:
            raise ValueError("keep_points and keep_events must be >= 1 and max_age_s >= 0")
        self.keep_points = keep_points
        self.keep_events = keep_events
        self.max_age_s = max_age_s
        self.now = now

    def apply(self, tx: Transaction) -> dict[str, int]:
        conn = tx.db.conn
        deleted = {"points": 0, "anomalies": 0, "events": 0}
        for table in deleted:
            tx.keep_next_id(table)
        sources = [r[0] for r in conn.execute("SELECT name FROM streams")]
        for table in ("points", "anomalies"):
            for source in sources:
                # The id of the oldest row to keep; NULL (nothing deleted) when fewer rows exist.
                cur = conn.execute(
                    f"DELETE FROM {table} WHERE source = ? AND id < (SELECT id FROM {table} "
                    f"WHERE source = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    [source, source, self.keep_points - 1])
                deleted[table] += cur.rowcount
        cur = conn.execute("DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?",
                           [self.keep_events])
        deleted["events"] += cur.rowcount
        if self.max_age_s > 0:
            cutoff = (self.now if self.now is not None else time.time()) - self.max_age_s
            deleted["points"] += conn.execute("DELETE FROM points WHERE received_at < ?",
                                              [cutoff]).rowcount
            deleted["anomalies"] += conn.execute("DELETE FROM anomalies WHERE detected_at < ?",
                                                 [cutoff]).rowcount
            deleted["events"] += conn.execute("DELETE FROM events WHERE created_ms < ?",
                                              [int(cutoff * 1000)]).rowcount
        return deleted
