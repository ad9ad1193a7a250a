"""The typed event: one definition of an event and of a scored event, from which the rest derives.

An event is one record of a domain (an EV charging session, a meter reading,
an invoice): the schema's id, its entities, its time and its own fields.  A
scored event adds what the pipeline found: the anomaly types, a risk score
0-100, a severity on the engine's scale and an explanation.

Each dataclass field carries its storage type and its JSON schema as field
metadata (:func:`attribute`), so that the SQLite columns
(:func:`sqlite_columns`), the API's JSON (:func:`to_json`, :func:`from_row`)
and the OpenAPI schema (:func:`json_schema`) are all read from this one
place rather than repeated.

>>> event = ScoredEvent(schema="ev_charging", event_id="s1", timestamp=0.0,
...                     entities={"user_id": "u1"}, fields={"energy": 12.5}, risk=3,
...                     severity=None, is_anomaly=False, types=(), explanation="ordinary")
>>> to_json(event)["timestamp_iso"], sqlite_columns(ScoredEvent)["types"]
('1970-01-01T00:00:00Z', <class 'str'>)
>>> from_row(ScoredEvent, to_row(event)) == event
True
"""
from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Mapping

from detectors.engine import SEVERITIES

__all__ = ["Event", "EventBatch", "ORDINARY", "ScoredEvent", "Signal", "attribute", "summarise", "from_row", "iso_time", "json_schema",
           "sqlite_columns", "to_json", "to_row"]

#: Storage kinds: the Python type sqlite-utils makes a column of, and how values are encoded.
_STORED = {"text": str, "integer": int, "real": float, "json": str}


def attribute(*, stored: str, schema: Mapping[str, Any], doc: str, default: Any = MISSING) -> Any:
    """A dataclass field with its storage kind (text, integer, real, json) and JSON schema."""
    if stored not in _STORED:
        raise ValueError(f"stored must be one of {sorted(_STORED)}, not {stored!r}")
    meta = {"stored": stored, "schema": dict(schema), "doc": doc}
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


#: Epoch seconds a stored time may take: years 1 to 9999, what an ISO-8601 date can name and
#: :func:`iso_time` can format.  A time outside is refused where it comes in, not stored to fail reads.
EARLIEST_TIME, LATEST_TIME = -62135596800.0, 253402300799.0
#: The longest id of an entity (a user's, a charger's) an event may carry.  An upload refuses a
#: longer one, and /api/flags and the event filters take up to it: every stored entity can be
#: flagged and looked up.
MAX_ENTITY_ID_LENGTH = 256


def iso_time(timestamp: float) -> str:
    """Epoch seconds as an ISO-8601 UTC date-time (seconds, or milliseconds when fractional).

    >>> iso_time(1767225600.0), iso_time(1767225600.25)
    ('2026-01-01T00:00:00Z', '2026-01-01T00:00:00.250Z')
    """
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


_SCALAR = {"type": ["string", "number", "integer", "boolean", "null"]}
#: The explanation of an event that nothing flagged.
ORDINARY = "no rule matched and every feature is within its baselines"


@dataclass(frozen=True)
class Event:
    """One record of a domain, as every layer passes it."""

    schema: str = attribute(stored="text", schema={"type": "string"},
                            doc="Name of the schema (domain) the event follows, e.g. ev_charging.")
    event_id: str = attribute(stored="text", schema={"type": "string"},
                              doc="The event's own id (the schema's id field, e.g. session_id).")
    timestamp: float = attribute(stored="real", schema={"type": "number"},
                                 doc="When the event happened, epoch seconds (UTC).")
    entities: dict = attribute(stored="json", schema={
        "type": "object", "additionalProperties": {"type": "string"}},
        doc="The entities the event belongs to, e.g. {user_id: ..., charger_id: ...}.")
    fields: dict = attribute(stored="json", schema={
        "type": "object", "additionalProperties": _SCALAR},
        doc="Every field of the event under its schema name (ids, measures, derived features).")


@dataclass(frozen=True)
class Signal:
    """One piece of evidence: a rule that matched or a learned baseline the event left."""

    type: str
    origin: str  # "rule" or "baseline"
    reason: str
    severity: str

    def to_dict(self) -> dict:
        return {"type": self.type, "origin": self.origin, "reason": self.reason,
                "severity": self.severity}


def summarise(ranked) -> tuple[str | None, tuple[str, ...], str]:
    """What an event's signals, ranked, make of it: its severity (the worst; None without
    signals), its types (in rank order, each once) and its explanation (one clause a signal)."""
    worst = max((SEVERITIES.index(s.severity) for s in ranked), default=None)
    explanation = "; ".join(f"{s.type} ({s.origin}, {s.severity}): {s.reason}" for s in ranked)
    return (None if worst is None else SEVERITIES[worst], tuple(dict.fromkeys(s.type for s in ranked)),
            explanation or ORDINARY)


_SIGNAL_SCHEMA = {"type": "object", "required": ["type", "origin", "reason", "severity"],
                  "properties": {"type": {"type": "string"},
                                 "origin": {"enum": ["rule", "baseline"]},
                                 "reason": {"type": "string"},
                                 "severity": {"enum": list(SEVERITIES)}}}


@dataclass(frozen=True)
class ScoredEvent(Event):
    """An event with what the pipeline found about it."""

    risk: int = attribute(stored="integer", schema={"type": "integer", "minimum": 0, "maximum": 100},
                          doc="Risk 0-100: the strongest evidence, on one scale for rules and baselines.",
                          default=0)
    severity: str | None = attribute(stored="text", schema={"enum": [None, *SEVERITIES]},
                                     doc="Severity on the engine's scale; null when not anomalous.",
                                     default=None)
    is_anomaly: bool = attribute(stored="integer", schema={"type": "boolean"},
                                 doc="Whether any rule or baseline flagged the event.", default=False)
    types: tuple = attribute(stored="json", schema={"type": "array", "items": {"type": "string"}},
                             doc="Anomaly types found, strongest first (e.g. billing_fraud).",
                             default=())
    explanation: str = attribute(stored="text", schema={"type": "string"},
                                 doc="Why the event was (not) flagged, in words.", default=ORDINARY)
    signals: tuple = attribute(stored="json", schema={"type": "array", "items": _SIGNAL_SCHEMA},
                               doc="Each rule or baseline that flagged the event.", default=())
    flagged: bool = attribute(stored="integer", schema={"type": "boolean"},
                              doc="Whether one of the event's entities (e.g. its user) was flagged "
                                  "by an operator when the event arrived.", default=False)
    truth: str | None = attribute(stored="text", schema={"type": ["string", "null"]},
                                  doc="The labelled anomaly type, when the source carries labels "
                                      "(empty for a normal event).", default=None)


def sqlite_columns(cls: type) -> dict[str, type]:
    """``{column: python type}`` for sqlite-utils' ``table.create``, in field order."""
    return {f.name: _STORED[f.metadata["stored"]] for f in fields(cls)}


def json_schema(cls: type) -> dict:
    """The JSON schema of :func:`to_json`'s output for ``cls`` (for OpenAPI)."""
    props = {f.name: {**f.metadata["schema"], "description": f.metadata["doc"]} for f in fields(cls)}
    props["timestamp_iso"] = {"type": "string", "description": "The timestamp as ISO-8601 UTC."}
    return {"type": "object", "required": list(props), "properties": props}


def _plain(value: Any) -> Any:
    """Tuples as lists, Signals as dicts, NaN as None: what JSON (and browsers) accept."""
    if isinstance(value, Signal):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    return value


def to_json(event: Event) -> dict:
    """The API's JSON object of an event (plain types, plus ``timestamp_iso``)."""
    out = {f.name: _plain(getattr(event, f.name)) for f in fields(event)}
    out["timestamp_iso"] = iso_time(event.timestamp)
    return out


def to_row(event: Event, columns: tuple[str, ...] | None = None) -> dict:
    """The event as a row of :func:`sqlite_columns` (JSON text for nested values), or only ``columns`` of it."""
    row = {}
    for f in fields(event):
        if columns is not None and f.name not in columns:
            continue
        value = _plain(getattr(event, f.name))
        if f.metadata["stored"] == "json":
            value = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, bool):
            value = int(value)
        row[f.name] = value
    return row


def from_row(cls: type, row: Mapping[str, Any]) -> Event:
    """Rebuild an event from a row written by :func:`to_row` (extra columns are ignored).

    A NULL in a column whose field has a default stands for that default, so a
    store may leave the defaults of ordinary events unwritten.
    """
    values = {}
    for f in fields(cls):
        value = row[f.name]
        if value is None and (f.default is not MISSING or f.default_factory is not MISSING):
            continue
        if f.metadata["stored"] == "json":
            value = json.loads(value)
            if f.name == "signals":
                value = tuple(Signal(**s) for s in value)
            elif isinstance(value, list):
                value = tuple(value)
        elif f.metadata["schema"].get("type") == "boolean":
            value = bool(value)
        values[f.name] = value
    return cls(**values)


@dataclass
class EventBatch:
    """Events of one schema, typed and column-wise: what a source yields and the scorer takes.

    ``frame`` has one column per schema field (the timestamp as epoch
    seconds); ``first_line`` is the file line of its first event, when it
    came from a file, so errors and results can point back at it.
    """

    schema: Any
    frame: Any
    first_line: int | None = None

    def __len__(self) -> int:
        return len(self.frame)
