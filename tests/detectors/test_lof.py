"""Tests of the batched, per-stream Local Outlier Factor detector."""
import numpy as np

from detectors.stats import score_from_logp

#: The score of a tail probability of 0.5 %.
P_0_005 = float(score_from_logp(np.log(0.005)))
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

from detectors.lof import LocalOutlierFactorDetector, lof_fit, lof_score
from detectors.registry import REGISTRY, make


def reference_and_queries(seed=0, n_reference=120, d=3):
    rng = np.random.default_rng(seed)
    reference = np.vstack([rng.normal(0, 1, (n_reference - 20, d)), rng.normal(4, 0.3, (20, d))])
    queries = np.vstack([rng.normal(0, 1, (30, d)), rng.uniform(-6, 6, (10, d)), reference[:5]])
    return reference, queries


def noisy_sine_with_outliers(seed, n=1200, n_outliers=15, start=300):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.sin(2 * np.pi * t / 60) + 0.1 * rng.standard_normal(n)
    slots = np.arange(start, n, 20)
    where = np.sort(rng.choice(slots, min(n_outliers, slots.size), replace=False))
    x[where] += rng.choice([-1, 1], where.size) * rng.uniform(1.0, 2.5, where.size)
    truth = np.zeros(n, dtype=bool)
    truth[where] = True
    return x, truth


# -- the LOF arithmetic against scikit-learn ------------------------------------------
@pytest.mark.parametrize("k", [1, 5, 10, 20])
def test_lof_equals_scikit_learn_novelty_scores(k):
    reference, queries = reference_and_queries()
    model = LocalOutlierFactor(n_neighbors=k, novelty=True).fit(reference)
    k_distance, lrd, lof = lof_fit(reference[None], k)
    n = len(queries)
    ours = lof_score(
        np.repeat(reference.T[None], n, axis=0), np.repeat(k_distance, n, axis=0), np.repeat(lrd, n, axis=0), queries, k
    )
    np.testing.assert_allclose(ours, -model.score_samples(queries), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lof[0], -model.negative_outlier_factor_, rtol=1e-6, atol=1e-6)


def test_unused_reference_slots_are_ignored():
    reference, queries = reference_and_queries(seed=1, n_reference=60)
    padded = np.vstack([reference, np.full((40, 3), np.nan)])
    full = lof_fit(reference[None], 10)
    part = lof_fit(padded[None], 10)
    for a, b in zip(full, part):
        np.testing.assert_allclose(b[0, :60], a[0])
    assert np.isinf(part[0][0, 60:]).all() and (part[1][0, 60:] == 0).all()
    ref_t = np.where(np.isnan(padded), np.inf, padded).T[None]
    scores = lof_score(np.repeat(ref_t, len(queries), 0), np.repeat(part[0], len(queries), 0),
                       np.repeat(part[1], len(queries), 0), queries, 10)
    theirs = -LocalOutlierFactor(n_neighbors=10, novelty=True).fit(reference).score_samples(queries)
    np.testing.assert_allclose(scores, theirs, rtol=1e-6)


def test_detector_raw_score_is_log_lof_of_its_reference_window():
    """Unscaled, with the raw values as features, the detector's reference set is plain LOF."""
    reference, queries = reference_and_queries(seed=2, n_reference=100)
    reference = reference.astype(np.float32)
    det = LocalOutlierFactorDetector(embed="value", scale=False, window=100, warmup=100).reset(1, 3)
    for row in reference:
        det.step(row[None, :].astype(np.float64))
    assert det.fitted_[0]
    raw = det.raw_scores(np.zeros(len(queries), dtype=int), queries.astype(np.float32))
    model = LocalOutlierFactor(n_neighbors=10, novelty=True).fit(reference.astype(np.float64))
    theirs = -model.score_samples(queries.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(np.exp(raw), theirs, rtol=1e-4)


def test_scaling_makes_scores_independent_of_field_units():
    rng = np.random.default_rng(3)
    t = np.arange(700)[:, None]
    x = np.sin(2 * np.pi * t / 50 + np.array([0.0, 1.0])) + 0.1 * rng.standard_normal((700, 2))
    x[500] += [0.0, 0.8]
    in_other_units = x * np.array([1.0, 1000.0])
    first = LocalOutlierFactorDetector().score_series(x)
    second = LocalOutlierFactorDetector().score_series(in_other_units)
    np.testing.assert_allclose(first, second, atol=1e-3)
    unscaled = LocalOutlierFactorDetector(scale=False).score_series(in_other_units)
    assert np.abs(unscaled - first).max() > 0.1


# -- the detector ----------------------------------------------------------------------
def test_injected_outliers_in_a_noisy_sine_score_higher():
    x, truth = noisy_sine_with_outliers(seed=0)
    scores = LocalOutlierFactorDetector().score_series(x)
    scored = slice(300, None)
    assert roc_auc_score(truth[scored], scores[scored]) >= 0.9
    assert (scores[scored][~truth[scored]] > P_0_005).mean() < 0.03


def test_every_field_of_a_vector_is_scored():
    """Spikes in one field only (first or last of three) rank above normal points."""
    rng = np.random.default_rng(4)
    t = np.arange(1500)[:, None]
    x = np.sin(2 * np.pi * t / 60 + np.array([0.0, 1.0, 2.0])) + 0.1 * rng.standard_normal((1500, 3))
    spikes = {0: np.arange(400, 1500, 110), 2: np.arange(455, 1500, 110)}
    for field, rows in spikes.items():
        x[rows, field] += rng.choice([-1.5, 1.5], rows.size)
    scores = LocalOutlierFactorDetector().score_series(x)
    normal = np.setdiff1d(np.arange(300, 1500), np.r_[spikes[0], spikes[2]])
    for rows in spikes.values():
        labels = np.r_[np.ones(rows.size), np.zeros(normal.size)]
        assert roc_auc_score(labels, np.r_[scores[rows], scores[normal]]) > 0.95


def test_changing_future_points_never_changes_past_scores():
    x, _ = noisy_sine_with_outliers(seed=2, n=600)
    y = x.copy()
    y[400:] = np.random.default_rng(9).normal(20, 5, 200)
    sx = LocalOutlierFactorDetector().score_series(x)
    sy = LocalOutlierFactorDetector().score_series(y)
    np.testing.assert_array_equal(sx[:400], sy[:400])
    assert not np.array_equal(sx[400:], sy[400:])


def test_absent_rows_score_zero_and_leave_the_stream_untouched():
    x, _ = noisy_sine_with_outliers(seed=3, n=500)
    alone = LocalOutlierFactorDetector().score_series(x)
    gappy = np.full(800, np.nan)
    kept = np.sort(np.random.default_rng(5).choice(800, 500, replace=False))
    gappy[kept] = x
    with_gaps = LocalOutlierFactorDetector().score_series(gappy)
    np.testing.assert_array_equal(with_gaps[kept], alone)
    assert (np.delete(with_gaps, kept) == 0).all()


def test_a_bank_scores_each_stream_as_if_it_were_alone():
    series = [noisy_sine_with_outliers(seed=s, n=400 + 50 * s)[0] for s in range(4)]
    series = [np.column_stack([s, np.roll(s, 7)]) for s in series]
    together = LocalOutlierFactorDetector().score_many(series)
    for s, scores in zip(series, together):
        np.testing.assert_array_equal(scores, LocalOutlierFactorDetector().score_series(s))


def test_scores_zero_until_the_first_reference_set_then_lie_in_unit_interval():
    x, _ = noisy_sine_with_outliers(seed=5, n=300)
    scores = LocalOutlierFactorDetector(warmup=40).score_series(x)
    assert (scores[:40] == 0).all()
    assert (scores[40:] > 0).mean() > 0.9
    assert ((scores >= 0) & (scores <= 1)).all()


def test_constant_and_repeating_streams_stay_finite():
    flat = np.full(300, 5.0)
    steps = np.repeat(np.arange(30) % 3, 10).astype(float)  # many exact duplicates
    for x in (flat, steps):
        scores = LocalOutlierFactorDetector().score_series(x)
        assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    flat_then_jump = flat.copy()
    flat_then_jump[250] = 6.0
    scores = LocalOutlierFactorDetector().score_series(flat_then_jump)
    assert scores[250] > 0.999 and scores[200:250].max() < 0.95


def test_state_stays_within_its_memory_budget():
    det = LocalOutlierFactorDetector().reset(100, 3)
    total = sum(
        a.nbytes
        for holder in (det, det.embedding_, det.window_, det.schedule_, det.calibrator_)
        for a in vars(holder).values()
        if isinstance(a, np.ndarray)
    )
    assert total / 100 <= 15_000


def test_registered_and_cloned_with_its_parameters():
    assert REGISTRY["lof"] is LocalOutlierFactorDetector
    det = make("lof", n_neighbors=5, scale=False)
    twin = det.clone()
    assert twin.get_params() == det.get_params()
    assert twin.n_neighbors == 5 and twin.scale is False and twin.window == 64
    assert det.expected_range() is None


@pytest.mark.parametrize(
    "params", [{"n_neighbors": 0}, {"n_neighbors": 10, "window": 10}, {"refit_every": 0}, {"embed": "speed"}]
)
def test_bad_parameters_are_value_errors(params):
    with pytest.raises(ValueError):
        LocalOutlierFactorDetector(**params).reset(2, 1)


@pytest.mark.parametrize("d", [1, 3, 38])
def test_compiled_block_scores_equal_the_numpy_scores(d):
    """The fast path's compiled LOF gives raw_scores' float32 arithmetic bit for bit, ties and far points included."""
    rng = np.random.default_rng(d)
    det = LocalOutlierFactorDetector().reset(3, d)
    for t in range(400):
        tick = rng.normal(0, 1, (3, d))
        tick[2] = np.round(tick[2])                      # many equal distances: ties at the k-distance
        det.step(tick)
    assert det.fitted_.all()
    width = det.reference_.shape[1]
    rows = rng.integers(0, 3, 300)
    features = rng.normal(0, 2, (300, width)).astype(np.float32)
    features[:5] *= 1e4                                  # far out
    features[5:10] = det.window_.buffer[rows[5:10], 0]   # reference points themselves (distance 0)
    np.testing.assert_array_equal(det._block_raw_scores(rows, features), det.raw_scores(rows, features))


@pytest.mark.parametrize("w, k", [(64, 10), (13, 5), (7, 3)])
def test_compiled_fit_equals_lof_fit(w, k):
    """The compiled refit gives lof_fit's float32 k-distances and lrd and float64 LOFs bit for bit."""
    from detectors.lof import compiled_lof_fit

    rng = np.random.default_rng(w)
    reference = rng.normal(0, 1, (4, w, 3)).astype(np.float32)
    reference[1] = np.round(reference[1])              # ties at the k-distance, duplicates
    reference[2, : w // 3] = np.nan                    # unused slots
    reference[3, 0] = 1e6                              # one far point
    for got, expected in zip(compiled_lof_fit(reference, k), lof_fit(reference, k)):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
