"""'Not an anomaly' feedback teaches one stream: the same injected pattern no longer alerts there,
while another stream given the same pattern still alerts; the lesson outlasts the value window and
a snapshot, and a larger excursion still alerts on the taught stream."""
from __future__ import annotations

import numpy as np
import pytest

from detectors.engine import Engine
from detectors.ensemble import ACCEPT_POINTS, VALUE_WINDOW
from detectors.snapshot import read_snapshot, write_snapshot
from feedback_series import BUMP, bumped_series

FIRST, MARKED_AT, SNAPSHOT_AT = 900, 930, 3000
#: The repeat comes more than a value window after the marked bump, on another phase of the sine.
REPEAT = FIRST + VALUE_WINDOW + 400
#: Twice the bump on the taught stream: beyond what was accepted, so it must still alert.
LARGER = REPEAT + 600
LENGTH = LARGER + 100


def _series(seed: int, phase: float) -> np.ndarray:
    return bumped_series(seed, phase, LENGTH, (FIRST, REPEAT))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run of two streams with the same injections; ``taught`` is marked after its first bump.

    Half way the engine is saved to a snapshot file and a fresh engine restored
    from it carries on, so the lesson must survive the snapshot too.
    """
    series = {"taught": _series(1, 0.0), "untaught": _series(2, 1.0)}
    series["taught"][LARGER:LARGER + len(BUMP)] += 2 * BUMP
    engine = Engine()
    for name in series:
        engine.add_stream(name, ("v",))
    alerts: dict[str, list[int]] = {name: [] for name in series}
    path = tmp_path_factory.mktemp("feedback") / "engine.npz"
    for i in range(LENGTH):
        result = engine.step({name: {"v": float(x[i])} for name, x in series.items()})
        for verdict in result.alerts():
            alerts[verdict.stream].append(i)
        if i == MARKED_AT:
            marked = series["taught"][FIRST:FIRST + len(BUMP)]
            engine.accept_normal("taught", [{"v": float(v)} for v in marked])
        if i == SNAPSHOT_AT:
            meta, arrays = engine.export_state()
            write_snapshot(path, meta, arrays)
            engine = Engine()
            engine.import_state(*read_snapshot(path))
    return alerts, read_snapshot(path)[1]


def _near(alerts: list[int], start: int) -> bool:
    return any(start <= i < start + 25 for i in alerts)


def test_both_streams_alert_on_the_first_bump(run):
    alerts, _ = run
    assert _near(alerts["taught"], FIRST) and _near(alerts["untaught"], FIRST)


def test_the_marked_pattern_no_longer_alerts_on_the_taught_stream_only(run):
    alerts, _ = run
    assert _near(alerts["untaught"], REPEAT), alerts
    assert not _near(alerts["taught"], REPEAT), alerts


def test_a_larger_excursion_still_alerts_on_the_taught_stream(run):
    alerts, _ = run
    assert _near(alerts["taught"], LARGER), alerts


def test_the_acceptance_is_saved_in_the_snapshot(run):
    _, arrays = run
    floors = [name for name in arrays if name.endswith("accepted_")]
    assert any("value_records_" in name for name in floors)
    assert any("pattern_records_" in name for name in floors)
    untils = [a for name, a in arrays.items() if name.endswith("value_records_.accepted_until_")]
    assert untils and max(int(a.max()) for a in untils) >= ACCEPT_POINTS


def test_feedback_ends_the_open_episode():
    rng = np.random.default_rng(5)
    engine = Engine()
    engine.add_stream("s", ("v",))
    x = 50 + rng.normal(0, 1, 700)
    x[600:620] += 30.0  # a plateau: the episode would last as long
    in_episode = []
    for i, v in enumerate(x[:610]):
        in_episode.append(engine.step({"s": {"v": float(v)}})["s"].is_anomaly)
    assert in_episode[-1]
    engine.accept_normal("s", [{"v": float(v)} for v in x[600:610]])
    after = [engine.step({"s": {"v": float(v)}})["s"] for v in x[610:700]]
    assert not any(v.is_anomaly for v in after)


def test_feedback_names_a_known_stream_and_its_fields():
    engine = Engine(members=("zscore", "mad"))
    engine.add_stream("s", ("v",))
    with pytest.raises(ValueError, match="unknown stream"):
        engine.accept_normal("nope", [{"v": 1.0}])
    with pytest.raises(ValueError, match="takes fields"):
        engine.accept_normal("s", [{"w": 1.0}])
    with pytest.raises(ValueError, match="at least one point"):
        engine.accept_normal("s", [])


def _as_before_feedback(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """The snapshot the code before 'not an anomaly' wrote of the same engine: without the state
    that feedback added (the classes' ``snapshot_added``)."""
    added = {"accepted_", "accepted_until_", "episode_distance_"}
    for bank in meta["banks"]:
        structure = bank["structure"]
        for path in list(structure):
            names = path.split(".")
            if any(n in added for n in names):
                del structure[path]
            elif structure[path][0] == "object":
                structure[path][2] = [a for a in structure[path][2] if a not in added]
    kept = {k: v for k, v in arrays.items() if not any(n in added for n in k.rsplit("/", 1)[-1].split("."))}
    assert len(kept) < len(arrays)
    return meta, kept


def test_a_snapshot_from_before_feedback_is_restored_with_nothing_accepted():
    rng = np.random.default_rng(9)
    engine = Engine(members=("zscore", "mad", "pattern"))
    engine.add_stream("s", ("v",))
    for v in 50 + rng.normal(0, 1, 400):
        engine.step({"s": {"v": float(v)}})
    meta, arrays = _as_before_feedback(*engine.export_state())
    restored = Engine(members=("zscore", "mad", "pattern"))
    restored.import_state(meta, arrays)
    tick = {"s": {"v": 50.5}}
    assert restored.step(tick)["s"].score == engine.step(tick)["s"].score
    detector = restored._banks[restored._streams["s"]["bank"]].detector
    assert np.isneginf(detector.value_records_.accepted_).all()
    restored.accept_normal("s", [{"v": 60.0}])  # the added state is there to be used
    assert detector.value_records_.accepted_until_.max() > 0
    # Anything else missing is still refused.
    meta, arrays = _as_before_feedback(*engine.export_state())
    del meta["banks"][0]["structure"]["seen_"]
    with pytest.raises(Exception, match="layout differs"):
        Engine(members=("zscore", "mad", "pattern")).import_state(meta, arrays)


def test_the_acceptance_outlives_a_window_change():
    rng = np.random.default_rng(11)
    engine = Engine()
    engine.add_stream("s", ("v",))
    for v in 50 + rng.normal(0, 1, 600):
        engine.step({"s": {"v": float(v)}})
    engine.accept_normal("s", [{"v": 70.0}])
    before = engine._banks[engine._streams["s"]["bank"]].detector.value_records_
    floors, left = before.acceptance(engine._streams["s"]["row"])
    engine.configure("s", detector="zscore", window=50)  # a new bank: the detector is rebuilt
    after = engine._banks[engine._streams["s"]["bank"]].detector.value_records_
    assert after is not before
    moved_floors, moved_left = after.acceptance(engine._streams["s"]["row"])
    np.testing.assert_array_equal(moved_floors, floors)
    assert moved_left == left > 0
