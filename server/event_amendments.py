"""Amend stored events that a later batch's evidence flags: the earlier sessions of a DoS burst.

A ``repeat`` rule (three short sessions by one user within an hour) knows a
window qualifies only when its last event arrives; the window's earlier events
may have been stored with earlier batches.  The scorer names them
(:class:`~server.pipeline.scoring.EarlierMarks`: entity id and timestamp, and
they matched the rule's ``when``), and :func:`amend_earlier` marks their
stored rows inside the transaction that stores the batch completing the
window, so the database never holds the third session flagged without the
first two.

An amended row gains the rule's signal, type and explanation; its risk and
severity become the higher of its own and the rule's; it becomes an anomaly;
``amended_by`` records the push event of the batch that amended it, so that
push event, rebuilt for a resuming client, lists it again.  A row that
already carries the rule's type is left as it is (a fourth short session
names the first three again).

An import that fails and is undone (server/pipeline/ingest.py) deletes its
own rows; rows of other imports that its batches amended stay amended, as the
scorer keeps what it learned from the undone batches (their short sessions
still count in the user's window).

Rows are found through the entity's column and the timestamp, and checked
against the rule's ``when`` in SQL.  Only the first entity key (``entity_1``)
is indexed for every event (in buckets of row ids:
``event_storage.entity_equals``): a repeat rule on another entity key finds
its rows by scanning the schema's events (none of the built-in schemas
declares one).
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

import sqlite_utils

from detectors.engine import SEVERITIES

from .event_field_sql import field_sql
from .event_storage import EVENTS_WITH_ACKNOWLEDGEMENTS, entity_equals, event_from_row
from .pipeline.event import Signal, summarise
from .writer import Transaction

__all__ = ["Amendment", "amend_earlier", "migration_amended_by"]

#: A stored timestamp and a remembered one may differ in the last digits (a restart replays
#: times read back from JSON): the same event within this many seconds.
TIME_TOLERANCE_S = 1e-3


def migration_amended_by(db: sqlite_utils.Database) -> None:
    """Migration 11: ``scored_events.amended_by``, the push event of the batch that amended a row.

    NULL for almost every row, and the index is partial: storing an event costs nothing more.
    """
    db.execute("ALTER TABLE scored_events ADD COLUMN amended_by INTEGER")
    db.execute("CREATE INDEX idx_scored_events_amended_by ON scored_events (amended_by) "
               "WHERE amended_by IS NOT NULL")


@dataclass(frozen=True)
class Amendment:
    """One stored event a later batch marked."""

    #: The event as it is now stored (the API's JSON).
    stored: dict
    #: The signal it gained.
    signal: dict
    #: Whether it was no anomaly before.
    newly_anomalous: bool
    #: Its severity before (None: no anomaly).
    severity_before: str | None

    def for_alerts(self) -> dict:
        """The event with only its new signal: its other types were counted when it was stored."""
        return {**self.stored, "signals": [self.signal]}


def amend_earlier(tx: Transaction, batch, push_event_id: int) -> list[Amendment]:
    """Mark the stored rows ``batch.earlier`` names; return what was amended."""
    schema = batch.schema
    conn = tx.db.conn
    amended: list[Amendment] = []
    for marks in batch.earlier:
        rule = marks.rule
        where = [entity_equals(field_sql(schema, marks.entity)), "schema = ?", "timestamp BETWEEN ? AND ?"]
        for feature, op, _ in rule.when:
            where.append(f"{field_sql(schema, feature)} {op} ?")
        thresholds = [value for _, _, value in rule.when]
        values_sql = ", ".join(field_sql(schema, name) for name in schema.fields)
        query = (f"SELECT id, risk, severity, is_anomaly, types, signals, explanation, {values_sql} "
                 f"FROM scored_events WHERE {' AND '.join(where)} ORDER BY id")
        for entity_id, at, count in zip(marks.ids.tolist(), marks.times.tolist(), marks.counts.tolist()):
            params = [str(entity_id), schema.name, at - TIME_TOLERANCE_S, at + TIME_TOLERANCE_S, *thresholds]
            for row in conn.execute(query, params).fetchall():
                values = dict(zip(schema.fields, tuple(row)[7:]))
                signal = _amend(conn, tuple(row)[:7], values, rule, marks.risk, int(count), push_event_id)
                if signal is not None:
                    amended.append(Amendment(_stored_json(conn, row[0]), signal.to_dict(),
                                             newly_anomalous=not row[3], severity_before=row[2]))
    return amended


def _amend(conn: sqlite3.Connection, stored: tuple, values: dict, rule, risk: int, count: int,
           push_event_id: int) -> Signal | None:
    """Add ``rule``'s signal to one stored row (its risk, types and signals, and its field
    ``values`` for the reason); None when it already has the rule's type."""
    row_id, old_risk, _, _, types, signals, _ = stored
    if rule.type in json.loads(types or "[]"):
        return None
    signal = Signal(rule.type, "rule", rule.reason(values, {"count": count}), rule.severity)
    ranked = [Signal(**s) for s in json.loads(signals or "[]")] + [signal]
    ranked.sort(key=lambda s: -SEVERITIES.index(s.severity))  # stable: equal ones keep their order
    severity, types, explanation = summarise(ranked)
    conn.execute(
        "UPDATE scored_events SET risk = ?, severity = ?, is_anomaly = 1, types = ?, signals = ?, "
        "explanation = ?, amended_by = ? WHERE id = ?",
        [max(int(old_risk), risk), severity, json.dumps(list(types), separators=(",", ":")),
         json.dumps([s.to_dict() for s in ranked], separators=(",", ":")), explanation,
         push_event_id, row_id])
    return signal


def _stored_json(conn: sqlite3.Connection, row_id: int) -> dict:
    """A row as the API shows it (what its push and a GET give); the writer's rows are sqlite3.Row."""
    row = conn.execute(EVENTS_WITH_ACKNOWLEDGEMENTS + "WHERE e.id = ?", [row_id]).fetchone()
    return event_from_row(row)
