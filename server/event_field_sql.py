"""A schema's fields read back from stored ``scored_events`` rows, as SQL expressions.

An event's id, entity ids and timestamp have columns of their own (``event_id``,
``entity_1..3``, ``timestamp``), its label is ``truth``, and every other field
(measures, derived features) is in the ``fields`` JSON: reading each from its
column keeps these reads right whether or not the JSON repeats the columns.

>>> from server.pipeline.schema import load_schema
>>> schema = load_schema("ev_charging")
>>> [field_sql(schema, name) for name in ("session_id", "charger_id", "start_time", "label", "energy")]
['event_id', 'entity_2', 'timestamp', "coalesce(truth, '')", 'json_extract(fields, \\'$."energy"\\')']
"""
from __future__ import annotations

from .event_storage import ENTITY_COLUMNS

__all__ = ["field_sql"]


def field_sql(schema, name: str) -> str:
    """The SQL expression of field ``name`` of a stored event of ``schema`` (a declared name only)."""
    if name == schema.id:
        return "event_id"
    if name in schema.entities:
        return ENTITY_COLUMNS[schema.entities.index(name)]
    if name == schema.timestamp:
        return "timestamp"
    if name == schema.truth:
        return "coalesce(truth, '')"
    if not name.isidentifier():  # names come from a schema file, checked at load; still, never quote blindly
        raise ValueError(f"field name {name!r} cannot be read back")
    return f"json_extract(fields, '$.\"{name}\"')"
