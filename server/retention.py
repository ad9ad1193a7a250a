"""Retention: what the RETENTION_* settings no longer keep, and the revocations of dashboard sessions
that can no longer be valid (server/sessions.py), are deleted in one write job."""
from __future__ import annotations

import logging
from typing import Any, Mapping

from .sessions import ForgetRevocationsJob
from .writer import Transaction, WriteJob, Writer
from .writes import PruneJob

__all__ = ["prune_points"]

log = logging.getLogger(__name__)


class _RetentionJob(WriteJob):
    """Both deletions in one transaction: one write, and one commit, a retention run."""

    def __init__(self, prune: PruneJob, forget: ForgetRevocationsJob):
        super().__init__()
        self.prune, self.forget = prune, forget

    def apply(self, tx: Transaction) -> dict[str, int]:
        deleted = self.prune.apply(tx)
        deleted["revoked_sessions"] = self.forget.apply(tx)
        return deleted


def prune_points(writer: Writer, settings: Mapping[str, Any]) -> dict[str, int]:
    """Delete the points, anomalies and push events past retention, and the expired session
    revocations; return the counts deleted by table."""
    prune = PruneJob(settings["RETENTION_POINTS"], settings["RETENTION_EVENTS"],
                     settings["RETENTION_DAYS"] * 86400.0)
    deleted = writer.write(_RetentionJob(prune, ForgetRevocationsJob()), settings["WRITE_TIMEOUT"])
    if any(deleted.values()):
        log.info("retention pruned %s", deleted)
    return deleted
