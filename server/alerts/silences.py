"""Silences and receiver routes: matchers on an alert's labels (stream, entity, type, severity).

A matcher set is a JSON object of label -> value; an alert matches when every
label named has that value (an empty set matches every alert).  A value may be
a list of values (any of them matches).  ``severity`` also accepts ``">=high"``:
that severity or worse.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Mapping

from ..validation import InvalidRequest
from .lifecycle import SEVERITIES, severity_rank
from .subjects import MAX_ENTITY_LABEL_LENGTH

__all__ = ["LATEST_SILENCE_TIME", "MATCHER_LABELS", "MAX_SILENCE_S", "Silence", "matches", "parse_matchers"]

MATCHER_LABELS = ("stream", "entity", "type", "severity")
MAX_VALUES = 100
#: The longest value of a label: 200 characters, and an event entity's whole ``key=id``.
MAX_VALUE_LENGTH = {"entity": MAX_ENTITY_LABEL_LENGTH}
#: The longest a silence lasts (from its start to its end), however its end is given.
MAX_SILENCE_S = 366 * 86400.0
#: The latest start or end a silence may name, in epoch seconds (about the year 5138).
LATEST_SILENCE_TIME = 1e11


def parse_matchers(raw: Any, where: str = "matchers") -> dict[str, Any]:
    """Check a matcher object (from a request or a receivers file); raise InvalidRequest."""
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} must be an object of label: value")
    unknown = sorted(set(raw) - set(MATCHER_LABELS))
    if unknown:
        raise InvalidRequest(f"{where}: unknown label(s) {', '.join(map(repr, unknown))}; "
                             f"match on {', '.join(MATCHER_LABELS)}")
    checked: dict[str, Any] = {}
    for label, value in raw.items():
        values = value if isinstance(value, list) else [value]
        if not values or len(values) > MAX_VALUES:
            raise InvalidRequest(f"{where}.{label} must be a string or 1 to {MAX_VALUES} strings")
        longest = MAX_VALUE_LENGTH.get(label, 200)
        for v in values:
            if not isinstance(v, str) or not v or len(v) > longest:
                raise InvalidRequest(f"{where}.{label} values must be strings of 1 to {longest} characters")
            if label == "severity" and v.removeprefix(">=") not in SEVERITIES:
                raise InvalidRequest(f"{where}.severity must be one of {', '.join(SEVERITIES)} "
                                     "(or '>=' one of them)")
        checked[label] = value
    return checked


def _value_matches(label: str, wanted: str, actual: str | None) -> bool:
    if label == "severity" and wanted.startswith(">="):
        return severity_rank(actual) >= severity_rank(wanted[2:])
    return actual == wanted


def matches(matchers: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether an alert with ``labels`` fits every matcher."""
    for label, wanted in matchers.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(_value_matches(label, w, labels.get(label)) for w in options):
            return False
    return True


@dataclass
class Silence:
    id: int
    matchers: dict[str, Any]
    starts_at: float
    ends_at: float
    created_by: str | None
    comment: str | None
    created_at: float
    expired_at: float | None = None

    def active_at(self, now: float) -> bool:
        return self.expired_at is None and self.starts_at <= now < self.ends_at

    def state(self, now: float) -> str:
        if self.expired_at is not None or now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def to_dict(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "matchers": self.matchers, "starts_at": self.starts_at,
                "ends_at": self.ends_at, "created_by": self.created_by, "comment": self.comment,
                "created_at": self.created_at, "expired_at": self.expired_at,
                "state": self.state(now)}

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Silence":
        return cls(row["id"], json.loads(row["matchers"]), row["starts_at"], row["ends_at"],
                   row["created_by"], row["comment"], row["created_at"], row["expired_at"])


class SilenceBook:
    """The silences not yet over, kept on the writer thread for the lifecycle's checks."""

    def __init__(self) -> None:
        self._silences: dict[int, Silence] = {}
        self._stale = True

    def rollback(self) -> None:
        self._stale = True

    def ensure_loaded(self, conn: sqlite3.Connection, now: float) -> None:
        if not self._stale:
            return
        rows = conn.execute("SELECT * FROM silences WHERE expired_at IS NULL AND ends_at > ?", [now])
        self._silences = {r["id"]: Silence.from_row(r) for r in rows}
        self._stale = False

    def put(self, silence: Silence) -> None:
        self._silences[silence.id] = silence
        now = silence.created_at
        for sid in [sid for sid, s in self._silences.items() if s.state(now) == "expired"]:
            del self._silences[sid]

    def silencing(self, labels: Mapping[str, str], now: float) -> list[int]:
        """Ids of the silences that cover an alert with ``labels`` at ``now``."""
        return [s.id for s in list(self._silences.values())
                if s.active_at(now) and matches(s.matchers, labels)]
