"""HTTP routes of alerts (one per incident), silences, the audit log and receivers.

``/api/alerts`` keeps its old meaning (the 20 newest anomalies, which the
dashboard's toasts read); the lifecycle's alerts are ``/api/incidents``.  The
token, Origin, Host and content-type rules of server/security.py apply to these
routes as to every other under /api.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from ..api import reader
from ..errors import ApiError
from ..exports import parse_format, respond
from ..validation import (MAX_NAME_LENGTH, Conflict, InvalidRequest, actor_of, check_id, check_name, object_body,
                          optional_text, parse_event_id, parse_limit, parse_severities, parse_since)
from .actions import Acknowledge, CreateSilence, ExpireSilence, NotFound, Resolve
from .lifecycle import Alert, alert_from_row
from .service import EXTENSION, Alerts
from .live import active_silences, alert_object, covering
from .subjects import MAX_ENTITY_LABEL_LENGTH
from .silences import LATEST_SILENCE_TIME, MAX_SILENCE_S, Silence, parse_matchers

__all__ = ["ALERT_COLUMNS", "bp"]

bp = Blueprint("alerts", __name__, url_prefix="/api")

STATES = ("pending", "firing", "resolved")
ALERT_COLUMNS = ("id", "state", "stream", "entity", "type", "severity", "peak_score", "points",
                 "started_at", "fired_at", "last_anomalous_at", "resolved_at", "resolved_by",
                 "resolution", "acknowledged_at", "acknowledged_by", "ack_note", "notified_at",
                 "first_point_id", "last_point_id", "fingerprint", "summary", "labels")


def _alerts() -> Alerts:
    return current_app.extensions[EXTENSION]


def _write(job) -> Any:
    from ..services import services
    try:
        result = services().writer.write(job, services().settings["WRITE_TIMEOUT"])
        _alerts().committed()  # a resolve may have queued notifications: send them now
        return result
    except NotFound as exc:
        raise ApiError(404, f"no {'silence' if isinstance(job, ExpireSilence) else 'alert'} "
                            f"with id {exc.args[0]}") from None


def _choices(raw: str | None, allowed: tuple[str, ...]) -> list[str]:
    """A comma-separated ``state=`` filter (no spaces); empty list when absent."""
    if raw is None:
        return []
    names = raw.split(",")
    wrong = [n for n in names if n not in allowed]
    if wrong:
        raise InvalidRequest(f"state must be one or more of {', '.join(allowed)} "
                             f"(comma-separated), got {wrong[0][:40]!r}")
    return names


def _moment(body: dict, key: str) -> float | None:
    """A time in a body, epoch seconds or an ISO-8601 date-time string, as epoch seconds >= 0."""
    if key not in body:
        return None
    value = body[key]
    if isinstance(value, str):
        try:
            if "T" not in value.upper():  # a date-time, not a date alone
                raise ValueError(value)
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(f"{key} must be an ISO-8601 date-time, got {value[:40]!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        value = moment.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise _out_of_range(key)
    return float(value)


def _in_range(value: float | None, key: str) -> float | None:
    """``value`` if no later than LATEST_SILENCE_TIME: the same limit for the epoch and the ISO forms."""
    if value is not None and value > LATEST_SILENCE_TIME:
        raise _out_of_range(key)
    return value


def _out_of_range(key: str) -> InvalidRequest:
    return InvalidRequest(f"{key} must be epoch seconds (0 to {LATEST_SILENCE_TIME:g}) or an ISO-8601 "
                          "date-time of the same range")


# -- alerts -------------------------------------------------------------------------------------
def _alert_query(args) -> tuple[str, list]:
    where, params = [], []
    states = _choices(args.get("state"), STATES)
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        params += states
    for column in ("stream", "entity", "type"):
        if args.get(column) is not None:
            where.append(f"{column} = ?")
            params.append(check_name(args[column], column,
                                     MAX_ENTITY_LABEL_LENGTH if column == "entity" else MAX_NAME_LENGTH))
    severities = parse_severities(args.get("severity"))
    if severities:
        where.append(f"severity IN ({','.join('?' * len(severities))})")
        params += severities
    since, until = parse_since(args.get("since")), parse_since(args.get("until"), "until")
    if since is not None:
        where.append("started_at >= ?")
        params.append(since)
    if until is not None:
        where.append("started_at < ?")
        params.append(until)
    before = parse_event_id(args.get("before"), "before")
    if before is not None:
        where.append("id < ?")
        params.append(before)
    if args.get("acknowledged") is not None:
        flag = args["acknowledged"].lower()
        if flag not in ("true", "false"):
            raise InvalidRequest("acknowledged must be true or false")
        where.append("acknowledged_at IS NOT NULL" if flag == "true" else "acknowledged_at IS NULL")
    return (f"WHERE {' AND '.join(where)}" if where else ""), params


def _active_silences(now: float) -> list[Silence]:
    return active_silences(reader().conn, now)


def _alert_dict(alert: Alert, silences: list[Silence]) -> dict:
    return alert_object(alert, covering(silences, alert))


@bp.get("/incidents")
def list_alerts():
    """Alerts (one per incident), newest first, filtered; JSON, CSV or JSON lines."""
    fmt = parse_format(request.args.get("format"))
    limit = parse_limit(request.args.get("limit"), default=100, maximum=1000)
    clause, params = _alert_query(request.args)
    rows = reader().conn.execute(f"SELECT * FROM alerts {clause} ORDER BY id DESC LIMIT ?",
                                 [*params, limit]).fetchall()
    silences = _active_silences(time.time())
    items = [_alert_dict(alert_from_row(r), silences) for r in rows]

    def counts() -> dict:
        by_state = dict(reader().conn.execute(
            "SELECT state, count(*) FROM alerts WHERE state != 'resolved' GROUP BY state").fetchall())
        return {"open": {s: by_state.get(s, 0) for s in ("pending", "firing")}}

    return respond(items, "alerts", fmt, ALERT_COLUMNS, "alerts", extra=counts)


@bp.get("/incidents/<int:alert_id>")
def get_alert(alert_id: int):
    """One alert with its audit trail."""
    check_id(alert_id, "alert")
    row = reader().conn.execute("SELECT * FROM alerts WHERE id = ?", [alert_id]).fetchone()
    if row is None:
        raise ApiError(404, f"no alert with id {alert_id}")
    return jsonify({"alert": _alert_dict(alert_from_row(row), _active_silences(time.time())),
                    "audit": _audit_rows("alert_id = ?", [alert_id], 100)})


@bp.post("/incidents/<int:alert_id>/acknowledge")
def acknowledge(alert_id: int):
    """Acknowledge an open alert (who, note): it is not notified again."""
    check_id(alert_id, "alert")
    body = object_body({"by", "note"})
    alert = _write(Acknowledge(_alerts().feed, alert_id, actor_of(body), optional_text(body, "note")))
    return jsonify({"alert": alert})


@bp.post("/incidents/<int:alert_id>/resolve")
def resolve(alert_id: int):
    """Resolve an open alert by hand."""
    check_id(alert_id, "alert")
    body = object_body({"by", "note"})
    alert = _write(Resolve(_alerts().feed, alert_id, actor_of(body), optional_text(body, "note")))
    return jsonify({"alert": alert})


# -- silences -----------------------------------------------------------------------------------
@bp.get("/silences")
def list_silences():
    """Silences, newest first; ``?state=active,pending,expired``."""
    wanted = _choices(request.args.get("state"), ("active", "pending", "expired"))
    limit = parse_limit(request.args.get("limit"), default=100, maximum=1000)
    now = time.time()
    rows = reader().conn.execute("SELECT * FROM silences ORDER BY id DESC").fetchall()
    items = [Silence.from_row(r).to_dict(now) for r in rows]
    if wanted:
        items = [s for s in items if s["state"] in wanted]
    return jsonify({"silences": items[:limit]})


@bp.post("/silences")
def create_silence():
    """Silence the alerts that match: no notifications from starts_at until ends_at."""
    body = object_body({"matchers", "starts_at", "ends_at", "duration", "by", "comment"})
    if "matchers" not in body:
        raise InvalidRequest("matchers is missing (e.g. {\"stream\": \"cpu_usage\"})")
    matchers = parse_matchers(body["matchers"])
    if not matchers:
        raise InvalidRequest("matchers must name at least one label (stream, entity, type, severity)")
    now = time.time()
    starts = _in_range(_moment(body, "starts_at"), "starts_at")
    begin = now if starts is None else starts
    if ("ends_at" in body) == ("duration" in body):
        raise InvalidRequest("give exactly one of ends_at (a time) or duration (seconds)")
    if "duration" in body:
        duration = body["duration"]
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) \
                or not 0 < duration <= MAX_SILENCE_S:
            raise InvalidRequest(f"duration must be a number of seconds in (0, {MAX_SILENCE_S:.0f}]")
        ends = begin + float(duration)
    else:
        ends = _moment(body, "ends_at")
        if ends - begin > MAX_SILENCE_S:  # the limit of duration, whichever form the end takes
            raise InvalidRequest(f"a silence lasts at most {MAX_SILENCE_S:.0f} seconds (366 days): "
                                 f"ends_at is {(ends - begin) / 86400:.4g} days after "
                                 f"{'starts_at' if starts is not None else 'now'}")
        _in_range(ends, "ends_at")
        if ends <= max(begin, now):  # well formed; a matter of the server's clock: 409
            raise Conflict("ends_at must be after starts_at and in the future")
    silence = _write(CreateSilence(_alerts().feed, matchers, starts, ends, actor_of(body),
                                   optional_text(body, "comment")))
    return jsonify({"silence": silence}), 201


@bp.delete("/silences/<int:silence_id>")
def expire_silence(silence_id: int):
    """End a silence now."""
    check_id(silence_id, "silence")
    actor = actor_of({})
    return jsonify({"silence": _write(ExpireSilence(_alerts().feed, silence_id, actor))})


# -- audit and receivers ------------------------------------------------------------------------
def _audit_rows(clause: str, params: list, limit: int) -> list[dict]:
    where = f"WHERE {clause}" if clause else ""
    rows = reader().conn.execute(f"SELECT * FROM alert_audit {where} ORDER BY id DESC LIMIT ?",
                                 [*params, limit]).fetchall()
    return [{"id": r["id"], "at": r["at"], "actor": r["actor"], "address": r["address"],
             "token": r["token"], "action": r["action"], "alert_id": r["alert_id"],
             "silence_id": r["silence_id"], "detail": json.loads(r["detail"] or "{}")}
            for r in rows]


@bp.get("/audit")
def audit_log():
    """Every action on alerts, silences and event anomalies (acknowledge), newest first.

    ``alert_id`` and ``silence_id`` filter by their columns; ``event_anomaly_id`` (the id of
    an event anomaly, as ``/api/anomalies?schema=`` lists it and ``POST
    /api/anomalies/<id>/acknowledge`` takes it) gives its acknowledgements, which keep the id
    in their detail.  Not ``anomaly_id``: a numeric stream's anomalies are numbered apart, and
    their feedback keeps that number.
    """
    limit = parse_limit(request.args.get("limit"), default=100, maximum=1000)
    clause, params = [], []
    for key, condition in (("alert_id", "alert_id = ?"), ("silence_id", "silence_id = ?"),
                           ("event_anomaly_id", "action = 'acknowledge' AND json_extract(detail, '$.event_id') = ?")):
        raw = request.args.get(key)
        if raw is not None and not raw.strip():  # a filter given empty would silently list everything
            raise InvalidRequest(f"{key} must be an integer id, got an empty value")
        value = parse_event_id(raw, key)
        if value is not None:
            clause.append(condition)
            params.append(value)
    return jsonify({"audit": _audit_rows(" AND ".join(clause), params, limit)})


@bp.get("/receivers")
def receivers():
    """The configured receivers and the outbox: waiting, delivered, failed attempts."""
    alerts = _alerts()
    conn = reader().conn
    pending = conn.execute("SELECT receiver, count(*), min(created_at), max(attempts) FROM outbox "
                           "WHERE delivered_at IS NULL GROUP BY receiver").fetchall()
    waiting = {r[0]: {"waiting": r[1], "oldest_created_at": r[2], "most_attempts": r[3]}
               for r in pending}
    listed = []
    for receiver in alerts.receivers:
        entry = receiver.describe()
        entry["outbox"] = waiting.get(receiver.name, {"waiting": 0, "oldest_created_at": None,
                                                      "most_attempts": 0})
        listed.append(entry)
    sender = alerts.sender
    return jsonify({"receivers": listed,
                    "sender": {"delivered": sender.delivered, "failed": sender.failed,
                               "messages": sender.messages, "enqueued": alerts.outbox.enqueued}})
