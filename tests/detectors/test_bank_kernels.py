"""A bank's streaming step scores and learns the same with its compiled kernels as with the numpy code.

Every member of the default ensemble, and the ensemble itself, steps a bank
of streams (different levels and noise, NaN gaps, spikes, a flat stretch and
a level shift) tick by tick twice: once as it does by default, through the
kernels of :mod:`detectors.bank_kernels` and :mod:`detectors.kernels`, and
once inside :func:`detectors.streaming.numpy_steps`.  Scores, ``is_anomaly``,
``alert`` and expected ranges must agree on every tick, and every learned
array afterwards: exactly, but for the last bits of a sum over many fields
that a kernel adds in another order (``pattern``'s distance over 38 fields),
hence a relative tolerance of 1e-12 on floats.  The ticks are enough for the refitted members to refit
several times and the calibrators to refit many times.
"""
import numpy as np
import pytest

import detectors
from detectors.ensemble import DEFAULT_MEMBERS
from detectors.snapshot import flatten
from detectors.streaming import compiled_steps, numpy_steps

STREAMS, TICKS = 24, 700


def ticks(d: int, seed: int = 3) -> np.ndarray:
    """``(TICKS, STREAMS, d)``: waves with noise per stream, NaN gaps, spikes, a flat run and a level shift."""
    rng = np.random.default_rng(seed)
    t = np.arange(TICKS)[:, None, None]
    level = rng.normal(50, 10, (1, STREAMS, d))
    X = level + 5 * np.sin(2 * np.pi * t / 96 + rng.uniform(0, 6, (1, STREAMS, d))) \
        + rng.normal(0, 1, (TICKS, STREAMS, d)) * rng.uniform(0.1, 3, (1, STREAMS, 1))
    X[rng.random((TICKS, STREAMS)) < 0.05] = np.nan
    spikes = rng.random((TICKS, STREAMS, d)) < 0.004
    X[spikes] += rng.choice([-40.0, 40.0], spikes.sum())
    X[200:260, 3] = 7.0                 # a stuck stream: a flat window
    X[400:, 5] += 30.0                  # a level shift
    X[300, 6] = 1e12                    # an absurd value
    return X


def run(name: str, d: int, numpy: bool):
    det = detectors.make(name).reset(STREAMS, d)
    X = ticks(d)
    out = []
    for x in X:
        if numpy:
            with numpy_steps():
                assert not compiled_steps()
                expected = det.expected_range()
                scores = det.step(x)
        else:
            expected = det.expected_range()
            scores = det.step(x)
        out.append((scores, det.is_anomaly_.copy(), det.alert_.copy(), expected))
    return det, out


def assert_same_state(a, b):
    _, scalars_a, arrays_a = flatten(a)
    _, scalars_b, arrays_b = flatten(b)
    assert scalars_a == scalars_b
    assert arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        x, y = arrays_a[key], arrays_b[key]
        assert x.dtype == y.dtype and x.shape == y.shape, key
        close(x, y, key)


def close(got, want, what):
    if np.issubdtype(np.asarray(want).dtype, np.floating):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300, equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


@pytest.mark.parametrize("d", [1, 3, 38])
@pytest.mark.parametrize("name", list(DEFAULT_MEMBERS) + ["ensemble"])
def test_compiled_bank_steps_equal_the_numpy_steps(name, d):
    compiled_det, compiled_out = run(name, d, numpy=False)
    numpy_det, numpy_out = run(name, d, numpy=True)
    for t, (got, want) in enumerate(zip(compiled_out, numpy_out)):
        close(got[0], want[0], f"scores, tick {t}")
        np.testing.assert_array_equal(got[1], want[1], err_msg=f"is_anomaly, tick {t}")
        np.testing.assert_array_equal(got[2], want[2], err_msg=f"alert, tick {t}")
        if want[3] is not None:
            close(got[3][0], want[3][0], f"low, tick {t}")
            close(got[3][1], want[3][1], f"high, tick {t}")
    assert max(out[0].max() for out in numpy_out) > 0.5  # the bank did score
    assert_same_state(compiled_det, numpy_det)
