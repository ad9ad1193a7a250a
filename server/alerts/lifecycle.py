"""The alert lifecycle: anomalous points become one alert per incident, pending -> firing -> resolved.

An alert belongs to a *subject* -- a stream, or an entity of a stream when the
point names one (``point["entity"]``), or an entity of a schema's events
(``user_id=U0042`` of ``ev_charging``, :meth:`AlertBook.subjects_anomalous`) -- and
an anomaly type (``point["anomaly_types"]``, e.g. ``billing_fraud``; ``"anomaly"``
for the learned detectors).  A point is anomalous when its verdict says ``is_anomaly``
(the point is part of an anomalous episode) or ``alert`` (it opens one): so the
lifecycle works with single flagged points and with episode states alike.

* The first anomalous point opens the alert as **pending**; it becomes
  **firing** once it has been open for ``for_s`` seconds with its subject still
  anomalous (0: at once).  A normal point before that drops it (resolved
  without ever firing, never notified): Prometheus's ``for``.
* A firing alert stays firing until its subject has been normal for
  ``keep_firing_for_s`` seconds; an anomalous point within that time belongs to
  the same incident (against flapping).  Then it is **resolved**.
* Every anomalous point of the incident counts into ``points``; ``severity``
  and ``peak_score`` keep the worst seen.
* An **entity's** alert (events of a schema, server/alerts/subjects.py, or points
  naming an entity) is also quiet once ``keep_firing_for_s`` has passed without an
  anomaly of it: an entity's events are sporadic, and its normal ones are not walked
  one by one (a batch holds 50,000), so silence is what ends its incident.
* ``resolution`` says how an alert ended: ``quiet`` (its subject was normal for
  ``keep_firing_for_s``), ``dropped`` (pending, normal again before ``for_s``: never
  fired), ``by hand``, ``stream deleted``, ``not an anomaly`` (server/feedback.py).

Times are the server's clock when the points are stored (the transaction's
``now``), not the points' own timestamps: a replayed file of last year still
fires now.  The book runs on the writer thread only, inside the transaction
that stores the points, so an alert change commits with the points that cause
it.  Its memory holds open alerts only and is reloaded from the database after
a rolled-back job.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable

from ..row_ids import next_row_id

__all__ = ["Alert", "AlertBook", "BY_HAND", "DROPPED", "Policy", "QUIET", "SEVERITIES", "SubjectAnomalies",
           "alert_from_row", "labels_of", "severity_rank"]

log = logging.getLogger(__name__)

SEVERITIES = ("low", "medium", "high", "critical")
DEFAULT_TYPE = "anomaly"
#: How an alert ended (its ``resolution``; server/alerts/service.py and server/feedback.py add theirs).
QUIET = "quiet"
DROPPED = "dropped"
BY_HAND = "by hand"


_RANKS = {severity: n + 1 for n, severity in enumerate(SEVERITIES)}


def severity_rank(severity: str | None) -> int:
    """0 for none, 1 (low) to 4 (critical)."""
    return _RANKS.get(severity, 0)


@dataclass
class Policy:
    """When an alert fires, stays firing and is notified again."""

    for_s: float = 0.0
    keep_firing_for_s: float = 60.0
    repeat_interval_s: float = 4 * 3600.0


@dataclass
class Alert:
    """One incident of one (stream, entity, type)."""

    id: int | None
    stream: str
    entity: str | None
    type: str
    state: str = "pending"
    active: bool = True  # the subject's last point was anomalous
    severity: str | None = None
    peak_score: float = 0.0
    points: int = 0
    first_point_id: int | None = None
    last_point_id: int | None = None
    started_at: float = 0.0
    fired_at: float | None = None
    last_anomalous_at: float = 0.0
    resolved_at: float | None = None
    resolved_by: str | None = None
    resolution: str | None = None  # how it ended: quiet, dropped, by hand, ... (see the module's doc)
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    ack_note: str | None = None
    notified_at: float | None = None
    summary: str | None = None
    fingerprint: str = field(default="")

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fingerprint_of(self.stream, self.entity, self.type)

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.stream, self.entity, self.type)

    @property
    def is_open(self) -> bool:
        return self.state != "resolved"

    def labels(self) -> dict[str, str]:
        return labels_of(self.stream, self.entity, self.type, self.severity)

    def to_row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in _ROW_FIELDS}
        row["active"] = int(self.active)
        return row

    def to_dict(self) -> dict[str, Any]:
        """The API's alert object."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["labels"] = self.labels()
        return data


@dataclass(frozen=True)
class SubjectAnomalies:
    """The anomalies of one subject (stream, entity, type) in one stored batch of events."""

    stream: str
    entity: str | None
    type: str
    count: int
    severity: str | None
    peak_score: float
    first_id: int
    last_id: int
    summary: str | None = None


_ROW_FIELDS = tuple(f.name for f in fields(Alert))  # the alerts table's columns, in order
_ALERT_FIELDS = set(_ROW_FIELDS)


def alert_from_row(row: sqlite3.Row | dict) -> Alert:
    data = {k: row[k] for k in (row.keys() if hasattr(row, "keys") else row) if k in _ALERT_FIELDS}
    data["active"] = bool(data.get("active"))
    alert = Alert(**data)
    if alert.state == "resolved" and alert.resolution is None:
        alert.resolution = _resolution_of(alert.resolved_by)  # resolved before every end said how
    return alert


def _resolution_of(resolved_by: str | None) -> str:
    if resolved_by is None:
        return DROPPED
    if resolved_by == "auto":
        return QUIET
    return resolved_by if resolved_by == "stream deleted" else BY_HAND


def fingerprint_of(stream: str, entity: str | None, type_: str) -> str:
    """A stable id of the label set (without severity, which grows during an incident)."""
    identity = json.dumps([stream, entity, type_], separators=(",", ":"))
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def labels_of(stream: str, entity: str | None, type_: str, severity: str | None) -> dict[str, str]:
    labels = {"alertname": type_, "stream": stream, "type": type_}
    if entity is not None:
        labels["entity"] = entity
    if severity is not None:
        labels["severity"] = severity
    return labels


def _types_of(point: dict) -> list[str]:
    types = point.get("anomaly_types")
    if isinstance(types, str):
        return [types]
    return list(types) if types else [DEFAULT_TYPE]


#: Called with (transaction, alert, status) for every alert that should be notified; returns
#: how many receivers were given the notification.
Notify = Callable[[Any, Alert, str], int]


class AlertBook:
    """Open alerts by key, advanced by stored points and by the clock; writes its changes.

    Parameters
    ----------
    policy : Policy
    notify : callable
        ``notify(tx, alert, status)`` queues the notifications of a firing or resolved
        alert (server/alerts/outbox.py), in the same transaction.
    may_notify : callable
        ``may_notify(alert, now)``: False while a silence covers the alert.
    """

    def __init__(self, policy: Policy, notify: Notify | None = None,
                 may_notify: Callable[[Alert, float], bool] | None = None):
        self.policy = policy
        self.notify = notify or (lambda tx, alert, status: 0)
        self.may_notify = may_notify or (lambda alert, now: True)
        self._open: dict[tuple, Alert] = {}
        self._by_subject: dict[tuple[str, str | None], set[tuple]] = {}
        self._stale = True
        #: Changes of state since start (for /metrics): (from, to) -> count.
        self.transitions: dict[tuple[str, str], int] = {}
        #: (alert, transition) of the last call that changed alerts, in order: what the push
        #: channels announce (server/alerts/live.py).  Each entry point starts it afresh.
        self.changes: list[tuple[Alert, str]] = []

    # -- state ------------------------------------------------------------------------------
    def rollback(self) -> None:
        """A job that changed alerts was rolled back: reload from the database before the next."""
        self._stale = True
        self.changes = []

    def _ensure_loaded(self, conn: sqlite3.Connection) -> None:
        if not self._stale:
            return
        self._open.clear()
        self._by_subject.clear()
        conn.row_factory = sqlite3.Row
        for row in conn.execute("SELECT * FROM alerts WHERE state != 'resolved'"):
            self._remember(alert_from_row(row))
        self._stale = False

    def _remember(self, alert: Alert) -> None:
        self._open[alert.key] = alert
        self._by_subject.setdefault((alert.stream, alert.entity), set()).add(alert.key)

    def _forget(self, alert: Alert) -> None:
        self._open.pop(alert.key, None)
        keys = self._by_subject.get((alert.stream, alert.entity))
        if keys is not None:
            keys.discard(alert.key)
            if not keys:
                del self._by_subject[(alert.stream, alert.entity)]

    @property
    def stale(self) -> bool:
        return self._stale

    def open_alerts(self) -> list[Alert]:
        return list(self._open.values())

    # -- driven by the writer ----------------------------------------------------------------
    def points_stored(self, tx, points: Iterable[dict]) -> None:
        """Advance the alerts of the subjects of ``points`` (stored in this transaction)."""
        conn = tx.db.conn
        self._ensure_loaded(conn)
        self.changes = []
        now = tx.now
        # Points are applied in order: within one batch a spike and the normal point after it
        # must fire and then resolve, not cancel out.  Saved once each, at the end.
        changed: dict[int, Alert] = {}
        for point in points:
            subject = (point["source"], point.get("entity"))
            if point.get("is_anomaly") or point.get("alert"):
                touched = [self._anomalous(subject, t, point, now) for t in _types_of(point)]
            elif subject in self._by_subject:
                touched = [self._open[key] for key in list(self._by_subject[subject])]
                for alert in touched:
                    alert.active = False
            else:
                continue
            for alert in touched:
                if alert.id is None:
                    self._save(conn, alert)  # its id first: notifications name it
                self._advance(tx, alert, now)
                changed[id(alert)] = alert
        for alert in changed.values():
            self._save(conn, alert)

    def sweep(self, tx) -> int:
        """Apply the clock to open alerts (for, keep_firing_for, repeats); return alerts changed."""
        conn = tx.db.conn
        self._ensure_loaded(conn)
        self.changes = []
        count = 0
        keep = self.policy.keep_firing_for_s
        for alert in list(self._open.values()):
            before = (alert.state, alert.notified_at)
            if alert.entity is not None and tx.now - alert.last_anomalous_at >= keep:
                alert.active = False  # an entity with no anomaly for keep_firing_for is quiet
            self._advance(tx, alert, tx.now)
            if (alert.state, alert.notified_at) != before:
                self._save(conn, alert)
                count += 1
        return count

    def _anomalous(self, subject: tuple, type_: str, point: dict, now: float) -> Alert:
        alert = self._open_alert((*subject, type_), point.get("id"), now)
        self._count(alert, 1, point.get("severity"), point.get("score") or 0.0,
                    point.get("explanation"), point.get("id"), now)
        return alert

    def _open_alert(self, key: tuple, first_id: int | None, now: float) -> Alert:
        """The open alert of ``key``, or a new pending one starting at ``first_id``."""
        alert = self._open.get(key)
        if alert is None:
            alert = Alert(None, *key, started_at=now, first_point_id=first_id)
            self._remember(alert)
            self.changes.append((alert, "pending"))
        return alert

    @staticmethod
    def _count(alert: Alert, count: int, severity: str | None, score: float, summary: str | None,
               last_id: int | None, now: float) -> None:
        alert.active = True
        alert.points += count
        alert.last_anomalous_at = now
        alert.last_point_id = last_id
        if severity_rank(severity) > severity_rank(alert.severity):
            alert.severity = severity
        if score > alert.peak_score:
            alert.peak_score = float(score)
            alert.summary = summary or alert.summary

    def subjects_anomalous(self, tx, groups: Iterable[SubjectAnomalies]) -> list[Alert]:
        """Advance the alerts of one stored batch of events, its anomalies grouped per subject.

        One alert per group; the SQL is one ``executemany`` for the new alerts and one for
        the changed ones, whatever the batch's size.  Returns the alerts touched.
        """
        conn = tx.db.conn
        self._ensure_loaded(conn)
        self.changes = []
        now = tx.now
        touched, new = [], []
        for group in groups:
            alert = self._open_alert((group.stream, group.entity, group.type), group.first_id, now)
            if alert.id is None:
                new.append(alert)
            self._count(alert, group.count, group.severity, group.peak_score, group.summary,
                        group.last_id, now)
            touched.append(alert)
        self._number(conn, new)  # ids first: notifications name them
        for alert in touched:
            self._advance(tx, alert, now)
        self._insert(conn, new)  # as they stand after advancing: one write each
        fresh = {id(alert) for alert in new}
        self._update(conn, [alert for alert in touched if id(alert) not in fresh])
        return touched

    def _advance(self, tx, alert: Alert, now: float) -> None:
        """The clock's part: fire a pending alert, resolve a quiet one, notify when due."""
        policy = self.policy
        if alert.state == "pending":
            if not alert.active:
                self._resolve(tx, alert, now, None, DROPPED)  # never fired: not notified
                return
            if now - alert.started_at >= policy.for_s:
                self._move(alert, "firing")
                alert.fired_at = now
        if alert.state == "firing":
            if not alert.active and now - alert.last_anomalous_at >= policy.keep_firing_for_s:
                self._resolve(tx, alert, now, "auto", QUIET)
                return
            if self._firing_notice_due(alert, now) and self.notify(tx, alert, "firing"):
                alert.notified_at = now  # only once some receiver has it queued

    def _firing_notice_due(self, alert: Alert, now: float) -> bool:
        if alert.acknowledged_at is not None or not self.may_notify(alert, now):
            return False
        if alert.notified_at is None:
            return True
        repeat = self.policy.repeat_interval_s
        return repeat > 0 and now - alert.notified_at >= repeat

    def _resolve(self, tx, alert: Alert, now: float, by: str | None, resolution: str) -> None:
        self._move(alert, "resolved")
        alert.resolved_at = now
        alert.resolved_by = by
        alert.resolution = resolution
        alert.active = False
        self._forget(alert)
        if alert.notified_at is not None:  # receivers heard it fire: they hear it end
            self.notify(tx, alert, "resolved")

    def _move(self, alert: Alert, state: str) -> None:
        self.transitions[(alert.state, state)] = self.transitions.get((alert.state, state), 0) + 1
        alert.state = state
        self.changes.append((alert, state))

    @staticmethod
    def _number(conn: sqlite3.Connection, alerts: list[Alert]) -> None:
        """Give new alerts their row ids before they are inserted (only this thread inserts)."""
        if alerts:
            first = next_row_id(conn, "alerts")
            for n, alert in enumerate(alerts):
                alert.id = first + n

    def _insert(self, conn: sqlite3.Connection, alerts: list[Alert]) -> None:
        """Insert numbered new alerts in one statement."""
        if not alerts:
            return
        rows = [alert.to_row() for alert in alerts]
        columns = list(rows[0])
        conn.executemany(f"INSERT INTO alerts ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                         [[row[c] for c in columns] for row in rows])

    def _update(self, conn: sqlite3.Connection, alerts: list[Alert]) -> None:
        """Write stored alerts as they stand, in one statement."""
        if not alerts:
            return
        columns = [c for c in alerts[0].to_row() if c != "id"]
        conn.executemany(f"UPDATE alerts SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
                         [[row[c] for c in columns] + [row["id"]] for row in (a.to_row() for a in alerts)])

    def _save(self, conn: sqlite3.Connection, alert: Alert) -> None:
        if alert.id is None:
            self._number(conn, [alert])
            self._insert(conn, [alert])
        else:
            self._update(conn, [alert])

    # -- actions (jobs on the writer thread) -------------------------------------------------
    def load(self, conn: sqlite3.Connection, alert_id: int) -> Alert | None:
        """The alert ``alert_id``: the open one in memory, else the stored row."""
        self._ensure_loaded(conn)
        for alert in self._open.values():
            if alert.id == alert_id:
                return alert
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM alerts WHERE id = ?", [alert_id]).fetchone()
        return None if row is None else alert_from_row(row)

    def acknowledge(self, tx, alert: Alert, who: str, note: str | None) -> Alert:
        self.changes = [(alert, "acknowledged")]
        alert.acknowledged_at = tx.now
        alert.acknowledged_by = who
        alert.ack_note = note
        self._save(tx.db.conn, alert)
        return alert

    def resolve_stream(self, tx, stream: str, reason: str) -> list[Alert]:
        """Resolve every open alert of ``stream`` (its entities' too), ``resolved_by`` ``reason``."""
        return self.resolve_matching(tx, lambda alert: alert.stream == stream, reason)

    def resolve_matching(self, tx, wanted: Callable[[Alert], bool], reason: str) -> list[Alert]:
        """Resolve every open alert ``wanted`` says yes to, ``resolved_by`` and resolution ``reason``."""
        self._ensure_loaded(tx.db.conn)
        self.changes = []
        ended = sorted((a for a in self._open.values() if wanted(a)), key=lambda a: a.id)
        for alert in ended:
            self._resolve(tx, alert, tx.now, reason, reason)
            self._save(tx.db.conn, alert)
        return ended

    def resolve_by_hand(self, tx, alert: Alert, who: str, reason: str | None = None) -> Alert:
        """Resolve ``alert`` as ``who``; its resolution is ``reason`` (default: by hand)."""
        self.changes = []
        self._resolve(tx, alert, tx.now, who, reason or BY_HAND)
        self._save(tx.db.conn, alert)
        return alert
