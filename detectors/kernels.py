"""Compiled kernels for the recurrences of the fast path that cannot be vectorised over time.

A record (the highest value of the last ``window`` points) or an anomalous
episode (open until a run of normal points) depends on every earlier point of
its stream, so a block of ``T`` points cannot be scored in a few array
operations the way a rolling mean can.  Written as numpy over time they would
be one Python-level step per point (tens of numpy calls each); compiled with
numba they are one call for the whole block, about a hundred times faster,
with the same arithmetic in the same order.

Each kernel walks ``T`` ticks of ``S`` streams and mirrors, operation for
operation, the numpy code of one tick it stands for (named in its
docstring); ``tests/detectors/test_fast_path.py`` and
``tests/detectors/test_kernels.py`` hold them equal.  The streaming path
keeps the numpy code: one tick of 10,000 streams is already vectorised over
streams, and it must not wait for a compiler.

numba is imported on a kernel's first call, not with this module, so the
server starts without paying for it (about 0.3 s); ``cache=True`` keeps the
machine code in ``__pycache__`` so only the first process on a machine
compiles.  Compiled with ``error_model="numpy"``: a division by zero gives
inf or NaN, as numpy does, instead of raising.
"""
from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["record_ticks", "episode_ticks"]


def compiled(kernel):
    """Compile ``kernel`` with numba on its first call (numba is imported then)."""
    @functools.wraps(kernel)
    def call(*args):
        return _compile(kernel)(*args)
    call.python = kernel
    return call


@functools.lru_cache(maxsize=None)
def _compile(kernel):
    import numba

    return numba.njit(cache=True, nogil=True, error_model="numpy")(kernel)


@compiled
def record_ticks(U, present, stepped, window, scale, warmup, mature, step, step_after, block,
                 maxima, partial, low, high, fill, slot, seen, accepted, accepted_until, strength,
                 logp_out, spread_out):
    """``T`` calls of :meth:`detectors.novelty.RecordTracker.update` (state arrays updated in place).

    ``U`` ``(T, S, C)`` values, ``present`` ``(T, S)``, ``stepped`` ``(T,)``:
    ticks on which ``update`` is called at all (a tick is skipped when no
    stream has a point).  Writes each tick's log tail probabilities into
    ``logp_out`` ``(T, S, C)`` and the first ``K`` channels' range
    ``high - low`` before the tick into ``spread_out`` ``(T, S, K)``.
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
