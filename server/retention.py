"""Retention: what the RETENTION_* settings no longer keep is deleted, in one write job, and then
the revocations of dashboard sessions that can no longer be valid (server/sessions.py)."""
from __future__ import annotations

import logging
from typing import Any, Mapping

from .sessions import ForgetRevocationsJob
from .writer import Writer
from .writes import PruneJob

__all__ = ["prune_points"]

log = logging.getLogger(__name__)


def prune_points(writer: Writer, settings: Mapping[str, Any]) -> dict[str, int]:
    """Delete the points, anomalies and push events past retention, and the expired session
    revocations; return the counts deleted by table."""
    deleted = writer.write(
        PruneJob(settings["RETENTION_POINTS"], settings["RETENTION_EVENTS"],
                 settings["RETENTION_DAYS"] * 86400.0),
        settings["WRITE_TIMEOUT"])
    deleted["revoked_sessions"] = writer.write(ForgetRevocationsJob(), settings["WRITE_TIMEOUT"])
    if any(deleted.values()):
        log.info("retention pruned %s", deleted)
    return deleted
