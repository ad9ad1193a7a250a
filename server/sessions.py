"""The dashboard's login sessions: signed cookies that expire, and a logout that ends one for good.

``POST /api/login`` issues a session of its own: a random id and the time it was issued,
signed with an HMAC-SHA256 keyed by a key derived from ``API_TOKEN``.  The cookie value is::

    <id>.<issued>.<mac>      32 hex digits . epoch seconds . 64 hex digits

A cookie authenticates while its MAC matches (compared in constant time), it is younger than
``SESSION_HOURS`` (the setting as it is now, so shortening it shortens every session), and its
id is not in ``revoked_sessions``.  Changing the token changes the key, which ends every session.

``POST /api/logout`` revokes the session its cookie names: a row in ``revoked_sessions`` (SQLite
migration 13), written through the one writer, so every worker and every later run refuses that
cookie.  A row is kept until no lifetime the setting allows could make its cookie valid again
(:func:`forgettable_at`; raising ``SESSION_HOURS`` must not revive a cookie whose revocation was
already forgotten), then retention deletes it (:class:`ForgetRevocationsJob`).

Checking a cookie costs its HMAC and one primary-key lookup (about 20 microseconds) on a
read-only connection the process keeps open (:class:`Revocations`).  Nothing is cached: a
revocation committed by another worker is refused by this one on the next request.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from .settings import SETTINGS_BY_NAME
from .storage import Reader, open_reader
from .writer import Transaction, WriteJob

__all__ = ["CLOCK_SKEW_S", "ForgetRevocationsJob", "Revocations", "RevokeSessionJob", "Session",
           "SessionSigner", "forgettable_at", "migration_revoked_sessions"]

#: A session issued this many seconds "in the future" still counts (clocks of two workers, a
#: clock stepped back a little); one issued later than that is refused.
CLOCK_SKEW_S = 60
#: The longest lifetime SESSION_HOURS allows, in seconds: how long a revocation must be kept.
LONGEST_LIFETIME_S = SETTINGS_BY_NAME["SESSION_HOURS"].maximum * 3600
_KEY_PURPOSE = b"anomaly dashboard session key"
_COOKIE_SHAPE = re.compile(r"([0-9a-f]{32})\.([0-9]{1,12})\.([0-9a-f]{64})")


@dataclass(frozen=True)
class Session:
    """One login: its random id and when it was issued (epoch seconds)."""

    id: str
    issued: int


def forgettable_at(session: Session) -> float:
    """When a revocation of ``session`` may be deleted: past the longest lifetime allowed."""
    return session.issued + LONGEST_LIFETIME_S


class SessionSigner:
    """Issues and checks the session cookies of one token (revocation is checked elsewhere)."""

    def __init__(self, token: str, lifetime_s: float):
        if not token:
            raise ValueError("sessions need a token to be signed with")
        # A key of its own, so a MAC made for sessions is never one the token makes elsewhere.
        self._key = hmac.new(token.encode(), _KEY_PURPOSE, hashlib.sha256).digest()
        self.lifetime_s = lifetime_s

    def issue(self, now: float) -> str:
        """A new session's cookie value."""
        session = Session(secrets.token_hex(16), int(now))
        return f"{session.id}.{session.issued}.{self._mac(session)}"

    def verify(self, cookie: str, now: float) -> Session | None:
        """The session ``cookie`` names if it is well formed, signed with this token and within
        its lifetime; None for anything else (garbage, forged, another token's, expired)."""
        match = _COOKIE_SHAPE.fullmatch(cookie)
        if match is None:
            return None
        session = Session(match[1], int(match[2]))
        if not hmac.compare_digest(match[3].encode(), self._mac(session).encode()):
            return None
        age = now - session.issued
        return session if -CLOCK_SKEW_S <= age < self.lifetime_s else None

    def _mac(self, session: Session) -> str:
        return hmac.new(self._key, f"{session.id}.{session.issued}".encode(),
                        hashlib.sha256).hexdigest()


class Revocations:
    """Whether a session was revoked: one primary-key lookup on a read-only connection.

    One connection per process, opened at the first look, used under a lock (request threads
    or greenlets share it).  It runs no transaction of its own between lookups, so each lookup
    sees every revocation committed so far, by this worker or another.
    """

    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)
        self._reader: Reader | None = None
        self._lock = threading.Lock()

    def is_revoked(self, session_id: str) -> bool:
        with self._lock:
            if self._reader is None:
                self._reader = open_reader(self.db_path)
            # fetchall steps the statement to its end: no read transaction is left open.
            rows = self._reader.conn.execute("SELECT 1 FROM revoked_sessions WHERE id = ?",
                                             [session_id]).fetchall()
        return bool(rows)

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None


class RevokeSessionJob(WriteJob):
    """Record that ``session`` ended (logout); revoking it twice is revoking it once."""

    def __init__(self, session: Session):
        super().__init__()
        self.session = session

    def apply(self, tx: Transaction) -> None:
        tx.db.conn.execute("INSERT OR IGNORE INTO revoked_sessions (id, forget_at) VALUES (?, ?)",
                           [self.session.id, forgettable_at(self.session)])


class ForgetRevocationsJob(WriteJob):
    """Delete the revocations whose sessions can no longer be valid; the result is how many."""

    def __init__(self, now: float | None = None):
        super().__init__()
        self.now = now

    def apply(self, tx: Transaction) -> int:
        now = tx.now if self.now is None else self.now
        return tx.db.conn.execute("DELETE FROM revoked_sessions WHERE forget_at < ?", [now]).rowcount


def migration_revoked_sessions(db: sqlite_utils.Database) -> None:
    """Migration 13: the sessions ended by a logout, each until it may be forgotten."""
    db["revoked_sessions"].create({"id": str, "forget_at": float}, pk="id",
                                  not_null={"forget_at"})
    db["revoked_sessions"].create_index(["forget_at"])
