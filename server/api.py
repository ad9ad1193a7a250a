"""The JSON API under /api (see /api/openapi.json for the full description)."""
from __future__ import annotations

import time

from flask import Blueprint, Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .errors import ApiError
from .exports import parse_format, respond
from .monitor import BuiltinStream, UnknownSource
from .security import client_identity
from .services import services
from .storage import Reader
from .validation import (InvalidRequest, parse_configure, parse_event_id, parse_json, parse_limit,
                         parse_severities, parse_since, parse_submit, check_name)

__all__ = ["bp", "init_app", "reader", "request_body"]

bp = Blueprint("api", __name__, url_prefix="/api")


def reader() -> Reader:
    """This request's read-only connection, opened on first use and closed at teardown."""
    if "reader" not in g:
        g.reader = services().reader()
    return g.reader


def _close_reader(exc: BaseException | None = None) -> None:
    conn = g.pop("reader", None)
    if conn is not None:
        conn.close()


def init_app(app: Flask) -> None:
    from .api_history import bp as history_bp

    app.teardown_appcontext(_close_reader)
    app.register_blueprint(bp)
    app.register_blueprint(history_bp)


def _known_source(name: str) -> str:
    check_name(name, "source")
    if name not in services().monitor.streams:
        raise ApiError(404, f"unknown source {name!r}")
    return name


def request_body() -> bytes:
    """The whole request body, or 413 when it is over MAX_CONTENT_LENGTH, chunked or not.

    werkzeug stops reading a body of unknown length (chunked) at the limit and
    returns what it has, as if that were all: one more byte from the server's
    stream tells a body that ends there from one that goes on.
    """
    try:
        data = request.get_data(cache=False)
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        if limit is not None and request.content_length is None and len(data) >= limit:
            if request.environ["wsgi.input"].read(1):
                raise RequestEntityTooLarge()
    except HTTPException:
        raise
    except Exception as exc:  # the server's body reader: a malformed chunk, a broken connection
        raise ApiError(400, f"the request body could not be read: {exc or type(exc).__name__}") from None
    return data


#: CSV columns of an anomaly (nested values as JSON text).
ANOMALY_COLUMNS = ("anomaly_id", "id", "source", "timestamp", "detected_at", "score", "severity",
                   "is_anomaly", "values", "expected", "fired", "detectors", "explanation",
                   "truth", "warming_up")


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


@bp.get("/status")
def status():
    """Uptime, tick interval, streams with their counts, and connected push clients."""
    svc = services()
    counts = reader().stream_stats()
    streams = []
    for name, meta in svc.monitor.streams.items():
        c = counts.get(name, {})
        streams.append({"name": name, "fields": list(meta["fields"]),
                        "description": meta.get("description") or "", "units": meta.get("units") or {},
                        "kind": meta["kind"], "points": c.get("points", 0),
                        "anomalies": c.get("anomalies", 0)})
    return jsonify({
        "status": "ok", "uptime_s": round(time.time() - svc.started_at, 3),
        "tick_interval_s": svc.settings["TICK_INTERVAL"], "streams": streams,
        "points": sum(c["points"] for c in counts.values()),
        "anomalies": sum(c["anomalies"] for c in counts.values()),
        "clients": svc.hub.counts(),
    })


@bp.get("/stats")
def stats():
    """Counts since the database was created, per-detector firings, tick timings, truth scores."""
    svc = services()
    counts = reader().stream_stats()
    points = sum(c["points"] for c in counts.values())
    anomalies = sum(c["anomalies"] for c in counts.values())
    builtin = [c for name, c in counts.items()
               if svc.monitor.streams.get(name, {}).get("kind") == "builtin"]
    tp, fp, fn, caught, missed = (sum(c.get(k, 0) for c in builtin)
                                  for k in ("tp", "fp", "fn", "episodes_caught", "episodes_missed"))
    fired = reader().detector_stats()
    return jsonify({
        "points": points, "anomalies": anomalies, "anomaly_rate": _ratio(anomalies, points),
        "per_detector": {name: fired.get(name, 0) for name in svc.monitor.detector_names},
        "tick": svc.monitor.tick_stats(),
        # Precision per flag; recall per injected anomaly (server/episodes.py).
        "truth": {"tp": tp, "fp": fp, "fn": fn, "episodes_caught": caught, "episodes_missed": missed,
                  "precision": _ratio(tp, tp + fp), "recall": _ratio(caught, caught + missed)},
        "writer": svc.writer.stats(),
        "push": {"clients": svc.hub.counts(), "published": svc.hub.published,
                 "dropped": svc.hub.dropped},
    })


@bp.get("/data/<path:source>")
def data(source: str):
    """The latest points of one stream, oldest first."""
    _known_source(source)
    limit = parse_limit(request.args.get("limit"), default=60, maximum=1000)
    return jsonify({"source": source, "fields": list(services().monitor.streams[source]["fields"]),
                    "points": reader().latest_points(source, limit)})


@bp.get("/anomalies")
def anomalies():
    """Stored anomalies newest first, optionally of one source and since a time.

    With ``?schema=`` (e.g. ev_charging): that schema's event anomalies, with the
    event's own fields (see :func:`server.api_events.event_anomalies`).
    """
    from .api_events import anomaly_filters, event_anomalies
    # Every filter is checked whichever branch answers, so a bad value is a 400 in both.
    fmt = parse_format(request.args.get("format"))
    until = parse_since(request.args.get("until"), "until")
    severities = parse_severities(request.args.get("severity"))
    before = parse_event_id(request.args.get("before"), "before")
    if "schema" in request.args:
        return event_anomalies()  # JSON, or the schema's events as CSV / JSON lines
    anomaly_filters()  # the event filters are checked even where they do not apply
    source = request.args.get("source")
    if source is not None:
        _known_source(source)
    since = parse_since(request.args.get("since"))
    limit = parse_limit(request.args.get("limit"), default=100, maximum=1000)
    rows = reader().anomalies(source, since, limit, until=until, severities=severities, before=before)
    return respond(rows, "anomalies", fmt, ANOMALY_COLUMNS, "anomalies")


@bp.get("/alerts")
def alerts():
    """The 20 most recent anomalies, newest first."""
    return jsonify({"alerts": reader().anomalies(limit=20)})


@bp.post("/submit")
def submit():
    """Score and store one point or a batch; answer once they are committed to disk."""
    payload = parse_json(request_body())
    items = parse_submit(payload, services().settings["MAX_BATCH_POINTS"])
    return jsonify({"results": services().monitor.submit(items, owner=client_identity())})


@bp.get("/streams")
def streams():
    """Every stream; user streams with who created them and when."""
    monitor = services().monitor
    listed = []
    for meta in reader().streams():
        if meta["name"] not in monitor.streams:
            continue  # deleted, or its creation is not committed yet
        entry = {"name": meta["name"], "kind": meta["kind"], "fields": list(meta["fields"]),
                 "created_at": meta["created_at"]}
        if meta["kind"] == "user":
            entry["owner"] = meta["owner"]
        listed.append(entry)
    return jsonify({"streams": listed, "user_streams": sum(e["kind"] == "user" for e in listed),
                    "max_user_streams": services().settings["MAX_USER_STREAMS"]})


@bp.delete("/streams/<path:name>")
def delete_stream(name: str):
    """Delete a user stream with its points, anomalies and configuration."""
    try:  # no name check: a name that is not a stream is simply not found
        deleted = services().monitor.delete_stream(name)
    except UnknownSource:
        raise ApiError(404, f"unknown stream {name!r}") from None
    except BuiltinStream:
        raise ApiError(409, f"{name!r} is a built-in stream; only user streams can be deleted") from None
    return jsonify({"deleted": name, "rows": deleted})


@bp.get("/configure")
def get_configure():
    """Every stream's detector configuration, or one stream's with ?source=."""
    monitor = services().monitor
    source = request.args.get("source")
    if source is not None:
        _known_source(source)
        return jsonify({"source": source, "config": monitor.config(source)})
    return jsonify({"streams": monitor.config()})


@bp.post("/configure")
def post_configure():
    """Change a stream's threshold, window, on/off or weight for one detector or the ensemble."""
    change = parse_configure(parse_json(request_body()))
    monitor = services().monitor
    detectors = ["ensemble", *monitor.detector_names]
    if change.detector is not None and change.detector not in detectors:
        raise ApiError(400, f"unknown detector {change.detector!r}; choose one of {', '.join(detectors)}")
    try:
        config = monitor.configure(change.source, change.detector, change.params)
    except UnknownSource:
        raise ApiError(404, f"unknown source {change.source!r}") from None
    except InvalidRequest:
        raise  # a Conflict (409) with the stream's state
    except ValueError as exc:  # the engine's range checks
        raise ApiError(400, str(exc)) from None
    return jsonify({"source": change.source, "config": config})


@bp.get("/openapi.json")
def openapi():
    """This API's OpenAPI 3.1 description."""
    from .openapi import spec
    return jsonify(spec(services().monitor.window_ranges()))
