"""Checking what clients send: JSON bodies of /api/submit and /api/configure, query parameters.

Every check raises :class:`InvalidRequest` with a message that names the
offending part (``points[3].values.temp: ...``); the API turns it into a 400.

The bodies of the actions on alerts and anomalies (acknowledge, resolve, silence, feedback)
are checked here too (:func:`object_body`, :func:`optional_text`, :func:`actor_of`,
:func:`check_id`); those read the current request, so they import the request side of the
server when called, which keeps this module importable by it (security, errors, api).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .pipeline.event import EARLIEST_TIME, LATEST_TIME, MAX_ENTITY_ID_LENGTH

__all__ = ["InvalidRequest", "Conflict", "NotFound", "SubmittedPoint", "ConfigureRequest", "MAX_NAME_LENGTH",
           "parse_json", "parse_submit", "parse_configure", "parse_limit", "parse_since",
           "parse_severities", "parse_sources", "check_name", "check_entity_id", "NAME_PATTERN", "MAX_FIELDS", "MAX_WINDOW", "parse_event_id", "MAX_EVENT_ID",
           "MAX_TEXT", "actor_of", "check_id", "object_body", "optional_text"]

MAX_NAME_LENGTH = 64
MAX_FIELDS = 32
# A name: no control characters (Unicode Cc) and at least one character that is not white
# space.  The same pattern is published in /api/openapi.json, so the document and this
# check agree.  "(?![\s\S])" ends the input in ECMA-262, Rust and Python alike ("$" also
# matches before a final newline in Python, and test generators send one).  Lone surrogates
# (JSON escapes such as "\\ud800", not Unicode text, unstorable as UTF-8) are refused apart.
_NAME_CHAR = r"[^\u0000-\u001f\u007f-\u009f]"
_NAME_SOLID = r"[^\s\u0000-\u001f\u007f-\u009f]"
NAME_PATTERN = f"^{_NAME_CHAR}*{_NAME_SOLID}{_NAME_CHAR}*(?![\\s\\S])"
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_NAME_RE = re.compile(NAME_PATTERN)
# Larger integers cannot become a float or an SQLite integer: refused before they get there.
MAX_WINDOW = 2**53
MAX_EVENT_ID = 2**63 - 1
#: Longest free text of an action's body (a note, a comment).
MAX_TEXT = 1000
CONFIGURE_PARAMS = ("threshold", "window", "enabled", "weight")


class InvalidRequest(ValueError):
    """The request is malformed or breaks a rule; the message says which part and why."""


class Conflict(InvalidRequest):
    """The request is well formed but does not fit the server's state (answered 409)."""


class NotFound(LookupError):
    """The request names a row (an alert, a silence, an event) that is not there (answered 404)."""


def is_client_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the client's mistake (a 4xx answer), not a failure of the server.

    An ApiError is recognised by its status (server/errors.py imports this module's users).
    """
    if isinstance(exc, (InvalidRequest, NotFound)):
        return True
    status = getattr(exc, "status", None)
    return isinstance(status, int) and 400 <= status < 500


@dataclass
class SubmittedPoint:
    """One point of a submit call, checked but not yet matched against the stream's fields."""

    index: int
    source: str
    values: dict[str, float] | None
    value: float | None
    timestamp: float | None


@dataclass
class ConfigureRequest:
    source: str
    detector: str | None
    params: dict[str, Any]


def _reject_constant(name: str) -> float:
    raise InvalidRequest(f"malformed JSON: {name} is not a valid JSON number")


def parse_json(body: bytes) -> Any:
    """Decode a request body; NaN and Infinity literals (which Python would accept) are refused."""
    if not body:
        raise InvalidRequest("malformed JSON: the request body is empty")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except InvalidRequest:
        raise
    except RecursionError:
        raise InvalidRequest("malformed JSON: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"malformed JSON: {exc}") from None


def check_name(name: Any, where: str, limit: int = MAX_NAME_LENGTH) -> str:
    """A source or field name: a non-empty string of at most ``limit`` printable characters."""
    if not isinstance(name, str):
        raise InvalidRequest(f"{where} must be a string, got {type(name).__name__}")
    if not name.strip():
        raise InvalidRequest(f"{where} must not be empty")
    if len(name) > limit:
        raise InvalidRequest(f"{where} is {len(name)} characters long; the limit is {limit}")
    if not _NAME_RE.match(name):
        raise InvalidRequest(f"{where} contains control characters")
    if _SURROGATE.search(name):
        raise InvalidRequest(f"{where} contains a lone surrogate (not Unicode text)")
    return name


def check_entity_id(value: Any, where: str) -> str:
    """An entity's id (e.g. a user_id): a name of up to MAX_ENTITY_ID_LENGTH characters, what an
    upload accepts."""
    return check_name(value, where, MAX_ENTITY_ID_LENGTH)


def _brief(value: Any) -> str:
    """A short, safe rendering of a client's value for a message (containers by type only)."""
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "an array"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**40:
        return f"an integer of {len(str(abs(value)))} digits"
    return json.dumps(value)[:40]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"{where} must be a number, got {_brief(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InvalidRequest(f"{where} must be a finite number")
    return number


def _timestamp(value: Any, where: str) -> float:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(f"{where} must be epoch seconds or an ISO-8601 date-time, "
                                 f"got {value[:40]!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    return _number(value, where)


def _point(item: Any, index: int, where: str) -> SubmittedPoint:
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object")
    unknown = sorted(set(item) - {"source", "value", "values", "timestamp"})
    if unknown:
        raise InvalidRequest(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                             "expected source, value or values, and optional timestamp")
    if "source" not in item:
        raise InvalidRequest(f"{where}.source is missing")
    source = check_name(item["source"], f"{where}.source")
    has_value, has_values = "value" in item, "values" in item
    if has_value == has_values:
        raise InvalidRequest(f"{where} needs exactly one of 'value' (a number) or 'values' "
                             "(an object of field: number)")
    value = values = None
    if has_value:
        value = _number(item["value"], f"{where}.value")
    else:
        raw = item["values"]
        if not isinstance(raw, dict) or not raw:
            raise InvalidRequest(f"{where}.values must be a non-empty object of field: number")
        if len(raw) > MAX_FIELDS:
            raise InvalidRequest(f"{where}.values has {len(raw)} fields; the limit is {MAX_FIELDS}")
        values = {check_name(f, f"{where}.values field name"): _number(v, f"{where}.values.{f}")
                  for f, v in raw.items()}
    timestamp = None
    if item.get("timestamp") is not None:
        timestamp = _timestamp(item["timestamp"], f"{where}.timestamp")
        if not EARLIEST_TIME <= timestamp <= LATEST_TIME:
            raise InvalidRequest(f"{where}.timestamp must be epoch seconds of the years 1 to 9999 "
                                 f"(at most {LATEST_TIME:.0f}; milliseconds? divide by 1000), got {timestamp:g}")
    return SubmittedPoint(index, source, values, value, timestamp)


def parse_submit(payload: Any, max_points: int) -> list[SubmittedPoint]:
    """The points of a submit body: one point object, or ``{"points": [...]}``."""
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object")
    if "points" not in payload:
        return [_point(payload, 0, "body")]
    if set(payload) != {"points"}:
        raise InvalidRequest("a batch body holds only 'points'")
    items = payload["points"]
    if not isinstance(items, list) or not items:
        raise InvalidRequest("points must be a non-empty list")
    if len(items) > max_points:
        raise InvalidRequest(f"too many points in one batch: {len(items)}; the limit is {max_points}")
    return [_point(item, i, f"points[{i}]") for i, item in enumerate(items)]


def parse_configure(payload: Any) -> ConfigureRequest:
    """A configure body: source, optional detector, and one or more of threshold/window/enabled/weight."""
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object")
    unknown = sorted(set(payload) - {"source", "detector", *CONFIGURE_PARAMS})
    if unknown:
        raise InvalidRequest(f"unknown key(s) {', '.join(map(repr, unknown))}; expected source, "
                             f"detector, {', '.join(CONFIGURE_PARAMS)}")
    if "source" not in payload:
        raise InvalidRequest("source is missing")
    source = check_name(payload["source"], "source")
    detector = payload.get("detector")
    if "detector" in payload and not isinstance(detector, str):
        raise InvalidRequest("detector must be a string")
    params: dict[str, Any] = {}
    for name in ("threshold", "weight"):
        if name in payload:
            params[name] = _number(payload[name], name)
    if "window" in payload:
        window = payload["window"]
        if isinstance(window, float) and window.is_integer():
            window = int(window)  # JSON Schema's integer: 182.0 is one
        if isinstance(window, bool) or not isinstance(window, int):
            raise InvalidRequest(f"window must be an integer, got {_brief(window)}")
        if abs(window) > MAX_WINDOW:
            raise InvalidRequest(f"window is out of range: {_brief(window)}")
        params["window"] = window
    if "enabled" in payload:
        if not isinstance(payload["enabled"], bool):
            raise InvalidRequest("enabled must be true or false")
        params["enabled"] = payload["enabled"]
    if not params:
        raise InvalidRequest(f"nothing to configure: give one or more of {', '.join(CONFIGURE_PARAMS)}")
    return ConfigureRequest(source, detector, params)


def parse_limit(raw: str | None, default: int, maximum: int, name: str = "limit",
                minimum: int = 1) -> int:
    """A ``limit`` (or ``name``) query parameter: an integer in [minimum, maximum]."""
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer, got {raw[:40]!r}") from None
    if not minimum <= limit <= maximum:
        raise InvalidRequest(f"{name} must be between {minimum} and {maximum}, got {limit}")
    return limit


def parse_since(raw: str | None, name: str = "since") -> float | None:
    """A ``since`` (or ``until``) query parameter: epoch seconds or an ISO-8601 date-time."""
    if raw is None:
        return None
    try:
        return _number(float(raw), name)
    except ValueError:
        return _timestamp(raw, name)


SEVERITY_NAMES = ("low", "medium", "high", "critical")


def parse_severities(raw: str | None) -> list[str] | None:
    """A ``severity=high,critical`` filter (no spaces); None when absent."""
    if raw is None:
        return None
    names = raw.split(",")
    wrong = [n for n in names if n not in SEVERITY_NAMES]
    if wrong:
        raise InvalidRequest(f"severity must be one or more of {', '.join(SEVERITY_NAMES)} "
                             f"(comma-separated), got {wrong[0][:40]!r}")
    return names


def parse_sources(raw: str | None) -> frozenset[str] | None:
    """A ``source=a,b`` filter; None (all) when absent, empty or ``*``."""
    if raw is None or raw.strip() in {"", "*"}:
        return None
    names = [s.strip() for s in raw.split(",") if s.strip()]
    return frozenset(check_name(n, "source") for n in names) or None


def parse_event_id(raw: str | None, name: str = "Last-Event-ID") -> int | None:
    """An event id to resume after: an integer in [0, 2**63 - 1] (SQLite's integer range)."""
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer event id, got {raw[:40]!r}") from None
    if not 0 <= value <= MAX_EVENT_ID:
        raise InvalidRequest(f"{name} must be between 0 and {MAX_EVENT_ID}")
    return value


# -- the bodies of actions (acknowledge, resolve, silence, feedback) --------------------------------
def check_id(value: int, what: str) -> int:
    """``value`` as a row id of ``what``; 404 outside the ids a row can have."""
    from .errors import ApiError

    if value < 1 or value > MAX_EVENT_ID:
        raise ApiError(404, f"no {what} with id {value}")
    return value


def optional_text(body: dict, key: str) -> str | None:
    """The body's ``key`` as bounded text, or None when absent."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise InvalidRequest(f"{key} must be a string of at most {MAX_TEXT} characters")
    return value


def object_body(allowed: set[str]) -> dict:
    """The request's JSON object (empty when no body), with no key outside ``allowed``."""
    from .api import request_body

    raw = request_body()
    body = parse_json(raw) if raw else {}
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown key(s) {', '.join(map(repr, unknown))}; "
                             f"expected {', '.join(sorted(allowed))}")
    return body


def actor_of(body: dict) -> dict:
    """Who acts: the ``by`` name given, else the client's address; with address and token."""
    from .security import client_identity

    identity = client_identity()
    name = check_name(body["by"], "by") if "by" in body else None
    return {"name": name or identity["address"] or "unknown", **identity}
