"""Compiled kernels for the recurrences of the fast path that cannot be vectorised over time.

A record (the highest value of the last ``window`` points) or an anomalous
episode (open until a run of normal points) depends on every earlier point of
its stream, so a block of ``T`` points cannot be scored in a few array
operations the way a rolling mean can.  Written as numpy over time they would
be one Python-level step per point (tens of numpy calls each); compiled with
numba they are one call for the whole block, about a hundred times faster,
with the same arithmetic in the same order.

The same holds for the members' own recursions: the pattern search, the
refitted members' running embedding and calibration, and for the work a
block does many times over that numpy can only do with a Python-level call
each (sliding a sorted window, a MAD per window, growing one stream's trees).

Each kernel mirrors, operation for operation and cast for cast, the numpy
code it stands for (named in its docstring); ``tests/detectors/test_fast_path.py``
and ``tests/detectors/test_kernels.py`` hold them equal.  The streaming path
keeps the numpy code: one tick of 10,000 streams is already vectorised over
streams, and it must not wait for a compiler.

numba is imported on a kernel's first call, not with this module, so the
server starts without paying for it (about 0.4 s); ``cache=True`` keeps the
machine code in ``__pycache__`` so only the first process on a machine
compiles.  Compiled with ``error_model="numpy"``: a division by zero gives
inf or NaN, as numpy does, instead of raising.
"""
from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["record_ticks", "episode_ticks", "pattern_ticks", "embedding_points", "standardised_points", "sorted_slides",
           "warm_up",
           "calibrated_points", "lower_median_deviation", "grow_trees"]


def compiled(kernel):
    """Compile ``kernel`` with numba on its first call (numba is imported then)."""
    @functools.wraps(kernel)
    def call(*args):
        return _compile(kernel)(*args)
    return call


@functools.lru_cache(maxsize=None)
def _compile(kernel):
    import numba

    # Helpers a kernel calls are compiled first, into this module's globals, where the kernel finds them.
    for helper in _HELPERS.get(kernel.__name__, ()):
        if not hasattr(globals()[helper], "py_func"):
            globals()[helper] = numba.njit(cache=True, nogil=True, error_model="numpy")(globals()[helper])
    return numba.njit(cache=True, nogil=True, error_model="numpy")(kernel)


#: Plain functions a kernel calls, by kernel name (compiled with it).
_HELPERS = {"record_ticks": ("_learned_tail_logp",)}


@compiled
def record_ticks(U, present, stepped, window, scale, warmup, mature, step, step_after, block, tail_blocks,
                 maxima, partial, low, high, fill, slot, seen, accepted, accepted_until, strength,
                 logp_out, spread_out):
    """``T`` calls of :meth:`detectors.novelty.RecordTracker.update` (state arrays updated in place).

    ``U`` ``(T, S, C)`` values, ``present`` ``(T, S)``, ``stepped`` ``(T,)``:
    ticks on which ``update`` is called at all (a tick is skipped when no
    stream has a point).  Writes each tick's log tail probabilities into
    ``logp_out`` ``(T, S, C)`` and the first ``K`` channels' range
    ``high - low`` before the tick into ``spread_out`` ``(T, S, K)``.
    A record of a channel with ``tail_blocks`` (> 0) filled blocks gets its
    learned tail (:mod:`detectors.extremes`, mirrored by :func:`_learned_tail_logp`).
    """
    T, S, C = U.shape
    n_blocks = maxima.shape[2]
    K = spread_out.shape[2]
    winsorise = math.isfinite(step)
    for t in range(T):
        if not stepped[t]:
            continue
        for s in range(S):
            learning = present[t, s] and seen[s] >= warmup
            learned = max(seen[s] - warmup, 1)
            accepting = seen[s] < accepted_until[s]
            grown = min(1.0, learned / mature)
            log_n = -math.log(min(learned, window))
            for c in range(C):
                recent = partial[s, c]
                top = maxima[s, c, 0]
                for b in range(1, n_blocks):
                    top = np.maximum(top, maxima[s, c, b])
                recent = np.maximum(top, recent)
                if accepting:
                    recent = np.maximum(recent, accepted[s, c])
                spread = high[s, c] - low[s, c]
                if c < K:
                    spread_out[t, s, c] = spread
                u = U[t, s, c]
                st = (u - recent) / spread
                if learning and spread > 0 and math.isfinite(st):
                    st = np.maximum(st, 0.0) * grown
                else:
                    st = 0.0 * grown
                strength[s, c] = st
                logp_out[t, s, c] = log_n - st / scale if st > 0 else 0.0
                if st > 0 and tail_blocks > 0:
                    filled = 0
                    for b in range(n_blocks):
                        if math.isfinite(maxima[s, c, b]):
                            filled += 1
                    if filled >= tail_blocks:
                        logp_out[t, s, c] = _learned_tail_logp(maxima[s, c], tail_blocks, st * spread,
                                                               scale * spread, min(learned, window))
                if not learning:
                    continue
                if winsorise and learned >= step_after and spread > 0 and math.isfinite(spread):
                    reach = step * spread
                    record = recent if math.isfinite(recent) else high[s, c]
                    u = np.minimum(np.maximum(u, low[s, c] - reach), record + reach)
                partial[s, c] = np.maximum(partial[s, c], u)
                low[s, c] = np.minimum(low[s, c], u)
                high[s, c] = np.maximum(high[s, c], u)
            if learning:
                fill[s] += 1
                if fill[s] >= block:
                    for c in range(C):
                        maxima[s, c, slot[s]] = partial[s, c]
                        partial[s, c] = -np.inf
                    slot[s] = (slot[s] + 1) % n_blocks
                    fill[s] = 0
            if present[t, s]:
                seen[s] += 1


def _learned_tail_logp(maxima, top, excess, scale_floor, n):
    """``-log(n + 1)`` plus ``detectors.extremes.log_excess_probability`` at ``top_spacing_scale``."""
    highest = -np.sort(-maxima)[1:top]
    count = top - 2
    spacings = np.sort((highest[:-1] - highest[1:]) * np.arange(2, top))
    middle = 0.5 * (spacings[(count - 1) // 2] + spacings[count // 2])
    scale = middle / np.log(2.0)
    return -math.log(n + 1.0) + -excess / max(scale, scale_floor)


@compiled
def episode_ticks(stepped, present, ready, novel, novel_logp, evidence_logp, cause, fused, thresholds,
                  X, centre, scale, distance, track_distance, z2_limit, level, memory, settle, refractory, cap,
                  is_open, calm, age, frozen_centre, frozen_scale, alert_score, since_alert, episode_distance,
                  out_score, out_anomalous, out_alert, out_novelty, out_cause):
    """The ensemble's own recursion over ``T`` ticks: the tail of ``EnsembleDetector._fuse_and_track``.

    Per tick and stream it does what ``_fuse_and_track`` (with novelty),
    :meth:`detectors.novelty.EpisodeState.update`,
    ``_track_episode_distance``, ``Detector._tick``'s clipping and the
    ensemble's ``_update_episodes`` do.  ``z2_limit``: the squared distance
    past which ``chi2_logp(z2, d) < level`` (the frozen range is left).
    State arrays are updated in place; per-tick results go to ``out_*``.
    """
    T, S, d = X.shape
    for t in range(T):
        if not stepped[t]:
            continue
        for s in range(S):
            p = present[t, s]
            nv = novel[t, s]
            quiet = (is_open[s] or since_alert[s] < refractory) and nv <= alert_score[s]
            alert = ready[t, s] and not quiet and nv >= thresholds[s]
            # EpisodeState.update: an alert opens an episode only on a stream that was not in one before the tick
            opens = p and alert and not is_open[s]
            if is_open[s] and p:
                age[s] += 1
                z2 = 0.0
                for f in range(d):
                    z = (X[t, s, f] - frozen_centre[s, f]) / frozen_scale[s, f]
                    z2 += z * z
                if z2 != z2:
                    z2 = np.inf
                outside = z2 > z2_limit and age[s] <= memory
                abnormal = (outside and evidence_logp[t, s] < level) or novel_logp[t, s] < level or alert
                calm[s] = 0 if abnormal else calm[s] + 1
                is_open[s] = calm[s] < settle
            if opens:
                is_open[s] = True
                calm[s] = 0
                age[s] = 0
                for f in range(d):
                    frozen_centre[s, f] = centre[t, s, f]
                    frozen_scale[s, f] = scale[t, s, f]
            held = p and quiet
            escalates = p and not quiet and nv > 0 and is_open[s] and not opens
            if opens:
                alert_score[s] = nv
            elif escalates:
                alert_score[s] = np.maximum(nv, alert_score[s])
            if opens:
                since_alert[s] = 0
            elif p:
                since_alert[s] += 1
            if track_distance:
                during = p and (is_open[s] or since_alert[s] < refractory)
                if opens:
                    episode_distance[s] = distance[t, s]
                elif during:
                    episode_distance[s] = np.maximum(episode_distance[s], distance[t, s])
            kept = 0.0 if held else nv
            out_novelty[t, s] = kept
            out_cause[t, s] = 0 if held else cause[t, s]
            if ready[t, s]:
                value = np.maximum(kept, cap * fused[t, s])
                if value != value:
                    value = 0.0
                out_score[t, s] = min(max(value, 0.0), 1.0)
                out_alert[t, s] = opens
                out_anomalous[t, s] = is_open[s] and p


@compiled
def pattern_ticks(X, present, stepped, first_row, length, block, history, resync, offsets, distance_floor, typical_rate,
                  error_rate, block_step, error_clip, distance_clip, spread_floor,
                  block_sum, block_fill, block_size, blocks, origin, lagged, sqdist, low, high, span,
                  candidates, forecast, forecast_error, distance, typical,
                  out_ratio, out_z2, out_surprise, out_ready, out_distance):
    """``T`` calls of ``PatternDetector._score_and_learn`` (state arrays updated in place).

    Per tick and present stream: ``out_ratio`` the distance term of the log
    tail probability (``-distance / typical``), ``out_z2`` the forecast
    error's chi-square statistic and ``out_surprise`` whether it counts (the
    caller reads it with ``chi2_logp``), ``out_ready`` whether the stream
    scores, and ``out_distance`` every stream's :attr:`distance_` after the
    tick.  ``lagged`` and ``sqdist`` are float32, as in the detector, with
    the same casts.  The arrays may be a slice of the bank's rows starting at
    row ``first_row`` (streams take turns by row to resynchronise).
    """
    T, S, d = X.shape
    m = length // block
    lags = history // block
    width = lagged.shape[2]
    K = offsets.shape[0]
    summary = np.empty(d)
    entering = np.empty(lags, dtype=np.float32)
    total = np.empty(lags + 1)
    inv = np.empty(d)
    for t in range(T):
        if not stepped[t]:
            continue
        for s in range(S):
            if not present[t, s]:
                continue
            # _forecast_surprise, before the point joins its block
            known = True
            for f in range(d):
                e = X[t, s, f] - forecast[s, f]
                if e != e:
                    known = False
            if known:
                z2 = 0.0
                counts = True
                for f in range(d):
                    e = X[t, s, f] - forecast[s, f]
                    e = e * e
                    usual = forecast_error[s, f]
                    floor = spread_floor * (abs(forecast[s, f]) + 1.0)
                    z2 += e / np.maximum(usual, floor * floor)
                    if not usual > 0:
                        counts = False
                    if usual > 0:
                        forecast_error[s, f] = usual + error_rate * (np.minimum(e, error_clip * usual) - usual)
                    else:
                        forecast_error[s, f] = e
                out_z2[t, s] = z2
                out_surprise[t, s] = counts
            for f in range(d):
                block_sum[s, f] += X[t, s, f]
            block_fill[s] += 1
            if block_fill[s] >= block_size[s]:
                # _close_blocks
                if blocks[s] == 0:
                    for f in range(d):
                        origin[s, f] = block_sum[s, f] / block_fill[s]
                for f in range(d):
                    v = block_sum[s, f] / block_fill[s] - origin[s, f]
                    reach = block_step * (high[s, f] - low[s, f])
                    if blocks[s] >= 2 * m and math.isfinite(reach) and reach > 0:
                        v = np.minimum(np.maximum(v, low[s, f] - reach), high[s, f] + reach)
                    summary[f] = v
                for f in range(d):
                    newest = np.float32(summary[f])
                    for lag in range(lags):
                        a = newest - lagged[s, f, lag]
                        a = a * a
                        b = lagged[s, f, m - 1] - lagged[s, f, m + lag]
                        b = b * b
                        entering[lag] = a - b
                    for lag in range(lags):
                        sqdist[s, f, lag + 1] += entering[lag]
                    for col in range(width - 1, 0, -1):
                        lagged[s, f, col] = lagged[s, f, col - 1]
                    lagged[s, f, 0] = newest
                blocks[s] += 1
                n = blocks[s]
                if (n + first_row + s) % resync == 0:
                    for f in range(d):
                        for lag in range(lags + 1):
                            sqdist[s, f, lag] = 0.0
                        for j in range(m):
                            for lag in range(lags + 1):
                                diff = np.float64(lagged[s, f, j]) - np.float64(lagged[s, f, j + lag])
                                sqdist[s, f, lag] = np.float32(np.float64(sqdist[s, f, lag]) + diff * diff)
                for f in range(d):
                    low[s, f] = np.minimum(low[s, f], summary[f])
                    high[s, f] = np.maximum(high[s, f], summary[f])
                    span[s, f] = np.maximum(high[s, f] - low[s, f], spread_floor * (abs(high[s, f]) + 1.0))
                    inv[f] = 1.0 / span[s, f] ** 2
                best, nearest = -1, np.inf
                for lag in range(m, lags + 1):
                    if d == 1:
                        value = np.float64(sqdist[s, 0, lag]) / span[s, 0] ** 2
                    else:
                        value = 0.0
                        for f in range(d):
                            value += np.float64(sqdist[s, f, lag]) * inv[f]
                    if n < lags + m and not lag + m <= n:
                        value = np.inf
                    if value != value:
                        if nearest == nearest:
                            best, nearest = lag, value
                    elif best < 0 or value < nearest:
                        best, nearest = lag, value
                known = math.isfinite(nearest)
                found = math.sqrt(np.maximum(nearest, 0.0) / m) if known else 0.0
                reach = min(lags, n - m)
                for k in range(K):
                    c = best + offsets[k]
                    candidates[s, k] = c if known and c >= m and c <= reach else 0
                for f in range(d):
                    forecast[s, f] = np.float64(lagged[s, f, best - 1]) + origin[s, f] if known else np.nan
                distance[s] = found
                for f in range(d):
                    block_sum[s, f] = 0.0
                block_fill[s] = 0
                block_size[s] = block
                closed = True
                now = found
            else:
                # _provisional_distance
                closed = False
                fill = block_fill[s]
                weight = 2.0 * fill / (block + fill)
                for f in range(d):
                    summary[f] = block_sum[s, f] / fill - origin[s, f]
                nearest, broken = np.inf, False
                for k in range(K):
                    lag = candidates[s, k]
                    if lag <= 0:
                        continue
                    value = 0.0
                    for f in range(d):
                        leaving = lagged[s, f, m - 1] - lagged[s, f, m - 1 + lag]
                        leaving = leaving * leaving
                        ent = summary[f] - np.float64(lagged[s, f, lag - 1])
                        moved = np.float64(sqdist[s, f, lag]) + weight * ent ** 2 - np.float64(leaving)
                        value += moved * (1.0 / span[s, f] ** 2)
                    if value != value:
                        broken = True
                    elif value < nearest:
                        nearest = value
                if broken or not math.isfinite(nearest):
                    now = distance[s]
                else:
                    now = math.sqrt(np.maximum(nearest, 0.0) / m)
            out_ready[t, s] = blocks[s] > 2 * m
            out_ratio[t, s] = -now / np.maximum(typical[s], distance_floor)
            if closed:
                old = typical[s]
                learned = np.minimum(now, distance_clip * old) if old > 0 else now
                typical[s] = old + typical_rate * (learned - old) if old > 0 else learned
        for s in range(S):
            out_distance[t, s] = distance[s]


@compiled
def embedding_points(points, previous, average, spread, count, started, alpha, dev_limit, spread_rate,
                     out_previous, out_average):
    """The running average of ``n`` successive points of one stream (``CausalEmbedding.transform_block``'s recursion).

    ``previous``, ``average``, ``spread`` ``(d,)`` are the stream's row,
    ``count`` and ``started`` one-element arrays, all updated in place; each
    point's previous point and average before it go to ``out_previous`` and
    ``out_average`` ``(n, d)``.
    """
    n, d = points.shape
    for k in range(n):
        first = not started[0]
        weight = max(1.0 / (count[0] + 1.0), spread_rate)
        for f in range(d):
            x = points[k, f]
            if first:
                previous[f] = x
                average[f] = x
            out_previous[k, f] = previous[f]
            out_average[k, f] = average[f]
            previous[f] = x
            avg = average[f]
            learned = x
            if count[0] >= 3:
                learned = np.minimum(np.maximum(x, avg - dev_limit * spread[f]), avg + dev_limit * spread[f])
            if not first:
                spread[f] = spread[f] + weight * (abs(learned - avg) - spread[f])
            average[f] = avg + alpha * (learned - avg)
        if not first:
            count[0] += 1
        started[0] = True


@compiled
def standardised_points(features, count, centre, scale, limit, rate_floor, out):
    """The running standardisation of ``n`` successive feature rows of one stream (``CausalEmbedding._project``).

    float32 throughout, as the detector computes it: ``centre`` and
    ``scale`` ``(w,)`` are the stream's row and ``count`` a one-element
    array, updated in place; the standardised, clipped rows go to ``out``.
    """
    n, w = features.shape
    tiny, one, zero = np.float32(1e-9), np.float32(1.0), np.float32(0.0)
    top = np.float32(limit)
    for k in range(n):
        known = count[0] > 0
        rate = np.float32(max(1.0 / (count[0] + 1.0), rate_floor))
        for j in range(w):
            c, s, x = centre[j], scale[j], features[k, j]
            floor = tiny * (abs(c) + one)
            wide = np.maximum(s, floor)
            z = (x - c) / wide if known else zero
            if z != z:
                z = zero
            z = np.minimum(np.maximum(z, -top), top)
            out[k, j] = z
            winsorised = c + z * wide if known and s > 0 else x
            centre[j] = c + rate * (winsorised - c)
            scale[j] = s + rate * (abs(winsorised - c) - s) if known else zero
        count[0] += 1


@compiled
def sorted_slides(padded, size, out):
    """Each window of ``size`` successive rows of ``padded`` ``(size - 1 + n, d)``, sorted, field by field.

    Window ``i`` is ``padded[i : i + size]``; row ``i * d + j`` of ``out``
    ``(n * d, size)`` holds its field ``j`` sorted, NaN (an unused slot) as
    +inf at the end: what ``np.sort`` gives, found by sliding one sorted
    window along (drop the value leaving, insert the one arriving, O(size)
    per point instead of a sort).
    """
    rows, d = padded.shape
    n = rows - size + 1
    current = np.empty(size)
    for j in range(d):
        for k in range(size):
            v = padded[k, j]
            current[k] = np.inf if v != v else v
        current.sort()
        for k in range(size):
            out[j, k] = current[k]
        for i in range(1, n):
            old = padded[i - 1, j]
            new = padded[i - 1 + size, j]
            old = np.inf if old != old else old
            new = np.inf if new != new else new
            at = np.searchsorted(current, old)
            # Close the gap left by the old value, then open one where the new value belongs.
            for k in range(at, size - 1):
                current[k] = current[k + 1]
            to = np.searchsorted(current[: size - 1], new)
            for k in range(size - 1, to, -1):
                current[k] = current[k - 1]
            current[to] = new
            for k in range(size):
                out[i * d + j, k] = current[k]


@compiled
def calibrated_points(raw, history, count, knots, beta, fitted, levels, tail, min_scores, every, fit_first,
                      out_logp):
    """``TailCalibrator.log_tail_probability``, then ``update``, for ``n`` successive raw scores of one stream.

    With ``fit_first``, ``TailCalibrator.fit`` of the stream comes first.

    ``history`` ``(memory,)`` float32, ``knots`` ``(K,)`` float32 and the
    one-element ``count``, ``beta`` (float32) and ``fitted`` are the
    stream's row, updated in place; each score's ``log p`` under the state
    before it goes to ``out_logp``.  The casts are the calibrator's: scores
    remembered in float32, knots interpolated in float32, read in float64.
    """
    memory = history.shape[0]
    K = knots.shape[0]
    big = np.float64(np.finfo(np.float32).max)
    log_tail = math.log(tail)
    log2 = math.log(2.0)
    ordered = np.empty(memory, dtype=np.float32)
    # k = -1: the fit asked for first, with no score to read or learn.
    for k in range(-1 if fit_first else 0, raw.shape[0]):
        if k >= 0:
            r = raw[k]
            if fitted[0]:
                u = np.float64(knots[K - 1])
                j = 0
                for i in range(K):
                    if r >= np.float64(knots[i]):
                        j += 1
                if j >= K:
                    out_logp[k] = log_tail - np.maximum(r - u, 0.0) / np.float64(beta[0])
                else:
                    body = 0.0
                    if j > 0:
                        inner = min(max(j, 1), K - 1)
                        low, high = np.float64(knots[inner - 1]), np.float64(knots[inner])
                        fraction = np.minimum(np.maximum((r - low) / (high - low), 0.0), 1.0)
                        body = levels[inner - 1] + fraction * (levels[inner] - levels[inner - 1])
                    out_logp[k] = math.log1p(-np.minimum(body, 1.0 - tail)) if body == body else np.nan
            else:
                out_logp[k] = 0.0
            # push: an absurd score is remembered as the largest float32, never inf
            if r == r:
                history[count[0] % memory] = np.float32(np.minimum(np.maximum(r, -big), big))
                count[0] += 1
            if count[0] % every != 0:
                continue
        # fit
        n = min(count[0], memory)
        if n < min_scores:
            continue
        m = 0
        for i in range(memory):
            if history[i] == history[i]:
                ordered[m] = history[i]
                m += 1
        ordered[:m].sort()
        for i in range(K):
            position = levels[i] * (n - 1)
            below = int(math.floor(position))
            above = min(below + 1, n - 1)
            weight = np.float32(position - below)
            knots[i] = ordered[below] + weight * (ordered[above] - ordered[below])
        u = knots[K - 1]
        over = 0
        for i in range(n):
            if ordered[i] > u:
                over += 1
        middle = min(max(n - over + (over - 1) // 2, 0), memory - 1)
        median = ordered[middle] - u
        if over > 0:
            spread = 0.0 if (median != median or median == np.inf) else np.float64(median)
            if spread == -np.inf:
                spread = -big
            scale = spread / log2
        else:
            scale = 0.0
        least = np.float32(1e-6) + np.float32(1e-3) * abs(u)
        beta[0] = np.float32(np.maximum(scale, np.float64(least)))
        fitted[0] = True


@compiled
def lower_median_deviation(values, median, out):
    """The lower median of ``|values - median|`` per full sorted row (``detectors.mad.sorted_mad``).

    Left of the median the deviations ``median - v`` rise going left, right
    of it ``v - median`` rise going right: two sorted runs, merged here for
    the ``k``-th smallest, ``k = (W - 1) // 2 + 1``, the same order
    statistic the numpy binary search finds (the same differences, so the
    same bits).
    """
    rows, width = values.shape
    half = width // 2
    k = (width - 1) // 2 + 1
    for r in range(rows):
        m = median[r]
        i, j = half - 1, half  # next deviation on the left, on the right
        value = 0.0
        for _ in range(k):
            if i < 0:
                value = values[r, j] - m
                j += 1
            elif j >= width:
                value = m - values[r, i]
                i -= 1
            else:
                left, right = m - values[r, i], values[r, j] - m
                if left <= right:
                    value = left
                    i -= 1
                else:
                    value = right
                    j += 1
        out[r] = value


@compiled
def grow_trees(values, used, start_all, fraction_all, encoded, sample_size, depth, feature_bits,
               node_words, leaf_words):
    """Grow isolation trees level by level, tree after tree (``detectors.isolation_forest.build_forests``).

    ``values`` ``(m, n)`` int16 are the sampled points feature-major, tree
    ``f`` owning points ``f * sample_size ..`` of which ``used`` says which
    count; ``start_all`` and ``fraction_all`` ``(trees, inner nodes)`` the
    drawn start feature and split fraction of every node.  Writes the node
    and leaf words the numpy version writes (integer arithmetic, and the
    same float64 threshold), into ``node_words`` and ``leaf_words``.
    """
    m = values.shape[0]
    n_forest = start_all.shape[0]
    n_inner = start_all.shape[1]
    n_leaves = n_inner + 1
    node = np.empty(sample_size, dtype=np.int64)
    count = np.zeros(n_leaves, dtype=np.int64)
    feature = np.empty(n_leaves, dtype=np.int64)
    threshold = np.empty(n_leaves, dtype=np.int64)
    opened = np.zeros(n_leaves, dtype=np.bool_)
    children = np.zeros(n_leaves, dtype=np.bool_)
    for f in range(n_forest):
        first = f * sample_size
        for j in range(sample_size):
            node[j] = 0 if used[first + j] else -1
        opened[0] = True
        for level in range(depth + 1):
            width = 1 << level
            for q in range(width):
                count[q] = 0
            for j in range(sample_size):
                if node[j] >= 0:
                    count[node[j]] += 1
            if level == depth:
                for q in range(width):
                    if opened[q]:
                        leaf_words[f * n_leaves + q] = encoded[level, count[q]]
                break
            for q in range(width):
                feature[q] = -1
                low, high = 0, 0
                if count[q] >= 2:
                    start = start_all[f, width - 1 + q]
                    for i in range(m):
                        c = (start + i) % m
                        lo, hi = 32767, -32768
                        for j in range(sample_size):
                            if node[j] == q:
                                v = values[c, first + j]
                                lo = min(lo, v)
                                hi = max(hi, v)
                        if hi > lo:
                            feature[q], low, high = c, lo, hi
                            break
                if feature[q] >= 0:
                    cut = np.float64(low) + math.floor(fraction_all[f, width - 1 + q] * np.float64(high - low))
                    threshold[q] = np.int64(cut)
                    node_words[f * n_inner + width - 1 + q] = np.int16((threshold[q] << feature_bits) | feature[q])
                elif opened[q]:
                    leaf_words[(f * width + q) << (depth - level)] = encoded[level, count[q]]
            for q in range(2 * width):
                children[q] = feature[q >> 1] >= 0
            for q in range(2 * width):
                opened[q] = children[q]
            for j in range(sample_size):
                q = node[j]
                if q < 0:
                    continue
                if feature[q] < 0:
                    node[j] = -1
                else:
                    node[j] = 2 * q + (1 if values[feature[q], first + j] > threshold[q] else 0)


def warm_up(rows: int = 3000) -> None:
    """Compile the default ensemble's kernels now (numba caches them in ``__pycache__``).

    Run once at install (``make``), so that the first file, replay or batch a
    server scores does not wait about 20 s for the compiler.  Scores a seeded
    series of one field and one of 38 (a wide embedding is standardised by
    a kernel of its own), long enough for the refitted members to refit
    inside a block.
    """
    from .ensemble import EnsembleDetector

    rng = np.random.default_rng(0)
    for fields in (1, 38):
        EnsembleDetector().label_series(rng.normal(0.0, 1.0, (rows, fields)))
