"""Tests of the batched, per-stream Isolation Forest detector."""
import numpy as np

from detectors.stats import score_from_logp

#: The score of a tail probability of 0.5 %.
P_0_005 = float(score_from_logp(np.log(0.005)))
import pytest
from scipy.stats import spearmanr
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from detectors.isolation_forest import (
    IsolationForestDetector,
    average_path_length,
    build_forests,
    fit_keys,
    mean_path_length,
)
from detectors.registry import REGISTRY, make


def gaussian_with_outliers(seed=0, n_inliers=300, n_outliers=20):
    rng = np.random.default_rng(seed)
    inliers = rng.normal(0.0, 1.0, (n_inliers, 2))
    angle = rng.uniform(0, 2 * np.pi, n_outliers)
    radius = rng.uniform(4.0, 7.0, n_outliers)
    outliers = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    return np.vstack([inliers, outliers]), np.r_[np.zeros(n_inliers), np.ones(n_outliers)]


def fitted_on(sample, **params):
    """A one-stream detector whose first forest is grown on exactly ``sample`` (features = raw values)."""
    n = len(sample)
    det = IsolationForestDetector(embed="value", window=n, warmup=n, **params).reset(1, sample.shape[1])
    for row in sample:
        det.step(row[None, :])
    assert det.fitted_[0]
    return det


def noisy_sine_with_outliers(seed, n=1500, n_outliers=15, start=300):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.sin(2 * np.pi * t / 60) + 0.1 * rng.standard_normal(n)
    slots = np.arange(start, n, 20)
    n_outliers = min(n_outliers, slots.size)
    where = np.sort(rng.choice(slots, n_outliers, replace=False))
    x[where] += rng.choice([-1, 1], n_outliers) * rng.uniform(1.0, 2.5, n_outliers)
    truth = np.zeros(n, dtype=bool)
    truth[where] = True
    return x, truth


# -- the forest itself ---------------------------------------------------------
def test_ranks_points_like_scikit_learn():
    x, is_outlier = gaussian_with_outliers()
    det = fitted_on(x, n_trees=200, sample_size=64)
    ours = det.raw_scores(np.zeros(len(x), dtype=int), x.astype(np.float32))
    theirs = -IsolationForest(n_estimators=200, max_samples=64, random_state=0).fit(x).score_samples(x)
    assert spearmanr(ours, theirs).statistic > 0.9
    inlier_scores = ours[is_outlier == 0]
    assert ours[is_outlier == 1].min() > np.median(inlier_scores)
    assert roc_auc_score(is_outlier, ours) > 0.97


def test_raw_score_is_two_to_minus_normalised_path_length():
    x, _ = gaussian_with_outliers(seed=1)
    det = fitted_on(x, n_trees=20, sample_size=32)
    xq = np.zeros((1, 2), dtype=np.int16)  # the median of the window
    length = mean_path_length(det.nodes_, det.leaves_, [0], xq, sample_size=32)
    expected = 2.0 ** (-length / average_path_length(32))
    np.testing.assert_allclose(det._path_scores(np.array([0]), xq), expected)
    # A central point takes longer than average to isolate; a far one much less.
    assert length[0] > average_path_length(32)
    far = mean_path_length(det.nodes_, det.leaves_, [0], np.full((1, 2), 2000, dtype=np.int16), sample_size=32)
    assert far[0] < 0.5 * length[0]


def test_identical_points_cannot_be_isolated():
    points = np.full((1, 40, 3), 7, dtype=np.int16)
    nodes, leaves, psi = build_forests(points, np.array([40]), fit_keys(0, [1]), n_trees=5, sample_size=16)
    assert psi.tolist() == [16]
    length = mean_path_length(nodes, leaves, [0, 0], np.array([[7, 7, 7], [-900, 5, 800]], dtype=np.int16), sample_size=16)
    # Every tree ends at its root: path length c(16) for any point, rounded to the leaf resolution.
    np.testing.assert_allclose(length, average_path_length(16), atol=0.05)


def test_forests_depend_on_key_only():
    rng = np.random.default_rng(3)
    points = rng.integers(-500, 500, (3, 64, 2)).astype(np.int16)
    keys = fit_keys(5, [1, 2, 1])
    nodes, leaves, _ = build_forests(points, np.array([64, 64, 64]), keys, n_trees=4, sample_size=16)
    alone, alone_leaves, _ = build_forests(points[2:], np.array([64]), keys[2:], n_trees=4, sample_size=16)
    np.testing.assert_array_equal(nodes[2], alone[0])
    np.testing.assert_array_equal(leaves[2], alone_leaves[0])
    assert not np.array_equal(nodes[0], nodes[1])


# -- the detector ----------------------------------------------------------------
def test_injected_outliers_in_a_noisy_sine_score_higher():
    x, truth = noisy_sine_with_outliers(seed=0)
    scores = IsolationForestDetector(seed=1).score_series(x)
    scored = slice(300, None)
    assert roc_auc_score(truth[scored], scores[scored]) >= 0.9
    # Calibrated: most normal points sit well below the default threshold.
    assert (scores[scored][~truth[scored]] > P_0_005).mean() < 0.02


def test_every_field_of_a_vector_is_scored():
    """Spikes in one field only (first or last of three) rank above normal points."""
    rng = np.random.default_rng(4)
    t = np.arange(1500)[:, None]
    x = np.sin(2 * np.pi * t / 60 + np.array([0.0, 1.0, 2.0])) + 0.1 * rng.standard_normal((1500, 3))
    spikes = {0: np.arange(400, 1500, 110), 2: np.arange(455, 1500, 110)}
    for field, rows in spikes.items():
        x[rows, field] += rng.choice([-1.5, 1.5], rows.size)
    scores = IsolationForestDetector(seed=0).score_series(x)
    normal = np.setdiff1d(np.arange(300, 1500), np.r_[spikes[0], spikes[2]])
    for rows in spikes.values():
        labels = np.r_[np.ones(rows.size), np.zeros(normal.size)]
        assert roc_auc_score(labels, np.r_[scores[rows], scores[normal]]) > 0.9


def test_changing_future_points_never_changes_past_scores():
    x, _ = noisy_sine_with_outliers(seed=2, n=700)
    y = x.copy()
    y[500:] = np.random.default_rng(9).normal(20, 5, 200)
    sx = IsolationForestDetector().score_series(x)
    sy = IsolationForestDetector().score_series(y)
    np.testing.assert_array_equal(sx[:500], sy[:500])
    assert not np.array_equal(sx[500:], sy[500:])


def test_absent_rows_score_zero_and_leave_the_stream_untouched():
    x, _ = noisy_sine_with_outliers(seed=3, n=600)
    alone = IsolationForestDetector().score_series(x)
    gappy = np.full(900, np.nan)
    kept = np.sort(np.random.default_rng(5).choice(900, 600, replace=False))
    gappy[kept] = x
    with_gaps = IsolationForestDetector().score_series(gappy)
    np.testing.assert_array_equal(with_gaps[kept], alone)
    assert (np.delete(with_gaps, kept) == 0).all()


def test_a_bank_scores_each_stream_as_if_it_were_alone():
    series = [noisy_sine_with_outliers(seed=s, n=500 + 50 * s)[0] for s in range(4)]
    series = [np.column_stack([s, np.roll(s, 7)]) for s in series]
    together = IsolationForestDetector().score_many(series)
    for s, scores in zip(series, together):
        np.testing.assert_array_equal(scores, IsolationForestDetector().score_series(s))


def test_same_seed_same_scores_other_seed_other_scores():
    x, _ = noisy_sine_with_outliers(seed=4, n=600)
    first = IsolationForestDetector(seed=7).score_series(x)
    np.testing.assert_array_equal(first, IsolationForestDetector(seed=7).score_series(x))
    assert not np.array_equal(first, IsolationForestDetector(seed=8).score_series(x))


def test_scores_zero_until_the_first_forest_then_lie_in_unit_interval():
    x, _ = noisy_sine_with_outliers(seed=5, n=400)
    det = IsolationForestDetector(warmup=50)
    scores = det.score_series(x)
    assert (scores[:50] == 0).all()
    assert (scores[50:] > 0).mean() > 0.9
    assert ((scores >= 0) & (scores <= 1)).all()


def test_refits_are_bounded_per_tick_and_staggered():
    det = IsolationForestDetector(n_trees=8, refit_every=16, warmup=16).reset(200, 1)
    rng = np.random.default_rng(6)
    fits_per_tick = []
    for _ in range(100):
        before = det.schedule_.fits_.sum()
        det.step(rng.normal(size=(200, 1)))
        fits_per_tick.append(det.schedule_.fits_.sum() - before)
    fits_per_tick = np.array(fits_per_tick)
    assert fits_per_tick.max() <= det.schedule_.budget_ < 200
    assert det.fitted_.all()
    # Steady state: about S / refit_every refits on most ticks, not all at once.
    assert np.median(fits_per_tick[-32:]) >= 200 / 16 - 1


def test_state_stays_within_its_memory_budget():
    det = IsolationForestDetector().reset(100, 3)
    total = sum(
        a.nbytes
        for holder in (det, det.embedding_, det.window_, det.schedule_, det.calibrator_)
        for a in vars(holder).values()
        if isinstance(a, np.ndarray)
    )
    assert total / 100 <= 40_000


def test_registered_and_cloned_with_its_parameters():
    assert REGISTRY["isolation_forest"] is IsolationForestDetector
    det = make("isolation_forest", n_trees=10, seed=3, embed="value")
    twin = det.clone()
    assert twin.get_params() == det.get_params()
    assert twin.get_params()["n_trees"] == 10 and twin.seed == 3 and twin.window == 256
    assert det.expected_range() is None


@pytest.mark.parametrize(
    "params, n_features",
    [
        ({"n_trees": 0}, 1),
        ({"sample_size": 1}, 1),
        ({"window": 1}, 1),
        ({"embed": "value+speed"}, 1),
    ],
)
def test_bad_parameters_are_value_errors(params, n_features):
    with pytest.raises(ValueError):
        IsolationForestDetector(**params).reset(2, n_features)


def test_many_fields_are_projected_to_the_features_a_node_can_name():
    """18 features (6 fields, three parts) exceed the 4-bit split field: the embedding projects them to 16."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(700, 6))
    x[650, 2] += 12.0
    det = IsolationForestDetector(embed="value+diff+dev", seed=0)
    scores = det.score_series(x)
    assert det.embedding_.width_ == 16
    assert scores[650] >= np.quantile(scores[100:], 0.99)


def test_compiled_walk_equals_the_numpy_walk():
    """The fast path's compiled tree walk gives the numpy walk's lengths exactly, for several streams' forests."""
    rng = np.random.default_rng(5)
    points = rng.integers(-3000, 3000, (3, 200, 4)).astype(np.int16)
    points[1, :150] = 7                                     # a stream with mostly equal values
    nodes, leaves, _ = build_forests(points, np.array([200, 200, 120]), fit_keys(0, [1, 2, 3]), n_trees=30,
                                     sample_size=64)
    owner = rng.integers(0, 3, 503)  # the kernel walks four points at a time, then the rest one by one
    xq = rng.integers(-32768, 32767, (503, 4)).astype(np.int16)  # to the int16 extremes
    xq[:100] = points[owner[:100], 0]                             # and the trees' own points
    expected = mean_path_length(nodes, leaves, owner, xq, sample_size=64)
    np.testing.assert_array_equal(mean_path_length(nodes, leaves, owner, xq, sample_size=64, compiled=True), expected)
