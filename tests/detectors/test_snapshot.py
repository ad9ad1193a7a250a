"""Engine snapshots: a restored engine scores exactly as one that never stopped; stale snapshots are refused."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from detectors.engine import Engine
from detectors.snapshot import (SnapshotError, SnapshotMismatch, flatten, read_snapshot,
                                restore_built, restore_into, write_snapshot)
from detectors.zscore import ZScoreDetector


def _ticks(rng, streams, n):
    """n ticks of points for ``streams`` ({name: fields}); some streams skip some ticks."""
    for t in range(n):
        tick = {}
        for k, (name, fields) in enumerate(streams.items()):
            if (t + k) % 7 == 3:
                continue  # an absent point
            level = 10.0 * (k + 1)
            tick[name] = {f: float(level + np.sin(t / (5 + k)) + rng.normal(0, 0.3)) for f in fields}
            if t % 97 == 50 + k:
                tick[name] = {f: v + 12.0 for f, v in tick[name].items()}  # a spike
        yield tick


def _engine_with_streams():
    engine = Engine()
    streams = {f"one{i}": ("x",) for i in range(5)}
    streams.update({f"two{i}": ("a", "b") for i in range(3)})
    streams.update({f"three{i}": ("p", "q", "r") for i in range(2)})
    for name, fields in streams.items():
        engine.add_stream(name, fields)
    engine.configure("one1", detector="zscore", window=60)  # a third bank of one field
    engine.configure("two0", threshold=0.4)
    engine.configure("one2", detector="mad", weight=2.5)
    engine.configure("one3", detector="iqr", enabled=False)
    return engine, streams


def test_restored_engine_scores_exactly_like_one_that_never_stopped(tmp_path):
    rng = np.random.default_rng(3)
    engine, streams = _engine_with_streams()
    ticks = list(_ticks(rng, streams, 700))
    for tick in ticks[:400]:
        engine.step(tick)
    assert len(engine._banks) >= 4  # 1, 2 and 3 fields, and a second 1-field bank (window 60)

    meta, arrays = engine.export_state()
    size = write_snapshot(tmp_path / "state.npz", meta, arrays)
    assert size > 0
    meta, arrays = read_snapshot(tmp_path / "state.npz")
    restored = Engine()
    restored.import_state(meta, arrays)

    assert restored.streams() == engine.streams()
    assert restored.config() == engine.config()
    flagged = 0
    for tick in ticks[400:]:
        expected, got = engine.step(tick), restored.step(tick)
        for name in tick:
            assert got[name].score == pytest.approx(expected[name].score, abs=1e-12, rel=0)
            assert got[name].is_anomaly == expected[name].is_anomaly
            assert got[name].detectors == pytest.approx(expected[name].detectors, abs=1e-12, rel=0)
            assert got[name].warming_up is False
        flagged += len(expected.anomalies())
    assert flagged > 0  # the comparison covered flags too


def test_snapshot_of_an_engine_with_new_streams_after_the_export_still_adds_streams(tmp_path):
    engine, streams = _engine_with_streams()
    for tick in _ticks(np.random.default_rng(1), streams, 50):
        engine.step(tick)
    restored = Engine()
    restored.import_state(*engine.export_state())
    for e in (engine, restored):
        e.add_stream("late", ("x",))
    rng = np.random.default_rng(9)
    for _ in range(60):
        tick = {"late": {"x": float(rng.normal())}, "one0": {"x": float(rng.normal(10))}}
        a, b = engine.step(tick), restored.step(tick)
        assert a.scores() == pytest.approx(b.scores(), abs=1e-12, rel=0)


def test_snapshot_of_other_members_or_parameters_is_refused_and_changes_nothing():
    engine, streams = _engine_with_streams()
    for tick in _ticks(np.random.default_rng(2), streams, 40):
        engine.step(tick)
    meta, arrays = engine.export_state()
    other = Engine(members=("zscore", "mad"))
    other.add_stream("mine", ("x",))
    with pytest.raises(SnapshotMismatch):
        other.import_state(meta, arrays)
    assert list(other.streams()) == ["mine"]
    with pytest.raises(SnapshotMismatch):
        Engine(ensemble_params={"holdoff": 5}).import_state(meta, arrays)


def test_snapshot_whose_detector_layout_changed_is_refused():
    engine, streams = _engine_with_streams()
    meta, arrays = engine.export_state()
    meta = json.loads(json.dumps(meta))
    structure = meta["banks"][0]["structure"]
    path = next(p for p, kind in structure.items() if kind[0] == "array")
    structure[path][2] = [n + 1 for n in structure[path][2]]  # as if the code now keeps another shape
    with pytest.raises(SnapshotMismatch, match="layout differs"):
        Engine().import_state(meta, arrays)
    meta2, arrays2 = engine.export_state()
    del arrays2[next(k for k in arrays2 if k.startswith("bank0/detector/"))]
    with pytest.raises(SnapshotMismatch, match="lacks"):
        Engine().import_state(meta2, arrays2)


def test_snapshot_file_is_plain_arrays_and_foreign_or_damaged_files_are_refused(tmp_path):
    engine, streams = _engine_with_streams()
    path = tmp_path / "s.npz"
    write_snapshot(path, *engine.export_state())
    with zipfile.ZipFile(path) as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())
    with np.load(path, allow_pickle=False) as archive:  # would raise on any pickled object
        assert all(archive[name].dtype != object for name in archive.files)
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed

    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(SnapshotError):
        read_snapshot(path)
    np.savez(tmp_path / "foreign.npz", meta=np.frombuffer(b'{"format": "x"}', dtype=np.uint8))
    with pytest.raises(SnapshotError):
        read_snapshot(tmp_path / "foreign.npz")
    meta = {"format": "anomaly-state-snapshot", "version": 999}
    np.savez(tmp_path / "future.npz", meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    with pytest.raises(SnapshotMismatch, match="version"):
        read_snapshot(tmp_path / "future.npz")


def test_flatten_refuses_objects_it_cannot_save_as_arrays():
    class Holder:
        def __init__(self):
            self.labels_ = np.array(["a", None], dtype=object)

    with pytest.raises(SnapshotError, match="Python objects"):
        flatten(Holder())


class _Rows:
    """A holder whose parameter ``rows`` is its row count: only a full twin can match it."""

    def __init__(self, rows):
        self.rows = rows
        self.level_ = np.zeros((rows, 2))


def _built(factory, requested):
    def build(rows):
        requested.append(rows)
        return factory(rows)
    return build


def test_restore_built_fills_a_one_row_twin_and_equals_a_full_restore():
    det = ZScoreDetector(warmup=5).reset(40)
    rng = np.random.default_rng(5)
    for _ in range(30):
        det.step(rng.normal(size=(40, 1)))
    full = ZScoreDetector(warmup=5).reset(40)
    restore_into(full, *flatten(det))  # each twin its own copies: restored arrays are not copied again
    requested = []
    fast = restore_built(_built(lambda n: ZScoreDetector(warmup=5).reset(n), requested), 40, *flatten(det))
    assert 40 not in requested  # the full twin was never built
    ours, theirs = flatten(fast), flatten(full)
    assert ours[0] == theirs[0] and ours[1] == theirs[1]
    assert all(np.array_equal(ours[2][p], a, equal_nan=True) for p, a in theirs[2].items())
    tick = rng.normal(size=(40, 1))
    assert np.array_equal(fast.step(tick), full.step(tick))

    with pytest.raises(SnapshotMismatch, match="parameter warmup is 6 here, 5 in the snapshot"):
        restore_built(lambda n: ZScoreDetector(warmup=6).reset(n), 40, *flatten(det))


def test_restore_built_builds_the_full_twin_when_a_parameter_depends_on_the_rows():
    holder = _Rows(7)
    holder.level_[:] = np.arange(14).reshape(7, 2)
    requested = []
    restored = restore_built(_built(_Rows, requested), 7, *flatten(holder))
    assert requested[-1] == 7 and restored.rows == 7
    assert np.array_equal(restored.level_, holder.level_)


def test_mapped_snapshot_arrays_are_private_views_of_the_file(tmp_path):
    arrays = {"c": np.arange(12.0).reshape(3, 4), "f": np.asfortranarray(np.arange(6).reshape(2, 3)),
              "empty": np.zeros((0, 3)), "flags": np.array([True, False, True])}
    write_snapshot(tmp_path / "s.npz", {}, arrays)
    _, mapped = read_snapshot(tmp_path / "s.npz")
    for name, a in arrays.items():
        assert mapped[name].dtype == a.dtype and np.array_equal(mapped[name], a)
    assert mapped["f"].flags.f_contiguous
    mapped["c"][0, 0] = -1.0  # copy-on-write: the file keeps its value
    assert read_snapshot(tmp_path / "s.npz")[1]["c"][0, 0] == 0.0


class _Added:
    """A holder that added ``extra_`` after its snapshots were first written."""

    snapshot_added = ("extra_",)

    def __init__(self, rows):
        self.level_ = np.zeros(rows)
        self.extra_ = np.full(rows, -np.inf)


def test_restore_built_gives_state_added_since_the_snapshot_every_row():
    holder = _Added(6)
    holder.level_[:] = np.arange(6.0)
    structure, scalars, arrays = flatten(holder)
    del structure["extra_"], arrays["extra_"]  # as written before extra_ existed
    structure[""][2].remove("extra_")
    restored = restore_built(_Added, 6, structure, scalars, arrays)
    assert np.array_equal(restored.level_, np.arange(6.0))
    assert restored.extra_.shape == (6,) and np.isneginf(restored.extra_).all()


class _Tuned:
    """A holder whose ``patience`` steers how its state is used (tunable); ``limit`` is an ordinary parameter."""

    snapshot_tunable = ("patience",)

    def __init__(self, rows, patience=3, limit=1.0):
        self.patience = patience
        self.limit = limit
        self.level_ = np.zeros((rows, 2))


@pytest.mark.parametrize("rows", [1, 5])
def test_a_tunable_parameter_keeps_its_running_value_and_the_saved_state(rows):
    saved = _Tuned(rows, patience=3)
    saved.level_[:] = np.arange(2.0 * rows).reshape(rows, 2)
    restored = restore_built(lambda n: _Tuned(n, patience=20), rows, *flatten(saved))
    assert restored.patience == 20
    assert np.array_equal(restored.level_, saved.level_)
    twin = _Tuned(rows, patience=8)
    restore_into(twin, *flatten(saved))
    assert twin.patience == 8 and np.array_equal(twin.level_, saved.level_)
    with pytest.raises(SnapshotMismatch, match="parameter limit is 2.0 here, 1.0 in the snapshot"):
        restore_built(lambda n: _Tuned(n, patience=20, limit=2.0), rows, *flatten(saved))


def test_an_upgrade_changing_how_episodes_and_records_are_judged_keeps_the_learned_state(monkeypatch):
    """A new default (or setting) for episodes' calm and the records' maturity restores the snapshot with it.

    Before, any such change was refused and every detector started cold after the upgrade.
    """
    import detectors.ensemble as ensemble

    engine, streams = _engine_with_streams()
    ticks = list(_ticks(np.random.default_rng(6), streams, 460))
    for tick in ticks[:400]:
        engine.step(tick)
    meta, arrays = engine.export_state()
    monkeypatch.setattr(ensemble, "VALUE_MATURE", ensemble.VALUE_MATURE // 2)
    upgraded = Engine(ensemble_params={"settle": 7, "episode_memory": 300})
    upgraded.import_state(meta, arrays)
    assert upgraded.streams() == engine.streams()
    for old, new in zip(engine._banks.values(), upgraded._banks.values()):
        det = new.detector
        assert det.settle == 7 and det.episodes_.settle == 7 and det.episodes_.memory == 300
        assert det.value_records_.mature == det.pattern_records_.mature == ensemble.VALUE_MATURE
        before, after = flatten(old.detector)[2], flatten(det)[2]
        assert before.keys() == after.keys()
        assert all(np.array_equal(before[p], after[p], equal_nan=True) for p in before)
    # The streams carry on warm (a cold start would warm up again) and keep flagging.
    flagged = 0
    for tick in ticks[400:]:
        result = upgraded.step(tick)
        assert not any(v.warming_up for v in result.values())
        flagged += len(result.anomalies())
    assert flagged > 0
    # What shapes the state is still checked: another warm-up is refused.
    with pytest.raises(SnapshotMismatch):
        Engine(ensemble_params={"warmup": 31}).import_state(meta, arrays)
