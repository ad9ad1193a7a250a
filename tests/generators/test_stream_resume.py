"""A built-in stream resumed from its saved state continues its sequence exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest

from generators import STREAMS, make_stream


@pytest.mark.parametrize("name", list(STREAMS))
@pytest.mark.parametrize("taken", [0, 1, 255, 256, 700])
def test_resumed_stream_continues_where_it_stopped(name, taken):
    original = make_stream(name, seed=11, anomaly_rate=0.1)
    original.take(taken)
    saved = json.loads(json.dumps(original.state()))  # it must survive JSON
    again = make_stream(name, seed=11, anomaly_rate=0.1).resume(saved).state()
    assert again == original.state()  # a resumed stream saves the same state before its next point
    resumed = make_stream(name, seed=11, anomaly_rate=0.1).resume(saved)
    assert resumed.position == original.position == taken
    expected, got = original.take(600), resumed.take(600)
    assert [p.timestamp for p in got] == [p.timestamp for p in expected]
    assert np.array_equal([list(p.values.values()) for p in got], [list(p.values.values()) for p in expected])
    assert [(p.is_anomaly, p.kind) for p in got] == [(p.is_anomaly, p.kind) for p in expected]


def test_state_of_another_stream_or_seed_is_refused():
    saved = make_stream("cpu_usage", seed=1).state()
    with pytest.raises(ValueError, match="belongs to"):
        make_stream("cpu_usage", seed=2).resume(saved)
    with pytest.raises(ValueError, match="belongs to"):
        make_stream("financial", seed=1).resume(saved)
