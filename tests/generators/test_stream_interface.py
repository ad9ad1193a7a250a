"""The public interface: registry, declared fields and units, points, frames, argument checks."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from generators import ANOMALY_KINDS, STREAMS, Point, make_stream
from generators.base import DEFAULT_START

EXPECTED_STREAMS = (
    "cpu_usage",
    "financial",
    "network_traffic",
    "transactions",
    "electricity",
    "machine_health",
    "server_traffic",
    "stock_risk",
    "iot_sensors",
)


def test_streams_are_registered_in_the_documented_order():
    assert tuple(STREAMS) == EXPECTED_STREAMS


def test_anomaly_kinds_are_the_documented_seven():
    assert ANOMALY_KINDS == ("spike", "level_shift", "drift", "variance", "stuck", "dropout", "contextual")


@pytest.mark.parametrize("name", EXPECTED_STREAMS)
def test_stream_declares_name_fields_units_description_and_kinds(name):
    gen = make_stream(name, seed=1)
    assert gen.name == name and type(gen) is STREAMS[name]
    assert isinstance(gen.fields, tuple) and gen.fields and all(isinstance(f, str) for f in gen.fields)
    assert len(set(gen.fields)) == len(gen.fields)
    assert set(gen.units) == set(gen.fields) and all(gen.units.values())
    assert gen.description and "\n" not in gen.description
    assert gen.kinds and set(gen.kinds) <= set(ANOMALY_KINDS)


def test_declared_fields_of_the_multivariate_streams():
    assert make_stream("machine_health").fields == ("temperature", "vibration")
    assert make_stream("iot_sensors").fields == ("humidity", "temperature", "pressure")
    assert make_stream("stock_risk").fields == ("return",)


@pytest.mark.parametrize("name", EXPECTED_STREAMS)
def test_points_carry_every_field_as_a_finite_float(name):
    gen = make_stream(name, seed=2, anomaly_rate=0.1)
    for point in gen.take(600):
        assert isinstance(point.timestamp, float)
        assert tuple(point.values) == gen.fields
        assert all(type(v) is float and math.isfinite(v) for v in point.values.values())
        assert type(point.is_anomaly) is bool
        assert point.kind is None or point.kind in gen.kinds


def test_timestamps_advance_by_step_seconds_from_the_default_start():
    gen = make_stream("cpu_usage")
    assert DEFAULT_START == 1767225600.0  # 2026-01-01T00:00:00Z
    times = [gen.next().timestamp for _ in range(3)] + [p.timestamp for p in gen.take(2)]
    times += gen.frame(2)["timestamp"].tolist()
    assert times == [DEFAULT_START + 300.0 * i for i in range(7)]


def test_start_and_step_are_configurable():
    df = make_stream("electricity", start=1_000_000.5, step_seconds=60).frame(400)
    assert np.array_equal(df["timestamp"].to_numpy(), 1_000_000.5 + 60.0 * np.arange(400))


def test_frame_columns_and_types():
    gen = make_stream("iot_sensors", seed=3, anomaly_rate=0.2)
    df = gen.frame(1000)
    assert list(df.columns) == ["timestamp", "humidity", "temperature", "pressure", "is_anomaly", "kind"]
    assert len(df) == 1000
    assert df["is_anomaly"].dtype == bool
    assert df["kind"].dtype == object
    assert set(df["kind"].map(type)) == {str, type(None)}
    assert df["is_anomaly"].any()


def test_take_and_frame_of_zero_points_are_empty_and_do_not_advance():
    gen = make_stream("financial", seed=4)
    assert gen.take(0) == []
    assert gen.frame(0).empty and list(gen.frame(0).columns) == ["timestamp", "price", "is_anomaly", "kind"]
    assert gen.position == 0
    assert gen.next().timestamp == DEFAULT_START


def test_point_is_frozen_and_serialises_to_json():
    point = make_stream("machine_health", seed=7).next()
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.kind = "spike"
    as_dict = point.to_dict()
    assert set(as_dict) == {"timestamp", "values", "is_anomaly", "kind"}
    assert json.loads(json.dumps(as_dict)) == as_dict
    as_dict["values"]["temperature"] = -1.0
    assert point.values["temperature"] != -1.0


def test_point_defaults_to_a_normal_point():
    assert Point(1.0, {"x": 2.0}) == Point(timestamp=1.0, values={"x": 2.0}, is_anomaly=False, kind=None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seed": -1},
        {"seed": 1.5},
        {"seed": "7"},
        {"seed": True},
        {"anomaly_rate": -0.01},
        {"anomaly_rate": 0.51},
        {"anomaly_rate": float("nan")},
        {"anomaly_rate": "0.02"},
        {"step_seconds": 0},
        {"step_seconds": -300},
        {"step_seconds": float("inf")},
        {"start": float("nan")},
        {"start": "2026-01-01"},
        {"warmup_points": -1},
        {"warmup_points": 2.5},
    ],
)
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        make_stream("cpu_usage", **kwargs)


@pytest.mark.parametrize("name", ["weather", "", "CPU_USAGE", None])
def test_unknown_stream_raises_value_error(name):
    with pytest.raises(ValueError, match="unknown stream"):
        make_stream(name)


@pytest.mark.parametrize("n", [-1, 2.0, "10", True])
def test_bad_point_counts_raise_value_error(n):
    gen = make_stream("stock_risk")
    with pytest.raises(ValueError):
        gen.take(n)
    with pytest.raises(ValueError):
        gen.frame(n)


def test_frame_is_a_dataframe_that_continues_the_stream():
    gen = make_stream("transactions", seed=5)
    first = gen.frame(10)
    second = gen.frame(10)
    assert isinstance(second, pd.DataFrame)
    assert second["timestamp"].iloc[0] == first["timestamp"].iloc[-1] + 300.0
