"""The scored point: one definition of a stream's scored point, from which storage, JSON and OpenAPI derive.

A point is one reading of a numeric stream (a built-in generator's, or one
sent to ``/api/submit``) with the engine's verdict on it.  Every layer passes
:class:`ScoredPoint`: the engine thread makes it (:func:`from_verdict`), the
writer stores it (:func:`to_row`) and publishes its JSON (:func:`to_json`),
the reads rebuild it (:func:`from_row`), and the OpenAPI ``Point`` schema is
:func:`json_schema`.  Each field says once, in its metadata, its column(s),
its storage kind, its JSON schema and whether it is sent at all.

>>> point = ScoredPoint(source="cpu", timestamp=1.0, values={"value": 97.0}, score=0.99,
...                     is_anomaly=True, alert=True, severity="high", explanation="spike",
...                     detectors={"zscore": 0.99}, fired=("zscore",), expected={"value": [30.0, 55.0]},
...                     truth=Truth(True, "spike"), warming_up=False, id=7, tick=3, episode="caught")
>>> to_json(point)["truth"], "tick" in to_json(point), "episode" in to_json(point)
({'is_anomaly': True, 'kind': 'spike'}, False, False)
>>> row = dict(zip(ROW_COLUMNS, to_row(point)))
>>> row["field_values"], row["truth_anomaly"], row["truth_kind"], row["tick"]
('{"value":97.0}', 1, 'spike', 3)
>>> from dataclasses import replace
>>> from_row(row) == replace(point, episode=None)
True
"""
from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, Mapping

from detectors.engine import SEVERITIES

from ..events import dumps, jsonable
from ..explain import explain
from ..validation import MAX_NAME_LENGTH, NAME_PATTERN

__all__ = ["ROW_COLUMNS", "ScoredPoint", "Truth", "anomaly_from_row", "anomaly_json", "from_json",
           "from_row", "from_verdict", "json_schema", "sqlite_columns", "to_json", "to_row"]


@dataclass(frozen=True, slots=True)
class Truth:
    """The label a built-in generator put on a point: injected anomaly or not, and which kind."""

    is_anomaly: bool
    kind: str | None


def _attribute(*, doc: str, schema: Mapping[str, Any] | None, stored: str | None,
               column: str | None = None, default: Any = MISSING) -> Any:
    """A field with its storage kind and column, and its JSON schema (None: never sent).

    ``stored`` is one of ``text``, ``real``, ``integer``, ``boolean``, ``json`` or
    ``truth`` (two columns), or None for a field that is never stored.
    """
    meta = {"doc": doc, "schema": None if schema is None else dict(schema), "stored": stored,
            "column": column}
    return field(default=default, metadata=meta)


_NUMBERS = {"type": "object", "additionalProperties": {"type": "number"}}


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoredPoint:
    """One point of a stream with the engine's verdict, as every layer passes it."""

    id: int | None = _attribute(stored="integer", schema={"type": "integer"}, default=None,
                                doc="Row id of the point (set when it is stored).")
    source: str = _attribute(stored="text", schema={"type": "string", "minLength": 1,
                                                    "maxLength": MAX_NAME_LENGTH, "pattern": NAME_PATTERN},
                             doc="The stream's name: no control characters; not only white space.")
    tick: int | None = _attribute(stored="integer", schema=None, default=None,
                                  doc="The scheduler tick that drew it (None for a submit).")
    timestamp: float = _attribute(stored="real", schema={"type": "number"},
                                  doc="Epoch seconds (wall clock when produced, or the submitted timestamp).")
    values: dict = _attribute(stored="json", column="field_values", schema=_NUMBERS,
                              doc="The point's value of each field of its stream.")
    score: float = _attribute(stored="real", schema={"type": "number", "minimum": 0, "maximum": 1},
                              doc="Ensemble score; higher is more anomalous.")
    is_anomaly: bool = _attribute(stored="boolean", schema={"type": "boolean"},
                                  doc="The point is part of an anomalous episode of its stream.")
    alert: bool = _attribute(stored="boolean", schema={"type": "boolean"}, default=False,
                             doc="The point starts an anomalous episode (one alert per incident).")
    severity: str | None = _attribute(stored="text", schema={"enum": [None, *SEVERITIES]},
                                      doc="Severity on the engine's scale; null when not anomalous.")
    explanation: str | None = _attribute(stored="text", schema={"type": ["string", "null"]}, default=None,
                                         doc="Why the point was (not) flagged.")
    detectors: dict = _attribute(stored="json", column="detector_scores", schema=_NUMBERS,
                                 doc="Each enabled member detector's calibrated score.")
    fired: tuple = _attribute(stored="json", schema={"type": "array", "items": {"type": "string"}},
                              doc="The member detectors that flagged the point.")
    expected: dict = _attribute(stored="json", schema={"type": "object", "additionalProperties": {
        "type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}},
        doc="Each field's expected range [low, high].")
    truth: Truth | None = _attribute(stored="truth", schema={"oneOf": [{"type": "null"}, {
        "type": "object", "required": ["is_anomaly", "kind"],
        "properties": {"is_anomaly": {"type": "boolean"}, "kind": {"type": ["string", "null"]}}}]},
        doc="Injected ground truth (built-in streams only).")
    warming_up: bool = _attribute(stored="boolean", schema={"type": "boolean"},
                                  doc="The detectors are still learning this stream.")
    #: The entity of an entity-keyed stream the point is about (a pump, a charger): alerts are kept per
    #: (stream, entity, type), so the writer hands it to its observers; the points table has no column.
    entity: str | None = _attribute(stored=None, schema=None, default=None,
                                    doc="The entity the point is about, if any.")
    #: Its anomaly types (a domain's, e.g. ``billing_fraud``), for the alerts likewise; empty: "anomaly".
    anomaly_types: tuple = _attribute(stored=None, schema=None, default=(),
                                      doc="The point's anomaly types, if its source names them.")
    #: "caught" or "missed" when this point decides an injected anomaly's fate (server/episodes.py):
    #: the writer counts it in stream_stats; it is neither stored nor sent.
    episode: str | None = _attribute(stored=None, schema=None, default=None,
                                     doc="The injected episode this point caught or missed.")


# -- the row mapping ------------------------------------------------------------------------------
#: The SQLite column type(s) of each storage kind (the truth takes two columns).
_COLUMN_TYPES = {"text": (str,), "real": (float,), "integer": (int,), "boolean": (int,), "json": (str,),
                 "truth": (int, str)}


def _columns_of(f) -> tuple[str, ...]:
    if f.metadata["stored"] == "truth":
        return ("truth_anomaly", "truth_kind")
    return (f.metadata["column"] or f.name,)


_STORED_FIELDS = tuple(f for f in fields(ScoredPoint) if f.metadata["stored"] is not None)
#: The columns of ``points`` (and, but for ``id``, of ``anomalies``) in :func:`to_row`'s order.
ROW_COLUMNS: tuple[str, ...] = tuple(c for f in _STORED_FIELDS for c in _columns_of(f))


def sqlite_columns() -> dict[str, type]:
    """``{column: python type}`` of a point's row, for sqlite-utils (``id`` included)."""
    types = [t for f in _STORED_FIELDS for t in _COLUMN_TYPES[f.metadata["stored"]]]
    return dict(zip(ROW_COLUMNS, types))


def _encoder(kind: str) -> Callable[[Any], tuple]:
    if kind == "json":
        return lambda v: (dumps(v),)
    if kind == "boolean":
        return lambda v: (int(v),)
    if kind == "truth":
        return lambda v: (None, None) if v is None else (int(v.is_anomaly), v.kind)
    return lambda v: (v,)


def _decoder(f) -> Callable[[Mapping[str, Any]], Any]:
    kind, (column, *_) = f.metadata["stored"], _columns_of(f)
    if kind == "json":
        # A JSON array is kept as a tuple (the point is frozen), an object as a dict; NULL is empty.
        container = tuple if f.metadata["schema"].get("type") == "array" else dict
        return lambda row: container() if row[column] is None else container(json.loads(row[column]))
    if kind == "boolean":
        return lambda row: bool(row[column])
    if kind == "truth":
        return lambda row: (None if row["truth_anomaly"] is None
                            else Truth(bool(row["truth_anomaly"]), row["truth_kind"]))
    return lambda row: row[column]


_ENCODE = tuple((f.name, _encoder(f.metadata["stored"])) for f in _STORED_FIELDS)
_DECODE = tuple((f.name, _decoder(f)) for f in _STORED_FIELDS)


def to_row(point: ScoredPoint) -> tuple:
    """The point as a row of :data:`ROW_COLUMNS` (JSON text for nested values)."""
    row: list = []
    for name, encode in _ENCODE:
        row.extend(encode(getattr(point, name)))
    return tuple(row)


def from_row(row: Mapping[str, Any]) -> ScoredPoint:
    """Rebuild a point from a ``points`` row (a ``sqlite3.Row`` or a mapping of the columns)."""
    return ScoredPoint(**{name: decode(row) for name, decode in _DECODE})


# -- the JSON form ---------------------------------------------------------------------------------
_SENT = tuple(f.name for f in fields(ScoredPoint) if f.metadata["schema"] is not None)


def to_json(point: ScoredPoint) -> dict:
    """The API's point object (what /api/data, /api/submit and the push events carry)."""
    out = {name: getattr(point, name) for name in _SENT}
    truth = out["truth"]
    if truth is not None:
        out["truth"] = {"is_anomaly": truth.is_anomaly, "kind": truth.kind}
    out["fired"] = list(out["fired"])
    return out


def from_json(obj: Mapping[str, Any]) -> ScoredPoint:
    """A point from its JSON object (tools and tests build points by hand this way).

    Members the JSON form does not have (``tick``, ``entity``, ``anomaly_types``, ``episode``) are taken when
    present; unknown members are an error, so a misspelt one is not silently lost.
    """
    known = {f.name for f in fields(ScoredPoint)}
    unknown = set(obj) - known
    if unknown:
        raise ValueError(f"not members of a point: {sorted(unknown)}")
    values = dict(obj)
    truth = values.get("truth")
    if isinstance(truth, Mapping):
        values["truth"] = Truth(bool(truth["is_anomaly"]), truth.get("kind"))
    values["fired"] = tuple(values.get("fired") or ())
    values["anomaly_types"] = tuple(values.get("anomaly_types") or ())
    values.setdefault("truth", None)
    return ScoredPoint(**values)


def json_schema() -> dict:
    """The JSON schema of :func:`to_json`'s output (OpenAPI's ``Point``)."""
    props = {f.name: {**f.metadata["schema"], "description": f.metadata["doc"]}
             for f in fields(ScoredPoint) if f.metadata["schema"] is not None}
    return {"type": "object", "required": list(props), "properties": props}


def anomaly_json(point: ScoredPoint, anomaly_id: int, detected_at: float) -> dict:
    """The API's anomaly object: a flagged point plus its anomaly id and when it was stored."""
    return {**to_json(point), "anomaly_id": anomaly_id, "detected_at": detected_at}


def anomaly_from_row(row: Mapping[str, Any]) -> dict:
    """An ``anomalies`` row (its own ``id``, the point's ``point_id``) as the API's anomaly object."""
    values = {name: decode(row) for name, decode in _DECODE if name != "id"}
    return anomaly_json(ScoredPoint(id=row["point_id"], **values), row["id"], row["detected_at"])


# -- made from the engine's verdict ----------------------------------------------------------------
def from_verdict(verdict, source: str, timestamp: float, truth: Truth | None = None,
                 episode: str | None = None) -> ScoredPoint:
    """The point for one engine verdict, with plain Python values and its explanation.

    Reads the verdict's fields directly: ``Verdict.to_dict()`` deep-copies
    through ``dataclasses.asdict``, which costs more than the rest of this.
    """
    score = jsonable(verdict.score)
    point = {"values": jsonable(verdict.values), "score": 0.0 if score is None else score,
             # the engine gave NaN: treat as "no evidence"
             "is_anomaly": bool(verdict.is_anomaly), "alert": bool(verdict.alert),
             "severity": verdict.severity, "detectors": jsonable(verdict.detectors),
             "fired": jsonable(verdict.fired), "expected": jsonable(verdict.expected),
             "warming_up": bool(verdict.warming_up)}
    return ScoredPoint(source=source, timestamp=timestamp, truth=truth, episode=episode,
                       explanation=explain(point), **{**point, "fired": tuple(point["fired"])})
