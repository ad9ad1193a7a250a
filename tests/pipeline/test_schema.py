"""Schemas as data: loading, checking, header aliases and typing values."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline_helpers import ev_schema  # noqa: F401 -- a fixture
from server.pipeline.schema import (BadData, SchemaError, TimeOfDayClock, load_schema,
                                    schema_from_data)


def _minimal(**changes):
    data = {"name": "t", "id": "id", "timestamp": "at", "entities": ["who"],
            "fields": {"id": {"type": "string"}, "who": {"type": "string"},
                       "at": {"type": "datetime"}, "x": {"type": "number"}}}
    data.update(changes)
    return data


def test_every_shipped_schema_loads(ev_schema):
    assert ev_schema.id == "session_id"
    assert {r.type for r in ev_schema.rules} == {"billing_fraud", "dos_attack", "multi_user_conflict"}
    assert "payment_per_kwh" in ev_schema.feature_names


@pytest.mark.parametrize("headers", [
    ["session_id", "user_id", "charger_id", "start_time", "duration", "energy", "payment"],
    ["sessionId", "userId", "chargerId", "startTime", "duration", "energy", "payment"],
    ["Session ID", "USER_ID", "charger-id", "StartTime", "Duration", "energy_kwh", "amount"],
])
def test_snake_camel_and_declared_aliases_name_the_same_fields(ev_schema, headers):
    mapping = ev_schema.resolve_headers(headers)
    assert sorted(mapping.values()) == sorted(ev_schema.required)


def test_missing_columns_list_what_was_expected_and_found(ev_schema):
    with pytest.raises(BadData) as info:
        ev_schema.resolve_headers(["session_id", "user_id", "start_time", "energy"])
    message = str(info.value)
    assert "missing column(s) charger_id, duration, payment" in message
    assert "found session_id, user_id, start_time, energy" in message
    assert info.value.line == 1 and "ip_address (optional)" in info.value.expected


def test_two_headers_for_one_field_are_refused(ev_schema):
    with pytest.raises(BadData, match="both name the field 'session_id'"):
        ev_schema.resolve_headers(["session_id", "sessionId", "user_id", "charger_id", "start_time",
                                   "duration", "energy", "payment"])


def test_coerce_types_values_and_names_bad_lines(ev_schema):
    raw = pd.DataFrame({"session_id": ["a", "b"], "user_id": ["u", "u"], "charger_id": ["c", "c"],
                        "start_time": ["2026-01-01T00:00:00Z", "01:30"], "duration": ["5", "7.5"],
                        "energy": ["1", "2"], "payment": ["0.5", "1"]})
    typed = ev_schema.coerce(raw, first_line=2, clock=TimeOfDayClock(day=1767225600.0))
    assert typed["start_time"].tolist() == [1767225600.0, 1767225600.0 + 5400]
    assert typed["duration"].dtype == float and typed["ip_address"].tolist() == ["", ""]
    raw.loc[1, "energy"] = "-3"
    with pytest.raises(BadData, match=r"'energy' needs a number >= 0 .* line\(s\) 3"):
        ev_schema.coerce(raw, first_line=2, clock=TimeOfDayClock(day=0))
    raw.loc[1, "energy"] = "2"
    raw.loc[0, "start_time"] = "yesterday"
    with pytest.raises(BadData, match=r"start_time.*line\(s\) 2 do not: found 'yesterday'"):
        ev_schema.coerce(raw, first_line=2, clock=TimeOfDayClock(day=0))


@pytest.mark.parametrize("stamp", ["1e12", "3e11", "-1e12", "1e18"])
def test_a_time_no_date_can_name_is_refused_with_its_line(ev_schema, stamp):
    """Epoch seconds past year 9999 (or before year 1) are no date-time: refused, not stored to fail reads."""
    raw = pd.DataFrame({"session_id": ["s1", "s2"], "user_id": ["u", "u"], "charger_id": ["c", "c"],
                        "start_time": ["1767225600", stamp], "duration": ["30", "30"], "energy": ["10", "10"],
                        "payment": ["3", "3"]})
    with pytest.raises(BadData, match=rf"start_time.*line\(s\) 3 do not: found '{stamp}'"):
        ev_schema.coerce(raw, first_line=2, clock=TimeOfDayClock(day=0))


def test_an_empty_id_is_named_as_needing_a_value(ev_schema):
    raw = pd.DataFrame({"session_id": [""], "user_id": ["u"], "charger_id": ["c"], "start_time": ["1767225600"],
                        "duration": ["30"], "energy": ["10"], "payment": ["3"]})
    with pytest.raises(BadData, match=r"'session_id' needs a non-empty value on every line; line\(s\) 2"):
        ev_schema.coerce(raw, first_line=2, clock=TimeOfDayClock(day=0))


def test_times_of_day_roll_over_midnight_across_chunks():
    clock = TimeOfDayClock(day=0.0)
    first = clock.parse(pd.Series(["22:00", "23:59:30"]))
    second = clock.parse(pd.Series(["00:00:10", "06:00"]))
    assert np.diff(np.concatenate([first, second])).min() > 0
    assert second[0] == 86410.0


@pytest.mark.parametrize("change, message", [
    ({"id": "nope"}, "id: 'nope' is not a declared field"),
    ({"timestamp": "x"}, "must have type datetime"),
    ({"entities": ["x"]}, "must be a declared string field"),
    ({"colour": "red"}, "unknown key"),
    ({"derived": {"r": {"ratio": ["x", "who"]}}}, "derived.r"),
    ({"rules": [{"type": "t", "kind": "condition", "severity": "huge", "when": [["x", ">", 1]]}]},
     "severity must be one of"),
    ({"rules": [{"type": "t", "kind": "condition", "severity": "low", "when": [["y", ">", 1]]}]},
     "unknown feature 'y'"),
    ({"rules": [{"type": "t", "kind": "repeat", "entity": "who", "severity": "low", "count": 1,
                 "when": [["x", ">", 1]]}]}, "count must be"),
    ({"baseline": {"features": [{"entity": "who", "feature": "x", "transform": "sqrt"}]}}, "transform"),
    ({"baseline": {"features": [{"entity": "who", "feature": "x", "sides": "up"}]}},
     r"baseline.features\[0\].sides: must be one of"),
    ({"baseline": {"features": [{"entity": "who", "feature": "x", "sides": "high", "low": "cheap"}]}},
     "names a type for a side it does not watch"),
])
def test_bad_declarations_name_the_key(change, message):
    with pytest.raises(SchemaError, match=message):
        schema_from_data(_minimal(**change))


def test_unknown_schema_name_lists_the_known_ones():
    with pytest.raises(SchemaError, match="known: .*ev_charging"):
        load_schema("no_such_domain")


def test_alias_clash_is_refused():
    data = _minimal()
    data["fields"]["x"]["aliases"] = ["Who"]
    with pytest.raises(SchemaError, match="already names field 'who'"):
        schema_from_data(data)
