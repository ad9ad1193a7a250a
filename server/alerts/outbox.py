"""The durable outbox: notifications written with the alert change, delivered by a background sender.

**Writing** (:meth:`Outbox.enqueue`, on the writer thread): one row per
receiver whose matchers take the alert, holding a copy of the alert as it was,
in the same transaction as the change.  So a committed alert change has its
notifications on disk, and a kill -9 cannot separate them.

**Sending** (:class:`OutboxSender`, its own thread -- a greenlet under gevent):
it wakes when a batch commits (or every ``poll_s``), reads the rows that are
due, sends each receiver's rows in one message, one receiver per thread, and
marks them delivered through the writer; a failure schedules the next attempt
after ``base_s * 2**attempts`` (at most ``max_s``).  A row is marked only after
its receiver answered, so a crash between the two sends it again:
**at-least-once**; receivers can tell duplicates by ``fingerprint`` and
``startsAt`` (Alertmanager's webhooks have the same property).  Scoring never
waits for a receiver: the engine and the writer only ever insert rows.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from typing import Callable

from ..events import dumps, jsonable
from ..writer import Transaction, WriteJob
from .lifecycle import Alert
from .receivers import DeliveryError, Receiver, send

__all__ = ["Outbox", "OutboxSender", "MarkDelivered", "MarkFailed"]

log = logging.getLogger(__name__)

BATCH_PER_MESSAGE = 100
KEEP_DELIVERED_S = 86400.0


class Outbox:
    """Routing of alert changes to receivers' outbox rows (writer side)."""

    def __init__(self, receivers: list[Receiver]):
        self.receivers = {r.name: r for r in receivers}
        self.enqueued = 0

    def enqueue(self, tx: Transaction, alert: Alert, status: str) -> int:
        labels = alert.labels()
        wanted = [r for r in self.receivers.values() if r.wants(labels, status)]
        if not wanted:
            return 0
        snapshot = dumps(jsonable(alert.to_dict()))
        tx.db.conn.executemany(
            "INSERT INTO outbox (receiver, alert_id, status, alert, created_at, attempts, "
            "next_attempt_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
            [(r.name, alert.id, status, snapshot, tx.now, tx.now) for r in wanted])
        self.enqueued += len(wanted)
        return len(wanted)


class MarkDelivered(WriteJob):
    def __init__(self, ids: list[int]):
        super().__init__()
        self.ids = ids

    def apply(self, tx: Transaction) -> int:
        tx.db.conn.executemany("UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 "
                               "WHERE id = ?", [(tx.now, i) for i in self.ids])
        return len(self.ids)


class MarkFailed(WriteJob):
    def __init__(self, ids: list[int], error: str, base_s: float, max_s: float):
        super().__init__()
        self.ids, self.reason, self.base_s, self.max_s = ids, error, base_s, max_s

    def apply(self, tx: Transaction) -> int:
        # Backoff from each row's own attempt count: base, 2 base, 4 base, ... at most max.
        tx.db.conn.executemany(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
            "next_attempt_at = ? + min(?, ? * (1 << min(attempts, 30))) WHERE id = ?",
            [(self.reason[:500], tx.now, self.max_s, self.base_s, i) for i in self.ids])
        return len(self.ids)


class OutboxSender:
    """The background delivery loop.

    Parameters
    ----------
    outbox : Outbox
    writer : server.writer.Writer
    open_reader : callable
        Returns a fresh read connection (``server.storage.Reader``).
    external_url : str
        Base of the alerts' ``generatorURL``.
    poll_s, base_s, max_s : float
        Poll interval, first retry delay, longest retry delay.
    """

    def __init__(self, outbox: Outbox, writer, open_reader: Callable, external_url: str,
                 poll_s: float = 1.0, base_s: float = 1.0, max_s: float = 300.0):
        self.outbox = outbox
        self.writer = writer
        self.open_reader = open_reader
        self.external_url = external_url.rstrip("/")
        self.poll_s, self.base_s, self.max_s = poll_s, base_s, max_s
        self.delivered = 0
        self.failed = 0
        self.messages = 0
        self.backlog = 0
        self.delivery_seconds: list[float] = []  # drained by /metrics
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "OutboxSender":
        if self.outbox.receivers and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alert-outbox", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self, *_args) -> None:
        """Something was committed: look for due notifications now."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            if not self.writer.owns_database:
                continue  # another server writes (and sends): this one would send twice
            try:
                while self.deliver_due() and not self._stop.is_set():
                    pass  # a full batch: more may be due
            except Exception:
                log.exception("alert outbox: a delivery round failed; retrying at the next one")

    def _due(self, now: float, limit: int) -> list[dict]:
        reader = self.open_reader()
        try:
            rows = reader.conn.execute(
                "SELECT id, receiver, alert_id, status, alert, attempts FROM outbox "
                "WHERE delivered_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT ?",
                [now, limit]).fetchall()
            self.backlog = reader.conn.execute(
                "SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0]
        finally:
            reader.close()
        return [{"id": r["id"], "receiver": r["receiver"], "alert_id": r["alert_id"],
                 "status": r["status"], "alert": json.loads(r["alert"]), "attempts": r["attempts"]}
                for r in rows]

    def deliver_due(self, limit: int = 1000) -> bool:
        """One round: send what is due, one thread per receiver; True when ``limit`` rows were due."""
        due = self._due(time.time(), limit)
        if not due:
            return False
        per_receiver: dict[str, list[dict]] = defaultdict(list)
        for notice in due:
            per_receiver[notice["receiver"]].append(notice)
        threads = [threading.Thread(target=self._deliver, args=(name, notices), daemon=True,
                                    name=f"alert-receiver-{name}")
                   for name, notices in per_receiver.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(due) >= limit

    def _deliver(self, name: str, notices: list[dict]) -> None:
        receiver = self.outbox.receivers.get(name)
        if receiver is None:  # taken out of the configuration: nothing can deliver these
            self._mark(MarkDelivered([n["id"] for n in notices]))
            log.warning("alert outbox: %d notification(s) for receiver %r, which is no longer "
                        "configured, dropped", len(notices), name)
            return
        for start in range(0, len(notices), BATCH_PER_MESSAGE):
            chunk = notices[start:start + BATCH_PER_MESSAGE]
            ids = [n["id"] for n in chunk]
            started = time.perf_counter()
            try:
                send(receiver, chunk, self.external_url)
            except DeliveryError as exc:
                self.failed += len(chunk)
                log.warning("alert outbox: receiver %r failed (%d notification(s), will retry): %s",
                            name, len(chunk), exc)
                self._mark(MarkFailed(ids, str(exc), self.base_s, self.max_s))
                return  # the rest waits for the same backoff
            self.delivery_seconds.append(time.perf_counter() - started)
            del self.delivery_seconds[:-10_000]
            self.messages += 1
            self.delivered += len(chunk)
            self._mark(MarkDelivered(ids))

    def _mark(self, job: WriteJob) -> None:
        try:
            self.writer.write(job, timeout=30.0)
        except Exception as exc:  # delivered again later: at-least-once, never lost
            log.error("alert outbox: could not record a delivery outcome: %s", exc)
