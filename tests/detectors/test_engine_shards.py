"""Shards: banks of at most ``shard_rows`` streams, stepped side by side on native threads.

What must hold: the scores do not depend on the number of threads (bit for
bit, learned state included); the layout is deterministic; and a stream
scores as it would in one big bank wherever the engine's docstring says so
(no refit queue beyond the budget, ``shard_rows`` a multiple of the pattern
member's resync period).
"""
import numpy as np
import pytest

from detectors import pattern
from detectors.engine import SHARD_ROWS, Engine

MEMBERS_WITHOUT_REFITS = ("zscore", "mad", "moving_average", "pattern")


def _run(engine: Engine, n: int, ticks: int, seed: int = 0, verdicts: list | None = None):
    """Step ``n`` one-field streams for ``ticks`` ticks (a level shift on every 5th stream near the end).

    Returns ``(scores, anomalous)``, each ``(ticks, n)`` in stream order; ``verdicts``, when given, gets
    each tick's anomalies as dicts.
    """
    names = [f"s{i}" for i in range(n)]
    engine.add_streams(names, ("v",))
    group = engine.group(names)
    rng = np.random.default_rng(seed)
    level = rng.normal(50, 10, n)
    scores, anomalous = np.zeros((ticks, n)), np.zeros((ticks, n), dtype=bool)
    for t in range(ticks):
        x = level + rng.normal(0, 1, n)
        if t >= ticks - 40:
            x[::5] += 25
        result = group.step(x)
        by_name = result.scores()
        scores[t] = [by_name[name] for name in names]
        flagged = {v.stream for v in result.anomalies()}
        anomalous[t] = [name in flagged for name in names]
        if verdicts is not None:
            verdicts.append([v.to_dict() for v in result.anomalies()])
    return scores, anomalous


def _layout(engine: Engine) -> dict:
    return {name: (s["bank"], s["row"]) for name, s in engine._streams.items()}


def test_two_threads_give_the_scores_and_state_of_one_bit_for_bit():
    one, two = Engine(shard_rows=8, threads=1), Engine(shard_rows=8, threads=2)
    v1, v2 = [], []
    s1, a1 = _run(one, 20, 360, verdicts=v1)
    s2, a2 = _run(two, 20, 360, verdicts=v2)
    assert len({key for key, _ in _layout(two).values()}) == 3  # 8 + 8 + 4 streams
    assert a1[-40:].any()  # the shift is flagged, so flags are compared where it matters
    assert np.array_equal(s1, s2) and np.array_equal(a1, a2)
    assert v1 == v2  # the verdicts of streams in an episode, built on the worker threads with two
    meta1, arrays1 = one.export_state()
    meta2, arrays2 = two.export_state()
    assert meta1 == meta2 and arrays1.keys() == arrays2.keys()
    for path in arrays1:
        assert np.array_equal(arrays1[path], arrays2[path], equal_nan=True), path


def test_a_dict_tick_over_several_shards_gives_each_stream_its_verdict():
    engine = Engine(members=("zscore", "mad"), shard_rows=4, threads=2)
    names = [f"s{i}" for i in range(10)]
    engine.add_streams(names, ("v",))
    for t in range(60):
        verdicts = engine.step({name: {"v": float(i + (t % 3))} for i, name in enumerate(names)})
    verdicts = engine.step({name: {"v": (100.0 if name == "s9" else float(i))} for i, name in enumerate(names)})
    assert sorted(verdicts) == sorted(names) and len(verdicts) == 10 and "s9" in verdicts
    assert [v.stream for v in verdicts.anomalies()] == ["s9"]
    assert verdicts["s3"].values == {"v": 3.0}


def test_shards_score_as_one_bank_while_the_refit_queue_stays_within_budget():
    # Eight streams: every stream due for a refit is refitted on that tick, in a bank of 8 as in two of 4.
    big, sharded = Engine(shard_rows=1_000_000, threads=1), Engine(shard_rows=4, threads=2)
    s1, a1 = _run(big, 8, 360)
    s2, a2 = _run(sharded, 8, 360)
    assert len(big._banks) == 1 and len(sharded._banks) == 2
    assert np.array_equal(s1, s2) and np.array_equal(a1, a2)


def test_shards_of_a_multiple_of_the_resync_period_score_as_one_bank():
    """The pattern member's exact recomputation takes turns by row; a shard of 256 rows keeps each stream's turn."""
    n, ticks = 260, 300
    s1, a1 = _run(Engine(members=MEMBERS_WITHOUT_REFITS, shard_rows=1_000_000), n, ticks)
    s2, a2 = _run(Engine(members=MEMBERS_WITHOUT_REFITS, shard_rows=pattern.RESYNC), n, ticks)
    assert np.array_equal(s1, s2) and np.array_equal(a1, a2)
    assert SHARD_ROWS % pattern.RESYNC == 0


def test_a_shard_size_off_the_resync_period_changes_rounding_only():
    n, ticks = 260, 300
    s1, a1 = _run(Engine(members=MEMBERS_WITHOUT_REFITS, shard_rows=1_000_000), n, ticks)
    s2, a2 = _run(Engine(members=MEMBERS_WITHOUT_REFITS, shard_rows=100), n, ticks)
    assert not np.array_equal(s1, s2)  # the turns moved: the running sums are rounded differently
    np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-6)
    assert np.array_equal(a1, a2)


def test_layout_is_deterministic_and_a_freed_row_is_taken_first():
    engine = Engine(members=("zscore",), shard_rows=4)
    engine.add_streams([f"s{i}" for i in range(10)], ("v",))
    layout = _layout(engine)
    kind = (1, ())
    assert [layout[f"s{i}"] for i in range(10)] == [((*kind, i // 4), i % 4) for i in range(10)]
    assert max(b.capacity for b in engine._banks.values()) == 4
    one_by_one = Engine(members=("zscore",), shard_rows=4)
    for i in range(10):
        one_by_one.add_stream(f"s{i}", ("v",))
    assert _layout(one_by_one) == layout
    engine.remove_stream("s5")
    engine.add_stream("new", ("v",))
    assert engine._streams["new"]["bank"] == (*kind, 1) and engine._streams["new"]["row"] == 1
    engine.add_stream("two", ("v",))
    assert engine._streams["two"]["bank"] == (*kind, 2) and engine._streams["two"]["row"] == 2


def test_a_new_window_moves_a_stream_into_a_shard_of_its_own_kind():
    engine = Engine(members=("zscore", "mad"), shard_rows=2)
    engine.add_streams(["a", "b", "c"], ("v",))
    for t in range(40):
        engine.step({n: {"v": float(t % 5)} for n in "abc"})
    engine.configure("c", detector="mad", window=50)
    assert engine._streams["c"]["bank"] == (1, (("mad", 50),), 0)
    assert engine.step({n: {"v": 2.0} for n in "abc"})["c"].score >= 0.0


def test_many_ticks_at_once_over_shards_equal_tick_by_tick():
    """As on one bank, up to the fast path's rounding (tests/detectors/test_fast_path.py); threads change nothing."""
    rng = np.random.default_rng(3)
    names = [f"s{i}" for i in range(10)]
    ticks = rng.normal(0, 1, (120, 10, 1))
    ticks[100:, 3] += 8
    engines = [Engine(members=("zscore", "mad", "pattern"), shard_rows=4, threads=threads) for threads in (2, 2, 1)]
    for engine in engines:
        engine.add_streams(names, ("v",))
    stepped = engines[0].group(names)
    by_tick = [stepped.step(tick).scores() for tick in ticks]
    scores = np.array([[scores[n] for n in names] for scores in by_tick])
    at_once, anomalous, _ = engines[1].group(names).step_many(ticks, chunk=50)
    np.testing.assert_allclose(at_once, scores, rtol=0, atol=1e-9)
    assert anomalous[100:, 3].any()
    alone, anomalous_alone, _ = engines[2].group(names).step_many(ticks, chunk=50)
    assert np.array_equal(at_once, alone) and np.array_equal(anomalous, anomalous_alone)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_shard_rows_and_threads_must_be_whole_and_positive(bad):
    with pytest.raises(ValueError):
        Engine(shard_rows=bad)
    with pytest.raises(ValueError):
        Engine(threads=bad)
