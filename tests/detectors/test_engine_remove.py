"""Engine.remove_stream: a removed stream is forgotten and its bank row is reused cleanly."""
from __future__ import annotations

import numpy as np
import pytest

from detectors.engine import Engine


def _feed(engine: Engine, names, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        engine.step({name: {"x": float(rng.normal(10, 1))} for name in names})


def test_removed_stream_is_unknown_and_its_row_is_reused_fresh():
    engine = Engine(members=("zscore", "mad"))
    for name in ("a", "b", "c"):
        engine.add_stream(name, ("x",))
    _feed(engine, ("a", "b", "c"), 60)
    row_b = engine._streams["b"]["row"]
    engine.remove_stream("b")
    assert not engine.has_stream("b") and list(engine.streams()) == ["a", "c"]
    with pytest.raises(ValueError, match="unknown stream"):
        engine.step({"b": {"x": 1.0}})
    with pytest.raises(ValueError, match="unknown stream"):
        engine.remove_stream("b")
    engine.add_stream("d", ("x",))
    assert engine._streams["d"]["row"] == row_b
    # The new stream starts from nothing: it warms up instead of inheriting b's history.
    assert engine.step({"d": {"x": 10.0}})["d"].warming_up
    # The neighbours kept their state: a spike is still an anomaly for them.
    assert engine.step({"a": {"x": 60.0}})["a"].is_anomaly


def test_a_stream_group_holding_a_removed_stream_fails_clearly():
    engine = Engine(members=("zscore",))
    for name in ("a", "b"):
        engine.add_stream(name, ("x",))
    group = engine.group(["a", "b"])
    engine.remove_stream("b")
    with pytest.raises(ValueError, match="unknown stream 'b'"):
        group.step(np.array([[1.0], [2.0]]))
