"""Seeding and the agreement of next(), take() and frame()."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators import STREAMS, make_stream


def _points_to_frame(points, fields) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": [p.timestamp for p in points],
            **{f: [p.values[f] for p in points] for f in fields},
            "is_anomaly": [p.is_anomaly for p in points],
            "kind": pd.Series([p.kind for p in points], dtype=object),
        }
    )


@pytest.mark.parametrize("name", STREAMS)
def test_same_arguments_give_identical_points(name):
    a = make_stream(name, seed=11, anomaly_rate=0.05).frame(1500)
    b = make_stream(name, seed=11, anomaly_rate=0.05).frame(1500)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a["is_anomaly"].any()


@pytest.mark.parametrize("name", STREAMS)
def test_different_seeds_give_different_streams(name):
    fields = list(STREAMS[name].fields)
    a = make_stream(name, seed=1).frame(1000)[fields].to_numpy()
    b = make_stream(name, seed=2).frame(1000)[fields].to_numpy()
    assert not np.allclose(a, b)


@pytest.mark.parametrize("name", STREAMS)
def test_different_seeds_place_anomalies_differently(name):
    a = make_stream(name, seed=1, anomaly_rate=0.1).frame(2000)["is_anomaly"].to_numpy()
    b = make_stream(name, seed=2, anomaly_rate=0.1).frame(2000)["is_anomaly"].to_numpy()
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("name", STREAMS)
def test_next_take_and_frame_give_the_same_points(name):
    # Mixed call sizes cross several internal block boundaries at odd offsets.
    sizes = [1, 300, 1, 1, 37, 500, 255, 2, 600]
    mixed = make_stream(name, seed=3, anomaly_rate=0.1)
    parts = []
    for i, size in enumerate(sizes):
        if size == 1:
            parts.append(_points_to_frame([mixed.next()], mixed.fields))
        elif i % 2:
            parts.append(_points_to_frame(mixed.take(size), mixed.fields))
        else:
            parts.append(mixed.frame(size))
    mixed_frame = pd.concat(parts, ignore_index=True)
    bulk = make_stream(name, seed=3, anomaly_rate=0.1).frame(sum(sizes))
    pd.testing.assert_frame_equal(mixed_frame, bulk, check_exact=True)

    one_by_one = make_stream(name, seed=3, anomaly_rate=0.1)
    singles = _points_to_frame([one_by_one.next() for _ in range(sum(sizes))], one_by_one.fields)
    pd.testing.assert_frame_equal(singles, bulk, check_exact=True)


def test_position_counts_points_returned():
    gen = make_stream("network_traffic")
    gen.next()
    gen.take(300)
    gen.frame(10)
    assert gen.position == 311


def test_reset_replays_the_stream():
    gen = make_stream("machine_health", seed=9, anomaly_rate=0.1)
    first = gen.frame(700)
    gen.take(123)
    pd.testing.assert_frame_equal(gen.reset().frame(700), first, check_exact=True)


@pytest.mark.parametrize("name", STREAMS)
def test_anomaly_rate_changes_only_the_labelled_points(name):
    # Normal behaviour and anomalies draw from independent generators, so a clean
    # stream is exactly the unlabelled part of the same seed's anomalous stream.
    fields = list(STREAMS[name].fields)
    clean = make_stream(name, seed=5, anomaly_rate=0.0).frame(3000)
    dirty = make_stream(name, seed=5, anomaly_rate=0.1).frame(3000)
    normal = ~dirty["is_anomaly"].to_numpy()
    assert not normal.all()
    np.testing.assert_array_equal(dirty[fields].to_numpy()[normal], clean[fields].to_numpy()[normal])
    assert not np.array_equal(dirty[fields].to_numpy()[~normal], clean[fields].to_numpy()[~normal])
