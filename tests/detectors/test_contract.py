"""The contract every registered detector keeps, checked on every one of them."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import detectors
from detectors import REGISTRY, NotResetError
from generators import STREAMS, make_stream

NAMES = sorted(REGISTRY)
#: Points drawn from each generator for the ranking test, how many are skipped as warm-up, and the anomaly rate.
GENERATED, SKIPPED, RATE = 3000, 300, 0.04


def noisy_series(n=400, d=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    return 10 + np.sin(t / 15.0) + rng.normal(0, 0.3, (n, d))


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


def test_registry_has_the_promised_detectors():
    for promised in ("zscore", "iqr", "mad", "moving_average", "isolation_forest", "lof", "ensemble"):
        assert promised in REGISTRY


def test_scores_lie_in_unit_interval(name):
    x = noisy_series(400)
    x[200] = 1e6
    x[250] = -1e6
    scores = detectors.make(name).score_series(x)
    assert scores.shape == (400,)
    assert np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()


def test_changing_future_points_never_changes_past_scores(name):
    x = noisy_series(400, seed=1)
    y = x.copy()
    y[250:] = np.random.default_rng(9).normal(50, 20, (150, 1))
    sx, sy = detectors.make(name).score_series(x), detectors.make(name).score_series(y)
    np.testing.assert_array_equal(sx[:250], sy[:250])
    assert not np.array_equal(sx[250:], sy[250:])


def test_warm_up_reports_not_anomalous(name):
    det = detectors.make(name)
    x = noisy_series(200, seed=2)
    x[5] = 1e4
    scores = det.score_series(x)
    assert (scores[: det.warmup] == 0).all()


def test_same_seed_gives_same_scores(name):
    x = noisy_series(300, seed=3)
    first = detectors.make(name).score_series(x)
    second = detectors.make(name).score_series(x)
    np.testing.assert_array_equal(first, second)


def test_absent_points_are_skipped_and_streams_are_independent(name):
    """A stream with gaps scores its points as if the gaps were not there, whatever its neighbours do."""
    x = noisy_series(300, seed=4)[:, 0]
    alone = detectors.make(name).score_series(x)
    gappy = np.full(450, np.nan)
    gappy[np.sort(np.random.default_rng(5).choice(450, 300, replace=False))] = x
    other = np.random.default_rng(6).normal(0, 100, 450)
    with_gaps, _ = detectors.make(name).score_many([gappy, other])
    np.testing.assert_allclose(with_gaps[~np.isnan(gappy)], alone, rtol=1e-9, atol=1e-12)
    assert (with_gaps[np.isnan(gappy)] == 0).all()


def test_stepping_before_reset_is_a_clear_error(name):
    with pytest.raises(NotResetError):
        detectors.make(name).step(np.zeros((1, 1)))


def test_wrong_tick_shape_is_a_clear_error(name):
    det = detectors.make(name).reset(3, 1)
    with pytest.raises(ValueError, match="shape"):
        det.step(np.zeros((2, 1)))


def test_clone_keeps_parameters(name):
    det = detectors.make(name)
    assert det.clone().get_params() == det.get_params()


def test_multivariate_vectors_are_scored_jointly(name):
    det = detectors.make(name)
    if not det.multivariate:
        pytest.skip(f"{name} scores univariate streams only (test_contract_fields checks it refuses more)")
    rng = np.random.default_rng(7)
    # Two strongly correlated fields: a point that breaks the correlation is anomalous as a vector.
    a = rng.normal(0, 1, 400)
    x = np.column_stack([a, a + rng.normal(0, 0.05, 400)])
    x[300] = [5, 5]
    scores = det.score_series(x)
    assert scores.shape == (400,)
    assert scores[300] >= np.quantile(scores[det.warmup:300], 0.99)


@pytest.fixture(scope="module")
def generated():
    """Seeded points of every generator, grouped by field count so each group scores as one bank."""
    groups = {}
    for stream in STREAMS:
        frame = make_stream(stream, seed=11, anomaly_rate=RATE).frame(GENERATED)
        gen = make_stream(stream, seed=11)
        groups.setdefault(len(gen.fields), []).append((stream, frame[list(gen.fields)].to_numpy(), frame["is_anomaly"].to_numpy()))
    return groups


def injected_episodes(truth):
    """Split the labelled rows after the warm-up into episodes: runs of consecutive labelled rows."""
    rows = np.flatnonzero(truth[SKIPPED:]) + SKIPPED
    return np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if rows.size else []


def test_injected_anomalies_rank_above_normal_points_on_every_generator(name, generated):
    """Each injected anomaly, scored by its peak, must outrank normal points: ROC-AUC >= 0.8.

    (Shape-only detectors are skipped: most injected kinds are lone spikes and level shifts.)

    An injected anomaly is an episode (a spike, a level shift of many points, a
    drift ...): an operator is served when the episode raises an alarm, not
    when every one of its points does, and an adaptive detector rightly
    stops flagging the tenth point of a shift it has already reported.
    """
    if not REGISTRY[name].scores_points:
        pytest.skip(f"{name} scores shapes, not lone points")
    failures = []
    for group in generated.values():
        scores = detectors.make(name).score_many([values for _, values, _ in group])
        for (stream, _, truth), s in zip(group, scores):
            episodes = injected_episodes(truth)
            assert len(episodes) >= 5, f"{stream}: too few injected anomalies to rank"
            peaks = np.array([s[e].max() for e in episodes])
            normal = s[SKIPPED:][~truth[SKIPPED:]]
            labels = np.r_[np.ones(len(peaks)), np.zeros(len(normal))]
            auc = roc_auc_score(labels, np.r_[peaks, normal])
            if auc < 0.8:
                failures.append(f"{stream}: ROC-AUC {auc:.3f} over {len(episodes)} anomalies")
    assert not failures, f"{name} ranks injected anomalies poorly: {failures}"


#: The isolation forest scores a 10-sigma spike below its own threshold even on a fresh stream (0.31
#: here, the stream's highest score 0.34): a limit of the member, not of its robustness.  A point
#: beyond the range of a tree's 64-point sample follows the path of the sample's extreme point, so
#: a 3-, an 8- and a 100-sigma point get the same mean path length (3.31 at one field, 3.73 at two,
#: seeded Gaussian samples on 5 December 2026): the raw score saturates where the most extreme
#: ordinary points already are.  Stretching the root's split range to the point (a point beyond it
#: is cut off sooner) ranks the spike first here (raw 0.852, the 99.9th percentile 0.79) but still
#: calibrates it to 0.43: the raw score is bounded (at most 2 ** (-1 / c(64)) = 0.911) while the
#: calibrator's exponential tail is not, and the change lost MSL and SMAP as a member alone (README,
#: "Measured on 5 December, evening, and not taken").  Strict: the test fails once it passes.
NOT_YET_ROBUST = {"isolation_forest"}


@pytest.mark.parametrize("absurd", [1e300, -1e300])
def test_one_absurd_value_does_not_blind_a_stream(name, absurd, request):
    """Issue 8: after a submitted 1e300, a 10-sigma spike 200 points later is flagged as on a fresh stream."""
    if name in NOT_YET_ROBUST:
        request.applymarker(pytest.mark.xfail(strict=True, reason="isolation_forest does not flag a 10-sigma spike even on a fresh stream"))
    if not REGISTRY[name].scores_points:
        pytest.skip(f"{name} scores shapes, not lone points")
    fresh = noisy_series(700, seed=12)
    crest = 589  # sin(t / 15) peaks here: the spike also leaves the range the stream has covered
    fresh[crest] += 10 * 0.3
    blinded = fresh.copy()
    blinded[crest - 200] = absurd
    det = detectors.make(name)
    scores = det.score_series(blinded)
    assert np.isfinite(scores).all()
    assert scores[crest] >= det.threshold, f"{name}: the spike scores {scores[crest]:.3f} after {absurd:g}"
    # ... and the ordinary points in between are not all called anomalous either (blind by saturation).
    assert np.median(scores[crest - 150:crest]) < det.threshold
    _, anomalous, _ = det.label_series(blinded)
    assert anomalous[crest]
