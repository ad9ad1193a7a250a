"""What people do to alerts and silences, each a write job that also writes its audit row.

Every job runs on the writer thread, so it sees and changes the same open
alerts as the lifecycle, in the same order as the points; each publishes the
transitions it causes through the feed (server/alerts/live.py).
"""
from __future__ import annotations

import json
from typing import Any

from ..row_ids import keep_next_row_id, next_row_id
from ..validation import Conflict, NotFound
from ..writer import Transaction, WriteJob
from .live import AlertFeed
from .silences import Silence

__all__ = ["Acknowledge", "CreateSilence", "ExpireSilence", "NotFound", "Resolve", "Sweep", "audit"]


def audit(tx: Transaction, actor: dict, action: str, alert_id: int | None = None,
          silence_id: int | None = None, detail: dict | None = None) -> None:
    """One row of the audit log: who (name, address, token fingerprint), when, what."""
    tx.db.conn.execute(
        "INSERT INTO alert_audit (at, actor, address, token, action, alert_id, silence_id, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [tx.now, actor.get("name"), actor.get("address"), actor.get("token"), action, alert_id,
         silence_id, json.dumps(detail or {}, separators=(",", ":"))])


class _OpenAlertAction(WriteJob):
    """An action of a person on one open alert, recorded in the audit log under ``action``."""

    action = ""
    #: The 409 message for an alert that is already resolved.
    resolved_message = ""

    def __init__(self, feed: AlertFeed, alert_id: int, actor: dict, note: str | None):
        super().__init__()
        self.feed, self.book = feed, feed.book
        self.alert_id, self.actor, self.note = alert_id, actor, note

    def apply(self, tx: Transaction) -> dict[str, Any]:
        alert = self.book.load(tx.db.conn, self.alert_id)
        if alert is None:
            raise NotFound(self.alert_id)
        if not alert.is_open:
            raise Conflict(self.resolved_message.format(id=self.alert_id))
        self._act(tx, alert)
        audit(tx, self.actor, self.action, alert_id=alert.id, detail={"note": self.note})
        self.events = self.feed.events(tx)
        return alert.to_dict()

    def _act(self, tx: Transaction, alert) -> None:
        raise NotImplementedError


class Acknowledge(_OpenAlertAction):
    """Acknowledge an open alert: who, when, a note; it is not notified again while open."""

    action = "acknowledge"
    resolved_message = "alert {id} is resolved; only an open alert can be acknowledged"

    def _act(self, tx: Transaction, alert) -> None:
        self.book.acknowledge(tx, alert, self.actor["name"], self.note)


class Resolve(_OpenAlertAction):
    """Resolve an open alert by hand (its receivers hear it end if they heard it fire)."""

    action = "resolve"
    resolved_message = "alert {id} is already resolved"

    def _act(self, tx: Transaction, alert) -> None:
        self.book.resolve_by_hand(tx, alert, self.actor["name"])


class CreateSilence(WriteJob):
    """Create a silence; the open alerts it covers from now on are announced as ``silenced``."""

    def __init__(self, feed: AlertFeed, matchers: dict, starts_at: float | None,
                 ends_at: float, actor: dict, comment: str | None):
        super().__init__()
        self.feed, self.silences = feed, feed.silences
        self.matchers, self.actor, self.comment = matchers, actor, comment
        self.starts_at, self.ends_at = starts_at, ends_at

    def apply(self, tx: Transaction) -> dict[str, Any]:
        self.silences.ensure_loaded(tx.db.conn, tx.now)
        starts = tx.now if self.starts_at is None else self.starts_at
        silence_id = next_row_id(tx.db.conn, "silences")
        tx.db.conn.execute(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [silence_id, json.dumps(self.matchers), starts, self.ends_at, self.actor["name"],
             self.comment, tx.now])
        silence = Silence(silence_id, self.matchers, starts, self.ends_at, self.actor["name"],
                          self.comment, tx.now)
        self.silences.put(silence)
        audit(tx, self.actor, "silence", silence_id=silence.id,
              detail={"matchers": self.matchers, "starts_at": starts, "ends_at": self.ends_at,
                      "comment": self.comment})
        if silence.active_at(tx.now):
            self.events = self.feed.silence_changed(tx, silence, "silenced")
        return silence.to_dict(tx.now)


class ExpireSilence(WriteJob):
    """End a silence now (it stays listed, expired)."""

    def __init__(self, feed: AlertFeed, silence_id: int, actor: dict):
        super().__init__()
        self.feed, self.silences = feed, feed.silences
        self.silence_id, self.actor = silence_id, actor

    def apply(self, tx: Transaction) -> dict[str, Any]:
        self.silences.ensure_loaded(tx.db.conn, tx.now)
        row = tx.db.conn.execute("SELECT * FROM silences WHERE id = ?", [self.silence_id]).fetchone()
        if row is None:
            raise NotFound(self.silence_id)
        silence = Silence.from_row(row)
        if silence.state(tx.now) == "expired":
            raise Conflict(f"silence {self.silence_id} has already expired")
        was_active = silence.active_at(tx.now)
        silence.expired_at = tx.now
        tx.db.conn.execute("UPDATE silences SET expired_at = ? WHERE id = ?", [tx.now, silence.id])
        self.silences.put(silence)
        audit(tx, self.actor, "expire_silence", silence_id=silence.id)
        if was_active:
            self.events = self.feed.silence_changed(tx, silence, "unsilenced")
        return silence.to_dict(tx.now)


class Sweep(WriteJob):
    """The clock's part of the lifecycle; when a prune is due, retention of what is over.

    ``keep_delivered_s``: delivered outbox rows older than that go.  ``keep_over_s``
    (RETENTION_DAYS; 0 keeps everything): resolved alerts, expired silences and audit rows
    older than that go.  Open alerts and silences in force are never pruned.
    """

    def __init__(self, feed: AlertFeed, keep_delivered_s: float | None = None,
                 keep_over_s: float | None = None):
        super().__init__()
        self.feed, self.keep_delivered_s, self.keep_over_s = feed, keep_delivered_s, keep_over_s

    def apply(self, tx: Transaction) -> int:
        changed = self.feed.book.sweep(tx)
        self.events = self.feed.events(tx)
        conn = tx.db.conn
        if self.keep_delivered_s is not None:
            conn.execute("DELETE FROM outbox WHERE delivered_at < ?", [tx.now - self.keep_delivered_s])
        if self.keep_over_s:
            cutoff = tx.now - self.keep_over_s
            for table in ("alerts", "silences"):  # an old id must never name a new alert or silence
                keep_next_row_id(conn, table)
            conn.execute("DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < ?", [cutoff])
            conn.execute("DELETE FROM silences WHERE coalesce(expired_at, ends_at) < ?", [cutoff])
            conn.execute("DELETE FROM alert_audit WHERE at < ?", [cutoff])
        return changed
