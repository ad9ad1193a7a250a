"""Compiled kernels of the streaming step: one tick of a bank's ``S`` streams, a loop over the rows.

Each kernel does, row after row, what a member's numpy step does to the
whole bank in several array passes (see :mod:`detectors.streaming` for when
they run), with the same comparisons and the same arithmetic in the same
order, so the state and scores are the numpy code's;
``tests/detectors/test_bank_kernels.py`` holds them equal.  Compiled by
:func:`detectors.kernels.compiled` (numba on first call, ``nogil``,
cached), and by :func:`detectors.kernels.warm_up` at install.
"""
from __future__ import annotations

import math

import numpy as np

from .kernels import _calibration_fit, compiled

__all__ = ["sorted_pushes", "calibrated_rows", "window_pushes", "window_means", "full_mean_deviations",
           "sorted_quantiles", "median_deviations"]

#: Plain functions a kernel calls, by kernel name (compiled with it).
_HELPERS = {"window_means": ("_term",), "calibrated_rows": ("_sorted_scores", "_calibration_fit"),
            "full_mean_deviations": ("_pairwise_sum",)}


@compiled
def sorted_pushes(values, count, new, leaving, present):
    """:meth:`detectors.window.SortedWindow.push`: insert ``new[r]`` and drop ``leaving[r]`` in every present row.

    ``values`` ``(R, W)`` sorted rows (+inf in unused slots) and ``count``
    ``(R,)`` are updated in place; ``leaving`` is NaN where nothing leaves.
    The slots are found by the same counts as the numpy code's, and the
    values between them move one place towards the gap.
    """
    R, W = values.shape
    for r in range(R):
        if not present[r]:
            continue
        old = leaving[r]
        if old != old:
            old = np.inf
        x = new[r]
        remove_at, below = 0, 0
        for j in range(W):
            v = values[r, j]
            if v < old:
                remove_at += 1
            if v < x:
                below += 1
        insert_at = below - (1 if old < x else 0)
        if insert_at < remove_at:
            for j in range(min(remove_at, W - 1), max(insert_at, 0), -1):
                values[r, j] = values[r, j - 1]
        elif remove_at < insert_at:
            for j in range(remove_at, min(insert_at, W - 1)):
                values[r, j] = values[r, j + 1]
        if 0 <= insert_at < W:
            values[r, insert_at] = x
        count[r] = min(count[r] + 1, W)


@compiled
def calibrated_rows(rows, raw, history, count, knots, beta, fitted, levels, tail, min_scores, every, out_logp):
    """``TailCalibrator.log_tail_probability`` then ``update`` of one raw score per row (a tick of a bank).

    ``out_logp[i]`` gets ``log p`` of ``raw[i]`` under row ``rows[i]``'s state
    before it; the score is then remembered (NaN skipped, an absurd one as the
    largest float32) and a row whose count reaches a multiple of ``every``
    refits its knots and tail from its remembered scores, sorted.  The
    arithmetic and casts are :func:`detectors.kernels.calibrated_points`'s
    (float32 memory and knots, read in float64), one point per row.
    """
    memory = history.shape[1]
    K = knots.shape[1]
    big = np.float64(np.finfo(np.float32).max)
    log_tail = math.log(tail)
    log2 = math.log(2.0)
    ordered = np.empty(memory, dtype=np.float32)
    keys, spare = np.empty(memory, dtype=np.uint32), np.empty(memory, dtype=np.uint32)
    counts = np.empty((4, 256), dtype=np.int64)
    for i in range(rows.shape[0]):
        s = rows[i]
        r = raw[i]
        if fitted[s]:
            u = np.float64(knots[s, K - 1])
            j = 0
            for k in range(K):
                if r >= np.float64(knots[s, k]):
                    j += 1
            if j >= K:
                out_logp[i] = log_tail - np.maximum(r - u, 0.0) / np.float64(beta[s])
            else:
                body = 0.0
                if j > 0:
                    inner = min(max(j, 1), K - 1)
                    low, high = np.float64(knots[s, inner - 1]), np.float64(knots[s, inner])
                    fraction = np.minimum(np.maximum((r - low) / (high - low), 0.0), 1.0)
                    body = levels[inner - 1] + fraction * (levels[inner] - levels[inner - 1])
                out_logp[i] = math.log1p(-np.minimum(body, 1.0 - tail)) if body == body else np.nan
        else:
            out_logp[i] = 0.0
        if r == r:
            history[s, count[s] % memory] = np.float32(np.minimum(np.maximum(r, -big), big))
            count[s] += 1
        if count[s] % every != 0:
            continue
        n = min(count[s], memory)
        if n < min_scores:
            continue
        _sorted_scores(history[s], ordered, keys, spare, counts)
        beta[s] = _calibration_fit(ordered, n, levels, memory, big, log2, knots[s])
        fitted[s] = True


def _sorted_scores(scores, ordered, keys, spare, counts):
    """Sort the non-NaN float32 ``scores`` into ``ordered[:m]``; returns ``m``.

    The values ``np.sort`` gives (NaN dropped first), by a radix sort: a
    calibrator's 256 scores sort about five times faster than by numba's
    quicksort, and with no data-dependent branches, so a tick on which
    thousands of calibrators refit together stays short.  Each float32's
    bits map to a uint32 key whose unsigned order is the floats' order (the
    sign bit flipped for positives, every bit for negatives), sorted a byte
    at a time from the lowest (a stable counting sort per byte; a byte equal
    in every key is skipped).  Floats equal as numbers sort alike too, but
    for ``-0.0`` before ``0.0``, which no raw score is (an isolation score is
    positive, a log-LOF ``log(x)`` is never ``-0.0``).
    """
    m = 0
    for k in range(scores.shape[0]):
        if scores[k] == scores[k]:
            ordered[m] = scores[k]
            m += 1
    if m == 0:
        return 0
    bits = ordered.view(np.uint32)
    counts[:] = 0
    for k in range(m):
        b = bits[k]
        key = ~b if b >> 31 else b | np.uint32(0x80000000)
        keys[k] = key
        for byte in range(4):
            counts[byte, (key >> np.uint32(8 * byte)) & np.uint32(0xFF)] += 1
    source, target = keys, spare
    for byte in range(4):
        shift = np.uint32(8 * byte)
        if counts[byte, (source[0] >> shift) & np.uint32(0xFF)] == m:  # one value of this byte: order unchanged
            continue
        start = 0
        for value in range(256):  # each byte value's first place in the target
            n = counts[byte, value]
            counts[byte, value] = start
            start += n
        for k in range(m):
            key = source[k]
            digit = (key >> shift) & np.uint32(0xFF)
            target[counts[byte, digit]] = key
            counts[byte, digit] += 1
        source, target = target, source
    for k in range(m):
        key = source[k]
        bits[k] = key & np.uint32(0x7FFFFFFF) if key >> 31 else ~key
    return m


@compiled
def window_pushes(buffer, count, next_slot, X, present, evicted):
    """:meth:`detectors.window.RollingWindow.push`: append ``X[s]`` to every present row's ring, in place.

    ``evicted`` ``(S, d)`` gets the point each present row's slot held before
    (NaN for the others), as the numpy push returns it.
    """
    S, W, d = buffer.shape
    for s in range(S):
        if not present[s]:
            for f in range(d):
                evicted[s, f] = np.nan
            continue
        slot = next_slot[s]
        for f in range(d):
            evicted[s, f] = buffer[s, slot, f]
            buffer[s, slot, f] = X[s, f]
        next_slot[s] = (slot + 1) % W
        count[s] = min(count[s] + 1, W)


#: Most slots :func:`window_means` sums: numpy adds up to 128 in one pass of eight lanes, more in
#: halves (a recursion, which numba's cache does not load safely); longer windows keep numpy.
PAIRWISE_BLOCK = 128


@compiled
def window_means(buffer, power, out):
    """:func:`detectors.window.window_mean` of a ring buffer ``(S, W, d)``: each row's mean of its filled slots.

    The sums are numpy's for that array: over the ``W`` slots of one field
    (``d == 1``, a contiguous reduction) numpy adds pairwise (eight lanes,
    combined pairwise, the rest after; ``W`` at most :data:`PAIRWISE_BLOCK`),
    over one of several fields it adds slot after slot; both are mirrored
    here, so the means are the same bits.  NaN slots (a filling window) add 0
    and do not count.
    """
    S, W, d = buffer.shape
    for s in range(S):
        for f in range(d):
            filled = 0
            for w in range(W):
                if buffer[s, w, f] == buffer[s, w, f]:
                    filled += 1
            if d == 1 and W >= 8:
                r0, r1 = _term(buffer[s, 0, f], power), _term(buffer[s, 1, f], power)
                r2, r3 = _term(buffer[s, 2, f], power), _term(buffer[s, 3, f], power)
                r4, r5 = _term(buffer[s, 4, f], power), _term(buffer[s, 5, f], power)
                r6, r7 = _term(buffer[s, 6, f], power), _term(buffer[s, 7, f], power)
                w = 8
                while w < W - W % 8:
                    r0 += _term(buffer[s, w, f], power)
                    r1 += _term(buffer[s, w + 1, f], power)
                    r2 += _term(buffer[s, w + 2, f], power)
                    r3 += _term(buffer[s, w + 3, f], power)
                    r4 += _term(buffer[s, w + 4, f], power)
                    r5 += _term(buffer[s, w + 5, f], power)
                    r6 += _term(buffer[s, w + 6, f], power)
                    r7 += _term(buffer[s, w + 7, f], power)
                    w += 8
                total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
                while w < W:
                    total += _term(buffer[s, w, f], power)
                    w += 1
            else:
                total = 0.0
                for w in range(W):
                    total += _term(buffer[s, w, f], power)
            out[s, f] = total / filled if filled > 0 else np.nan


def _term(value, power):
    """One slot's summand: its value raised to ``power`` (1 or 2), 0 for a NaN slot."""
    v = np.float64(value)
    if power == 2:
        v = v * v
    return v if v == v else 0.0


@compiled
def full_mean_deviations(values, centre, out):
    """:func:`detectors.robust_window.deviation_floor`'s mean absolute deviation of full sorted rows, in place.

    ``values`` ``(R, W)`` sorted rows, every slot filled, ``centre`` ``(R,)``
    their medians: ``out[r]`` is the upper half's sum minus the lower half's
    minus the centre times the odd middle slot, over ``W``, each half summed
    as numpy sums a row (pairwise; at most :data:`PAIRWISE_BLOCK` slots a
    half), so the same bits as the numpy code's.
    """
    R, W = values.shape
    half = W // 2
    for r in range(R):
        upper = 0.0 + _pairwise_sum(values[r, half:])
        lower = 0.0 + _pairwise_sum(values[r, :half])
        out[r] = (upper - lower - centre[r] * (W - 2 * half)) / W


def _pairwise_sum(row):
    """numpy's sum of a contiguous run of at most :data:`PAIRWISE_BLOCK` float64s: one by one below eight,
    else eight lanes combined pairwise, then the rest."""
    n = row.shape[0]
    if n < 8:
        total = 0.0
        for w in range(n):
            total += row[w]
        return total
    r0, r1, r2, r3 = row[0], row[1], row[2], row[3]
    r4, r5, r6, r7 = row[4], row[5], row[6], row[7]
    w = 8
    while w < n - n % 8:
        r0 += row[w]
        r1 += row[w + 1]
        r2 += row[w + 2]
        r3 += row[w + 3]
        r4 += row[w + 4]
        r5 += row[w + 5]
        r6 += row[w + 6]
        r7 += row[w + 7]
        w += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while w < n:
        total += row[w]
        w += 1
    return total


@compiled
def sorted_quantiles(values, count, q, out):
    """:func:`detectors.window.sorted_quantile` in one pass: the ``q``-quantile of each sorted row, in place.

    ``values`` ``(R, W)`` sorted rows holding ``count`` ``(R,)`` values each
    (the rest +inf); linear interpolation between the two order statistics
    around ``q * (count - 1)``, a gap that is not finite counting as 0, NaN
    for an empty row: the numpy code's operations, in its order.
    """
    for r in range(values.shape[0]):
        n = count[r]
        if n <= 0:
            out[r] = np.nan
            continue
        last = n - 1
        pos = q * last
        lo = np.int64(math.floor(pos))
        hi = min(lo + 1, last)
        a, b = values[r, lo], values[r, hi]
        gap = b - a
        if not math.isfinite(gap):
            gap = 0.0
        out[r] = a + (pos - lo) * gap


@compiled
def median_deviations(values, median, out):
    """The lower median of ``|values - median|`` per full sorted row, by bisection: what
    :func:`detectors.kernels.lower_median_deviation`'s merge gives, bit for bit.

    The deviations left of the middle, ``A[t] = median - values[half - 1 - t]``,
    and right of it, ``B[u] = values[half + u] - median``, are two rising
    runs; the merge takes the left head while it is no larger than the right
    one, and its ``k``-th pick (``k = (W - 1) // 2 + 1``) is the answer.  So
    the merge takes ``t`` from the left, the first ``t`` at which the left's
    next is larger than the right's last taken (``A[t] > B[k - t - 1]``),
    found here by bisection, about ``log2 W`` steps against the merge's ``k``
    branches taken at random; and its last pick is ``B[k - t - 1]`` unless
    ``A[t - 1]`` is larger.  Ties, signed zeros among them, go as in the
    merge; the deviations are computed as there.
    """
    rows, width = values.shape
    half = width // 2
    k = (width - 1) // 2 + 1
    for r in range(rows):
        m = median[r]
        lo, hi = max(0, k - (width - half)), min(k, half)
        while lo < hi:
            t = (lo + hi) // 2
            if m - values[r, half - 1 - t] <= values[r, half + k - t - 1] - m:
                lo = t + 1
            else:
                hi = t
        if lo == 0:
            out[r] = values[r, half + k - 1] - m
        elif lo == k:
            out[r] = m - values[r, half - k]
        else:
            left, right = m - values[r, half - lo], values[r, half + k - lo - 1] - m
            out[r] = right if left <= right else left
