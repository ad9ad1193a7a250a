"""The long-lived objects of one app (engine monitor, writer, hub, jobs), kept in ``app.extensions``."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import current_app

from .hub import Hub
from .monitor import Monitor
from .scheduler import BackgroundJobs
from .storage import Reader, open_reader
from .writer import Writer
from .writes import ProbeJob

__all__ = ["EXTENSION", "Services", "services"]

EXTENSION = "anomaly_server"
log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: dict[str, Any]
    db_path: Path
    log_path: Path
    hub: Hub
    writer: Writer
    monitor: Monitor
    jobs: BackgroundJobs
    started_at: float = field(default_factory=time.time)
    stopped: bool = False
    snapshots: Any = None  # server.snapshots.Snapshots
    ingest: Any = None  # server.pipeline.ingest.Ingest: entity-keyed events
    sources: Any = None  # server.sources.supervisor.Supervisor: live event sources
    alerts: Any = None  # server.alerts.service.Alerts
    startup: Any = None  # server.startup.Startup: the engine's restore, perhaps still in progress

    def reader(self) -> Reader:
        """A fresh read-only connection (close it when done)."""
        return open_reader(self.db_path)

    def scheduler_healthy(self) -> bool:
        """The jobs run in this process and the last tick is recent."""
        if not self.jobs.running:
            return False
        interval = self.settings["TICK_INTERVAL"]
        last = self.monitor.last_tick_at or self.jobs.started_at or self.started_at
        # A tick may be late by a few intervals under load; ten means it is stuck.
        return time.time() - last < max(10 * interval, 10.0)

    def database_writable(self, timeout: float = 2.0) -> bool:
        """A tiny write through the writer commits within ``timeout`` seconds."""
        try:
            self.writer.write(ProbeJob(), timeout)
            return True
        except Exception as exc:
            log.error("health: database write probe failed: %s", exc)
            return False

    def end_push_clients(self) -> None:
        """On SIGTERM, before gunicorn waits for the open connections: end the push streams.

        SSE and WebSocket clients never hang up by themselves; a worker that waited for
        them would be killed at gunicorn's graceful timeout, before its final snapshot.
        """
        self.hub.end_all("server shutting down")

    def shutdown(self) -> None:
        """Stop the jobs, cut the push clients, commit what is queued and close."""
        if self.stopped:
            return
        self.stopped = True
        restored = self.startup is None or self.startup.ready
        if self.startup is not None:
            self.startup.stop()
        # Only the process that ticked owns the state on disk (a second server must not overwrite
        # it), and only once its engine is restored: a half-restored one would replace a good snapshot.
        owner = restored and (self.jobs.lock.held or not self.settings["SCHEDULER"])
        self.jobs.stop()
        if self.sources is not None:
            self.sources.stop()  # drained events are stored before the writer stops
        self.monitor.quiesce()  # a tick still scoring finishes and queues its write first
        if self.snapshots is not None:
            if owner:
                try:
                    self.snapshots.save(closing=True)
                except Exception:
                    log.exception("the snapshot at shutdown failed; the next start replays from the last one")
            self.snapshots.close()
        self.hub.close_all()
        if self.alerts is not None:
            self.alerts.stop()  # before the writer: it records deliveries through it
        self.writer.stop()
        self.monitor.close()
        if self.ingest is not None:
            self.ingest.close()
        log.info("server stopped")


def services() -> Services:
    """The current app's services."""
    return current_app.extensions[EXTENSION]
