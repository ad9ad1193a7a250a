"""The alert machinery of one app, joined to the writer (see server/alerts/__init__.py)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .lifecycle import Alert, AlertBook, Policy, severity_rank
from .live import AlertFeed
from .outbox import KEEP_DELIVERED_S, Outbox, OutboxSender
from .receivers import Receiver, load_receivers
from .silences import SilenceBook

__all__ = ["Alerts", "EXTENSION", "PUSHED_EVENT_ALERTS", "build_alerts"]

EXTENSION = "anomaly_alerts"
#: Delivered notifications are deleted a day after delivery, and resolved alerts, expired
#: silences and audit rows after RETENTION_DAYS: looked for this often.
PRUNE_EVERY_S = 600.0
#: ``resolved_by`` of the alerts of a deleted stream.
STREAM_DELETED = "stream deleted"
#: ``resolved_by`` of the alerts an import opened when the import is undone (a write failed).
IMPORT_UNDONE = "import undone"
#: Alert transitions pushed for one stored batch of events, worst first (each alert's last one):
#: a file's first batch may open thousands, more than a push client's queue holds (256 by
#: default); the rest are a GET away, like the anomalies an ``events`` push leaves out.
PUSHED_EVENT_ALERTS = 50
log = logging.getLogger(__name__)


@dataclass
class Alerts:
    """The alert machinery of one app (kept in ``app.extensions[EXTENSION]``)."""

    book: AlertBook
    silences: SilenceBook
    outbox: Outbox
    sender: OutboxSender
    writer: Any
    feed: AlertFeed
    #: Resolved alerts, expired silences and audit rows are pruned this long after (0: never).
    keep_over_s: float = 0.0
    _seen_enqueued: int = field(default=0)
    _last_prune: float = field(default=0.0)

    # -- the writer's observer protocol -----------------------------------------------------
    def points_stored(self, tx, points: list[dict]) -> list:
        """Advance the alerts of ``points``; return the push events of their transitions."""
        self.silences.ensure_loaded(tx.db.conn, tx.now)
        self.book.points_stored(tx, points)
        return self.feed.events(tx)

    def events_stored(self, tx, schema, anomalies: list[dict]) -> list:
        """Advance the alerts of a stored batch of ``schema``'s events; return their push events.

        One alert per (schema, entity, type), the entity being the one the type concerns
        (``schema.alert_subjects``, server/alerts/subjects.py).
        """
        from .subjects import group_anomalies

        subjects = getattr(schema, "alert_subjects", None)
        if not anomalies or not subjects:
            return []
        self.silences.ensure_loaded(tx.db.conn, tx.now)
        groups = group_anomalies(schema.name, subjects, anomalies)
        self.book.subjects_anomalous(tx, groups)
        # Each alert's last transition (a new alert that fires at once is announced firing).
        last = {id(alert): (alert, transition) for alert, transition in self.book.changes}
        worst = sorted(last.values(), key=lambda c: (-severity_rank(c[0].severity), -c[0].peak_score,
                                                     c[0].id))[:PUSHED_EVENT_ALERTS]
        return self.feed.events(tx, sorted(worst, key=lambda c: c[0].id))

    def import_undone(self, tx, origin: str) -> list:
        """An import's events are being deleted (in ``tx``): the open alerts it opened end,
        audited and announced (alerts it only extended keep their earlier events)."""
        from .actions import audit

        rows = tx.db.conn.execute("SELECT schema, id FROM scored_events WHERE origin = ? AND is_anomaly = 1",
                                  [origin]).fetchall()
        opened = {(schema, row_id) for schema, row_id in rows}
        if not opened:
            return []
        ended = self.book.resolve_matching(
            tx, lambda a: a.entity is not None and (a.stream, a.first_point_id) in opened, IMPORT_UNDONE)
        for alert in ended:
            audit(tx, {"name": "server"}, "resolve", alert_id=alert.id,
                  detail={"reason": IMPORT_UNDONE, "origin": origin})
        return self.feed.events(tx)

    def stream_deleted(self, tx, stream: str) -> list:
        """A stream is being deleted (in ``tx``): its open alerts end, audited, announced."""
        from .actions import audit

        for alert in self.book.resolve_stream(tx, stream, STREAM_DELETED):
            audit(tx, {"name": "server"}, "resolve", alert_id=alert.id,
                  detail={"reason": STREAM_DELETED})
        return self.feed.events(tx)

    def rollback(self) -> None:
        self.book.rollback()
        self.silences.rollback()

    def committed(self, _events=None) -> None:
        """After a commit: wake the sender when notifications were queued."""
        if self.outbox.enqueued != self._seen_enqueued:
            self._seen_enqueued = self.outbox.enqueued
            self.sender.wake()

    # -- jobs -------------------------------------------------------------------------------
    def sweep(self) -> int:
        """The clock's part of the lifecycle (a periodic job); a no-op without open alerts."""
        from .actions import Sweep

        now = time.time()
        prune_due = now - self._last_prune >= PRUNE_EVERY_S
        if not (self.book.open_alerts() or self.book.stale or prune_due):
            return 0
        if prune_due:
            self._last_prune = now
        job = Sweep(self.feed, KEEP_DELIVERED_S, self.keep_over_s) if prune_due else Sweep(self.feed)
        changed = self.writer.write(job, timeout=30.0)
        self.committed()
        return changed

    def stop(self) -> None:
        self.sender.stop()

    @property
    def receivers(self) -> list[Receiver]:
        return list(self.outbox.receivers.values())


def build_alerts(settings: dict, writer, open_reader: Callable) -> Alerts:
    """The alert machinery from the settings; attached to ``writer`` (not yet sending)."""
    from ..settings import SettingsError, resolve_path
    from ..validation import InvalidRequest

    path = settings["ALERT_RECEIVERS"]
    try:
        receivers = load_receivers(resolve_path(path) if path else None,
                                   settings["ALERT_RECEIVER_TIMEOUT"])
    except (OSError, ValueError, InvalidRequest) as exc:
        raise SettingsError(f"ANOMALY_ALERT_RECEIVERS={path!r}: {exc}") from None
    policy = Policy(for_s=settings["ALERT_FOR"], keep_firing_for_s=settings["ALERT_KEEP_FIRING_FOR"],
                    repeat_interval_s=settings["ALERT_REPEAT_INTERVAL"])
    silences = SilenceBook()
    outbox = Outbox(receivers)
    book = AlertBook(policy, notify=outbox.enqueue,
                     may_notify=lambda alert, now: not silences.silencing(alert.labels(), now))
    external = settings["EXTERNAL_URL"] or "http://127.0.0.1:5001"
    sender = OutboxSender(outbox, writer, open_reader, external,
                          poll_s=settings["OUTBOX_POLL_INTERVAL"],
                          base_s=settings["OUTBOX_RETRY_BASE"], max_s=settings["OUTBOX_RETRY_MAX"])
    alerts = Alerts(book, silences, outbox, sender, writer, AlertFeed(book, silences),
                    keep_over_s=settings["RETENTION_DAYS"] * 86400.0)
    writer.observers.append(alerts)
    if receivers:
        log.info("alerts: %d receiver(s): %s", len(receivers),
                 ", ".join(f"{r.name} ({r.kind})" for r in receivers))
    return alerts
