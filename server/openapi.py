"""The OpenAPI 3.1 description of every route, served at /api/openapi.json.

Kept true by tests/server/test_openapi.py: every Flask URL rule (and method)
is described here and vice versa, and real responses validate against the
schemas below (JSON Schema 2020-12, as OpenAPI 3.1 uses).
"""
from __future__ import annotations

from typing import Any

from detectors.engine import WINDOW_RANGE
from detectors.ensemble import ACCEPT_POINTS

from .alerts.live import TRANSITIONS as ALERT_TRANSITIONS
from .alerts.silences import LATEST_SILENCE_TIME, MAX_SILENCE_S
from .alerts.subjects import MAX_ENTITY_LABEL_LENGTH
from .pipeline.event import EARLIEST_TIME, LATEST_TIME, MAX_ENTITY_ID_LENGTH
from .pipeline.point import json_schema as point_json_schema
from .settings import SETTINGS_BY_NAME
from .validation import MAX_EVENT_ID, MAX_FIELDS, MAX_NAME_LENGTH, NAME_PATTERN

__all__ = ["spec"]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    return {str(code): {"$ref": f"#/components/responses/{_ERROR_NAMES[code]}"} for code in codes}


_ERROR_NAMES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                405: "MethodNotAllowed", 408: "BodyTimeout", 409: "Conflict", 413: "TooLarge",
                414: "UriTooLong", 415: "UnsupportedMediaType", 429: "TooManyRequests",
                431: "HeadersTooLarge", 500: "InternalError", 503: "Unavailable"}
# gunicorn answers these itself, for any path, before the app sees the request.
_SERVER_ERRORS = (414, 431)
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH, "pattern": NAME_PATTERN,
         "description": "No control characters; not only white space."}
_ENTITY_ID = {**_NAME, "maxLength": MAX_ENTITY_ID_LENGTH,
              "description": "An entity's id (e.g. a user_id), as long as an upload accepts."}
_SCHEMA_NAME = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[A-Za-z0-9_]+$"}
_MAX_ROW_ID = 2**63 - 1
_EPOCH_OR_ISO = {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}
_MATCH_VALUE = {"type": "string", "minLength": 1, "maxLength": 200}
_MATCH_ENTITY = {**_MATCH_VALUE, "maxLength": MAX_ENTITY_LABEL_LENGTH}
_SEVERITY_MATCH = {"enum": ["low", "medium", "high", "critical", ">=low", ">=medium", ">=high",
                            ">=critical"]}
_SEVERITY_FILTER = {"type": "string", "pattern": "^(low|medium|high|critical)(,(low|medium|high|critical))*$",
                    "description": "Comma-separated severities."}
_FORMAT = {"name": "format", "in": "query", "required": False,
           "schema": {"enum": ["json", "csv", "jsonl"], "default": "json"},
           "description": "json (default), csv (nested values as JSON text) or jsonl (JSON lines); "
                          "any other value is a 400."}


def _configure_request(windows: dict[str, tuple[int, int]] | None) -> dict:
    """The ensemble takes a threshold only; a member detector any of the four, each member
    within its own window range (``windows``: member -> (least, most); None: not known here)."""
    threshold = {"type": "number", "minimum": 0, "maximum": 1}
    weight = {"type": "number", "minimum": 0, "maximum": 100}

    def member(detector: dict, window: dict | None) -> dict:
        properties = {"source": _NAME, "detector": detector, "threshold": threshold,
                      "enabled": {"type": "boolean"}, "weight": weight}
        if window is not None:
            properties["window"] = window
        return {"type": "object", "required": ["source", "detector"], "additionalProperties": False,
                "minProperties": 3, "properties": properties}

    ensemble = {"type": "object", "required": ["source", "threshold"], "additionalProperties": False,
                "description": "The ensemble's flag threshold (the default detector).",
                "properties": {"source": _NAME, "detector": {"const": "ensemble"},
                               "threshold": threshold}}
    if windows is None:
        members = [member({"type": "string", "minLength": 1, "not": {"const": "ensemble"}},
                          {"type": "integer", "minimum": WINDOW_RANGE[0], "maximum": WINDOW_RANGE[1]})]
    else:
        members = [member({"const": name}, {"type": "integer", "minimum": low, "maximum": high}
                          if low is not None else None)
                   for name, (low, high) in windows.items()]
    return {"oneOf": [ensemble, *members],
            "description": "The ensemble takes a threshold only; a member detector takes any of "
                           "threshold, window, enabled and weight."}


def _schemas(windows: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    detector_config = {
        "type": "object", "required": ["threshold", "window", "enabled", "weight"],
        "properties": {"threshold": {"type": "number"}, "window": {"type": ["integer", "null"]},
                       "enabled": {"type": "boolean"}, "weight": {"type": "number"}}}
    stream_config = {
        "type": "object", "required": ["threshold", "detectors"],
        "properties": {"threshold": {"type": "number"},
                       "detectors": {"type": "object", "additionalProperties": _ref("DetectorConfig")}}}
    event_base = {"id": {"type": "integer"},
                  "published_at": {"type": "integer", "description": "Epoch milliseconds."}}
    single = {"type": "object", "required": ["source"], "additionalProperties": False,
              "properties": {"source": _NAME, "value": {"type": "number"},
                             "values": {"type": "object", "minProperties": 1,
                                        "maxProperties": MAX_FIELDS, "propertyNames": _NAME,
                                        "additionalProperties": {"type": "number"}},
                             "timestamp": {"anyOf": [{"type": "number", "minimum": EARLIEST_TIME,
                                                      "maximum": LATEST_TIME},
                                                     {"type": "string", "format": "date-time"}, {"type": "null"}],
                                           "description": "Epoch seconds or ISO-8601 (without "
                                                          "an offset: UTC), in the years 1 to 9999; "
                                                          "absent or null: now."}},
              "oneOf": [{"required": ["value"]}, {"required": ["values"]}]}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "StreamList": {"type": "object", "required": ["streams", "user_streams", "max_user_streams"],
                       "properties": {"streams": {"type": "array", "items": _ref("StreamEntry")},
                                      "user_streams": _COUNT, "max_user_streams": _COUNT}},
        "StreamEntry": {"type": "object", "required": ["name", "kind", "fields", "created_at"],
                        "properties": {
                            "name": _NAME, "kind": {"enum": ["builtin", "user"]},
                            "fields": {"type": "array", "items": {"type": "string"}},
                            "created_at": {"type": ["number", "null"], "description": "Epoch seconds."},
                            "owner": {"type": "object", "required": ["address", "token"],
                                      "description": "User streams: who created it.",
                                      "properties": {
                                          "address": {"type": ["string", "null"],
                                                      "description": "Client address."},
                                          "token": {"type": ["string", "null"],
                                                    "description": "Fingerprint of the token used "
                                                                   "(not the token), or null."}}}}},
        "StreamDeleted": {"type": "object", "required": ["deleted", "rows"],
                          "properties": {"deleted": _NAME, "rows": {"type": "object",
                                                                    "additionalProperties": _COUNT}}},
        "LoginRequest": {"type": "object", "required": ["token"],
                         "properties": {"token": {"type": "string"}}},
        "LoginState": {"type": "object", "required": ["authenticated"],
                       "properties": {"authenticated": {"type": "boolean"},
                                      "token_required": {"type": "boolean"},
                                      "read_requires_token": {"type": "boolean"}}},
        "Point": point_json_schema(),
        "Anomaly": {"allOf": [_ref("Point"), {
            "type": "object", "required": ["anomaly_id", "detected_at"],
            "properties": {"anomaly_id": {"type": "integer"}, "detected_at": {"type": "number"}}}]},
        "Stream": {"type": "object",
                   "required": ["name", "fields", "description", "units", "kind", "points", "anomalies"],
                   "properties": {"name": _NAME, "fields": {"type": "array", "items": {"type": "string"}},
                                  "description": {"type": "string"}, "units": {"type": "object"},
                                  "kind": {"enum": ["builtin", "user"]}, "points": _COUNT,
                                  "anomalies": _COUNT}},
        "Status": {"type": "object",
                   "required": ["status", "uptime_s", "tick_interval_s", "streams", "points",
                                "anomalies", "clients"],
                   "properties": {"status": {"type": "string"}, "uptime_s": {"type": "number"},
                                  "tick_interval_s": {"type": "number"},
                                  "streams": {"type": "array", "items": _ref("Stream")},
                                  "points": _COUNT, "anomalies": _COUNT,
                                  "clients": {"type": "object", "required": ["sse", "ws"],
                                              "properties": {"sse": _COUNT, "ws": _COUNT}}}},
        "Stats": {"type": "object",
                  "required": ["points", "anomalies", "anomaly_rate", "per_detector", "tick", "truth"],
                  "properties": {
                      "points": _COUNT, "anomalies": _COUNT, "anomaly_rate": _NULLABLE_NUMBER,
                      "per_detector": {"type": "object", "additionalProperties": _COUNT},
                      "tick": {"type": "object", "required": ["count", "last_ms", "p50_ms", "p99_ms"],
                               "properties": {"count": _COUNT, "last_ms": _NULLABLE_NUMBER,
                                              "p50_ms": _NULLABLE_NUMBER, "p99_ms": _NULLABLE_NUMBER,
                                              "first_ms": {**_NULLABLE_NUMBER, "description":
                                                           "the process's first tick; not in p50_ms, "
                                                           "p99_ms"}}},
                      "truth": {"type": "object",
                                "description": "Flags on built-in streams against injected ground "
                                "truth: tp/fp/fn count points; precision = tp/(tp+fp) per flag; "
                                "recall = episodes_caught/(episodes_caught+episodes_missed) per "
                                "injected anomaly (caught once any of its points is flagged).",
                                "required": ["tp", "fp", "fn", "episodes_caught", "episodes_missed",
                                             "precision", "recall"],
                                "properties": {"tp": _COUNT, "fp": _COUNT, "fn": _COUNT,
                                               "episodes_caught": _COUNT, "episodes_missed": _COUNT,
                                               "precision": _NULLABLE_NUMBER,
                                               "recall": _NULLABLE_NUMBER}},
                      "writer": {"type": "object", "description": "The database writer: commits "
                                 "(batches), jobs committed, jobs waiting.",
                                 "required": ["batches", "jobs", "queued", "synchronous"],
                                 "properties": {"batches": _COUNT, "jobs": _COUNT, "queued": _COUNT,
                                                "last_batch_size": _COUNT,
                                                "last_commit_ms": _NULLABLE_NUMBER,
                                                "synchronous": {"enum": ["FULL", "NORMAL"]},
                                                "last_error": {"type": ["string", "null"]}}},
                      "push": {"type": "object", "required": ["clients", "published", "dropped"],
                               "properties": {"clients": {"type": "object"}, "published": _COUNT,
                                              "dropped": _COUNT}}}},
        "Health": {"type": "object", "required": ["status", "ready", "scheduler", "database"],
                   "properties": {"status": {"enum": ["ok", "starting", "degraded", "failed"]},
                                  "ready": {"type": "boolean", "description":
                                            "The engine's learned state is restored (false for a "
                                            "moment after each start)."},
                                  "starting": {"type": "string",
                                               "description": "The restore step in progress."},
                                  "since_s": {"type": "number", "minimum": 0,
                                              "description": "Seconds since the restore began."},
                                  "failed": {"type": "string",
                                             "description": "Why the restore failed."},
                                  "scheduler": {"type": "boolean"}, "database": {"type": "boolean"},
                                  "scheduler_enabled": {"type": "boolean"}}},
        "Data": {"type": "object", "required": ["source", "fields", "points"],
                 "properties": {"source": _NAME, "fields": {"type": "array", "items": {"type": "string"}},
                                "points": {"type": "array", "items": _ref("Point")}}},
        "AnomalyList": {"type": "object", "required": ["anomalies"],
                        "properties": {"anomalies": {"type": "array", "items": _ref("Anomaly")}}},
        "AlertList": {"type": "object", "required": ["alerts"],
                      "properties": {"alerts": {"type": "array", "items": _ref("Anomaly"),
                                                "maxItems": 20}}},
        "SubmitPoint": single,
        "SubmitRequest": {"oneOf": [
            _ref("SubmitPoint"),
            {"type": "object", "required": ["points"], "additionalProperties": False,
             "properties": {"points": {"type": "array", "minItems": 1,
                                       "maxItems": SETTINGS_BY_NAME["MAX_BATCH_POINTS"].default,
                                       "items": _ref("SubmitPoint")}}}]},
        "SubmitResponse": {"type": "object", "required": ["results"],
                           "properties": {"results": {"type": "array", "items": _ref("Point")}}},
        "DetectorConfig": detector_config,
        "StreamConfig": stream_config,
        "ConfigureRequest": _configure_request(windows),
        "StreamConfigResponse": {"type": "object", "required": ["source", "config"],
                                 "properties": {"source": _NAME, "config": _ref("StreamConfig")}},
        "AllConfigResponse": {"type": "object", "required": ["streams"],
                              "properties": {"streams": {"type": "object",
                                                         "additionalProperties": _ref("StreamConfig")}}},
        "TickEvent": {"type": "object", "required": ["type", "id", "published_at", "tick", "points"],
                      "properties": {**event_base, "type": {"const": "tick"},
                                     "tick": {"type": ["integer", "null"],
                                              "description": "Scheduler tick number; null for a submit."},
                                     "origin": {"enum": ["scheduler", "submit"]},
                                     "points": {"type": "array", "items": _ref("Point")}}},
        "AnomalyEvent": {"type": "object", "required": ["type", "id", "published_at", "anomaly"],
                         "properties": {**event_base, "type": {"const": "anomaly"},
                                        "anomaly": _ref("Anomaly")}},
        "HelloEvent": {"type": "object", "required": ["type", "id", "published_at", "sources"],
                       "properties": {**event_base, "type": {"const": "hello"},
                                      "sources": {"type": "array", "items": {"type": "string"}},
                                      "subscribed": {"oneOf": [{"const": "*"}, {
                                          "type": "array", "items": {"type": "string"}}]}}},
        "PongEvent": {"type": "object", "required": ["type", "id", "published_at"],
                      "properties": {**event_base, "type": {"const": "pong"}}},
        "ErrorEvent": {"type": "object", "required": ["type", "published_at", "error"],
                       "properties": {**event_base, "type": {"const": "error"},
                                      "error": {"type": "string"}}},
        **_event_schemas(),
        "AlertEvent": {"type": "object", "required": ["type", "id", "published_at", "transition", "alert"],
                       "description": "One transition of an alert (server/alerts/live.py); `alert` is the "
                                      "alert as it stands (when replayed: as it stands now).",
                       "properties": {**event_base, "type": {"const": "alert"},
                                      "transition": {"enum": list(ALERT_TRANSITIONS)},
                                      "alert": _ref("Alert")}},
        "Event": {"oneOf": [_ref("TickEvent"), _ref("AnomalyEvent"), _ref("EventsEvent"), _ref("AlertEvent"),
                            _ref("HelloEvent"), _ref("PongEvent"), _ref("ErrorEvent")]},
        **_alert_schemas(),
        **_history_schemas(),
    }


def _history_schemas() -> dict[str, Any]:
    """The history view's answer (server/api_history.py)."""
    per_field = {"type": "object", "additionalProperties": {"type": ["number", "null"]},
                 "description": "Field name -> value."}
    bucket = {"type": "object",
              "required": ["start", "end", "count", "first", "last", "anomalies", "max_score",
                           "min", "max", "mean"],
              "properties": {"start": {"type": "number"}, "end": {"type": "number"},
                             "count": {**_COUNT, "description": "Points in [start, end)."},
                             "first": {"type": "number", "description": "Its first point's timestamp."},
                             "last": {"type": "number", "description": "Its last point's timestamp."},
                             "anomalies": _COUNT, "max_score": {"type": ["number", "null"]},
                             "min": per_field, "max": per_field, "mean": per_field}}
    sample = {"type": "object", "required": ["id", "timestamp", "values", "score", "is_anomaly", "severity"],
              "properties": {"id": {"type": "integer"}, "timestamp": {"type": "number"},
                             "values": per_field, "score": {"type": ["number", "null"]},
                             "is_anomaly": {"type": "boolean"}, "alert": {"type": "boolean"},
                             "severity": {"type": ["string", "null"]}}}
    mark = {"type": "object", "required": ["id", "timestamp", "values", "score", "severity"],
            "properties": {**sample["properties"], "explanation": {"type": ["string", "null"]}}}
    return {"History": {
        "type": "object",
        "required": ["source", "fields", "from", "to", "total", "resolution", "bucket_seconds",
                     "points", "buckets", "anomalies", "anomalies_truncated"],
        "properties": {
            "source": _NAME, "fields": {"type": "array", "items": {"type": "string"}},
            "from": {"type": "number"}, "to": {"type": "number"},
            "total": {**_COUNT, "description": "Stored points in [from, to)."},
            "resolution": {"enum": ["raw", "buckets"],
                           "description": "raw: at most max_points points, as stored; buckets: "
                                          "max_points equal spans (empty ones left out)."},
            "bucket_seconds": {"type": ["number", "null"]},
            "points": {"oneOf": [{"type": "null"}, {"type": "array", "items": sample}]},
            "buckets": {"oneOf": [{"type": "null"}, {"type": "array", "items": bucket}]},
            "anomalies": {"type": "array", "items": mark,
                          "description": "Anomalous points in the range, oldest first (the newest 1000)."},
            "anomalies_truncated": {"type": "boolean"}}}}


def _alert_schemas() -> dict[str, Any]:
    """Alerts (one per incident), silences, the audit log, receivers (server/alerts/)."""
    time_or_null = {"type": ["number", "null"], "description": "Epoch seconds."}
    text_or_null = {"type": ["string", "null"]}
    id_or_null = {"type": ["integer", "null"]}
    matchers = {"type": "object", "additionalProperties": False, "minProperties": 1,
                "description": "Label: value, or a list of values (any matches); severity also "
                               "takes '>=high' (that severity or worse).",
                "properties": {label: {"anyOf": [value, {"type": "array", "items": value,
                                                         "minItems": 1, "maxItems": 100}]}
                               for label, value in (("stream", _MATCH_VALUE), ("entity", _MATCH_ENTITY),
                                                    ("type", _MATCH_VALUE))}}
    matchers["properties"]["severity"] = {"anyOf": [_SEVERITY_MATCH, {
        "type": "array", "items": _SEVERITY_MATCH, "minItems": 1, "maxItems": 100}]}
    alert_props = {
        "id": {"type": "integer"}, "fingerprint": {"type": "string"},
        "stream": {"type": "string"}, "entity": text_or_null,
        "type": {"type": "string", "description": "Anomaly type ('anomaly' for the learned detectors)."},
        "state": {"enum": ["pending", "firing", "resolved"]},
        "active": {"type": "boolean", "description": "The subject's last point was anomalous."},
        "severity": {"enum": [None, "low", "medium", "high", "critical"],
                     "description": "Peak severity of the incident."},
        "peak_score": {"type": "number"}, "points": {**_COUNT, "description": "Anomalous points."},
        "first_point_id": id_or_null, "last_point_id": id_or_null,
        "started_at": {"type": "number"}, "fired_at": time_or_null,
        "last_anomalous_at": {"type": "number"}, "resolved_at": time_or_null,
        "resolved_by": {"type": ["string", "null"], "description": "'auto', 'stream deleted', "
                                                                  "'import undone', a person, or null "
                                                                  "(dropped while pending)."},
        "resolution": {"type": ["string", "null"],
                       "description": "How it ended: 'quiet', 'dropped' (never fired), 'by hand', "
                                      "'stream deleted', 'import undone', 'not an anomaly' (feedback); "
                                      "null while open."},
        "acknowledged_at": time_or_null, "acknowledged_by": text_or_null, "ack_note": text_or_null,
        "notified_at": time_or_null, "summary": text_or_null,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "silenced_by": {"type": "array", "items": {"type": "integer"}},
        "anomalies": {"type": ["string", "null"],
                      "description": "For an alert of a schema's events (entity 'key=value'): the "
                                     "API path of its anomalous events; null for a stream's alert."},
    }
    silence_props = {"id": {"type": "integer"}, "matchers": {"type": "object"},
                     "starts_at": {"type": "number"}, "ends_at": {"type": "number"},
                     "created_by": text_or_null, "comment": text_or_null,
                     "created_at": {"type": "number"}, "expired_at": time_or_null,
                     "state": {"enum": ["pending", "active", "expired"]}}
    by = {**_NAME, "description": "Who acts (default: the client's address)."}
    note = {"type": ["string", "null"], "maxLength": 1000}
    moment = {"anyOf": [{"type": "number", "minimum": 0, "maximum": LATEST_SILENCE_TIME},
                        {"type": "string", "format": "date-time"}],
              "description": f"Epoch seconds or ISO-8601, either from 0 to {LATEST_SILENCE_TIME:g} "
                             "epoch seconds."}
    return {
        "Alert": {"type": "object", "required": [k for k in alert_props if k not in ("silenced_by", "anomalies")],
                  "properties": alert_props,
                  "description": "silenced_by (ids of the silences covering an open alert) and "
                                 "anomalies are in lists, single alerts and push events, not in "
                                 "action answers."},
        "IncidentList": {"type": "object", "required": ["alerts", "open"], "properties": {
            "alerts": {"type": "array", "items": _ref("Alert")},
            "open": {"type": "object", "required": ["pending", "firing"],
                     "properties": {"pending": _COUNT, "firing": _COUNT}}}},
        "AlertAnswer": {"type": "object", "required": ["alert"], "properties": {"alert": _ref("Alert")}},
        "AlertDetail": {"type": "object", "required": ["alert", "audit"], "properties": {
            "alert": _ref("Alert"), "audit": {"type": "array", "items": _ref("AuditEntry")}}},
        "AlertAction": {"type": "object", "additionalProperties": False,
                        "properties": {"by": by, "note": note}},
        "AuditEntry": {"type": "object",
                       "required": ["id", "at", "actor", "action", "alert_id", "silence_id", "detail"],
                       "properties": {"id": {"type": "integer"}, "at": {"type": "number"},
                                      "actor": text_or_null, "address": text_or_null,
                                      "token": text_or_null,
                                      "action": {"enum": ["acknowledge", "resolve", "silence",
                                                          "expire_silence", "feedback"]},
                                      "alert_id": id_or_null, "silence_id": id_or_null,
                                      "detail": {"type": "object"}}},
        "AuditList": {"type": "object", "required": ["audit"],
                      "properties": {"audit": {"type": "array", "items": _ref("AuditEntry")}}},
        "Silence": {"type": "object", "required": list(silence_props), "properties": silence_props},
        "SilenceAnswer": {"type": "object", "required": ["silence"],
                          "properties": {"silence": _ref("Silence")}},
        "SilenceList": {"type": "object", "required": ["silences"],
                        "properties": {"silences": {"type": "array", "items": _ref("Silence")}}},
        "SilenceRequest": {
            "type": "object", "required": ["matchers"], "additionalProperties": False,
            "description": f"Give exactly one of ends_at and duration. A silence lasts at most "
                           f"{MAX_SILENCE_S:.0f} seconds (366 days) from starts_at (or now): a "
                           "longer duration or a later ends_at, in either form, is a 400.",
            "properties": {"matchers": matchers, "starts_at": moment, "ends_at": moment,
                           "duration": {"type": "number", "exclusiveMinimum": 0,
                                        "maximum": MAX_SILENCE_S, "description": "Seconds."},
                           "by": by, "comment": note},
            "oneOf": [{"required": ["ends_at"], "not": {"required": ["duration"]}},
                      {"required": ["duration"], "not": {"required": ["ends_at"]}}]},
        **_feedback_schemas(by, note),
        "ReceiverList": {"type": "object", "required": ["receivers", "sender"], "properties": {
            "receivers": {"type": "array", "items": {
                "type": "object", "required": ["name", "kind", "matchers", "send_resolved", "outbox"],
                "properties": {"name": {"type": "string"},
                               "kind": {"enum": ["webhook", "slack", "email"]},
                               "matchers": {"type": "object"}, "send_resolved": {"type": "boolean"},
                               "outbox": {"type": "object"}}}},
            "sender": {"type": "object", "additionalProperties": _COUNT}}},
    }


def _event_schemas() -> dict[str, Any]:
    """Entity-keyed events: derived from the typed event (server/pipeline/event.py)."""
    from .pipeline.event import ScoredEvent, json_schema

    scored = json_schema(ScoredEvent)
    stored = {"type": "object", "required": ["id", *scored["required"], "origin", "received_at", "acknowledged"],
              "properties": {"id": {"type": "integer", "description": "Row id of the stored event."},
                             **scored["properties"],
                             "origin": {"type": "string", "description": "upload:<id>, replay:<id> or a feed's name."},
                             "received_at": {"type": "number", "description": "Stored at, epoch seconds."},
                             "acknowledged": {"oneOf": [{"type": "null"}, _ref("Acknowledgement")]}}}
    counts = {"type": "object", "additionalProperties": _COUNT}
    entity_rank = {"type": "array", "items": {"type": "object", "required": ["id", "anomalies", "max_risk"],
                                              "properties": {"id": {"type": ["string", "null"]},
                                                             "anomalies": _COUNT,
                                                             "max_risk": {"type": ["integer", "null"]},
                                                             "total_risk": {"type": ["integer", "null"]}}}}
    flag = {"type": "object", "required": ["schema", "entity", "entity_id", "flagged_by", "flagged_at"],
            "properties": {"schema": {"type": "string"}, "entity": {"type": "string"},
                           "entity_id": {"type": "string"}, "flagged_by": {"type": "string"},
                           "flagged_at": {"type": "number"}, "note": {"type": ["string", "null"]}}}
    return {
        "ScoredEvent": stored,
        "Acknowledgement": {"type": "object", "required": ["by", "at"],
                            "properties": {"by": {"type": "string"}, "at": {"type": "number"},
                                           "note": {"type": ["string", "null"]}}},
        "EventAnomalyList": {"type": "object", "required": ["schema", "anomalies"],
                             "properties": {"schema": {"type": "string"},
                                            "anomalies": {"type": "array", "items": _ref("ScoredEvent")}}},
        "EventList": {"type": "object", "required": ["schema", "events"],
                      "properties": {"schema": {"type": "string"},
                                     "events": {"type": "array", "items": _ref("ScoredEvent")}}},
        "UploadSummary": {"type": "object",
                          "required": ["schema", "origin", "events", "duplicates", "anomalies", "flagged",
                                       "types", "severities", "seconds", "anomaly_list", "truncated"],
                          "properties": {"schema": {"type": "string"}, "origin": {"type": "string"},
                                         "events": {**_COUNT, "description": "Events stored: the new ones."},
                                         "duplicates": {**_COUNT, "description":
                                                        "Events already stored (same schema and id), or repeating "
                                                        "an id earlier in the file: skipped, not stored, scored "
                                                        "or counted."},
                                         "anomalies": _COUNT, "flagged": _COUNT,
                                         "types": counts, "severities": counts, "seconds": {"type": "number"},
                                         "anomaly_list": {"type": "array", "items": _ref("ScoredEvent"),
                                                          "description": "The first `limit` anomalies."},
                                         "truncated": {"type": "boolean"}}},
        "BadFile": {"type": "object", "required": ["error"],
                    "description": "A file that does not fit the schema has all four members; "
                                   "any other bad request only `error`.",
                    "properties": {"error": {"type": "string"},
                                   "expected": {"type": "array", "items": {"type": "string"}},
                                   "found": {"type": "array", "items": {"type": "string"}},
                                   "line": {"type": ["integer", "null"],
                                            "description": "File line (the header is line 1)."}}},
        "EventSummary": {"type": "object",
                         "required": ["schema", "events", "anomalies", "severities", "types",
                                      "acknowledged", "top", "flagged"],
                         "properties": {"schema": {"type": "string"}, "events": _COUNT, "anomalies": _COUNT,
                                        "severities": counts, "types": counts, "acknowledged": _COUNT,
                                        "top": {"type": "object", "additionalProperties": entity_rank},
                                        "flagged": {"type": "array", "items": flag},
                                        "clocks": {"type": "array", "description":
                                                   "live sources of this schema that keep their own time "
                                                   "(the built-in feed runs in simulated time)",
                                                   "items": {"type": "object",
                                                             "required": ["source", "schema", "simulated",
                                                                          "speed", "now"],
                                                             "properties": {
                                                                 "source": {"type": "string"},
                                                                 "schema": {"type": "string"},
                                                                 "simulated": {"type": "boolean"},
                                                                 "speed": {"type": "number"},
                                                                 "now": {"type": "number"}}}}}},
        "SchemaList": {"type": "object", "required": ["schemas"], "properties": {"schemas": {
            "type": "array", "items": {"type": "object",
                                       "required": ["name", "id", "timestamp", "entities", "fields", "rules"],
                                       "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                                                      "id": {"type": "string"}, "timestamp": {"type": "string"},
                                                      "entities": {"type": "array", "items": {"type": "string"}},
                                                      "fields": {"type": "array", "items": {"type": "object"}},
                                                      "derived": {"type": "array", "items": {"type": "string"}},
                                                      "rules": {"type": "array", "items": {"type": "object"}}}}}}},
        "Flag": flag,
        "FlagList": {"type": "object", "required": ["flags"],
                     "properties": {"flags": {"type": "array", "items": _ref("Flag")}}},
        "FlagRequest": {"type": "object", "required": ["schema", "entity", "id"],
                        "properties": {"schema": _SCHEMA_NAME, "entity": {**_SCHEMA_NAME,
                                       "description": "An entity key of the schema, e.g. user_id."},
                                       "id": _ENTITY_ID, "by": {"type": "string", "maxLength": 64},
                                       "note": {"type": "string", "maxLength": 500}}},
        "FlagResponse": {"type": "object", "required": ["flag"], "properties": {"flag": _ref("Flag")}},
        "FlagCleared": {"type": "object", "required": ["cleared"], "properties": {"cleared": {"type": "object"}}},
        "AcknowledgeRequest": {"type": "object", "required": ["by"],
                               "properties": {"by": {**_NAME, "description": "Who acknowledges."},
                                              "note": {"type": "string", "maxLength": 500}}},
        "AcknowledgeResponse": {"type": "object", "required": ["id", "acknowledged"],
                                "properties": {"id": {"type": "integer"},
                                               "acknowledged": _ref("Acknowledgement")}},
        "EventsEvent": {"type": "object",
                        "required": ["type", "id", "published_at", "schema", "origin", "count",
                                     "anomaly_count", "types", "anomalies", "amended"],
                        "properties": {"type": {"const": "events"}, "id": {"type": "integer"},
                                       "published_at": {"type": "integer"}, "schema": {"type": "string"},
                                       "origin": {"type": "string"}, "count": _COUNT, "anomaly_count": _COUNT,
                                       "types": counts,
                                       "anomalies": {"type": "array", "items": _ref("ScoredEvent"),
                                                     "description": "The batch's riskiest anomalies (20 at most)."},
                                       "amended": {"type": "array", "items": _ref("ScoredEvent"),
                                                   "description": "Events of earlier batches this one's evidence "
                                                                  "flagged (a repeat rule's window), as they now "
                                                                  "stand (20 at most)."}}},
    }


def _event_filters() -> list[dict]:
    def query(name: str, schema: dict, description: str) -> dict:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    return [query("schema", _SCHEMA_NAME, "An event schema (e.g. ev_charging): list its event anomalies."),
            query("type", {"type": "string"}, "Only this anomaly type (with schema)."),
            query("user_id", _ENTITY_ID, "Only this entity's events (any entity key of the schema)."),
            query("charger_id", _ENTITY_ID, "Only this entity's events (any entity key of the schema)."),
            query("min_risk", {"type": "integer", "minimum": 0, "maximum": 100}, "Risk at least this."),
            query("acknowledged", {"enum": ["true", "false"]}, "Only (un)acknowledged ones."),
            query("before", {"type": "integer", "minimum": 0, "maximum": _MAX_ROW_ID}, "Row ids below this (paging)."),
            query("order", {"enum": ["id", "risk"], "default": "id"}, "Newest first, or riskiest first.")]


def _event_paths(limit) -> dict[str, Any]:
    schema_query = {"name": "schema", "in": "query", "required": True, "schema": _SCHEMA_NAME,
                    "description": "An event schema, e.g. ev_charging (see /api/schemas)."}
    entity_queries = [p for p in _event_filters() if p["name"] in ("user_id", "charger_id")]
    file_types = {t: {"schema": {"type": "string"}} for t in
                  ("text/csv", "application/csv", "application/x-ndjson", "application/jsonl",
                   "application/x-jsonlines")}
    flag_body = {"required": True, "content": {"application/json": {"schema": _ref("FlagRequest")}}}
    return {
        "/api/upload": {"post": {
            "summary": "Import a CSV or JSON-lines file of events: checked whole, scored, stored.",
            "description": "The file is the body (text/csv or JSON lines) or the multipart field "
                           "`file`. Headers may be snake_case or camelCase (session_id, sessionId). "
                           "A missing or mistyped column is a 400 BadFile naming what was expected, "
                           "what was found and the line; nothing of such a file is stored. An event is "
                           "stored once: one whose id its schema has stored already (a file sent again, "
                           "a retried request) is skipped, as is a repeat of an id within the file (the "
                           "first wins), and counted in `duplicates`.",
            "parameters": [schema_query,
                           {"name": "origin", "in": "query", "required": False,
                            "schema": {"enum": ["upload", "replay"], "default": "upload"}},
                           limit(1000, 10_000)],
            "requestBody": {"required": True, "content": {
                **file_types, "multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {"file": {"type": "string", "contentMediaType": "application/octet-stream"}}}}}},
            "responses": {"200": _json(_ref("UploadSummary"), "Imported: counts and anomalies."),
                          "400": _json(_ref("BadFile"), "The file does not fit the schema (or another "
                                                        "bad request: then only `error`)."),
                          **_errors(404, 408, 413, 415, 503)}}},
        "/api/events": {"get": {
            "summary": "Recent events of a schema, newest first (e.g. one user's sessions).",
            "parameters": [schema_query, *entity_queries, limit(100, 1000)],
            "responses": {"200": _json(_ref("EventList"), "Events."), **_errors(400, 404)}}},
        "/api/events/summary": {"get": {
            "summary": "Counts of a schema's events: anomalies per severity and type, top entities.",
            "parameters": [schema_query],
            "responses": {"200": _json(_ref("EventSummary"), "Summary."), **_errors(400, 404)}}},
        "/api/schemas": {"get": {
            "summary": "The event schemas served: fields, entities, derived features, rules.",
            "responses": {"200": _json(_ref("SchemaList"), "Schemas.")}}},
        "/api/flags": {
            "get": {"summary": "Flagged entities (optionally of one ?schema=).",
                    "parameters": [{**schema_query, "required": False}],
                    "responses": {"200": _json(_ref("FlagList"), "Flags."), **_errors(404)}},
            "post": {"summary": "Flag an entity (e.g. a user); persisted, its events are marked from now on.",
                     "requestBody": flag_body,
                     "responses": {"201": _json(_ref("FlagResponse"), "Flagged."),
                                   **_errors(400, 404, 413, 503)}},
            "delete": {"summary": "Clear an entity's flag.", "requestBody": flag_body,
                       "responses": {"200": _json(_ref("FlagCleared"), "Cleared."),
                                     **_errors(400, 404, 413, 503)}}},
        "/api/anomalies/{event_id}/acknowledge": {"post": {
            "summary": "Acknowledge an event anomaly: who, when (now), a note.",
            "parameters": [{"name": "event_id", "in": "path", "required": True,
                            "schema": {"type": "integer", "minimum": 0, "maximum": _MAX_ROW_ID}}],
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("AcknowledgeRequest")}}},
            "responses": {"200": _json(_ref("AcknowledgeResponse"), "Acknowledged."),
                          **_errors(400, 404, 413, 503)}}},
    }


def _paths() -> dict[str, Any]:
    source_path = {"name": "source", "in": "path", "required": True, "schema": _NAME}
    limit = lambda default, maximum: {  # noqa: E731
        "name": "limit", "in": "query", "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}}
    source_filter = {"name": "source", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "Comma-separated source names (absent or * for all); each "
                                    f"name is 1 to {MAX_NAME_LENGTH} characters, else 400."}
    last_event_id = {"name": "last_event_id", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID},
                     "description": "Replay stored events with a larger id first."}
    return {
        "/": {"get": {"summary": "The live dashboard (HTML).", "responses": {
            "200": {"description": "web/index.html", "content": {"text/html": {"schema": {"type": "string"}}}},
            **_errors(404)}}},
        "/health": {"get": {"summary": "Liveness and readiness.", "responses": {
            "200": _json(_ref("Health"), "Scheduler running (or disabled) and database writable; or "
                                          "starting: the engine is being restored (ready false)."),
            "503": _json(_ref("Health"), "Degraded: the scheduler is stalled or the database is not "
                                         "writable; or the restore failed.")}}},
        "/vendor/chart.umd.js": {"get": {"summary": "Chart.js from node_modules.", "responses": {
            "200": {"description": "JavaScript", "content": {"text/javascript": {"schema": {"type": "string"}}}},
            **_errors(404)}}},
        "/static/{filename}": {"get": {
            "summary": "Dashboard assets from static/.",
            "parameters": [{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The file."}, **_errors(404)}}},
        "/api/status": {"get": {"summary": "Uptime, streams, counts and connected clients.", "responses": {
            "200": _json(_ref("Status"), "Server status.")}}},
        "/api/stats": {"get": {"summary": "Detection counts, per-detector firings, tick timings, truth.",
                               "responses": {"200": _json(_ref("Stats"), "Statistics.")}}},
        "/api/data/{source}": {"get": {
            "summary": "Latest points of one stream, oldest first.",
            "parameters": [source_path, limit(60, 1000)],
            "responses": {"200": _json(_ref("Data"), "Points."), **_errors(400, 404)}}},
        "/api/history/{source}": {"get": {
            "summary": "A stream's stored points over a time range, downsampled on the server.",
            "description": "By the points' own timestamps, in [from, to). At most `max_points` points "
                           "come as stored (resolution raw); more are cut into `max_points` equal "
                           "spans with per field min, max and mean (resolution buckets), so a spike "
                           "survives a long range. The range's anomalies come beside them. A range "
                           "that is empty, backwards or longer than 400 days is a 400.",
            "parameters": [source_path,
                           {"name": "from", "in": "query", "required": False,
                            "schema": {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]},
                            "description": "Epoch seconds or ISO-8601; default: an hour before `to`."},
                           {"name": "to", "in": "query", "required": False,
                            "schema": {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]},
                            "description": "Epoch seconds or ISO-8601; default: now."},
                           {"name": "max_points", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 10, "maximum": 5000, "default": 600}}],
            "responses": {"200": _json(_ref("History"), "Points or buckets, and anomalies."),
                          **_errors(400, 404)}}},
        "/api/anomalies": {"get": {
            "summary": "Stored anomalies, newest first; with ?schema= that schema's event anomalies.",
            "description": "Without `schema`: anomalies of the numeric streams (AnomalyList). With "
                           "`schema` (e.g. ev_charging): scored events flagged by a rule or a "
                           "learned baseline, with the event's own fields, types, risk and "
                           "acknowledgement (EventAnomalyList); `type`, entity keys (`user_id`, "
                           "`charger_id`), `min_risk`, `acknowledged`, `before` and `order` filter them. "
                           "With `schema` and `format=csv`, one column per field of the event (the "
                           "schema's fields and derived features) between id, event_id, timestamp_iso "
                           "and the pipeline's columns (risk, severity, types, explanation, signals, "
                           "flagged, truth, acknowledged_by/_at/_note, origin, received_at); with "
                           "`format=jsonl`, one ScoredEvent object per line. Both are streamed as "
                           "they are read, and their `limit` is 10,000 by default and may go up to "
                           "1,000,000 (the JSON answer's stays 100 and 1,000).",
            "parameters": [{"name": "source", "in": "query", "required": False, "schema": _NAME},
                           {"name": "since", "in": "query", "required": False,
                            "schema": _EPOCH_OR_ISO,
                            "description": "Detected at or after: epoch seconds or ISO-8601."},
                           {"name": "until", "in": "query", "required": False,
                            "schema": _EPOCH_OR_ISO, "description": "Detected before."},
                           {"name": "severity", "in": "query", "required": False,
                            "schema": _SEVERITY_FILTER},
                           {"name": "before", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID},
                            "description": "Only anomaly ids below this (paging: the last "
                                           "anomaly_id of the previous page)."},
                           limit(100, 1000), _FORMAT, *[q for q in _event_filters() if q["name"] != "before"]],
            "responses": {"200": _exportable({"oneOf": [_ref("AnomalyList"), _ref("EventAnomalyList")]},
                                              "Anomalies (with ?schema=, event anomalies)."),
                          **_errors(400, 404)}}},
        **_event_paths(limit),
        "/api/alerts": {"get": {"summary": "The 20 most recent anomalies, newest first.",
                                "responses": {"200": _json(_ref("AlertList"), "Alerts.")}}},
        **_alert_paths(limit),
        "/metrics": {"get": {
            "summary": "Prometheus text exposition: points, anomalies, alerts, latencies, queues, "
                       "push clients, outbox backlog.",
            "responses": {"200": {"description": "Prometheus text format 0.0.4.",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/api/submit": {"post": {
            "summary": "Score and store one point or a batch (a new source creates a user stream).",
            "description": "Answers 200 only once the points and their verdicts are committed "
                           "(synchronous=FULL by default: they survive a crash or power cut).",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("SubmitRequest")}}},
            "responses": {"200": _json(_ref("SubmitResponse"), "Scored points, in request order."),
                          **_errors(400, 409, 413, 503)}}},
        "/api/configure": {
            "get": {"summary": "Detector configuration of every stream, or of one with ?source=.",
                    "parameters": [{"name": "source", "in": "query", "required": False, "schema": _NAME}],
                    "responses": {"200": _json({"oneOf": [_ref("AllConfigResponse"),
                                                          _ref("StreamConfigResponse")]}, "Configuration."),
                                  **_errors(400, 404)}},
            "post": {"summary": "Change a stream's threshold/window/enabled/weight; applied at once and persisted.",
                     "requestBody": {"required": True,
                                     "content": {"application/json": {"schema": _ref("ConfigureRequest")}}},
                     "responses": {"200": _json(_ref("StreamConfigResponse"), "The stream's new configuration."),
                                   **_errors(400, 404, 413, 503)}}},
        "/api/streams": {"get": {
            "summary": "Every stream; user streams with their owner and creation time.",
            "responses": {"200": _json(_ref("StreamList"), "Streams in creation order.")}}},
        "/api/streams/{name}": {"delete": {
            "summary": "Delete a user stream with its points, anomalies and configuration.",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": _NAME}],
            "responses": {"200": _json(_ref("StreamDeleted"), "Deleted; rows removed per table."),
                          **_errors(400, 404, 409, 503)}}},
        "/api/login": {
            "get": {"summary": "Whether a token guards the server and this request carries it.",
                    "responses": {"200": _json(_ref("LoginState"), "Session state.")}},
            "post": {"summary": "Exchange the token for a session cookie of the dashboard's own.",
                     "description": "Sets `anomaly_session` (HttpOnly, SameSite=Strict, Max-Age "
                                    "SESSION_HOURS): a new session each time, `<id>.<issued>.<mac>` "
                                    "signed with a key derived from the token. It authenticates like "
                                    "the bearer token until it is SESSION_HOURS old, its session is "
                                    "ended by POST /api/logout, or the token changes; then it is "
                                    "refused with 401 like a missing token.",
                     "requestBody": {"required": True,
                                     "content": {"application/json": {"schema": _ref("LoginRequest")}}},
                     "responses": {"200": _json(_ref("LoginState"), "Logged in; cookie set."),
                                   **_errors(400, 401, 409, 413)}}},
        "/api/logout": {"post": {
            "summary": "End the session the cookie names, for good, and clear the cookie.",
            "description": "The session is revoked in the database: the same cookie value sent "
                           "again, by any client to any worker, before or after a restart, is "
                           "refused with 401. Other sessions go on. Without a live session "
                           "cookie (none, expired, malformed) only the cookie is cleared.",
            "responses": {"200": _json(_ref("LoginState"), "Session ended; cookie cleared."),
                          **_errors(503)}}},
        "/api/openapi.json": {"get": {"summary": "This description.", "responses": {
            "200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/api/stream/anomalies": {"get": {
            "summary": "Server-Sent Events: tick, anomaly and alert events.",
            "description": "Frames `id: <id>\\nevent: <type>\\ndata: <json>\\n\\n`, `retry: 2000` first, "
                           "`: ping` heartbeat comments. `Last-Event-ID` (header) or ?last_event_id= "
                           "replays stored events with a larger id (at most REPLAY_LIMIT, the newest), "
                           "in order, before live ones. Each data object is a TickEvent, AnomalyEvent, EventsEvent (a stored batch of scored events) "
                           "or AlertEvent (`event: alert`, one per alert transition: pending, firing, acknowledged, "
                           "silenced, unsilenced, resolved).",
            "parameters": [source_filter, last_event_id,
                           {"name": "Last-Event-ID", "in": "header", "required": False,
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID}}],
            "responses": {"200": {"description": "An endless event stream.",
                                  "content": {"text/event-stream": {"schema": {"type": "string"},
                                                                    "x-event-schema": _ref("Event")}}},
                          **_errors(400)}}},
        "/ws": {"get": {
            "summary": "WebSocket with the same events as SSE.",
            "description": "First message: a HelloEvent. Then TickEvent, AnomalyEvent, EventsEvent and "
                           "AlertEvent objects. "
                           "Send {\"subscribe\": [sources]} (empty or \"*\" = all) or {\"type\": \"ping\"} "
                           "(answered by a PongEvent); a bad message is answered by an ErrorEvent. The "
                           "server pings every WS_PING_INTERVAL seconds.",
            "parameters": [source_filter, last_event_id],
            "responses": {"101": {"description": "Switching protocols; messages are Event objects.",
                                  "content": {"application/json": {"schema": _ref("Event")}}},
                          **_errors(400)}}},
    }


def _exportable(schema: dict, description: str) -> dict:
    """A 200 answer in JSON, CSV or JSON lines, by ?format=."""
    answer = _json(schema, description)
    answer["content"]["text/csv"] = {"schema": {"type": "string"}}
    answer["content"]["application/x-ndjson"] = {"schema": {"type": "string"}}
    return answer


def _feedback_schemas(by: dict, note: dict) -> dict[str, Any]:
    """'Not an anomaly' verdicts (server/feedback.py)."""
    id_or_null = {"type": ["integer", "null"]}
    values = {"type": "object", "additionalProperties": {"type": "number"}}
    props = {"id": {"type": "integer"}, "at": {"type": "number"}, "verdict": {"enum": ["not_anomaly"]},
             "note": {"type": ["string", "null"]}, "by": {"type": ["string", "null"]},
             "address": {"type": ["string", "null"]}, "stream": {"type": "string"},
             "anomaly_id": id_or_null, "point_id": id_or_null,
             "alert_id": {**id_or_null, "description": "The incident's alert (resolved by it if open)."},
             "taught": {"type": "array", "items": values,
                        "description": "The values the stream was taught are normal."},
             "scored_through": {"type": "integer",
                                "description": "The last point the engine had scored when it learned them."}}
    return {
        "FeedbackRequest": {"type": "object", "required": ["verdict"], "additionalProperties": False,
                            "properties": {"verdict": {"enum": ["not_anomaly"]}, "note": note, "by": by}},
        "Feedback": {"type": "object", "required": list(props), "properties": props},
        "FeedbackAnswer": {"type": "object", "required": ["feedback", "alert"], "properties": {
            "feedback": _ref("Feedback"), "alert": {"oneOf": [{"type": "null"}, _ref("Alert")]}}},
        "FeedbackList": {"type": "object", "required": ["feedback"],
                         "properties": {"feedback": {"type": "array", "items": _ref("Feedback")}}},
    }


def _feedback_paths(limit, id_param) -> dict[str, Any]:
    body = {"required": True, "content": {"application/json": {"schema": _ref("FeedbackRequest")}}}
    teaches = ("The stream learns the values as normal: the same values, and the same pattern, stop "
               f"alerting on it (for {ACCEPT_POINTS:,} of its points; other streams are unchanged). The "
               "incident's alert, if still open, is resolved with the resolution 'not an anomaly'; "
               "the verdict is stored, audited, and taught again after a restart whose snapshot "
               "predates it. 409 for a stream the learned detectors do not score (a schema's events). "
               "The same verdict again on the same target is 200 with the verdict stored first: "
               "nothing is taught or stored twice.")
    answers = {"200": _json(_ref("FeedbackAnswer"), "Given before: the stored verdict, unchanged."),
               "201": _json(_ref("FeedbackAnswer"), "Taught and stored."),
               **_errors(400, 404, 409, 413, 503)}
    return {
        "/api/anomalies/{anomaly_id}/feedback": {"post": {
            "summary": "Not an anomaly: teach a learned stream that this anomalous point was normal.",
            "description": "anomaly_id is the anomaly_id of GET /api/anomalies. " + teaches,
            "parameters": [id_param("anomaly_id")], "requestBody": body,
            "responses": answers}},
        "/api/incidents/{alert_id}/feedback": {"post": {
            "summary": "Not an anomaly: teach the alert's stream that its anomalous points were normal.",
            "description": "Every stored anomalous point of the alert (up to 1,000) is taught. " + teaches,
            "parameters": [id_param("alert_id")], "requestBody": body,
            "responses": answers}},
        "/api/feedback": {"get": {
            "summary": "The 'not an anomaly' verdicts given, newest first.",
            "parameters": [{"name": "stream", "in": "query", "required": False, "schema": _NAME},
                           limit(100, 1000)],
            "responses": {"200": _json(_ref("FeedbackList"), "Verdicts."), **_errors(400)}}},
    }


def _alert_paths(limit) -> dict[str, Any]:
    def id_param(name: str) -> dict:
        return {"name": name, "in": "path", "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_EVENT_ID}}

    def query(name: str, schema: dict, description: str = "") -> dict:
        return {"name": name, "in": "query", "required": False, "schema": schema,
                **({"description": description} if description else {})}

    action_body = {"required": False, "content": {"application/json": {"schema": _ref("AlertAction")}}}
    states = {"type": "string", "pattern": "^(pending|firing|resolved)(,(pending|firing|resolved))*$",
              "description": "Comma-separated states."}
    return {
        "/api/incidents": {"get": {
            "summary": "Alerts (one per incident of a stream or entity and an anomaly type), newest first.",
            "description": "pending -> firing -> resolved (ALERT_FOR, ALERT_KEEP_FIRING_FOR); each "
                           "carries its anomalous points' count and peak severity.",
            "parameters": [query("state", states), query("stream", _NAME),
                           query("entity", {**_NAME, "maxLength": MAX_ENTITY_LABEL_LENGTH}),
                           query("type", _NAME), query("severity", _SEVERITY_FILTER),
                           query("acknowledged", {"enum": ["true", "false"]}),
                           query("since", _EPOCH_OR_ISO, "Started at or after."),
                           query("until", _EPOCH_OR_ISO, "Started before."),
                           query("before", {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID},
                                 "Only alert ids below this (paging)."),
                           limit(100, 1000), _FORMAT],
            "responses": {"200": _exportable(_ref("IncidentList"), "Alerts."), **_errors(400)}}},
        "/api/incidents/{alert_id}": {"get": {
            "summary": "One alert with its audit trail.", "parameters": [id_param("alert_id")],
            "responses": {"200": _json(_ref("AlertDetail"), "The alert."), **_errors(404)}}},
        "/api/incidents/{alert_id}/acknowledge": {"post": {
            "summary": "Acknowledge an open alert (who, note): it is not notified again.",
            "parameters": [id_param("alert_id")], "requestBody": action_body,
            "responses": {"200": _json(_ref("AlertAnswer"), "Acknowledged."),
                          **_errors(400, 404, 409, 413, 503)}}},
        "/api/incidents/{alert_id}/resolve": {"post": {
            "summary": "Resolve an open alert by hand (receivers that heard it fire hear it end).",
            "parameters": [id_param("alert_id")], "requestBody": action_body,
            "responses": {"200": _json(_ref("AlertAnswer"), "Resolved."),
                          **_errors(400, 404, 409, 413, 503)}}},
        "/api/silences": {
            "get": {"summary": "Silences, newest first.",
                    "parameters": [query("state", {"type": "string", "pattern":
                                                   "^(active|pending|expired)(,(active|pending|expired))*$"}),
                                   limit(100, 1000)],
                    "responses": {"200": _json(_ref("SilenceList"), "Silences."), **_errors(400)}},
            "post": {"summary": "Silence matching alerts (no notifications) from starts_at until ends_at.",
                     "requestBody": {"required": True,
                                     "content": {"application/json": {"schema": _ref("SilenceRequest")}}},
                     "responses": {"201": _json(_ref("SilenceAnswer"), "Created."),
                                   **_errors(400, 409, 413, 503)}}},
        "/api/silences/{silence_id}": {"delete": {
            "summary": "Expire a silence now.", "parameters": [id_param("silence_id")],
            "responses": {"200": _json(_ref("SilenceAnswer"), "Expired."), **_errors(404, 409, 503)}}},
        "/api/audit": {"get": {
            "summary": "Every action on alerts, silences and event anomalies (acknowledge), newest first.",
            "parameters": [query("alert_id", {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID}),
                           query("silence_id", {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID}),
                           query("event_anomaly_id", {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID},
                                 "An event anomaly's id (GET /api/anomalies?schema=): its acknowledgements."),
                           limit(100, 1000)],
            "responses": {"200": _json(_ref("AuditList"), "Audit entries."), **_errors(400)}}},
        "/api/receivers": {"get": {
            "summary": "Notification receivers (from ALERT_RECEIVERS) with their outbox backlog.",
            "responses": {"200": _json(_ref("ReceiverList"), "Receivers.")}}},
        **_feedback_paths(limit, id_param),
    }


def _with_security(paths: dict[str, Any]) -> dict[str, Any]:
    """Add the answers of server/security.py's checks, by the same rules as those checks."""
    from .security import PUBLIC_PATHS, PUSH_PATHS, SAFE_METHODS

    for path, operations in paths.items():
        flask_path = path.replace("{", "<").replace("}", ">")
        for method, operation in operations.items():
            responses = operation["responses"]
            codes = {400}  # the Host check answers every route
            mutating = method.upper() not in SAFE_METHODS
            if mutating and path.startswith("/api/"):
                codes |= {403, 408, 415, 429}
                operation["security"] = [{}, {"bearer": []}, {"session": []}]
                if path not in PUBLIC_PATHS or path == "/api/login":
                    codes.add(401)
            elif (path.startswith("/api/") or path == "/ws") and flask_path not in PUBLIC_PATHS:
                codes.add(401)  # with READ_ACCESS=TOKEN
                operation["security"] = [{}, {"bearer": []}, {"session": []}]
            if path in PUSH_PATHS:
                codes.add(429)
            if path == "/ws":
                codes.add(403)
            for code in sorted(codes):
                responses.setdefault(str(code), {"$ref": f"#/components/responses/{_ERROR_NAMES[code]}"})
    return paths


def spec(windows: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """The OpenAPI document; ``windows`` (member detector -> its least and most window) names
    the engine's members, so configure requests are described exactly."""
    error = lambda text: _json(_ref("Error"), text)  # noqa: E731
    paths = _paths()
    for operations in paths.values():
        for operation in operations.values():
            for code, answer in _errors(*_SERVER_ERRORS).items():
                operation["responses"].setdefault(code, answer)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Real-time anomaly detection server", "version": "1.0.0",
                 "description": "Nine built-in synthetic streams scored every tick, user streams "
                                "through /api/submit, anomalies pushed over SSE and WebSocket. "
                                "Every error is {\"error\": \"...\"}."},
        "paths": _with_security(paths),
        "components": {
            "schemas": _schemas(windows),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "ANOMALY_API_TOKEN; needed by every mutating request "
                                          "when set, and by reads with READ_ACCESS=TOKEN."},
                "session": {"type": "apiKey", "in": "cookie", "name": "anomaly_session",
                            "description": "Set by POST /api/login (the dashboard); valid for "
                                           "SESSION_HOURS unless POST /api/logout ends it."}},
            "responses": {
                "Unauthorized": {**error("A token is set and the request lacks it or has a wrong one "
                                         "(a session cookie that is expired, ended by a logout, "
                                         "malformed or signed with another token counts as none)."),
                                 "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
                "Forbidden": error("The Origin header names an origin that is not allowed."),
                "BodyTimeout": error("The request body did not arrive within BODY_TIMEOUT seconds."),
                "UnsupportedMediaType": error("A body sent without Content-Type: application/json "
                                              "(or, to /api/upload, without a file type)."),
                "TooManyRequests": {**error("Over the per-client rate limit (mutating requests) or "
                                            "push-connection limit."),
                                    "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
                "BadRequest": error("The request is malformed or breaks a rule, or its Host "
                                    "header is not an allowed host."),
                "NotFound": error("No such route or source."),
                "MethodNotAllowed": error("The route does not take this method."),
                "Conflict": error("The request is well formed but does not fit the server's "
                                  "state (a stream's fields, the user stream limit, deleting a "
                                  "built-in stream)."),
                "TooLarge": error("The body is over MAX_CONTENT_LENGTH (MAX_UPLOAD_BYTES for /api/upload)."),
                "UriTooLong": error("The request line is over gunicorn's limit (answered by gunicorn)."),
                "HeadersTooLarge": error("Too many or too large headers (answered by gunicorn)."),
                "InternalError": error("An unexpected failure (logged)."),
                "Unavailable": error("The writer is busy or the database did not confirm in time."),
            },
        },
    }
