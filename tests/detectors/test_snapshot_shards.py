"""Snapshots of a sharded engine, and snapshots written before shards (one bank per kind, of any size)."""
from __future__ import annotations

import numpy as np
import pytest

from detectors.base import copy_stream_rows
from detectors.engine import Engine
from detectors.snapshot import SnapshotMismatch, flatten, read_snapshot, write_snapshot

#: The keys of a bank in a snapshot written before banks had a shard number.
BANK_KEYS_BEFORE_SHARDS = {"n_features", "windows", "capacity", "free", "structure", "scalars"}


def _names(n):
    return [f"s{i}" for i in range(n)]


def _step(engine: Engine, names, ticks: int, rng) -> np.ndarray:
    """``ticks`` ticks of one-field points (a shift on every 4th stream at the end); the ``(ticks, n)`` scores."""
    group = engine.group(names)
    level = 10.0 * np.arange(1, len(names) + 1)
    out = np.zeros((ticks, len(names)))
    for t in range(ticks):
        x = level + rng.normal(0, 1, len(names))
        if t >= ticks - 20:
            x[::4] += 15
        scores = group.step(x).scores()
        out[t] = [scores[n] for n in names]
    return out


def _row_state(engine: Engine, name: str) -> dict:
    """Everything the engine keeps for one stream: its detector rows (in a one-row twin), history and threshold."""
    stream = engine._streams[name]
    bank = engine._banks[stream["bank"]]
    twin = bank.prototype.clone().reset(1, bank.n_features)
    copy_stream_rows(twin, bank.detector, [0], [stream["row"]], 1, bank.capacity)
    arrays = dict(flatten(twin)[2])
    arrays["history"] = bank.recent(stream["row"])
    arrays["threshold"] = bank.thresholds[stream["row"]]
    return arrays


def _assert_same_streams(a: Engine, b: Engine) -> None:
    assert a.streams() == b.streams() and a.config() == b.config()
    for name in a.streams():
        left, right = _row_state(a, name), _row_state(b, name)
        assert left.keys() == right.keys()
        for path in left:
            assert np.array_equal(left[path], right[path], equal_nan=True), (name, path)


def _before_shards(meta: dict) -> dict:
    """The meta document as the engine wrote it before shards: no shard number in the banks."""
    banks = [{k: v for k, v in bank.items() if k != "shard"} for bank in meta["banks"]]
    assert all(set(bank) == BANK_KEYS_BEFORE_SHARDS for bank in banks)
    return {**meta, "banks": banks}


def test_a_sharded_engine_restores_its_shards_and_scores_on_exactly(tmp_path):
    names = _names(11)
    engine = Engine(shard_rows=4)
    engine.add_streams(names, ("v",))
    _step(engine, names, 330, np.random.default_rng(0))
    engine.remove_stream("s5")  # a free row in shard 1
    names.remove("s5")
    meta, arrays = engine.export_state()
    assert sorted(bank["shard"] for bank in meta["banks"]) == [0, 1, 2]
    write_snapshot(tmp_path / "state.npz", meta, arrays)
    restored = Engine(shard_rows=4)
    restored.import_state(*read_snapshot(tmp_path / "state.npz"))
    assert {n: (s["bank"], s["row"]) for n, s in restored._streams.items()} == \
        {n: (s["bank"], s["row"]) for n, s in engine._streams.items()}
    _assert_same_streams(engine, restored)
    expected = _step(engine, names, 60, np.random.default_rng(1))
    assert np.array_equal(_step(restored, names, 60, np.random.default_rng(1)), expected)
    restored.add_stream("late", ("v",))
    assert restored._streams["late"]["bank"] == (1, (), 1) and restored._streams["late"]["row"] == 1


def test_a_snapshot_from_before_shards_is_split_into_shards_with_every_stream_intact(tmp_path):
    names = _names(20)
    before = Engine(shard_rows=1_000_000)  # one bank of 20, as every engine had before shards
    before.add_streams(names, ("v",))
    before.configure("s13", threshold=0.5)
    before.configure("s3", detector="zscore", weight=2.0)
    _step(before, names, 330, np.random.default_rng(0))
    assert len(before._banks) == 1
    meta, arrays = before.export_state()
    write_snapshot(tmp_path / "old.npz", _before_shards(meta), arrays)

    restored = Engine(shard_rows=8)
    restored.import_state(*read_snapshot(tmp_path / "old.npz"))  # memory-mapped, as the server reads it
    assert sorted(restored._banks) == [(1, (), 0), (1, (), 1), (1, (), 2)]
    assert [b.capacity for b in restored._banks.values()] == [8, 8, 4]
    assert restored._streams["s13"]["bank"] == (1, (), 1) and restored._streams["s13"]["row"] == 5
    _assert_same_streams(before, restored)
    # Scoring goes on as in the one bank: only the pattern member's resync turn (rounding) may differ.
    expected = _step(before, names, 40, np.random.default_rng(1))
    got = _step(restored, names, 40, np.random.default_rng(1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert got.max() >= restored.config("s0")["threshold"]  # the shift alerts on the restored engine too


def test_a_bank_from_before_shards_that_fits_a_shard_keeps_its_rows():
    names = _names(6)
    before = Engine(members=("zscore", "mad"), shard_rows=1_000_000)
    before.add_streams(names, ("v",))
    _step(before, names, 50, np.random.default_rng(0))
    meta, arrays = before.export_state()
    restored = Engine(members=("zscore", "mad"), shard_rows=8)
    restored.import_state(_before_shards(meta), arrays)
    assert {n: (s["bank"], s["row"]) for n, s in restored._streams.items()} == \
        {n: ((1, (), 0), i) for i, n in enumerate(names)}
    assert np.array_equal(_step(restored, names, 30, np.random.default_rng(1)),
                          _step(before, names, 30, np.random.default_rng(1)))
    restored.add_streams(["x", "y", "z"], ("v",))  # fills shard 0 up to 8, then opens shard 1
    assert restored._streams["y"]["bank"] == (1, (), 0) and restored._streams["z"]["bank"] == (1, (), 1)


def test_shards_saved_smaller_than_this_engines_stay_as_they_are():
    names = _names(10)
    small = Engine(members=("zscore",), shard_rows=4)
    small.add_streams(names, ("v",))
    _step(small, names, 40, np.random.default_rng(0))
    restored = Engine(members=("zscore",), shard_rows=16)
    restored.import_state(*small.export_state())
    assert sorted(restored._banks) == [(1, (), 0), (1, (), 1), (1, (), 2)]
    _assert_same_streams(small, restored)
    restored.add_stream("next", ("v",))  # shard 0 may now grow to 16
    assert restored._streams["next"]["bank"] == (1, (), 0) and restored._streams["next"]["row"] == 4


def test_a_damaged_shard_entry_is_refused_and_leaves_the_engine_as_it_was():
    names = _names(5)
    engine = Engine(members=("zscore",), shard_rows=2)
    engine.add_streams(names, ("v",))
    meta, arrays = engine.export_state()
    meta["banks"][1]["shard"] = "one"
    target = Engine(members=("zscore",), shard_rows=2)
    target.add_stream("keep", ("v",))
    with pytest.raises(SnapshotMismatch):
        target.import_state(meta, arrays)
    assert target.streams() == {"keep": ("v",)}
