"""Alert transitions as push events: ``event: alert`` on SSE, ``{"type": "alert"}`` on the WebSocket.

Every transition of an alert -- pending, firing, acknowledged, silenced,
unsilenced, resolved -- becomes one event in the push-event sequence, stored
in the ``events`` table in the transaction that makes the change.  So an alert
event has an id like any other, and a client that resumes after
``Last-Event-ID`` gets the transitions it missed (rebuilt from the alerts'
rows: the transition as it happened, the alert as it stands now).

The event's ``alert`` member is the API's alert object (``/api/incidents``)
with ``silenced_by``, so a page can update its row in place.  A stored batch of
a schema's events pushes at most ``PUSHED_EVENT_ALERTS`` transitions, the worst
first (server/alerts/service.py).
"""
from __future__ import annotations

import sqlite3
from typing import Iterable

from ..events import Event, dumps, jsonable
from .lifecycle import Alert, AlertBook, alert_from_row
from .silences import Silence, SilenceBook, matches
from .subjects import anomalies_path

__all__ = ["AlertFeed", "TRANSITIONS", "active_silences", "alert_event", "alert_object",
           "replay_alert_events"]

TRANSITIONS = ("pending", "firing", "acknowledged", "silenced", "unsilenced", "resolved")

_INSERT = ("INSERT INTO events (id, type, created_ms, alert_id, transition) "
           "VALUES (?, 'alert', ?, ?, ?)")


def alert_object(alert: Alert, silence_ids: list[int]) -> dict:
    """The API's alert object: the alert, its labels, the silences covering it (open only) and,
    for an alert of a schema's events, ``anomalies``: the API path of those events."""
    data = alert.to_dict()
    data["silenced_by"] = list(silence_ids) if alert.is_open else []
    data["anomalies"] = anomalies_path(alert.stream, alert.entity, alert.type)
    return data


def alert_event(event_id: int, transition: str, alert: dict,
                published_ms: int | None = None) -> Event:
    """One ``alert`` push event; it concerns the alert's stream (source filters apply)."""
    head = (f'"type":"alert","id":{event_id},"transition":{dumps(transition)},'
            f'"alert":{dumps(jsonable(alert))}')
    return Event(event_id, "alert", head, sources=[alert["stream"]], published_ms=published_ms)


def active_silences(conn: sqlite3.Connection, now: float) -> list[Silence]:
    """The silences in force at ``now``, read from the database."""
    rows = conn.execute("SELECT * FROM silences WHERE expired_at IS NULL AND starts_at <= ? "
                        "AND ends_at > ?", [now, now]).fetchall()
    return [Silence.from_row(r) for r in rows]


def covering(silences: Iterable[Silence], alert: Alert) -> list[int]:
    labels = alert.labels()
    return [s.id for s in silences if matches(s.matchers, labels)]


class AlertFeed:
    """Turns the book's changes into stored, publishable events (on the writer thread)."""

    def __init__(self, book: AlertBook, silences: SilenceBook):
        self.book = book
        self.silences = silences

    def events(self, tx, changes: list[tuple[Alert, str]] | None = None) -> list[Event]:
        """Store one event row per change (the book's last changes by default); return the events.

        Call inside the transaction that made the changes, after the alerts were saved.
        """
        changes = self.book.changes if changes is None else changes
        if not changes:
            return []
        self.book.changes = []
        self.silences.ensure_loaded(tx.db.conn, tx.now)
        first = tx.allocate("events", len(changes))
        created_ms = int(tx.now * 1000)
        tx.db.conn.executemany(_INSERT, [(first + i, created_ms, alert.id, transition)
                                         for i, (alert, transition) in enumerate(changes)])
        return [alert_event(first + i, transition,
                            alert_object(alert, self.silences.silencing(alert.labels(), tx.now)))
                for i, (alert, transition) in enumerate(changes)]

    def silence_changed(self, tx, silence: Silence, transition: str) -> list[Event]:
        """Events for the open alerts a silence now covers (``silenced``) or no longer does."""
        covered = [a for a in self.book.open_alerts() if matches(silence.matchers, a.labels())]
        return self.events(tx, [(a, transition) for a in sorted(covered, key=lambda a: a.id)])


def replay_alert_events(conn: sqlite3.Connection, rows: list[sqlite3.Row],
                        now: float) -> dict[int, Event]:
    """Stored ``alert`` event rows rebuilt as events, by event id (alerts pruned since: skipped)."""
    ids = sorted({r["alert_id"] for r in rows})
    if not ids:
        return {}
    conn.row_factory = sqlite3.Row
    alerts = {r["id"]: alert_from_row(r) for r in conn.execute(
        f"SELECT * FROM alerts WHERE id IN ({','.join('?' * len(ids))})", ids)}
    silences = active_silences(conn, now)
    events = {}
    for row in rows:
        alert = alerts.get(row["alert_id"])
        if alert is not None:
            events[row["id"]] = alert_event(row["id"], row["transition"],
                                            alert_object(alert, covering(silences, alert)),
                                            published_ms=row["created_ms"])
    return events
