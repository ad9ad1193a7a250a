"""The fast path equals the streaming path: a block of T points of one stream scores, flags and learns as T steps.

For every registered detector and the default ensemble, at 1, 8 and 38
fields, with gaps (NaN rows) and timestamps: a bank of three streams is
warmed with every stream present, then one stream gets a block of points,
either through ``step_block`` or through ``T`` calls of ``step`` in which
only that stream has a point.  Scores agree to 1e-9, ``is_anomaly`` and
``alert`` exactly, and so does every learned array afterwards, so the
stream (and its neighbours) continue identically.
"""
import copy

import numpy as np
import pytest

import detectors
from detectors import REGISTRY
from detectors.engine import Engine
from same_paths import assert_bank_equals_steps, assert_block_equals_steps, assert_same_state, streamed

#: Detectors with a vectorised block path: the ones whose equality is not a tautology of the loop.
VECTORISED = ("zscore", "iqr", "mad", "moving_average", "isolation_forest", "lof", "pattern")
FIELDS = (1, 8, 38)
ROW, STREAMS = 1, 3
START = 1_704_067_200.0  # 2024-01-01, five-minute points


def series(n: int, d: int, seed: int) -> np.ndarray:
    """A noisy daily wave per field with injected anomalies (spikes, a level shift) and NaN gaps."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    x = 20 + 3 * np.sin(2 * np.pi * t / 288 + rng.uniform(0, 6, d)) + rng.normal(0, 0.5, (n, d))
    for at in rng.choice(np.arange(n // 3, n - 5), size=4, replace=False):
        x[at, rng.integers(d)] += rng.choice([-1, 1]) * 15
    x[n - n // 4: n - n // 4 + 12] += 6
    x[rng.choice(n, size=max(3, n // 60), replace=False)] = np.nan
    return x


def warmed(name: str, d: int, warm: int):
    det = detectors.make(name).reset(STREAMS, d)
    rng = np.random.default_rng(7)
    for t in range(warm):
        det.step(20 + rng.normal(0, 0.5, (STREAMS, d)), np.full(STREAMS, START + 300.0 * t))
    return det


def assert_close(expected, got):
    """Equal, except that floats (scores, ranges) may differ by rounding (1e-9); NaN equals NaN."""
    if isinstance(expected, dict):
        assert expected.keys() == got.keys()
        for key in expected:
            assert_close(expected[key], got[key])
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(got)
        for e, g in zip(expected, got):
            assert_close(e, g)
    elif isinstance(expected, (float, np.ndarray)) and np.issubdtype(np.asarray(expected).dtype, np.floating):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, expected)


def cases():
    for name in sorted(REGISTRY):
        for d in FIELDS:
            if d > 1 and not REGISTRY[name].multivariate:
                continue
            yield pytest.param(name, d, id=f"{name}-{d}")


@pytest.mark.parametrize("name, d", list(cases()))
def test_block_equals_steps(name, d):
    n = 700 if d == 1 else 400
    X = series(n, d, seed=d)
    times = START + 300.0 * (50 + np.arange(n))
    _, stepped, blocked = assert_block_equals_steps(warmed(name, d, warm=50), X, ROW, times)
    # The bank continues identically, every stream present again.
    rng = np.random.default_rng(11)
    for t in range(20):
        tick = 20 + rng.normal(0, 0.5, (STREAMS, d))
        np.testing.assert_allclose(blocked.step(tick), stepped.step(tick), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["ensemble", "pattern", "lof"])
def test_block_of_gaps_equals_steps(name):
    """A block holding no point at all (a stretch of gaps) leaves what as many empty steps would."""
    base = warmed(name, 1, warm=80)
    stepped, blocked = base, copy.deepcopy(base)
    X = np.full((6, 1), np.nan)
    expected = streamed(stepped, X, ROW, np.full(6, np.nan))
    block = blocked.step_block(X, row=ROW)
    np.testing.assert_array_equal(block.scores, expected[0])
    np.testing.assert_array_equal(block.is_anomaly, expected[1])
    assert_same_state(stepped, blocked)


def test_injected_anomalies_open_episodes():
    """The data above is not trivially quiet: the default ensemble opens episodes on it."""
    scores, anomalous, alerts = detectors.make("ensemble").label_series(series(700, 1, seed=1))
    assert alerts.sum() >= 2 and anomalous.sum() > alerts.sum()


@pytest.mark.parametrize("name", VECTORISED)
def test_vectorised_members_take_the_fast_path(name, monkeypatch):
    """The members listed as vectorised never step point by point inside a block."""
    det = detectors.make(name).reset(1, 1)
    monkeypatch.setattr(type(det), "_score_and_learn", lambda *a: pytest.fail("stepped point by point"))
    det.step_block(series(300, 1, seed=3))


def test_iqr_and_mad_slide_their_windows_once_in_the_ensemble(monkeypatch):
    """Inside ``sharing()`` mad reads the order statistics iqr's slide computed: one slide, the same scores."""
    from detectors import shared_windows

    X = series(900, 8, seed=5)[~np.isnan(series(900, 8, seed=5)).any(axis=1)]
    alone = [detectors.make(name).reset(1, 8).step_block(X).scores for name in ("iqr", "mad")]
    slides = []
    real = shared_windows.trailing_order_stats
    monkeypatch.setattr(shared_windows, "trailing_order_stats", lambda *a: slides.append(a[2]) or real(*a))
    with shared_windows.sharing():
        shared = [detectors.make(name).reset(1, 8).step_block(X).scores for name in ("iqr", "mad")]
    np.testing.assert_array_equal(shared[0], alone[0])
    np.testing.assert_array_equal(shared[1], alone[1])
    assert len(slides) == 2  # the chunk filling the windows and the rest, once for both detectors
    with shared_windows.sharing():  # windows of another size are not shared
        detectors.make("iqr", window=50).reset(1, 8).step_block(X)
        detectors.make("mad").reset(1, 8).step_block(X)
    assert slides[2:] == [50, 50, 100, 100]
    assert shared_windows._state.entries is None  # nothing kept after the block
    monkeypatch.setattr(shared_windows, "KEPT_NUMBERS", 1000)  # too little to keep a chunk: each slides its own
    with shared_windows.sharing():
        bounded = [detectors.make(name).reset(1, 8).step_block(X).scores for name in ("iqr", "mad")]
        assert shared_windows._state.kept == 0
    np.testing.assert_array_equal(bounded[0], alone[0])
    np.testing.assert_array_equal(bounded[1], alone[1])
    assert len(slides) == 10


@pytest.mark.parametrize("d", [1, 38])
def test_lof_and_forest_embed_a_block_once_in_the_ensemble(d, monkeypatch):
    """Inside ``sharing()`` the second refitted member takes the first one's features and embedding state."""
    from detectors import shared_windows
    from detectors.features import CausalEmbedding

    X = series(1200, d, seed=6)
    X = X[~np.isnan(X).any(axis=1)]
    alone = [detectors.make(name).reset(1, d) for name in ("isolation_forest", "lof")]
    expected = [det.step_block(X).scores for det in alone]
    passes = []
    real = CausalEmbedding.transform_block
    monkeypatch.setattr(CausalEmbedding, "transform_block", lambda self, *a: passes.append(1) or real(self, *a))
    with shared_windows.sharing():
        shared = [detectors.make(name).reset(1, d) for name in ("isolation_forest", "lof")]
        scores = [det.step_block(X).scores for det in shared]
    assert len(passes) == 1
    for det, reference, got, want in zip(shared, alone, scores, expected):
        np.testing.assert_array_equal(got, want)
        assert_same_state(det, reference)
    # A member whose embedding learned other points computes its own features.
    with shared_windows.sharing():
        first = detectors.make("lof").reset(1, d)
        first.step_block(X[:50])
        second = detectors.make("isolation_forest").reset(1, d)
        first.step_block(X[50:])
        second.step_block(X[50:])
    assert len(passes) == 4  # 1 shared, then the first twice and the second once
    assert shared_windows._state.entries is None


@pytest.mark.parametrize("name", ["zscore", "ensemble"])
def test_score_many_equals_one_block_per_series(name):
    """Several series (stepped together, or one block each, whichever is faster) score as blocks of their rows."""
    group = [series(n, 1, seed=n) for n in (500, 340, 420)]
    together = detectors.make(name).score_many(group)
    det = detectors.make(name).reset(len(group), 1)
    for row, (values, scores) in enumerate(zip(group, together)):
        np.testing.assert_allclose(scores, det.step_block(values, row=row).scores, rtol=0, atol=1e-9)


@pytest.mark.parametrize("d, n_series", [(1, 3), (8, 3), (1, 12)])
def test_ensemble_bank_with_members_scored_ahead_equals_steps(d, n_series):
    """Several series through the ensemble: members scored ahead as blocks, the rest tick by tick, as plain steps.

    With 12 series, more streams than the refit budget (8) fall due on one tick: the refitted members step.
    """
    group = [series(n, d, seed=n + i) for i, n in enumerate((520, 300, 410) * (n_series // 3))]
    for g in group:  # every stream present on the first ticks: all fall due for their first fit together
        g[:100] = np.nan_to_num(g[:100], nan=20.0)
    group[1][100:140] = np.nan
    times = [START + 300.0 * np.arange(len(g)) for g in group]
    alerts = assert_bank_equals_steps(lambda: detectors.make("ensemble"), group, times)
    assert sum(a.sum() for a in alerts) >= 2


def test_block_in_pieces_equals_one_block():
    """A batch split anywhere scores as the whole batch (a replay delivered in parts)."""
    X = series(900, 1, seed=5)
    whole = detectors.make("ensemble").reset(1, 1).step_block(X).scores
    det = detectors.make("ensemble").reset(1, 1)
    parts = np.concatenate([det.step_block(X[a:b]).scores for a, b in ((0, 1), (1, 250), (250, 251), (251, 900))])
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-9)


def test_engine_block_equals_engine_steps():
    rng = np.random.default_rng(2)
    fields = ("a", "b")

    def build():
        engine = Engine()
        for i in range(3):
            engine.add_stream(f"s{i}", fields)
        warm = np.random.default_rng(3)
        for _ in range(60):
            engine.step({f"s{i}": dict(zip(fields, warm.normal(10, 1, 2))) for i in range(3)})
        return engine

    X = 10 + rng.normal(0, 1, (500, 2))
    X[300] += 9
    X[400:420, 1] += 5
    X[50:52] = np.nan
    stepped, blocked = build(), build()
    expected = [stepped.step({"s1": dict(zip(fields, x))})["s1"].to_dict() for x in X]
    result = blocked.step_block("s1", X[:, ::-1], fields=fields[::-1])
    got = [v.to_dict() for v in result]
    assert len(got) == len(expected) == len(result.scores)
    for e, g in zip(expected, got):
        assert_close(e, g)
    assert result.alert.sum() >= 1 and result.is_anomaly.sum() > result.alert.sum()
    meta_s, arrays_s = stepped.export_state()
    meta_b, arrays_b = blocked.export_state()
    assert meta_s == meta_b
    for key in arrays_s:
        assert_close(arrays_s[key], arrays_b[key])


def test_empty_block_changes_nothing():
    engine = Engine()
    engine.add_stream("cpu", ("cpu",))
    engine.step({"cpu": {"cpu": 1.0}})
    before = engine.export_state()[1]
    result = engine.step_block("cpu", np.zeros((0, 1)))
    assert len(result) == 0 and result.scores.shape == (0,)
    after = engine.export_state()[1]
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)


def test_engine_block_rejects_wrong_shapes():
    engine = Engine(members=("zscore",))
    engine.add_stream("cpu", ("cpu",))
    with pytest.raises(ValueError, match="unknown stream"):
        engine.step_block("gpu", np.zeros(3))
    with pytest.raises(ValueError, match="field"):
        engine.step_block("cpu", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="fields"):
        engine.step_block("cpu", np.zeros((3, 1)), fields=("mem",))


def test_a_new_window_replays_the_history_as_steps_would():
    """Engine._move replays a stream's history into its new bank as one block: the state of one step per point."""
    engine = Engine()
    engine.add_stream("cpu", ("cpu",))
    for v in series(300, 1, seed=4)[:, 0]:
        engine.step({"cpu": {"cpu": float(v)}})
    old = engine._streams["cpu"]
    history = engine._banks[old["bank"]].recent(old["row"])
    engine.configure("cpu", detector="zscore", window=40)
    moved = engine._streams["cpu"]
    bank = engine._banks[moved["bank"]]
    reference = engine._ensemble({"zscore": 40}).clone().reset(bank.capacity, 1)
    reference.stream_weights_[:] = bank.detector.stream_weights_
    for point in history:
        tick = np.full((bank.capacity, 1), np.nan)
        tick[moved["row"]] = point
        reference.step(tick)
    assert_same_state(reference, bank.detector)


def test_stream_group_step_many_equals_its_steps():
    """A group's ticks scored at once equal its ticks scored one by one (scores, flags, alerts, engine state)."""
    group = [series(n, 2, seed=n) for n in (450, 380, 450)]
    length = max(len(g) for g in group)
    ticks = np.full((length, len(group), 2), np.nan)
    for i, g in enumerate(group):
        ticks[: len(g), i] = g
    names = ["a", "b", "c"]
    engines = [Engine(), Engine()]
    for engine in engines:
        engine.add_streams(names, ("x", "y"))
    stepped = engines[0].group(names)
    expected = np.zeros((length, 3)), np.zeros((length, 3), dtype=bool), np.zeros((length, 3), dtype=bool)
    for t, tick in enumerate(ticks):
        result = stepped.step(tick)
        for i, name in enumerate(names):
            verdict = result[name]
            expected[0][t, i], expected[1][t, i], expected[2][t, i] = verdict.score, verdict.is_anomaly, verdict.alert
    got = engines[1].group(names).step_many(ticks, chunk=128)
    np.testing.assert_allclose(got[0], expected[0], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[2], expected[2])
    assert got[2].sum() >= 2
    meta_s, arrays_s = engines[0].export_state()
    meta_b, arrays_b = engines[1].export_state()
    assert_close(meta_s, meta_b)
    for key in arrays_s:
        assert_close(arrays_s[key], arrays_b[key])


def test_zscore_rows_whose_covariance_does_not_factorise_take_numpys_range_too(monkeypatch):
    """The sliding kernel stops a row whose Cholesky fails part-way (NaN distance, its mean and
    variances unwritten); the block must then take that row's distance and expected range from
    numpy, as the step does, not from whatever the kernel left there."""
    import detectors.zscore as zscore

    X = series(300, 8, seed=3)
    X = np.where(np.isnan(X), 20.0, X)
    times = START + 300.0 * (60 + np.arange(len(X)))
    base = warmed("zscore", 8, warm=60)
    reference = copy.deepcopy(base).step_block(X, times, row=ROW, trace=("range",))

    real = zscore.sliding_distances

    def failing(history, points, size):
        d2, mean, var = real(history, points, size)
        d2[::7], mean[::7, 3:], var[::7, 3:] = np.nan, 1e9, -1.0  # as a failure at field 3 leaves them
        return d2, mean, var

    monkeypatch.setattr(zscore, "sliding_distances", failing)
    block = copy.deepcopy(base).step_block(X, times, row=ROW, trace=("range",))
    np.testing.assert_allclose(block.scores, reference.scores, rtol=0, atol=1e-9)
    for got, want in zip(block.traces["range"], reference.traces["range"]):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_a_wide_ensemble_block_runs_blas_on_one_thread_with_the_same_scores(monkeypatch):
    """A block of many fields runs its small matrix products on one BLAS thread (less CPU spent waiting),
    restores the thread count after, and scores, flags and alerts as with BLAS's own threads."""
    import contextlib

    from threadpoolctl import threadpool_info

    from detectors import ensemble

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    seen = []
    real = ensemble.EnsembleDetector._compiled_ticks
    monkeypatch.setattr(ensemble.EnsembleDetector, "_compiled_ticks",
                        lambda self, *a: seen.append(blas_threads()) or real(self, *a))
    X = series(700, 38, seed=9)
    capped = detectors.make("ensemble").label_series(X)
    assert seen and all(threads == [1] * len(threads) for threads in seen)
    assert blas_threads() == before
    monkeypatch.setattr(ensemble, "one_blas_thread", lambda wanted=True: contextlib.nullcontext())
    free = detectors.make("ensemble").label_series(X)
    for got, want in zip(capped, free):
        np.testing.assert_array_equal(got, want)
