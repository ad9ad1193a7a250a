"""Tests of the per-stream plumbing shared by the windowed detectors."""
import numpy as np
import pytest

from detectors.features import CausalEmbedding, RefitSchedule, parse_embed, robust_center_scale


def embed_series(embed, x, present=None):
    x = np.asarray(x, dtype=float).reshape(len(x), 1, -1)
    emb = CausalEmbedding(embed).reset(1, x.shape[2])
    present = np.ones(len(x), dtype=bool) if present is None else present
    return np.vstack([emb.transform(row, np.array([p])) for row, p in zip(x, present)])


def test_parts_are_value_change_and_deviation_from_the_past_average():
    x = np.array([2.0, 4.0, 5.0, 10.0, 6.0])
    out = embed_series("value+diff+dev", x)
    np.testing.assert_array_equal(out[:, 0], x)
    np.testing.assert_array_equal(out[:, 1], [0.0, 2.0, 1.0, 5.0, -4.0])
    # The average holds the first point until the third restarts it at the median of the three (4),
    # and the spread at their median deviation from it (1); then it moves by alpha towards each point
    # (10 is within DEV_LIMIT spreads).
    alpha = 2.0 / 11.0
    average = [2.0, 2.0, 2.0, 4.0, 4.0 + alpha * 6.0]
    np.testing.assert_allclose(out[:, 2], x - np.array(average), rtol=1e-6)


@pytest.mark.parametrize("absurd", [1e300, -1e300, 1e6])
@pytest.mark.parametrize("at", [0, 1, 2, 3, 10])
def test_one_absurd_young_value_does_not_own_the_average(absurd, at):
    """Issue 8: a unit error among a stream's first points (even its first) leaves the deviations ordinary."""
    rng = np.random.default_rng(3)
    x = 10.0 + rng.normal(0.0, 0.3, 60)
    clean = embed_series("diff+dev", x)
    x[at] = absurd
    with np.errstate(all="ignore"):
        out = embed_series("diff+dev", x)
    # The changes into and out of the absurd value are what they are, and the first three points are
    # measured from the first (the average holds it until the third restarts it at their median).
    later = slice(max(at + 2, 3), None)
    assert np.isfinite(out[later]).all()
    assert np.abs(out[later, 1]).max() < 3.0, f"deviation {np.abs(out[later, 1]).max():g} after {absurd:g} at {at}"
    np.testing.assert_allclose(out[30:, 1], clean[30:, 1], atol=0.3)


def test_a_stream_that_started_flat_learns_a_new_level():
    """A stream whose first points are equal has no spread yet: its average must still follow a new level."""
    out = embed_series("dev", [0.0] * 5 + [100.0] * 400)
    assert abs(out[-1, 0]) < 1.0, f"still {out[-1, 0]:g} from the average after 400 points at the new level"


def test_an_ordinary_high_first_value_is_learned():
    """The median start only outvotes a first value the next two points disagree with: a rising start is kept."""
    out = embed_series("dev", [1.0, 2.0, 3.0, 4.0])
    assert out[3, 0] == pytest.approx(2.0)  # the average restarted at 2, the median of 1, 2, 3


def test_features_use_the_present_and_past_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    y = x.copy()
    y[30:] = 99.0
    np.testing.assert_array_equal(embed_series("diff+dev", x)[:30], embed_series("diff+dev", y)[:30])


def test_absent_rows_do_not_move_the_state():
    x = np.array([1.0, 5.0, 3.0])
    gappy = np.array([1.0, np.nan, 5.0, np.nan, 3.0])
    present = ~np.isnan(gappy)
    np.testing.assert_array_equal(embed_series("diff+dev", gappy, present)[present], embed_series("diff+dev", x))


def test_fields_are_grouped_by_part():
    out = embed_series("value+diff", [[1.0, 10.0], [2.0, 30.0]])
    np.testing.assert_array_equal(out[1], [2.0, 30.0, 1.0, 20.0])


@pytest.mark.parametrize("embed", ["", "value+value", "value+speed", 3])
def test_bad_embeddings_are_value_errors(embed):
    with pytest.raises(ValueError):
        parse_embed(embed)


def test_schedule_bounds_the_refits_per_tick_and_keeps_the_period():
    schedule = RefitSchedule(first=5, every=10).reset(100)
    assert schedule.budget_ == 13  # ceil(1.25 * 100 / 10)
    present = np.ones(100, dtype=bool)
    refits = [schedule.advance(present) for _ in range(60)]
    assert max(r.size for r in refits) <= 13
    assert (schedule.fits_ >= 5).all()
    # Stream 0 is never queued behind others: it refits at its 5th point, then every 10.
    assert [t for t, r in enumerate(refits) if 0 in r] == [4, 14, 24, 34, 44, 54]


def test_schedule_counts_only_present_points():
    schedule = RefitSchedule(first=2, every=3).reset(2)
    present = np.array([True, False])
    assert [schedule.advance(present).tolist() for _ in range(5)] == [[], [0], [], [], [0]]
    assert schedule.fits_.tolist() == [2, 0]


def test_robust_scale_ignores_nan_and_falls_back_on_flat_features():
    points = np.array([[[1.0, 5.0, 0.0], [2.0, 5.0, 0.0], [3.0, 5.0, 0.0], [400.0, 5.0, 1.0], [np.nan] * 3]])
    center, scale = robust_center_scale(points)
    np.testing.assert_allclose(center[0], [2.5, 5.0, 0.0])
    # MAD for the first, MAD 0 and std 0 -> 1 for the second, MAD 0 -> std for the third.
    np.testing.assert_allclose(scale[0], [1.4826, 1.0, np.std([0, 0, 0, 1])], rtol=1e-5)
