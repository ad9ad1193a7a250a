"""Order statistics of sorted windows on a bank's step: their compiled kernels give numpy's bits.

:func:`detectors.robust_window.deviation_floor` sums each half of a full
sorted row in :func:`detectors.bank_kernels.full_mean_deviations` on a
bank's step, mirroring numpy's pairwise summation; the bank tests
(``test_bank_kernels.py``) cover the default window of 100, this one every
length up to and past the kernel's limit, at several magnitudes, with
infinities and signed zeros in the rows.  :func:`detectors.window.sorted_quantile`
reads its quantiles in :func:`detectors.bank_kernels.sorted_quantiles`:
every fill of a window, empty to full.  MAD's lower median deviation of full
rows is bisected (:func:`detectors.bank_kernels.median_deviations`): the
merge's pick, signed zeros of tied rows included.
"""
import numpy as np
import pytest

from detectors.bank_kernels import PAIRWISE_BLOCK, median_deviations
from detectors.robust_window import deviation_floor
from detectors.streaming import numpy_steps
from detectors.window import sorted_quantile

WIDTHS = list(range(2, 40)) + [63, 64, 65, 99, 100, 101, 2 * PAIRWISE_BLOCK - 1, 2 * PAIRWISE_BLOCK,
                               2 * PAIRWISE_BLOCK + 1, 2 * PAIRWISE_BLOCK + 2, 300]


@pytest.mark.parametrize("width", WIDTHS)
def test_full_rows_floor_is_numpys(width):
    rng = np.random.default_rng(width)
    rows = []
    for scale in (1e-3, 1.0, 1e6, 1e15):
        block = rng.normal(5, 1, (60, width)) * scale + rng.normal(0, 1, (60, 1)) * scale * 10
        rows.append(block)
    values = np.sort(np.concatenate(rows), axis=1)
    values[3, 0] = -np.inf
    values[4, :2] = -np.inf
    values[5] = 0.0
    values[6, : width // 2] = -0.0
    centre = np.median(values, axis=1)
    with np.errstate(invalid="ignore"):
        compiled = deviation_floor(values, centre)
        with numpy_steps():
            reference = deviation_floor(values, centre)
    nan = np.isnan(reference)
    assert np.isnan(compiled[nan]).all()
    # The same bits (signed zeros included) wherever numpy's is a number.
    assert compiled[~nan].view(np.int64).tolist() == reference[~nan].view(np.int64).tolist()


@pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 0.75, 0.9, 1.0])
def test_sorted_quantile_is_numpys(q):
    # Rows of every fill from empty to full, some holding infinities, at several magnitudes.
    rng = np.random.default_rng(int(q * 100))
    width = 100
    count = np.concatenate([np.arange(width + 1), rng.integers(0, width + 1, 400)]).astype(np.int64)
    values = rng.normal(0, 1, (len(count), width)) * 10.0 ** rng.integers(-6, 15, (len(count), 1))
    values[7, 0] = -np.inf
    values[8, :] = np.inf
    values[9, 3] = 0.0
    values[np.arange(width)[None, :] >= count[:, None]] = np.inf
    values.sort(axis=1)
    compiled = sorted_quantile(values, count, q)
    with numpy_steps():
        reference = sorted_quantile(values, count, q)
    nan = np.isnan(reference)
    assert nan[0] and np.isnan(compiled[nan]).all()
    assert compiled[~nan].view(np.int64).tolist() == reference[~nan].view(np.int64).tolist()


@pytest.mark.parametrize("width", list(range(2, 40)) + [99, 100, 101, 256, 300])
def test_median_deviations_are_the_merges(width):
    # MAD's bisection picks what the merge of the two runs picks: ties and signed zeros included.
    from detectors.kernels import lower_median_deviation

    rng = np.random.default_rng(width)
    values = rng.normal(0, 1, (600, width)) * 10.0 ** rng.integers(-3, 8, (600, 1))
    values[200:400] = np.round(values[200:400] / values[200:400].std(axis=1, keepdims=True))  # many ties, -0.0
    values[400:] = np.round(4 * values[400:] / values[400:].std(axis=1, keepdims=True))
    values[5] = 3.0
    values.sort(axis=1)
    half = width // 2
    median = values[:, half] if width % 2 else 0.5 * (values[:, half - 1] + values[:, half])
    bisected, merged = np.empty(len(values)), np.empty(len(values))
    median_deviations(values, median, bisected)
    lower_median_deviation(values, median, merged)
    assert bisected.view(np.int64).tolist() == merged.view(np.int64).tolist()
