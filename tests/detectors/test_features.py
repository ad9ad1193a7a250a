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
    x = np.array([2.0, 4.0, 4.0, 10.0])
    out = embed_series("value+diff+dev", x)
    np.testing.assert_array_equal(out[:, 0], x)
    np.testing.assert_array_equal(out[:, 1], [0.0, 2.0, 0.0, 6.0])
    alpha = 2.0 / 11.0
    average = [2.0, 2.0, 2.0 + alpha * 2.0]
    average.append(average[2] + alpha * (4.0 - average[2]))
    np.testing.assert_allclose(out[:, 2], x - np.array(average), rtol=1e-6)


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
