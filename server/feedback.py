""""Not an anomaly": a verdict on a learned stream's anomaly or alert that teaches the stream (issue 10).

Routes (under /api; the token, Origin and JSON rules of server/security.py apply as to every POST):

``POST /api/anomalies/<anomaly_id>/feedback``  one anomalous point (its ``anomaly_id``)
``POST /api/incidents/<alert_id>/feedback``    an alert: every stored anomalous point of it
``GET  /api/feedback?stream=&limit=``          the verdicts given, newest first

The body is ``{"verdict": "not_anomaly", "note": "...", "by": "..."}``.  The same verdict given
again on the same anomaly (or alert) changes nothing: the answer is the verdict stored first
(200, not 201), and the stream is not taught twice.  What happens the first time, in order:

1. The marked values are read: the anomaly's, or the alert's anomalous points'.
2. On the engine's own thread, under the monitor's lock, between two ticks or submit slices
   (``Monitor.checkpoint``), :meth:`detectors.engine.Engine.accept_normal` teaches the stream;
   the :class:`RecordFeedback` write is queued right after, so it learns exactly which points
   the engine had scored before it was taught (``scored_through``).
3. That write, on the writer thread, stores the verdict (who, when, note, the values taught),
   resolves the incident's alert if it is still open, with the resolution "not an anomaly"
   (its receivers hear it end), and writes a row of the audit log.

At start, :func:`reteach` teaches again the verdicts that the restored snapshot predates (those
whose ``scored_through`` is not below the snapshot's last point; all of them after a cold start).
A tie is taught again as well, which is harmless: teaching the same values twice is teaching them
once, with a fresh lifetime.

Only the learned detectors' streams are taught: anomalies of entity-keyed events (rules and
per-entity baselines) have their own actions (server/api_events.py).
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request

from .alerts.actions import NotFound, audit
from .alerts.lifecycle import alert_from_row
from .alerts.service import EXTENSION as ALERTS
from .api import reader
from .errors import ApiError
from .services import EXTENSION, Services, services
from .snapshots import LastIdJob
from .validation import (Conflict, InvalidRequest, actor_of, check_id, check_name, object_body,
                         optional_text, parse_limit)
from .writer import Transaction, WriteJob

__all__ = ["NOT_ANOMALY", "RESOLUTION", "RecordFeedback", "bp", "init_app", "reteach"]

log = logging.getLogger(__name__)

bp = Blueprint("feedback", __name__, url_prefix="/api")

#: The one verdict so far.
NOT_ANOMALY = "not_anomaly"
#: The resolution of an alert resolved by that verdict.
RESOLUTION = "not an anomaly"
#: The app.extensions key of the lock that lets one verdict at a time be checked, taught and stored.
LOCK = "feedback.lock"
#: Most anomalous points of one alert taught at once (the highest and lowest values are what
#: counts, and an alert's first thousand points hold its shape; a longer one is a level shift).
MAX_TAUGHT_POINTS = 1000


class RecordFeedback(WriteJob):
    """Store one verdict, resolve the incident's open alert, audit both (on the writer thread).

    The alert is the one named (feedback on an alert) or, for feedback on a point, the newest
    alert of the point's stream that had started by that point and had not ended before it.
    """

    def __init__(self, book, actor: dict, note: str | None, stream: str, taught: list[dict],
                 anomaly_id: int | None = None, point_id: int | None = None,
                 alert_id: int | None = None):
        super().__init__()
        self.book, self.actor, self.note = book, actor, note
        self.stream, self.taught = stream, taught
        self.anomaly_id, self.point_id, self.alert_id = anomaly_id, point_id, alert_id

    def apply(self, tx: Transaction) -> dict[str, Any]:
        conn = tx.db.conn
        scored_through = tx.allocate("points", 0) - 1  # the last point scored before the engine learned
        alert = self._alert(conn)
        resolved = alert is not None and alert.is_open
        if resolved:
            self.book.resolve_by_hand(tx, alert, self.actor["name"], RESOLUTION)
        row = {"at": tx.now, "verdict": NOT_ANOMALY, "note": self.note, "actor": self.actor.get("name"),
               "address": self.actor.get("address"), "token": self.actor.get("token"),
               "stream": self.stream, "anomaly_id": self.anomaly_id, "point_id": self.point_id,
               "alert_id": None if alert is None else alert.id,
               "taught": json.dumps(self.taught, separators=(",", ":")), "scored_through": scored_through}
        cursor = conn.execute(f"INSERT INTO feedback ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                              list(row.values()))
        row["id"] = cursor.lastrowid
        audit(tx, self.actor, "feedback", alert_id=row["alert_id"],
              detail={"feedback_id": row["id"], "verdict": NOT_ANOMALY, "note": self.note,
                      "stream": self.stream, "anomaly_id": self.anomaly_id, "resolved": resolved,
                      **({"resolution": RESOLUTION} if resolved else {})})
        return {"feedback": feedback_from_row(row),
                "alert": None if alert is None else alert.to_dict()}

    def _alert(self, conn):
        if self.alert_id is not None:
            alert = self.book.load(conn, self.alert_id)
            if alert is None:
                raise NotFound(self.alert_id)
            return alert
        found = conn.execute(
            "SELECT id FROM alerts WHERE stream = ? AND entity IS NULL AND first_point_id <= ? "
            "AND (state != 'resolved' OR last_point_id >= ?) ORDER BY id DESC LIMIT 1",
            [self.stream, self.point_id, self.point_id]).fetchone()
        return None if found is None else self.book.load(conn, found[0])


def feedback_from_row(row) -> dict[str, Any]:
    """A ``feedback`` row as the API's object (the values taught decoded)."""
    return {"id": row["id"], "at": row["at"], "verdict": row["verdict"], "note": row["note"],
            "by": row["actor"], "address": row["address"], "stream": row["stream"],
            "anomaly_id": row["anomaly_id"], "point_id": row["point_id"], "alert_id": row["alert_id"],
            "taught": json.loads(row["taught"]), "scored_through": row["scored_through"]}


# -- teaching the engine -------------------------------------------------------------------------
def _teach(svc: Services, stream: str, taught: list[dict], job: RecordFeedback) -> dict[str, Any]:
    """Teach the live engine on its own thread, then store the verdict; return the write's result."""
    monitor = svc.monitor
    if stream not in monitor.streams:
        raise Conflict(f"stream {stream!r} is not scored by the learned detectors (it was deleted, "
                       "or it is a schema's events, which feedback does not teach)")
    if not taught:
        raise Conflict("none of its anomalous points is stored any more (retention): nothing to teach")
    try:
        taken = monitor.checkpoint(lambda: monitor.engine.accept_normal(stream, taught), job)
    except ValueError as exc:  # the stored values do not fit the stream (recreated with other fields)
        raise Conflict(f"stream {stream!r} cannot be taught these values: {exc}") from None
    if taken is None:
        raise ApiError(503, "the server is shutting down")
    try:
        result = taken[1].wait(svc.settings["WRITE_TIMEOUT"])
    except NotFound as exc:
        raise ApiError(404, f"no alert with id {exc.args[0]}") from None
    current_app.extensions[ALERTS].committed()  # a resolve may have queued notifications
    return result


def _given(conn: sqlite3.Connection, column: str, target: int) -> sqlite3.Row | None:
    """The verdict already stored on this anomaly (``anomaly_id``) or alert (``alert_id``).

    A verdict on one of an alert's points names the alert too (the one it resolved): it is not
    a verdict on the whole alert.
    """
    point = "anomaly_id IS NULL AND " if column == "alert_id" else ""
    return conn.execute(f"SELECT * FROM feedback WHERE {point}{column} = ? AND verdict = ? "
                        "ORDER BY id LIMIT 1", [target, NOT_ANOMALY]).fetchone()


def _give(column: str, target: int, stream: str, taught: list[dict], job: RecordFeedback):
    """Teach and store a verdict on an anomaly or an alert once; given again, answer the stored one."""
    with current_app.extensions[LOCK]:  # two clicks at once: the second sees the first's row
        conn = reader().conn
        given = _given(conn, column, target)
        if given is None:
            return jsonify(_teach(services(), stream, taught, job)), 201
        alert = None
        if given["alert_id"] is not None:
            row = conn.execute("SELECT * FROM alerts WHERE id = ?", [given["alert_id"]]).fetchone()
            alert = None if row is None else alert_from_row(row).to_dict()
        return jsonify({"feedback": feedback_from_row(given), "alert": alert}), 200


def _verdict() -> tuple[dict, str | None]:
    """The body's actor and note, once its verdict is checked."""
    body = object_body({"verdict", "note", "by"})
    if "verdict" not in body:
        raise InvalidRequest(f"verdict is missing; send {{\"verdict\": \"{NOT_ANOMALY}\"}}")
    if body["verdict"] != NOT_ANOMALY:
        raise InvalidRequest(f"verdict must be {NOT_ANOMALY!r} (the only verdict so far), "
                             f"got {str(body['verdict'])[:40]!r}")
    return actor_of(body), optional_text(body, "note")


@bp.post("/anomalies/<int:anomaly_id>/feedback")
def anomaly_feedback(anomaly_id: int):
    """Not an anomaly: teach the point's stream its values; resolve the incident's open alert."""
    check_id(anomaly_id, "anomaly")
    actor, note = _verdict()
    anomaly = reader().anomalies_by_id([anomaly_id]).get(anomaly_id)
    if anomaly is None:
        raise ApiError(404, f"no anomaly with id {anomaly_id} (the anomaly_id of GET /api/anomalies)")
    job = RecordFeedback(current_app.extensions[ALERTS].book, actor, note, anomaly["source"],
                         [anomaly["values"]], anomaly_id=anomaly_id, point_id=anomaly["id"])
    return _give("anomaly_id", anomaly_id, anomaly["source"], [anomaly["values"]], job)


@bp.post("/incidents/<int:alert_id>/feedback")
def alert_feedback(alert_id: int):
    """Not an anomaly: teach the alert's stream every stored anomalous point of it; resolve it."""
    check_id(alert_id, "alert")
    actor, note = _verdict()
    conn = reader().conn
    alert = conn.execute("SELECT stream, entity, first_point_id, last_point_id FROM alerts WHERE id = ?",
                         [alert_id]).fetchone()
    if alert is None:
        raise ApiError(404, f"no alert with id {alert_id}")
    if alert["entity"] is not None:
        raise Conflict(f"alert {alert_id} is about the entity {alert['entity']!r} of a schema's events, "
                       "which feedback does not teach")
    rows = conn.execute("SELECT field_values FROM anomalies WHERE source = ? AND point_id BETWEEN ? AND ? "
                        "ORDER BY id LIMIT ?", [alert["stream"], alert["first_point_id"],
                                                alert["last_point_id"], MAX_TAUGHT_POINTS]).fetchall()
    taught = [json.loads(r[0]) for r in rows]
    job = RecordFeedback(current_app.extensions[ALERTS].book, actor, note, alert["stream"], taught,
                         alert_id=alert_id)
    return _give("alert_id", alert_id, alert["stream"], taught, job)


@bp.get("/feedback")
def list_feedback():
    """The verdicts given, newest first; ``?stream=`` for one stream's."""
    limit = parse_limit(request.args.get("limit"), default=100, maximum=1000)
    where, params = "", []
    if request.args.get("stream") is not None:
        where, params = "WHERE stream = ?", [check_name(request.args["stream"], "stream")]
    rows = reader().conn.execute(f"SELECT * FROM feedback {where} ORDER BY id DESC LIMIT ?",
                                 [*params, limit]).fetchall()
    return jsonify({"feedback": [feedback_from_row(r) for r in rows]})


# -- at start ------------------------------------------------------------------------------------
def reteach(svc: Services) -> int:
    """Teach the engine again the verdicts its restored snapshot predates; return how many were taught."""
    snapshot = svc.snapshots.last_point_id if svc.snapshots is not None else None
    conn = svc.reader().conn
    try:
        rows = conn.execute("SELECT id, stream, taught FROM feedback WHERE scored_through >= ? ORDER BY id",
                            [-1 if snapshot is None else snapshot]).fetchall()
    finally:
        conn.close()
    if not rows:
        return 0
    engine = svc.monitor.engine

    def teach() -> int:
        taught = 0
        for feedback_id, stream, values in rows:
            if not engine.has_stream(stream):
                continue  # deleted since
            try:
                engine.accept_normal(stream, json.loads(values))
                taught += 1
            except ValueError as exc:  # the stream was recreated with other fields
                log.warning("feedback %d on %r is not taught again: %s", feedback_id, stream, exc)
        return taught

    taken = svc.monitor.checkpoint(teach, LastIdJob("points"))
    count = 0 if taken is None else taken[0]
    log.info("taught %d 'not an anomaly' verdict(s) again (given after the snapshot)", count)
    return count


def init_app(app: Flask) -> None:
    """Register the routes (the start-up's last step calls :func:`reteach_at_start`)."""
    app.extensions[LOCK] = threading.Lock()  # made here, after gevent has patched threading
    app.register_blueprint(bp)


def reteach_at_start(svc: Services) -> None:
    """The restore's last step: teach what the snapshot predates, after its points are replayed."""
    try:
        reteach(svc)
    except Exception:  # the server starts; the verdicts stay stored and listed
        log.exception("'not an anomaly' verdicts could not be taught again at start")
