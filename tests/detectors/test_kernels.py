"""The compiled kernels of the fast path equal the numpy code they stand for, and numba loads only when used.

``test_fast_path.py`` compares whole detectors (a block against its steps);
these tests pin each kernel against the numpy method it mirrors on inputs
chosen to reach its corners: ties, constant scores, NaN gaps, an absurd
value, young streams, accepted floors.
"""
import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detectors.calibration import TailCalibrator
from detectors.mad import compiled_mad, sorted_mad
from detectors.novelty import EpisodeState, RecordTracker
from detectors.stats import chi2_logp
from detectors.robust_window import deviation_floor
from detectors.zscore import sliding_distances, squared_distance, window_moments
from detectors.window import (sorted_quantile, sorted_trailing, trailing, trailing_mean, trailing_order_stats,
                              window_mean)

ROOT = Path(__file__).resolve().parents[2]


def assert_same_arrays(a, b):
    """Every array attribute of ``a`` and ``b`` equal (floats to 1e-12, NaN equal to NaN)."""
    for name, value in vars(a).items():
        if isinstance(value, np.ndarray):
            other = getattr(b, name)
            assert value.dtype == other.dtype and value.shape == other.shape, name
            np.testing.assert_allclose(value, other, rtol=1e-12, atol=0, equal_nan=True, err_msg=name)


@pytest.mark.parametrize("step", [0.25, np.inf])
def test_record_kernel_equals_updates(step):
    rng = np.random.default_rng(3)
    T, S, C = 900, 3, 4
    U = np.cumsum(rng.normal(0, 1, (T, S, C)), axis=0)
    U[400, 1, 2] = 1e300                       # one absurd value (winsorised when step is finite)
    U[500:520, 0] = U[499, 0]                  # a flat stretch: spread unchanged, ties with the record
    U[[300, 420, 560, 700], 2, 1] += [40.0, 41.0, 39.0, 120.0]  # an excursion that recurs, then a larger one
    present = rng.random((T, S)) > 0.1
    U[~present] = np.nan
    stepped = present.any(axis=1) | (np.arange(T) % 7 == 0)
    # Records count from 250 learned points: the gate opens inside the compared ticks.
    reference = RecordTracker(window=64, scale=0.02, warmup=5, mature=50, n_blocks=8, step=step,
                              counts_after=250).reset(S, C)
    for t in range(200):
        reference.update(U[t], present[t])
    reference.accept(2, U[150:160, 2], margin=0.25, lifetime=300)  # floors in force for part of the run
    compiled = copy.deepcopy(reference)
    expected, spreads = np.zeros((T - 200, S, C)), np.zeros((T - 200, S, C))
    for k, t in enumerate(range(200, T)):
        if stepped[t]:
            spreads[k] = reference.high_ - reference.low_
            expected[k] = reference.update(U[t], present[t])
    logp, spread = compiled.update_ticks(U[200:], present[200:], stepped[200:], spread_channels=C)
    np.testing.assert_allclose(logp, expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(spread[stepped[200:]], spreads[stepped[200:]], rtol=1e-12, atol=0)
    assert (logp < 0).sum() > 20                # records happened
    assert_same_arrays(reference, compiled)


def test_record_kernel_judges_a_young_streams_extremes_as_updates():
    """From the first point: absurd first values are judged once a stream has learned STEP_AFTER points."""
    rng = np.random.default_rng(4)
    T, S, C = 160, 4, 2
    U = rng.normal(10, 1, (T, S, C))
    U[0, 0, 0] = 1e300                         # absurd first value: cut at the end of youth
    U[3, 1, 1] = -1e6                          # absurd low on the other channel of another stream
    U[2, 2, 0] = 12.0                          # an ordinary high: kept
    U[:, 3, 1] = 5.0                           # a flat channel: nothing to judge against
    present = rng.random((T, S)) > 0.1
    present[:5] = True
    U[~present] = np.nan
    stepped = np.ones(T, dtype=bool)
    reference = RecordTracker(window=64, scale=0.02, warmup=2, mature=10, n_blocks=8, step=0.25).reset(S, C)
    compiled = copy.deepcopy(reference)
    expected = np.zeros((T, S, C))
    for t in range(T):
        expected[t] = reference.update(U[t], present[t])
    logp, _ = compiled.update_ticks(U, present, stepped)
    np.testing.assert_allclose(logp, expected, rtol=1e-12, atol=0)
    assert_same_arrays(reference, compiled)
    assert reference.high_[0, 0] < 100 and reference.low_[1, 1] > -100 and reference.high_[2, 0] >= 12.0


# Fits merging the scores since the last fit (16 of 128), merging after every score, and sorting
# afresh because more scores than half the memory came between two fits (20 of 32).
@pytest.mark.parametrize("memory, every", [(128, 16), (64, 1), (32, 20)])
def test_calibration_kernel_equals_transform_then_update(memory, every):
    rng = np.random.default_rng(5)
    raw = np.concatenate([rng.exponential(1.0, 300), np.full(80, 0.5), [np.nan, 1e60, -3.0],
                          rng.exponential(2.0, 200), np.round(rng.normal(0, 1, 100)) * 0.0])  # -0.0 and 0.0
    reference = TailCalibrator(memory=memory, every=every).reset(2)
    reference.push(np.array([1]), rng.exponential(1.0, 40)[None, :])
    reference.fit(np.array([1]))
    compiled = copy.deepcopy(reference)
    row = np.array([1])
    expected = np.zeros(len(raw))
    for k, r in enumerate(raw):
        expected[k] = reference.transform(row, np.array([r]))[0]
        reference.update(row, np.array([r]))
    got = compiled.update_points(1, raw)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15, equal_nan=True)
    assert got.max() > 0.5
    assert_same_arrays(reference, compiled)
    # A refit between blocks (fit_compiled), away from a multiple of ``every``.
    reference.update(row, np.array([9.0]))
    compiled.update_points(1, np.array([9.0]))
    reference.fit(row)
    compiled.fit_compiled(row)
    assert_same_arrays(reference, compiled)


def test_sorted_slides_equal_sorted_windows():
    rng = np.random.default_rng(8)
    history = np.array([[1.0, 2.0], [np.inf, 2.0], [0.0, -0.5]])
    points = np.round(rng.normal(0, 1, (60, 2)), 1)   # rounded: many ties
    points[10, 0] = np.inf
    for size in (2, 5, 16):
        rows, counts = sorted_trailing(history, points, size)
        windows, expected_counts = trailing(history, points, size)
        expected = np.sort(np.where(np.isnan(windows), np.inf, windows).transpose(0, 2, 1).reshape(-1, size), axis=1)
        np.testing.assert_array_equal(rows, expected)
        np.testing.assert_array_equal(counts, expected_counts)


@pytest.mark.parametrize("size", [2, 5, 16, 100])
@pytest.mark.parametrize("history_length", [0, 3, 100])
def test_order_stats_equal_the_sorted_rows(size, history_length):
    """The kernel's quantiles, MAD and mean deviation equal what the numpy steps read from the sorted rows."""
    rng = np.random.default_rng(size + history_length)
    history = rng.normal(5, 2, (history_length, 3))
    points = np.round(rng.normal(5, 2, (250, 3)), 1)   # rounded: many ties
    points[100:220, 1] = 4.0                            # a flat stretch: MAD 0
    levels = (0.25, 0.5, 0.75)
    quantiles, deviation, mean_deviation, counts = trailing_order_stats(history, points, size, levels, 1, True)
    rows, expected_counts = sorted_trailing(history, points, size)
    np.testing.assert_array_equal(counts, expected_counts)
    per_row = np.repeat(counts, 3)
    for k, q in enumerate(levels):
        np.testing.assert_array_equal(quantiles[:, k], sorted_quantile(rows, per_row, q))
    median = quantiles[:, 1]
    full = per_row == size
    np.testing.assert_array_equal(deviation[full], compiled_mad(rows[full], median[full]))
    dev = np.sort(np.abs(rows[~full] - median[~full, None]), axis=1)
    lower_median = np.take_along_axis(dev, (np.maximum(per_row[~full] - 1, 0) // 2)[:, None], 1)[:, 0]
    np.testing.assert_array_equal(deviation[~full], lower_median)
    floor = np.concatenate([deviation_floor(rows[full], median[full]), deviation_floor(rows[~full], median[~full])])
    mine = np.concatenate([mean_deviation[full], mean_deviation[~full]]) * 0.5 / 0.7978845608028654
    np.testing.assert_allclose(mine, floor, rtol=1e-12, atol=1e-15)
    assert (deviation[full] == 0).any() and (deviation[full] > 0).any()


@pytest.mark.parametrize("size", [7, 64, 100])
def test_order_stats_follow_jumps_of_the_deviations_split(size):
    """The MAD's search starts from each field's last split: level shifts, a lone spike and heavy tails move
    that split far between windows, and the kernel still reads the lower median of the sorted rows' deviations."""
    rng = np.random.default_rng(size)
    n = 600
    points = np.empty((n, 4))
    points[:, 0] = np.where(np.arange(n) % 150 < 75, 0.0, 100.0) + rng.normal(0, 1, n)  # level shifts up and down
    points[:, 1] = np.round(rng.standard_cauchy(n), 1)                               # heavy tails, ties
    points[:, 2] = rng.integers(0, 3, n)                                               # three values only
    points[:, 3] = rng.normal(0, 1, n)
    points[300, 3] = 1e9                                                               # one spike in and out
    history = rng.normal(0, 1, (size // 2, 4))
    quantiles, deviation, _, counts = trailing_order_stats(history, points, size, (0.25, 0.5, 0.75), 1, True)
    rows, _ = sorted_trailing(history, points, size)
    per_row = np.repeat(counts, 4)
    median = quantiles[:, 1]
    dev = np.sort(np.abs(rows - median[:, None]), axis=1)
    lower_median = np.take_along_axis(dev, (np.maximum(per_row - 1, 0) // 2)[:, None], 1)[:, 0]
    np.testing.assert_array_equal(deviation, lower_median)


def test_sliding_distances_batch_fewer_points_when_fields_are_many():
    """The batched factorisation holds 16 covariances at 38 fields, fewer (at least one) when they would pass
    8 MB: its memory stays bounded by one covariance or 8 MB, whichever is larger."""
    from detectors import kernels

    assert kernels._solve_lanes(38) == kernels.SOLVE_LANES == 16
    for d in (300, 1000, 5000):
        lanes = kernels._solve_lanes(d)
        assert 1 <= lanes < 16 and lanes * d * d <= max(kernels.SOLVE_NUMBERS, d * d)


def test_quartile_spreads_equal_iqr_stats_bit_for_bit():
    """iqr's block statistics from the kernel equal its numpy ones: skewed, flat (empty halves), huge values."""
    import detectors

    rng = np.random.default_rng(4)
    d = 5
    history = np.round(rng.lognormal(1, 1, (100, d)), 1)
    points = np.round(rng.lognormal(1, 1, (400, d)), 1)
    points[50:250, 1] = 3.0                             # most of the window equal: a half or both empty
    points[:, 2] *= 1e12                                # the relative floor scales with the centre
    points[:, 3] = np.where(rng.random(400) < 0.8, 0.0, 1.0)
    det = detectors.make("iqr").reset(1, d)
    quantiles, _, mean_deviation, _ = trailing_order_stats(history, points, det.window, det.LEVELS, det.CENTRE, False)
    floor = 0.5 * mean_deviation / 0.7978845608028654
    got = det._block_stats_from(list(quantiles.T), None, floor)
    want = det._stats_from(list(quantiles.T), None, floor)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    q1, median, q3 = (quantiles[:, k].reshape(-1, d) for k in range(3))
    assert (median[:, 1] == q1[:, 1]).any() and (q3[:, 3] == q1[:, 3]).any()  # the borrowing branches are reached


@pytest.mark.parametrize("d", [2, 8, 38])
def test_sliding_distances_equal_the_numpy_moments(d):
    """Long enough to drift, with a spike entering and leaving, a flat field and two equal fields."""
    rng = np.random.default_rng(d)
    size, n = 100, 1500
    history = rng.normal(50, 5, (size, d))
    points = 50 + 5 * np.sin(np.arange(n) / 40)[:, None] + rng.normal(0, 1, (n, d))
    points[300, 0] += 1e9                       # far out: its leaving forces an exact recomputation
    points[:, 1] = 7.0                          # flat: the floored variance decides
    if d > 2:
        points[:, 2] = points[:, 3]             # perfectly correlated: only the ridge keeps it invertible
    d2, mean, var = sliding_distances(history, points, size)
    windows, counts = trailing(history, points, size)
    expected_mean, cov = window_moments(windows, counts, True)
    expected = squared_distance(points, expected_mean, cov)
    np.testing.assert_allclose(d2, expected, rtol=1e-9)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
    diagonal = np.diagonal(cov, axis1=1, axis2=2)
    np.testing.assert_allclose(var, np.maximum(diagonal, 1e-9 * (np.abs(expected_mean) + 1)), rtol=1e-9)


@pytest.mark.parametrize("power", [1, 2])
@pytest.mark.parametrize("history_length", [0, 2, 100])
@pytest.mark.parametrize("fields", [2, 9])  # a field at a time, and all fields at once
def test_trailing_means_equal_the_window_means(power, history_length, fields):
    rng = np.random.default_rng(history_length + power)
    history = rng.normal(3, 1, (history_length, fields))
    history[history_length // 2:, 1] = np.nan          # residuals a stream never had: skipped slots
    points = rng.normal(3, 1, (300, fields))
    for size in (1, 5, 100):
        means, counts = trailing_mean(history, points, size, power)
        windows, expected_counts = trailing(history, points, size)
        with np.errstate(all="ignore"):
            expected = window_mean(windows, bool((expected_counts == size).all()), power)
        np.testing.assert_array_equal(counts, expected_counts)
        np.testing.assert_allclose(means, expected, rtol=1e-13, equal_nan=True)


@pytest.mark.parametrize("width", [2, 9, 10, 100])
def test_compiled_mad_equals_the_binary_search(width):
    rng = np.random.default_rng(width)
    values = np.sort(np.concatenate([rng.normal(0, 1, (300, width)),
                                     np.round(rng.normal(0, 1, (300, width))),      # many ties
                                     np.zeros((5, width))]), axis=1)                 # all equal
    median = np.quantile(values, 0.5, axis=1)
    np.testing.assert_array_equal(compiled_mad(values, median), sorted_mad(values, median))


@pytest.mark.parametrize("d", [1, 2, 8, 38])
def test_leave_limit_is_where_the_frozen_range_is_left(d):
    """The episode kernel's squared-distance limit is the point where chi2_logp crosses log(release)."""
    state = EpisodeState(release=1e-2)
    limit = state.leave_limit(d)
    below, above = chi2_logp(np.array([limit * (1 - 1e-9), limit * (1 + 1e-9)]), d)
    assert below >= np.log(state.release) > above


def test_numba_is_not_imported_until_a_kernel_runs():
    """The server and the detectors start without numba; a block loads it."""
    code = ("import sys, numpy as np, server, detectors; before = 'numba' in sys.modules; "
            "detectors.make('ensemble').score_series(np.arange(50.0)); print(before, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


@pytest.mark.parametrize("n_valid", [[256, 40, 3], [64, 64, 64]])
def test_compiled_forests_equal_the_level_by_level_numpy(n_valid):
    from detectors.isolation_forest import build_forests, fit_keys

    rng = np.random.default_rng(len(n_valid))
    points = rng.integers(-300, 300, (3, 256, 4)).astype(np.int16)
    points[1, :, 2] = 7                       # a constant feature: nodes retry the next one
    points[2] = np.round(points[2] / 200)     # few distinct values: duplicated points, ended nodes
    keys = fit_keys(5, np.array([1, 2, 3]))
    expected = build_forests(points, np.array(n_valid), keys, n_trees=16, sample_size=64)
    got = build_forests(points, np.array(n_valid), keys, n_trees=16, sample_size=64, compiled=True)
    for e, g in zip(expected, got):
        assert e.dtype == g.dtype
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("width", [64, 63])
def test_lof_reference_equals_the_numpy_standardisation(width):
    """The block refit's reference set: robust_center_scale, the float32 standardisation and the clip, bit for bit;
    a flat feature or a value that is not finite is left to numpy (False, nothing written)."""
    from detectors.features import robust_center_scale
    from detectors.kernels import lof_reference

    rng = np.random.default_rng(width)
    window = rng.normal(3.0, 2.0, (width, 5)).astype(np.float32)
    window[7, 1] = 4e7  # clipped at 1e6 once standardised
    window[:, 2] = np.round(window[:, 2])  # ties at the median
    center, scale = robust_center_scale(window[None])
    expected = np.clip((window[None] - center[:, None, :]) / scale[:, None, :], -1e6, 1e6)[0]
    got = [np.empty(5, np.float32), np.empty(5, np.float32), np.empty((width, 5), np.float32),
           np.empty((5, width), np.float32)]
    assert lof_reference(window, 1e6, *got)
    for value, want in zip(got, (center[0], scale[0], expected, expected.T)):
        assert value.dtype == want.dtype
        np.testing.assert_array_equal(value, want)
    for broken in ("flat", "inf"):
        bad = window.copy()
        if broken == "flat":
            bad[:, 3] = 1.5
        else:
            bad[0, 0] = np.inf
        untouched = [np.full_like(a, 7) for a in got]
        assert not lof_reference(bad, 1e6, *untouched)
        assert all((a == 7).all() for a in untouched)
