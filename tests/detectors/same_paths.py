"""What the fast-path tests share: one stream of a bank stepped point by point, and learned states compared."""
from __future__ import annotations

import copy

import numpy as np

from detectors.snapshot import flatten


def streamed(det, X, row, times=None):
    """The reference: one ``step`` per point of ``X`` with only stream ``row`` present (``times``: its timestamps,
    else none); returns its scores, ``is_anomaly`` and ``alert``."""
    T, streams = len(X), det.n_streams_
    scores, anomalous, alerts = np.zeros(T), np.zeros(T, dtype=bool), np.zeros(T, dtype=bool)
    for t in range(T):
        tick = np.full((streams, X.shape[1]), np.nan)
        tick[row] = X[t]
        if times is None:
            scores[t] = det.step(tick)[row]
        else:
            when = np.full(streams, np.nan)
            when[row] = times[t]
            scores[t] = det.step(tick, when)[row]
        anomalous[t], alerts[t] = det.is_anomaly_[row], det.alert_[row]
    return scores, anomalous, alerts


def assert_same_state(a, b):
    """Equal learned state: the same structure and scalars, integer arrays exactly, floats to 1e-9 (NaN equals NaN)."""
    structure_a, scalars_a, arrays_a = flatten(a)
    structure_b, scalars_b, arrays_b = flatten(b)
    assert structure_a == structure_b
    assert scalars_a == scalars_b
    assert arrays_a.keys() == arrays_b.keys()
    for path in arrays_a:
        x, y = arrays_a[path], arrays_b[path]
        assert x.dtype == y.dtype and x.shape == y.shape, path
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=path)
        else:
            np.testing.assert_array_equal(x, y, err_msg=path)


def assert_block_equals_steps(base, X, row, times=None):
    """``step_block`` on a copy of ``base`` scores, flags and learns as :func:`streamed` on ``base`` itself (scores
    to 1e-9); returns the alerts, and the two detectors (stepped, blocked) for further checks."""
    stepped, blocked = base, copy.deepcopy(base)
    scores, anomalous, alerts = streamed(stepped, X, row, times)
    block = blocked.step_block(X, row=row) if times is None else blocked.step_block(X, times, row=row)
    np.testing.assert_allclose(block.scores, scores, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(block.is_anomaly, anomalous)
    np.testing.assert_array_equal(block.alert, alerts)
    assert_same_state(stepped, blocked)
    return alerts, stepped, blocked


def assert_bank_equals_steps(make, series, times=None):
    """A bank of ``series`` (each ``(T_i, d)``) through a fresh ``make()`` detector's own ``_run_ticks`` (its fast
    path) scores, flags and learns as through plain steps (:meth:`Detector._run_ticks`) on another; returns the
    fast path's alerts per series."""
    from detectors.base import Detector

    ahead, stepped = make(), make()
    ahead.reset(len(series), series[0].shape[1])
    stepped.reset(len(series), series[0].shape[1])
    got = ahead._run_ticks(series, times, True)
    expected = Detector._run_ticks(stepped, series, times, True)
    for g, e in zip(got[0], expected[0]):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-9)
    for part in (1, 2):
        for g, e in zip(got[part], expected[part]):
            np.testing.assert_array_equal(g, e)
    assert_same_state(stepped, ahead)
    return got[2]
