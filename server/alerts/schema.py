"""The alert tables (SQLite migration 7): alerts, silences, the audit log and the outbox.

``alerts``        one row per incident of a (stream, entity, type): state pending/firing/resolved,
                  its anomalous points' count, peak severity and score, who acknowledged or
                  resolved it, when it was last notified
``silences``      matchers (stream, entity, type, severity) with a start and an expiry
``alert_audit``   every action taken on an alert, a silence or an event anomaly: who, when, what
``outbox``        one row per notification to one receiver, written in the same transaction
                  as the alert change that causes it, deleted some time after its delivery
"""
from __future__ import annotations

import sqlite_utils

__all__ = ["migration_alerts"]


def migration_alerts(db: sqlite_utils.Database) -> None:
    db["alerts"].create({
        "id": int, "fingerprint": str, "stream": str, "entity": str, "type": str, "state": str,
        "active": int, "severity": str, "peak_score": float, "points": int,
        "first_point_id": int, "last_point_id": int, "started_at": float, "fired_at": float,
        "last_anomalous_at": float, "resolved_at": float, "resolved_by": str,
        "acknowledged_at": float, "acknowledged_by": str, "ack_note": str,
        "notified_at": float, "summary": str,
    }, pk="id", not_null={"fingerprint", "stream", "type", "state", "started_at"})
    db["alerts"].create_index(["state"])
    db["alerts"].create_index(["stream", "id"])
    db["alerts"].create_index(["started_at"])
    db["silences"].create({"id": int, "matchers": str, "starts_at": float, "ends_at": float,
                           "created_by": str, "comment": str, "created_at": float,
                           "expired_at": float},
                          pk="id", not_null={"matchers", "starts_at", "ends_at", "created_at"})
    db["alert_audit"].create({"id": int, "at": float, "actor": str, "address": str,
                              "token": str, "action": str, "alert_id": int, "silence_id": int,
                              "detail": str}, pk="id", not_null={"at", "action"})
    db["alert_audit"].create_index(["alert_id"])
    db["outbox"].create({"id": int, "receiver": str, "alert_id": int, "status": str,
                         "alert": str, "created_at": float, "attempts": int,
                         "next_attempt_at": float, "delivered_at": float, "last_error": str},
                        pk="id", not_null={"receiver", "alert_id", "status", "alert", "created_at"})
    db.execute("CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL")


def migration_alert_events(db: sqlite_utils.Database) -> None:
    """Migration 9: alert transitions join the push-event sequence (replayed after Last-Event-ID).

    An ``alert`` event row names its alert and the transition (pending, firing,
    acknowledged, silenced, unsilenced, resolved); replay rebuilds the event from the
    alert's row.
    """
    db["events"].add_column("alert_id", int)
    db["events"].add_column("transition", str)
