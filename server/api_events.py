"""The API of entity-keyed events: upload, event anomalies, events, summaries, flags, acknowledgements.

Routes (all under /api; see /api/openapi.json):

``POST /api/upload?schema=ev_charging``          a CSV or JSON-lines file (multipart field ``file``,
                                                 or the body as ``text/csv`` / ``application/x-ndjson``),
                                                 imported whole or not at all; answers a summary
``GET  /api/anomalies?schema=ev_charging&...``   event anomalies with the event's own fields
                                                 (served by :func:`event_anomalies` from api.py);
                                                 ``&format=csv|jsonl`` exports them, streamed
``GET  /api/events?schema=...&user_id=...``      recent events, e.g. one user's sessions
``GET  /api/events/summary?schema=...``          counts for the view: per severity, per type, top entities
``GET  /api/schemas``                            the declared schemas: fields, entities, rules
``GET|POST|DELETE /api/flags``                   flagged entities (persisted; their events are marked)
``POST /api/anomalies/<id>/acknowledge``         who, when, a note
"""
from __future__ import annotations

import re
import shutil
import tempfile

from flask import Blueprint, Flask, g, jsonify, request
from werkzeug.exceptions import ClientDisconnected

from .concurrency import cooperative
from .errors import ApiError
from .event_storage import EventReader
from .exports import parse_format, stream
from .pipeline.schema import BadData, Schema
from .security import client_identity
from .services import services
from .validation import check_entity_id, check_name, parse_json, parse_limit

__all__ = ["UPLOAD_TYPES", "bp", "event_anomalies", "init_app"]

bp = Blueprint("api_events", __name__, url_prefix="/api")

#: Body types /api/upload takes besides multipart/form-data, and the file format each means.
UPLOAD_TYPES = {"text/csv": "csv", "application/csv": "csv", "application/x-ndjson": "jsonl",
                "application/jsonl": "jsonl", "application/x-jsonlines": "jsonl"}
#: Bytes copied at a time from a request body into its temporary file.
_COPY_CHUNK = 1 << 20
_ORIGINS = ("upload", "replay")
#: SQLite's largest row id.
MAX_ROW_ID = 2**63 - 1
#: Event anomalies in one CSV or JSON-lines export by default, and at most (streamed: memory
#: holds one row at a time, so the bound is the answer's size, not the server's memory).
EXPORT_LIMIT, MAX_EXPORT_LIMIT = 10_000, 1_000_000
#: CSV columns of an exported event anomaly before and after the event's own fields.
EXPORT_HEAD = ("id", "event_id", "timestamp_iso")
EXPORT_TAIL = ("risk", "severity", "types", "explanation", "signals", "flagged", "truth",
               "acknowledged_by", "acknowledged_at", "acknowledged_note", "origin", "received_at")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.teardown_appcontext
    def _close_event_reader(exc: BaseException | None = None) -> None:
        reader = g.pop("event_reader", None)
        if reader is not None:
            reader.close()

    @app.errorhandler(BadData)
    def bad_data(exc: BadData):
        response = jsonify(exc.to_dict())
        response.status_code = 400
        return response


def _reader() -> EventReader:
    if "event_reader" not in g:
        g.event_reader = EventReader(services().reader().conn)
    return g.event_reader


def _schema(required: bool = True) -> Schema | None:
    name = request.args.get("schema")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_]{1,64}", name):
        raise ApiError(400, "schema must be 1 to 64 letters, digits or underscores")
    if not name:
        if required:
            raise ApiError(400, f"name a schema with ?schema=; known: {sorted(services().ingest.schemas)}")
        return None
    try:
        return services().ingest.schema(name)
    except LookupError as exc:
        raise ApiError(404, str(exc)) from None


def _entity_filters(schema: Schema) -> dict[str, str]:
    filters = {}
    for key in schema.entities:
        value = request.args.get(key)
        if value:
            filters[key] = check_entity_id(value, key)
    return filters


def _text(payload: dict, key: str, required: bool, maximum: int = 500) -> str:
    value = payload.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > maximum:
        raise ApiError(400, f"{key} must be a{' non-empty' if required else ''} string of at most "
                            f"{maximum} characters")
    return value.strip()


# -- upload ---------------------------------------------------------------------------------------
@bp.post("/upload")
def upload():
    """Import a file of events: checked whole, then scored and stored, or refused with the line."""
    schema = _schema()
    origin = request.args.get("origin", "upload")
    if origin not in _ORIGINS:
        raise ApiError(400, f"origin must be one of {list(_ORIGINS)}")
    keep = parse_limit(request.args.get("limit"), default=1000, maximum=10_000)
    mimetype = request.mimetype
    timeout = services().settings["UPLOAD_TIMEOUT"]
    if mimetype == "multipart/form-data":
        stored = _within(timeout, lambda: request.files.get("file"))
        if stored is None:
            raise ApiError(400, "a multipart upload needs the file in the field 'file'")
        source = _file_source(stored.stream, schema, filename=stored.filename)
        return _import(source, origin, keep)
    if mimetype not in UPLOAD_TYPES:
        raise ApiError(415, "send the file as multipart/form-data (field 'file') or as the body "
                            f"with Content-Type {', '.join(UPLOAD_TYPES)}; got {mimetype or 'none'!r}")
    with tempfile.TemporaryFile(prefix="upload-") as spool:
        # Bounded memory: the body goes to disk as it arrives.
        _within(timeout, lambda: shutil.copyfileobj(request.stream, spool, _COPY_CHUNK))
        source = _file_source(spool, schema, format=UPLOAD_TYPES[mimetype])
        return _import(source, origin, keep)


def _within(seconds: float, read):
    """Run ``read`` (which reads the request body), failing with 408 when it takes too long."""
    if not cooperative():
        return read()  # a threaded test server: the socket's own timeout applies
    import gevent

    try:
        with gevent.Timeout(seconds):
            return read()
    except gevent.Timeout:
        raise ApiError(408, f"the upload did not arrive within {seconds:g} s (UPLOAD_TIMEOUT)") from None
    except ClientDisconnected:
        raise ApiError(400, "the client closed the connection before sending the whole file") from None


def _file_source(file, schema: Schema, **options):
    """The upload's source; imported here, as it imports pandas, which the server's start does not need."""
    from .sources.upload import FileSource

    return FileSource(file, schema, **options)


def _import(source, origin: str, keep: int):
    summary = services().ingest.import_source(source, origin, keep_anomalies=keep)
    return jsonify(summary.to_dict())


# -- reads -----------------------------------------------------------------------------------------
def anomaly_filters() -> dict:
    """The event-anomaly filters of GET /api/anomalies, checked (400) whether or not ?schema= is given."""
    order = request.args.get("order", "id")
    if order not in ("id", "risk"):
        raise ApiError(400, "order must be 'id' (newest first) or 'risk'")
    acknowledged = request.args.get("acknowledged")
    if acknowledged not in (None, "true", "false"):
        raise ApiError(400, "acknowledged must be true or false")
    numbers = {}
    for name, low, high in (("min_risk", 0, 100), ("before", 0, MAX_ROW_ID)):
        raw = request.args.get(name)
        if raw is None:
            numbers[name] = None
            continue
        try:
            numbers[name] = int(raw)
        except ValueError:
            raise ApiError(400, f"{name} must be a whole number") from None
        if not low <= numbers[name] <= high:
            raise ApiError(400, f"{name} must be between {low} and {high}")
    for key in ("user_id", "charger_id"):
        if key in request.args:
            check_name(request.args[key], key)
    return {"kind": request.args.get("type") or None, "order": order, **numbers,
            "acknowledged": None if acknowledged is None else acknowledged == "true"}


def event_anomalies():
    """GET /api/anomalies?schema=...: event anomalies, newest first (or ?order=risk).

    ``?format=csv`` has one column per field of the event (its schema's fields and derived
    features) between the pipeline's columns; ``?format=jsonl`` one event object per line, as
    in the JSON answer.  Both are streamed from the database as they are read.
    """
    schema = _schema()
    fmt = parse_format(request.args.get("format"))
    exporting = fmt != "json"
    limit = parse_limit(request.args.get("limit"), default=EXPORT_LIMIT if exporting else 100,
                        maximum=MAX_EXPORT_LIMIT if exporting else 1000)
    f = anomaly_filters()
    filters = {"kind": f["kind"], "entity": _entity_filters(schema), "min_risk": f["min_risk"],
               "acknowledged": f["acknowledged"], "before_id": f["before"], "limit": limit,
               "order": f["order"]}
    if not exporting:
        return jsonify({"schema": schema.name, "anomalies": _reader().anomalies(schema.name, schema.entities,
                                                                                **filters)})
    # Its own connection: the answer is read after this view has returned (and its g is gone).
    reader = services().reader()
    events = EventReader(reader.conn).iter_anomalies(schema.name, schema.entities, **filters)
    if fmt == "csv":
        own = _own_columns(schema)
        return stream((export_row(e, own) for e in events), fmt, [*EXPORT_HEAD, *own.values(), *EXPORT_TAIL],
                      f"{schema.name}-anomalies", close=reader.close)
    return stream(events, fmt, (), f"{schema.name}-anomalies", close=reader.close)


def _own_columns(schema: Schema) -> dict[str, str]:
    """The event's own fields (the schema's, without its truth label, then derived features) and
    their CSV columns: a field named like one of the pipeline's columns gets a ``field_`` prefix."""
    names = [n for n in schema.fields if n != schema.truth] + [d.name for d in schema.derived]
    taken = set(EXPORT_HEAD) | set(EXPORT_TAIL)
    return {n: f"field_{n}" if n in taken else n for n in names}


def export_row(event: dict, own: dict[str, str]) -> dict:
    """An event anomaly flattened to its CSV columns (see :func:`_own_columns`)."""
    fields = event["fields"]
    row = {column: fields.get(name) for name, column in own.items()}
    row.update((key, event.get(key)) for key in (*EXPORT_HEAD, *EXPORT_TAIL) if key in event)
    ack = event.get("acknowledged") or {}
    row.update(acknowledged_by=ack.get("by"), acknowledged_at=ack.get("at"), acknowledged_note=ack.get("note"))
    return row


@bp.get("/events")
def events():
    """Recent events of a schema, newest first; filter by entity (e.g. ?user_id=U0042)."""
    schema = _schema()
    limit = parse_limit(request.args.get("limit"), default=100, maximum=1000)
    return jsonify({"schema": schema.name,
                    "events": _reader().events(schema.name, schema.entities,
                                               entity=_entity_filters(schema), limit=limit)})


@bp.get("/events/summary")
def events_summary():
    """Counts for a schema's view: events, anomalies per severity and type, top entities by risk."""
    schema = _schema()
    sources = services().sources
    return jsonify({**_reader().summary(schema.name, schema.entities),
                    "clocks": sources.clocks(schema.name) if sources is not None else []})


@bp.get("/schemas")
def schemas():
    """The declared schemas: fields (with aliases and units), entities, derived features, rules."""
    out = []
    for schema in services().ingest.schemas.values():
        out.append({
            "name": schema.name, "description": schema.description, "id": schema.id,
            "timestamp": schema.timestamp, "entities": list(schema.entities),
            "fields": [{"name": f.name, "type": f.type, "required": f.required, "unit": f.unit,
                        "aliases": list(f.aliases)} for f in schema.fields.values()],
            "derived": [d.name for d in schema.derived],
            "rules": [{"type": r.type, "severity": r.severity, "kind": type(r).__name__}
                      for r in schema.rules]})
    return jsonify({"schemas": out})


# -- actions ---------------------------------------------------------------------------------------
@bp.get("/flags")
def flags():
    """Flagged entities, oldest first (optionally of one ?schema=)."""
    schema = _schema(required=False)
    return jsonify({"flags": _reader().flags(None if schema is None else schema.name)})


def _flag_request() -> tuple[str, str, str, dict]:
    payload = parse_json(request.get_data(cache=False))
    if not isinstance(payload, dict):
        raise ApiError(400, "the body must be a JSON object with schema, entity and id")
    schema = _text(payload, "schema", True, 64)
    entity = _text(payload, "entity", True, 64)
    entity_id = check_entity_id(payload.get("id"), "id")
    return schema, entity, entity_id, payload


@bp.post("/flags")
def flag():
    """Flag an entity (e.g. a user): persisted; its events are marked flagged from now on."""
    schema, entity, entity_id, payload = _flag_request()
    by = _text(payload, "by", False, 64) or (client_identity().get("address") or "unknown")
    note = _text(payload, "note", False)
    try:
        row = services().ingest.flag(schema, entity, entity_id, by, note)
    except LookupError as exc:
        raise ApiError(404, str(exc)) from None
    response = jsonify({"flag": row})
    response.status_code = 201
    return response


@bp.delete("/flags")
def unflag():
    """Clear an entity's flag."""
    schema, entity, entity_id, _ = _flag_request()
    try:
        services().ingest.flag(schema, entity, entity_id, "", "", clear=True)
    except LookupError as exc:
        raise ApiError(404, str(exc)) from None
    return jsonify({"cleared": {"schema": schema, "entity": entity, "id": entity_id}})


@bp.post("/anomalies/<int:event_id>/acknowledge")
def acknowledge(event_id: int):
    """Acknowledge an anomalous event: who (``by``), when (now), and a note."""
    payload = parse_json(request.get_data(cache=False))
    if not isinstance(payload, dict):
        raise ApiError(400, "the body must be a JSON object with 'by' and an optional 'note'")
    by = check_name(payload.get("by"), "by").strip()  # who: the rule of every typed name (alerts' too)
    note = _text(payload, "note", False)
    if event_id > MAX_ROW_ID:
        raise ApiError(404, f"no anomalous event with id {event_id}")
    try:
        ack = services().ingest.acknowledge(event_id, {**client_identity(), "name": by}, note)
    except LookupError as exc:
        raise ApiError(404, str(exc)) from None
    return jsonify({"id": event_id, "acknowledged": ack})

