"""The alert machinery of one app, joined to the writer (see server/alerts/__init__.py)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .lifecycle import Alert, AlertBook, Policy
from .live import AlertFeed
from .outbox import KEEP_DELIVERED_S, Outbox, OutboxSender
from .receivers import Receiver, load_receivers
from .silences import SilenceBook

__all__ = ["Alerts", "EXTENSION", "build_alerts"]

EXTENSION = "anomaly_alerts"
#: Delivered notifications are deleted a day after delivery, and resolved alerts, expired
#: silences and audit rows after RETENTION_DAYS: looked for this often.
PRUNE_EVERY_S = 600.0
#: ``resolved_by`` of the alerts of a deleted stream.
STREAM_DELETED = "stream deleted"
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
