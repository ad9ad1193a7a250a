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
and ``tests/detectors/test_kernels.py`` hold them equal.  The streaming step
of a bank uses some of them too (the tree walk, LOF's scoring and refits, the
pattern search over one tick), beside kernels of its own
(:mod:`detectors.bank_kernels`; see :mod:`detectors.streaming`), so
:func:`warm_up` steps a small bank as well.

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

from .stats import median_of_three

__all__ = ["record_ticks", "episode_ticks", "pattern_ticks", "embedding_points", "standardised_points", "sorted_slides",
           "sorted_window_stats", "quartile_spreads", "sliding_distances", "trailing_means", "tree_walks", "lof_points", "lof_fits",
           "lof_reference", "forest_samples",
           "warm_up", "calibrated_points", "lower_median_deviation", "grow_trees"]


def compiled(kernel):
    """Compile ``kernel`` with numba on its first call (numba is imported then)."""
    @functools.wraps(kernel)
    def call(*args):
        return _compile(kernel)(*args)
    return call


@functools.lru_cache(maxsize=None)
def _compile(kernel):
    import numba

    # Helpers a kernel calls are compiled first, into its module's globals, where the kernel finds them.
    names = kernel.__globals__
    for helper in names.get("_HELPERS", {}).get(kernel.__name__, ()):
        if not hasattr(names[helper], "py_func"):
            inline = "always" if helper in names.get("_INLINED", ()) else "never"
            names[helper] = numba.njit(cache=True, nogil=True, error_model="numpy", inline=inline)(names[helper])
    return numba.njit(cache=True, nogil=True, error_model="numpy")(kernel)


#: Plain functions a kernel calls, by kernel name (compiled with it).
_RECORD_HELPERS = ("_learned_tail_logp", "_highest_block", "_record_recent", "_record_score", "_winsorised",
                   "_excursion_ended", "_record_learn", "_young_extremes", "_judge_youth")
_HELPERS = {"record_ticks": ("_learned_tail_logp", "_highest_block", "_winsorised", "_excursion_ended",
                             "_young_extremes", "_judge_youth"),
            "record_episode_ticks": _RECORD_HELPERS + ("_episode_step", "_reference_point"),
            "calibrated_points": ("_insertion_sort", "_merge_changes", "_calibration_fit"),
            "sorted_slides": ("_slide",), "sorted_window_stats": ("_slide", "_lower_median_deviation"),
            "forest_samples": ("_half_word",), "sliding_distances": ("_factor_and_solve", "_solve_lanes"),
            "embedding_points": ("median_of_three",),
            "pattern_ticks": ("_field_sqdist", "_judge_pattern_youth")}
#: Helpers compiled into their callers (numba's ``inline="always"``): the value records' steps, which
#: record_episode_ticks calls once per tick and stream with some twenty arrays (a call each costs
#: about as much as their work: record_ticks calling them took 1.7 CPU-s inlined, 2.4 not, for 20,000
#: ticks of 64 streams of 16 channels, and its own loop 0.4-0.5, so record_ticks keeps its own loop).
_INLINED = ("_record_score", "_winsorised", "_excursion_ended", "_record_learn")


@compiled
def record_ticks(U, present, stepped, window, scale, warmup, mature, counts_after, step, step_after, recur_height,
                 block, tail_blocks, maxima, partial, low, high, fill, slot, seen, accepted, accepted_until, cutting,
                 cut, cut_until, second_high, second_low, strength, logp_out, spread_out):
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
    # The highest closed block of each channel, as the update's reduction over the blocks finds it:
    # it changes only when a block closes, so it is found again then, not on every tick.
    top = np.empty((S, C))
    for s in range(S):
        for c in range(C):
            top[s, c] = _highest_block(maxima, s, c)
    for t in range(T):
        if not stepped[t]:
            continue
        for s in range(S):
            learning = present[t, s] and seen[s] >= warmup
            learned = max(seen[s] - warmup, 1)
            accepting = seen[s] < accepted_until[s]
            grown = min(1.0, learned / mature) if learned >= counts_after else 0.0
            log_n = -math.log(min(learned, window))
            for c in range(C):
                recent = partial[s, c]
                recent = np.maximum(top[s, c], recent)
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
                    u = _winsorised(s, c, u, recent, spread, step, window, low, high, seen, cutting, cut, cut_until,
                                    recur_height)
                if seen[s] - warmup < step_after:
                    _young_extremes(s, c, u, low, high, second_high, second_low)
                partial[s, c] = np.maximum(partial[s, c], u)
                low[s, c] = np.minimum(low[s, c], u)
                high[s, c] = np.maximum(high[s, c], u)
            if learning and winsorise and seen[s] - warmup == step_after - 1:
                _judge_youth(s, step, maxima, partial, low, high, second_high, second_low, top)
            if learning:
                fill[s] += 1
                if fill[s] >= block:
                    for c in range(C):
                        maxima[s, c, slot[s]] = partial[s, c]
                        partial[s, c] = -np.inf
                        top[s, c] = _highest_block(maxima, s, c)
                    slot[s] = (slot[s] + 1) % n_blocks
                    fill[s] = 0
            if present[t, s]:
                seen[s] += 1


def _record_recent(s, c, warmup, partial, seen, accepted, accepted_until, top):
    """The recent record of channel ``c`` of stream ``s`` before its point (the update's ``recent``)."""
    recent = partial[s, c]
    recent = np.maximum(top[s, c], recent)
    if seen[s] < accepted_until[s]:
        recent = np.maximum(recent, accepted[s, c])
    return recent


def _record_score(t, s, U, present, window, scale, warmup, mature, counts_after, tail_blocks, maxima, partial, low,
                  high, seen, accepted, accepted_until, strength, top, logp_out, spread_out):
    """``RecordTracker.score`` for stream ``s`` on tick ``t``: its channels' log tail probabilities into ``logp_out``
    ``(C,)``, the first ``K`` channels' range before the point into ``spread_out`` ``(K,)``."""
    C = U.shape[2]
    n_blocks = maxima.shape[2]
    K = spread_out.shape[0]
    learning = present[t, s] and seen[s] >= warmup
    learned = max(seen[s] - warmup, 1)
    grown = min(1.0, learned / mature) if learned >= counts_after else 0.0
    log_n = -math.log(min(learned, window))
    for c in range(C):
        recent = _record_recent(s, c, warmup, partial, seen, accepted, accepted_until, top)
        spread = high[s, c] - low[s, c]
        if c < K:
            spread_out[c] = spread
        u = U[t, s, c]
        st = (u - recent) / spread
        if learning and spread > 0 and math.isfinite(st):
            st = np.maximum(st, 0.0) * grown
        else:
            st = 0.0 * grown
        strength[s, c] = st
        logp_out[c] = log_n - st / scale if st > 0 else 0.0
        if st > 0 and tail_blocks > 0:
            filled = 0
            for b in range(n_blocks):
                if math.isfinite(maxima[s, c, b]):
                    filled += 1
            if filled >= tail_blocks:
                logp_out[c] = _learned_tail_logp(maxima[s, c], tail_blocks, st * spread, scale * spread,
                                                 min(learned, window))


def _winsorised(s, c, u, recent, spread, step, window, low, high, seen, cutting, cut, cut_until,
                recur_height):
    """``RecordTracker._winsorised`` for channel ``c`` of stream ``s`` (updates ``cutting``, ``cut``, ``cut_until``)."""
    reach = step * spread
    record = recent if math.isfinite(recent) else high[s, c]
    earlier = cut[s, c] if seen[s] < cut_until[s, c] else -np.inf
    recurs = u >= earlier - reach and u - record <= recur_height * (earlier - record)
    upper = np.maximum(record + reach, earlier) if recurs else record + reach
    if u > upper:
        cutting[s, c] = np.maximum(cutting[s, c], u)
    else:
        _excursion_ended(s, c, window, seen, cutting, cut, cut_until)
    return np.minimum(np.maximum(u, low[s, c] - reach), upper)


def _excursion_ended(s, c, window, seen, cutting, cut, cut_until):
    """A point of channel ``c`` of stream ``s`` was learned uncut: its excursion, if any, is an earlier one now."""
    if math.isfinite(cutting[s, c]):
        cut[s, c] = np.maximum(cut[s, c] if seen[s] < cut_until[s, c] else -np.inf, cutting[s, c])
        cut_until[s, c] = seen[s] + window
        cutting[s, c] = -np.inf


def _young_extremes(s, c, u, low, high, second_high, second_low):
    """A young channel's second highest and second lowest value, before ``u`` is learned (``RecordTracker.learn``)."""
    second_high[s, c] = high[s, c] if u > high[s, c] else np.maximum(second_high[s, c], u)
    second_low[s, c] = low[s, c] if u < low[s, c] else np.minimum(second_low[s, c], u)


def _judge_youth(s, step, maxima, partial, low, high, second_high, second_low, top):
    """``RecordTracker._judge_youth`` for stream ``s``: its young extremes learned as winsorising would have
    (``top``, the highest closed block per channel, found again where a block was cut)."""
    for c in range(high.shape[1]):
        reach = step * (second_high[s, c] - second_low[s, c])
        if not (math.isfinite(reach) and reach > 0):
            continue
        cap = second_high[s, c] + reach
        if high[s, c] > cap:
            high[s, c] = cap
            partial[s, c] = np.minimum(partial[s, c], cap)
            for b in range(maxima.shape[2]):
                maxima[s, c, b] = np.minimum(maxima[s, c, b], cap)
            top[s, c] = _highest_block(maxima, s, c)
        bottom = second_low[s, c] - reach
        if low[s, c] < bottom:
            low[s, c] = bottom


def _record_learn(t, s, U, present, warmup, window, step, step_after, recur_height, block, maxima, partial, low,
                  high, fill, slot, seen, accepted, accepted_until, cutting, cut, cut_until, second_high, second_low,
                  top, hold, track_held,
                  holding, held, held_until):
    """``RecordTracker.learn`` for stream ``s`` on tick ``t`` (``hold``: the stream is in an episode; ``track_held``:
    the tracker holds back episodes' excursions at all, else ``holding``, ``held`` and ``held_until`` are unread)."""
    C = U.shape[2]
    n_blocks = maxima.shape[2]
    learning = present[t, s] and seen[s] >= warmup
    learned = max(seen[s] - warmup, 1)
    if learning:
        winsorise = math.isfinite(step)
        active = seen[s] < held_until[s] if track_held else False
        for c in range(C):
            u = U[t, s, c]
            spread = high[s, c] - low[s, c]
            clip = winsorise and learned >= step_after and spread > 0 and math.isfinite(spread)
            recent = _record_recent(s, c, warmup, partial, seen, accepted, accepted_until, top) if hold or clip else 0.0
            back = False
            if hold:  # judged and remembered as it came, not winsorised
                before = held[s, c] if active else -np.inf
                back = u > np.maximum(recent, before)
                if back:
                    holding[s, c] = np.maximum(holding[s, c], u)
            if clip:
                u = _winsorised(s, c, u, recent, spread, step, window, low, high, seen, cutting, cut, cut_until,
                                recur_height)
            if seen[s] - warmup < step_after:
                _young_extremes(s, c, u, low, high, second_high, second_low)
            if not back:
                partial[s, c] = np.maximum(partial[s, c], u)
            low[s, c] = np.minimum(low[s, c], u)
            high[s, c] = np.maximum(high[s, c], u)
        if winsorise and seen[s] - warmup == step_after - 1:
            _judge_youth(s, step, maxima, partial, low, high, second_high, second_low, top)
        if track_held and not hold:
            pending = False
            for c in range(C):
                if math.isfinite(holding[s, c]):
                    pending = True
            if pending:
                for c in range(C):
                    before = held[s, c] if active else -np.inf
                    held[s, c] = np.maximum(before, holding[s, c])
                    holding[s, c] = -np.inf
                held_until[s] = seen[s] + window
        fill[s] += 1
        if fill[s] >= block:
            for c in range(C):
                maxima[s, c, slot[s]] = partial[s, c]
                partial[s, c] = -np.inf
                top[s, c] = _highest_block(maxima, s, c)
            slot[s] = (slot[s] + 1) % n_blocks
            fill[s] = 0
    if present[t, s]:
        seen[s] += 1


def _highest_block(maxima, s, c):
    """The largest of ``maxima[s, c]``, folded left with ``np.maximum`` (NaN if any is NaN)."""
    top = maxima[s, c, 0]
    for b in range(1, maxima.shape[2]):
        top = np.maximum(top, maxima[s, c, b])
    return top


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
    The loop body is :func:`_episode_step`'s, written out: calling it per
    tick and stream took 445 ms against 23 ms for 20,000 ticks of 64
    streams (5 December 2026), and numba would not inline it here.
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


def _episode_step(t, s, present, ready, nv, novel_logp, evidence_logp, cause, fused, thresholds, X, centre, scale,
                  distance, track_distance, z2_limit, level, memory, settle, refractory, cap, is_open, calm, age,
                  frozen_centre, frozen_scale, alert_score, since_alert, episode_distance,
                  out_score, out_anomalous, out_alert, out_novelty, out_cause):
    """One stream's tick of :func:`episode_ticks`: ``nv``, ``novel_logp`` and ``cause`` its novelty, ``centre`` and
    ``scale`` ``(d,)`` its reference range."""
    d = X.shape[2]
    p = present[t, s]
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
        abnormal = (outside and evidence_logp[t, s] < level) or novel_logp < level or alert
        calm[s] = 0 if abnormal else calm[s] + 1
        is_open[s] = calm[s] < settle
    if opens:
        is_open[s] = True
        calm[s] = 0
        age[s] = 0
        for f in range(d):
            frozen_centre[s, f] = centre[f]
            frozen_scale[s, f] = scale[f]
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
    out_cause[t, s] = 0 if held else cause
    if ready[t, s]:
        value = np.maximum(kept, cap * fused[t, s])
        if value != value:
            value = 0.0
        out_score[t, s] = min(max(value, 0.0), 1.0)
        out_alert[t, s] = opens
        out_anomalous[t, s] = is_open[s] and p


def _reference_point(t, s, own_low, own_high, has_own, z_k, floor, span, centre, scale):
    """``EnsembleDetector._reference_from`` for one point into ``centre`` and ``scale`` ``(d,)``; ``span`` the fields'
    ranges so far (zeros and infinite spreads without a range member)."""
    d = centre.shape[0]
    big = np.finfo(np.float64).max
    for f in range(d):
        if not has_own:
            centre[f] = 0.0
            scale[f] = np.inf
            continue
        lo, hi = own_low[t, s, f], own_high[t, s, f]
        c = 0.5 * (lo + hi)
        if c != c:
            c = 0.0
        elif c == np.inf:
            c = big
        elif c == -np.inf:
            c = -big
        centre[f] = c
        width = span[f] if math.isfinite(span[f]) else 0.0
        sc = np.maximum(0.5 * (hi - lo) / z_k, floor * width)
        scale[f] = sc if math.isfinite(sc) and sc > 0 else np.inf


@compiled
def record_episode_ticks(U, present, stepped, window, scale, warmup, mature, counts_after, step, step_after,
                         recur_height, block, tail_blocks, maxima, partial, low, high, fill, slot, seen, accepted,
                         accepted_until, cutting, cut, cut_until, second_high, second_low, strength, holding, held,
                         held_until, pattern_logp,
                         per_stream, later_logp, later_cause, score_power,
                         own_low, own_high, has_own, z_k, reference_floor, spread_tail,
                         ready, evidence_logp, fused, thresholds, X, distance, track_distance, z2_limit, level, memory,
                         settle, refractory, cap, is_open, calm, age, frozen_centre, frozen_scale, alert_score,
                         since_alert, episode_distance, out_score, out_anomalous, out_alert, out_novelty, out_cause,
                         value_cause, pattern_cause):
    """The value records and the episodes in one recursion: records that hold still while an episode is open.

    ``EnsembleDetector._fuse_and_track`` with ``hold_records``: per tick and
    stream, :func:`record_ticks`' scoring of the value records ``U``
    ``(T, S, 2d)``, the stream's novelty (the rarest value channel, then
    ``pattern_logp`` ``(T, S)``, the Bonferroni term ``per_stream`` (0: none),
    then ``later_logp`` with ``later_cause``: the run channels; with
    ``spread_tail`` the value records' excess in the fields' own noise), the
    reference range from the range member's own ``own_low``/``own_high``
    ``(T, S, d)`` and the records' range before the point,
    :func:`episode_ticks`' step, and last the records' learning, holding
    back the point's excursion (``RecordTracker.learn``) while the stream
    is in an episode at most ``memory`` points old.
    """
    T, S, C = U.shape
    d = X.shape[2]
    top = np.empty((S, C))
    for s in range(S):
        for c in range(C):
            top[s, c] = _highest_block(maxima, s, c)
    logp = np.zeros(C)
    spread = np.zeros(d)  # the first d channels' (the fields') range before the point
    centre = np.zeros(d)
    ref_scale = np.zeros(d)
    for t in range(T):
        if not stepped[t]:
            continue
        for s in range(S):
            _record_score(t, s, U, present, window, scale, warmup, mature, counts_after, tail_blocks, maxima, partial,
                          low, high, seen, accepted, accepted_until, strength, top, logp, spread)
            _reference_point(t, s, own_low, own_high, has_own, z_k, reference_floor, spread, centre, ref_scale)
            if spread_tail:
                # EnsembleDetector._spread_tail: the excess on the wider of the fixed scale and the Gumbel
                # scale of the field's spread (channel c is field c % d, of either sign).
                n = float(min(max(seen[s], 1), window))
                log_n = np.log(n)
                for c in range(C):
                    if logp[c] < 0:
                        gumbel = ref_scale[c % d] / np.sqrt(2.0 * np.log(max(n, 3.0)))
                        fixed = scale * (high[s, c] - low[s, c])
                        factor = 1.0
                        if math.isfinite(gumbel) and gumbel > 0 and math.isfinite(fixed) and fixed > 0:
                            factor = np.minimum(1.0, fixed / gumbel)
                        logp[c] = -log_n + (logp[c] + log_n) * factor
            # The rarest value channel (folded as numpy's min over the channels).
            lp = logp[0]
            for c in range(1, C):
                lp = np.minimum(lp, logp[c])
            why = value_cause if lp < 0 else 0
            if pattern_logp[t, s] < lp:
                why = pattern_cause
                lp = pattern_logp[t, s]
            if per_stream != 0.0:
                lp = min(lp + per_stream, 0.0)
            if later_logp[t, s] < lp:
                why = later_cause[t, s]
                lp = later_logp[t, s]
            if not lp < 0:
                why = 0
            nv = -math.expm1(min(lp, 0.0) / score_power)
            _episode_step(t, s, present, ready, nv, lp, evidence_logp, why, fused, thresholds, X, centre, ref_scale,
                          distance, track_distance, z2_limit, level, memory, settle, refractory, cap, is_open, calm,
                          age, frozen_centre, frozen_scale, alert_score, since_alert, episode_distance,
                          out_score, out_anomalous, out_alert, out_novelty, out_cause)
            hold = is_open[s] and present[t, s] and age[s] <= memory
            _record_learn(t, s, U, present, warmup, window, step, step_after, recur_height, block, maxima, partial,
                          low, high, fill, slot, seen, accepted, accepted_until, cutting, cut, cut_until, second_high,
                          second_low, top, hold, True, holding, held, held_until)


@compiled
def pattern_ticks(X, present, stepped, first_row, length, block, history, resync, offsets, distance_floor, typical_rate,
                  error_rate, block_step, error_clip, distance_clip, spread_floor, young_tolerance,
                  block_sum, block_fill, block_size, blocks, origin, lagged, sqdist, low, high, span,
                  candidates, forecast, forecast_error, distance, typical, young,
                  out_ratio, out_z2, out_surprise, out_ready, out_distance):
    """``T`` calls of ``PatternDetector._score_and_learn`` (state arrays updated in place).

    Per tick and present stream: ``out_ratio`` the distance term of the log
    tail probability (``-distance / typical``), ``out_z2`` the forecast
    error's chi-square statistic and ``out_surprise`` whether it counts (the
    caller reads it with ``chi2_logp``), ``out_ready`` whether the stream
    scores, and ``out_distance`` every stream's :attr:`distance_` after the
    tick.  ``lagged`` and ``sqdist`` are float32, as in the detector, with
    the same casts.  The arrays may be a slice of the bank's rows starting at
    row ``first_row`` (streams take turns by row to resynchronise).  ``young``
    holds a young stream's block means until they are judged
    (``PatternDetector._judge_youth``, :func:`_judge_pattern_youth`).
    """
    T, S, d = X.shape
    m = length // block
    lags = history // block
    width = lagged.shape[2]
    n_young = young.shape[2]
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
                    if blocks[s] >= n_young and math.isfinite(reach) and reach > 0:
                        v = np.minimum(np.maximum(v, low[s, f] - reach), high[s, f] + reach)
                    summary[f] = v
                for f in range(d):
                    # Views and unsigned indices: loops over contiguous lags that the compiler vectorises.
                    newest = np.float32(summary[f])
                    past, sums = lagged[s, f], sqdist[s, f]
                    last_in = past[m - 1]
                    for lag in range(np.uint64(lags)):
                        a = newest - past[lag]
                        a = a * a
                        b = last_in - past[np.uint64(m) + lag]
                        b = b * b
                        entering[lag] = a - b
                    for lag in range(np.uint64(lags)):
                        sums[lag + np.uint64(1)] += entering[lag]
                    for step in range(np.uint64(width - 1)):
                        col = np.uint64(width - 1) - step
                        past[col] = past[col - np.uint64(1)]
                    past[0] = newest
                blocks[s] += 1
                n = blocks[s]
                if n <= n_young:
                    for f in range(d):
                        young[s, f, n - 1] = block_sum[s, f] / block_fill[s]
                if (n + first_row + s) % resync == 0:
                    for f in range(d):
                        _field_sqdist(s, f, m, lags, lagged, sqdist)
                for f in range(d):
                    low[s, f] = np.minimum(low[s, f], summary[f])
                    high[s, f] = np.maximum(high[s, f], summary[f])
                if n == n_young:
                    _judge_pattern_youth(s, m, lags, block_step, young_tolerance, young, origin, lagged, sqdist, low,
                                         high)
                for f in range(d):
                    span[s, f] = np.maximum(high[s, f] - low[s, f], spread_floor * (abs(high[s, f]) + 1.0))
                    inv[f] = 1.0 / span[s, f] ** 2
                best, nearest = -1, np.inf
                if d > 1:  # every lag's distance, field after field (each lag's sum in the same order)
                    for lag in range(np.uint64(lags + 1)):
                        total[lag] = 0.0
                    for f in range(d):
                        sums, weight = sqdist[s, f], inv[f]
                        for lag in range(np.uint64(lags + 1)):
                            total[lag] += np.float64(sums[lag]) * weight
                for lag in range(m, lags + 1):
                    if d == 1:
                        value = np.float64(sqdist[s, 0, lag]) / span[s, 0] ** 2
                    else:
                        value = total[lag]
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
            out_ready[t, s] = blocks[s] > n_young
            out_ratio[t, s] = -now / np.maximum(typical[s], distance_floor)
            if closed:
                old = typical[s]
                learned = np.minimum(now, distance_clip * old) if old > 0 else now
                typical[s] = old + typical_rate * (learned - old) if old > 0 else learned
        for s in range(S):
            out_distance[t, s] = distance[s]


def _field_sqdist(s, f, m, lags, lagged, sqdist):
    """Recompute stream ``s``'s field ``f`` squared distances exactly from its stored blocks (``_exact_sqdist``)."""
    for lag in range(lags + 1):
        sqdist[s, f, lag] = 0.0
    for j in range(m):
        for lag in range(lags + 1):
            diff = np.float64(lagged[s, f, j]) - np.float64(lagged[s, f, j + lag])
            sqdist[s, f, lag] = np.float32(np.float64(sqdist[s, f, lag]) + diff * diff)


def _judge_pattern_youth(s, m, lags, block_step, tolerance, young, origin, lagged, sqdist, low, high):
    """``PatternDetector._judge_youth`` for stream ``s``: a young extreme that would own a field's range (beyond
    the others by more than ``tolerance`` of their ranges) learned as winsorising would have learned it."""
    n = young.shape[2]
    for f in range(young.shape[1]):
        lowest, second_low, highest, second_high, unseen = np.inf, np.inf, -np.inf, -np.inf, False
        for k in range(n):  # np.sort's second lowest and second highest, ties counted
            v = young[s, f, k]
            if v != v:
                unseen = True
            if v < lowest:
                lowest, second_low = v, lowest
            elif v < second_low:
                second_low = v
            if v > highest:
                highest, second_high = v, highest
            elif v > second_high:
                second_high = v
        others = second_high - second_low
        reach = block_step * others
        bottom = second_low - reach if lowest < second_low - tolerance * others else -np.inf
        top = second_high + reach if highest > second_high + tolerance * others else np.inf
        if not unseen and math.isfinite(reach) and reach > 0 and (bottom > -np.inf or top < np.inf):
            base = np.minimum(np.maximum(young[s, f, 0], bottom), top)  # the first block as learned now
            origin[s, f] = base
            low[s, f], high[s, f] = np.inf, -np.inf
            for k in range(n):
                offset = np.minimum(np.maximum(young[s, f, k], bottom), top) - base
                lagged[s, f, n - 1 - k] = np.float32(offset)
                low[s, f] = np.minimum(low[s, f], offset)
                high[s, f] = np.maximum(high[s, f], offset)
            _field_sqdist(s, f, m, lags, lagged, sqdist)
        for k in range(n):  # judged once: not needed again
            young[s, f, k] = np.nan


@compiled
def embedding_points(points, previous, average, spread, count, started, alpha, dev_limit, spread_rate,
                     spread_floor, out_previous, out_average):
    """The running average of ``n`` successive points of one stream (``CausalEmbedding.transform_block``'s recursion).

    ``previous``, ``average``, ``spread`` ``(d,)`` are the stream's row,
    ``count`` and ``started`` one-element arrays, all updated in place; each
    point's previous point and average before it go to ``out_previous`` and
    ``out_average`` ``(n, d)``.  The same steps as ``CausalEmbedding.transform``:
    the average holds the first point until the third restarts it (and the
    spread) at the median of the three.
    """
    n, d = points.shape
    for k in range(n):
        first = not started[0]
        second = started[0] and count[0] == 0
        third = started[0] and count[0] == 1
        weight = max(1.0 / (count[0] + 1.0), spread_rate)
        for f in range(d):
            x = points[k, f]
            if first:
                previous[f] = x
                average[f] = x
            out_previous[k, f] = previous[f]
            out_average[k, f] = average[f]
            avg = average[f]
            if third:
                centre = median_of_three(avg, previous[f], x)
                spread[f] = median_of_three(abs(avg - centre), abs(previous[f] - centre), abs(x - centre))
                average[f] = centre
            else:
                learned = x
                if count[0] >= 2:
                    reach = dev_limit * max(spread[f], spread_floor * (abs(avg) + 1.0))
                    learned = np.minimum(np.maximum(x, avg - reach), avg + reach)
                if not first:
                    spread[f] = spread[f] + weight * (abs(learned - avg) - spread[f])
                if not second:  # the second point leaves the average at the first
                    average[f] = avg + alpha * (learned - avg)
            previous[f] = x
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
            _slide(current, size, old, new)
            for k in range(size):
                out[i * d + j, k] = current[k]


def _slide(current, size, old, new):
    """Replace one ``old`` in the sorted ``current[:size]`` by ``new``, keeping it sorted.

    The values between the leaving value's slot and the arriving value's
    move one place towards the gap (an insertion sort's step).  Both slots
    are counts of the values below (one pass over the window that the
    compiler vectorises: a binary search's branches go one way or the other
    at random, and each wrong guess costs more than comparing a whole
    100-slot window), so the move is a plain copy (unsigned indices: no
    check for negative ones).  The counts are what a binary search of the
    sorted window finds, so the window is the same.
    """
    below_old, below_new = 0, 0
    if new >= old:
        for k in range(size):
            below_old += 1 if current[k] < old else 0
            below_new += 1 if current[k] < new else 0
        at = below_old  # the first slot holding old
        to = max(at, below_new - 1)
        for k in range(np.uint64(at), np.uint64(to)):
            current[k] = current[k + np.uint64(1)]
    else:
        for k in range(size):
            below_old += 1 if current[k] < old else 0
            below_new += 1 if current[k] <= new else 0
        at, to = below_old, below_new
        for step in range(np.uint64(at - to)):
            k = np.uint64(at) - step
            current[k] = current[k - np.uint64(1)]
    current[to] = new


@compiled
def sorted_window_stats(padded, size, counts, levels, centre_level, with_deviation, out_quantiles, out_deviation,
                        out_mean_deviation):
    """Order statistics of each window of ``size`` successive rows of ``padded``, without writing the sorted rows.

    The windows are those of :func:`sorted_slides` (finite values, NaN for
    an unused slot), ``counts`` ``(n,)`` the values in each.  For row
    ``i * d + j`` (window ``i``, field ``j``) it writes what the numpy steps
    compute from that sorted row: ``out_quantiles`` ``(n * d, Q)`` the
    ``levels``' quantiles (``detectors.window.sorted_quantile``),
    ``out_mean_deviation`` the mean absolute deviation around quantile
    ``centre_level`` (``detectors.robust_window.deviation_floor`` before
    its factor: upper half minus lower half of a full window, else the mean
    of ``|v - centre|``), and with ``with_deviation`` ``out_deviation`` the
    lower median of those deviations (``detectors.mad.MADDetector._stats_of``:
    the merge of :func:`lower_median_deviation` on the ``count`` filled
    values, NaN for an empty window).  The window slides as in
    :func:`sorted_slides`; each statistic reads the sorted row in place.
    """
    rows, d = padded.shape
    n = rows - size + 1
    Q = levels.shape[0]
    windows = np.empty((d, size))  # every field's sorted window: rows of padded and of the outputs are read in order
    split = np.zeros(d, dtype=np.int64)  # each field's last split of its MAD (_lower_median_deviation)
    for j in range(d):
        for k in range(size):
            v = padded[k, j]
            windows[j, k] = np.inf if v != v else v
        windows[j].sort()
    for i in range(n):
        for j in range(d):
            current = windows[j]
            if i > 0:
                old = padded[i - 1, j]
                new = padded[i - 1 + size, j]
                old = np.inf if old != old else old
                new = np.inf if new != new else new
                _slide(current, size, old, new)
            r = i * d + j
            count = counts[i]
            last = max(count - 1, 0)
            for q in range(Q):
                pos = levels[q] * last
                lo = int(math.floor(pos))
                hi = min(lo + 1, last)
                a, b = current[lo], current[hi]
                gap = b - a
                if not math.isfinite(gap):
                    gap = 0.0
                out_quantiles[r, q] = a + (pos - lo) * gap if count > 0 else np.nan
            centre = out_quantiles[r, centre_level]
            if count == size:
                # Upper half minus lower half, in four interleaved partial sums (the same sums, rounding apart).
                half = size // 2
                lower_a, lower_b, upper_a, upper_b = 0.0, 0.0, 0.0, 0.0
                upper = current[half:]  # unsigned indices into views: the loop's loads go unchecked
                for pair in range(np.uint64(half // 2)):
                    at = pair * np.uint64(2)
                    lower_a += current[at]
                    lower_b += current[at + np.uint64(1)]
                    upper_a += upper[at]
                    upper_b += upper[at + np.uint64(1)]
                k = 2 * (half // 2)
                if k < half:
                    lower_a += current[k]
                    upper_a += current[half + k]
                for k in range(2 * half, size):
                    upper_a += current[k]
                out_mean_deviation[r] = ((upper_a + upper_b) - (lower_a + lower_b) - centre * (size - 2 * half)) / size
            else:
                total = 0.0
                for k in range(count):
                    total += abs(current[k] - centre)
                out_mean_deviation[r] = total / max(count, 1)
            if not with_deviation:
                continue
            if count == 0:
                out_deviation[r] = np.nan
                continue
            out_deviation[r] = _lower_median_deviation(current, count, centre, split, j)


def _lower_median_deviation(current, count, centre, split, j):
    """The lower median of ``|v - centre|`` over the ``count`` sorted values ``current[:count]``.

    The deviations left of the middle (``centre - current[half - t]``, the
    ``t``-th, rising with ``t``) and right of it (``current[half + u - 1] -
    centre``, the ``u``-th) are two sorted runs; the ``k``-th smallest of
    both, ``k = (count - 1) // 2 + 1``, is ``max(left t-th, right (k - t)-th)``
    at the best ``t``: the larger of the two runs' candidates just before and
    at the first ``t`` whose left deviation reaches the right one (both
    candidates are deviations, so the value is one of them, bit for bit
    what a binary search or a merge of the runs finds).  That first ``t``
    moves little from one window to the next, so the search starts from the
    field's last one (``split[j]``, updated) and walks: a step or two instead
    of a binary search's branches taken at random.
    """
    half = count // 2
    k = (count - 1) // 2 + 1
    lo, hi = max(0, k - (count - half)), min(k, half)
    t = min(max(split[j], lo), hi + 1)
    # reached(t): the t-th left deviation is at least the (k - t)-th right one (none right when t == k).
    while t <= hi and not (t > 0 and (t == k or centre - current[half - t] >= current[half + k - t - 1] - centre)):
        t += 1
    while t > lo and t - 1 > 0 and (t - 1 == k or centre - current[half - t + 1] >= current[half + k - t] - centre):
        t -= 1
    split[j] = t
    value = np.inf
    if t - 1 >= lo:  # before t: the right run's (k - t + 1)-th is the larger
        value = current[half + k - t] - centre
    if t <= hi:  # at t: the left run's t-th is the larger
        value = min(value, centre - current[half - t])
    return value


@compiled
def sliding_distances(padded, points, size, ridge, spread_floor, out_d2, out_mean, out_var):
    """Squared Mahalanobis distances of ``n`` points from their full trailing windows (``detectors.zscore``).

    Window ``i`` is ``padded[i : i + size]`` ``(size - 1 + n, d)``, every
    slot a finite value; point ``i`` is ``points[i]``.  Per point it does
    what ``window_moments`` then ``squared_distance`` do: the window's
    mean and unbiased covariance, each variance floored
    (``detectors.stats.floored``) and ridged, ``r' C^-1 r`` of the
    residual; the mean and floored variance go to ``out_mean`` and
    ``out_var`` ``(n, d)`` for the expected range.

    Instead of ``O(size * d^2)`` per point, the mean and co-moment slide by
    a rank-one update and downdate (``O(d^2)``), from the deviations to the
    current mean (no sum of squares to cancel), and are recomputed exactly
    every ``size`` points and whenever the leaving point lay far out (a
    spike leaving would leave its rounding behind); the solve is a Cholesky
    factorisation instead of numpy's LU (the same distance, rounding
    apart).  A point whose ridged covariance does not factorise gets NaN
    for the caller to compute with numpy.

    The covariances of :data:`SOLVE_LANES` successive points are factorised
    together (:func:`_factor_and_solve`): every operation of the
    factorisation is done for all of them at once, so it vectorises across
    the points instead of along a row of at most ``d`` values (each point's
    arithmetic, and so its distance, is the one-point factorisation's).
    """
    n, d = points.shape
    mean = np.empty(d)
    co = np.empty((d, d))   # co-moment sum (x - mean)(x - mean)' over the window, lower triangle used
    a = np.empty(d)
    b = np.empty(d)
    lanes = _solve_lanes(d)
    # Point ``lane`` of a batch: its ridged covariance, row g holding column g of its lower triangle, at
    # [(g * d + f) * lanes + lane] (upper triangle used), and its residual at [f * lanes + lane].
    upper = np.zeros(d * d * lanes)
    residual = np.zeros(d * lanes)
    inv_size, inv_dof = 1.0 / size, 1.0 / (size - 1)
    since_exact = size
    for i in range(n):
        exact = since_exact >= size
        if not exact:
            # Slide: x arrives, y leaves; a, b their deviations from the old mean.
            for f in range(d):
                a[f] = padded[i - 1 + size, f] - mean[f]
                b[f] = padded[i - 1, f] - mean[f]
            for f in range(d):
                mean[f] += (a[f] - b[f]) / size
            for f in range(d):
                for g in range(f + 1):
                    co[f, g] += a[f] * a[g] - b[f] * b[g] - (a[f] - b[f]) * (a[g] - b[g]) * inv_size
            for f in range(d):
                if b[f] * b[f] > 1e4 * co[f, f]:
                    exact = True
        if exact:
            for f in range(d):
                total = 0.0
                for k in range(size):
                    total += padded[i + k, f]
                mean[f] = total / size
            for f in range(d):
                for g in range(f + 1):
                    co[f, g] = 0.0
            for k in range(size):
                for f in range(d):
                    a[f] = padded[i + k, f] - mean[f]
                for f in range(d):
                    for g in range(f + 1):
                        co[f, g] += a[f] * a[g]
            since_exact = 0
        since_exact += 1
        # The ridged, floored covariance and the residual, into the point's lane of the batch.
        lane = i % lanes
        for f in range(d):
            var = np.maximum(co[f, f] * inv_dof, spread_floor * (abs(mean[f]) + 1.0))
            out_mean[i, f] = mean[f]
            out_var[i, f] = var
            upper[(f * d + f) * lanes + lane] = var * (1.0 + ridge)
            for g in range(f):
                upper[(g * d + f) * lanes + lane] = co[f, g] * inv_dof
            residual[f * lanes + lane] = points[i, f] - mean[f]
        if lane == lanes - 1 or i == n - 1:
            _factor_and_solve(upper, residual, d, lane + 1, out_d2[i - lane:i + 1])


#: Points whose covariances :func:`sliding_distances` factorises together (lanes of the vector operations),
#: as long as their covariances hold at most SOLVE_NUMBERS numbers (8 MB): many fields take fewer lanes.
SOLVE_LANES = 16
SOLVE_NUMBERS = 1 << 20


def _solve_lanes(d):
    """Lanes of :func:`sliding_distances` at ``d`` fields: :data:`SOLVE_LANES`, fewer (at least one) past
    :data:`SOLVE_NUMBERS` numbers of covariances (the arithmetic is the same at any count)."""
    return max(1, min(SOLVE_LANES, SOLVE_NUMBERS // (d * d)))


def _factor_and_solve(upper, residual, d, used, out_d2):
    """Squared distances ``out_d2`` ``(used,)`` of the first ``used`` lanes: ``r' C^-1 r`` by Cholesky.

    ``upper`` and ``residual`` are laid out as in :func:`sliding_distances`
    (overwritten).  Each lane's ridged covariance is factorised in place
    column after column (right-looking: each column's update of the later
    ones is a multiply-add per element, for every lane at once), then its
    residual solved forward, ``d2 = |chol^-1 r|^2``; a lane whose pivot is
    not positive gets NaN.  The lane count is read from the arrays' length,
    not a constant: a loop of unknown length over the lanes is vectorised
    by the compiler (with a check that the rows read and written do not
    overlap), where a fixed short one is unrolled into scalar operations.
    """
    lanes = np.uint64(residual.shape[0] // d)
    fields = np.uint64(d)
    one = np.uint64(1)
    count = np.uint64(used)
    ok = np.ones(used, dtype=np.bool_)
    inv_diagonal = np.empty(d * used)  # 1 / chol[f, f]: a multiplication per element instead of a division
    for j in range(fields):
        column = j * fields * lanes  # row j of upper: column j of the factor
        diagonal = column + j * lanes
        for lane in range(count):
            pivot = upper[diagonal + lane]
            if not pivot > 0:
                ok[lane] = False
                pivot = 1.0  # the lane's distance is NaN; its arithmetic goes on harmlessly
            root = math.sqrt(pivot)
            inv_diagonal[j * count + lane] = 1.0 / root
            upper[diagonal + lane] = root
        for f in range(j + one, fields):
            at = column + f * lanes
            for lane in range(count):
                upper[at + lane] = upper[at + lane] * inv_diagonal[j * count + lane]
        for k in range(j + one, fields):
            later = k * fields * lanes
            factor = column + k * lanes
            for f in range(k, fields):
                at = f * lanes
                for lane in range(count):
                    upper[later + at + lane] -= upper[column + at + lane] * upper[factor + lane]
    # Forward substitution, column after column too: z = chol^-1 (x - mean), d2 = |z|^2.
    d2 = np.zeros(used)
    for j in range(fields):
        column = j * fields * lanes
        for lane in range(count):
            solved = residual[j * lanes + lane] * inv_diagonal[j * count + lane]
            residual[j * lanes + lane] = solved
            d2[lane] += solved * solved
        for f in range(j + one, fields):
            for lane in range(count):
                residual[f * lanes + lane] -= upper[column + f * lanes + lane] * residual[j * lanes + lane]
    for lane in range(used):
        out_d2[lane] = d2[lane] if ok[lane] else np.nan


@compiled
def quartile_spreads(q1, median, q3, floor, spread_floor, quartile_z, out_low, out_high):
    """The spreads below and above the median (``detectors.iqr.IQRDetector._stats_from``), in one pass.

    For each element, the operations numpy does over whole arrays, in its
    order: the half interquartile range and each half's spread raised to
    the relative floor (``detectors.stats.floored``), an empty half
    borrowing the half range, divided by ``quartile_z`` and raised to the
    mean-deviation ``floor``; so the same bits, without a dozen temporaries
    of a block's size.
    """
    for i in range(median.shape[0]):
        m, low, high = median[i], q1[i], q3[i]
        relative = spread_floor * (abs(m) + 1.0)
        both = np.maximum(0.5 * (high - low), relative)
        below = m - low
        above = high - m
        lower = np.maximum(below if below > 0 else both, relative)
        upper = np.maximum(above if above > 0 else both, relative)
        out_low[i] = np.maximum(lower / quartile_z, floor[i])
        out_high[i] = np.maximum(upper / quartile_z, floor[i])


@compiled
def trailing_means(padded, size, power, full, out):
    """``window_mean`` of each window of ``size`` successive rows of ``padded`` ``(size - 1 + n, d)``.

    Row ``i`` of ``out`` ``(n, d)`` is the mean of ``padded[i : i + size]``
    raised to ``power`` (1 or 2), skipping NaN slots (NaN when all are),
    or with ``full`` the plain mean, as ``detectors.window.window_mean``
    computes it; without the ``(n, size, d)`` temporaries.
    """
    n, d = out.shape
    if d < 4:  # a field at a time, its sum in a register
        for i in range(n):
            for f in range(d):
                total_f = 0.0
                filled_f = 0
                for k in range(size):
                    v = padded[i + k, f]
                    if power == 2:
                        v = v * v
                    if full or v == v:
                        total_f += v
                        filled_f += 1
                out[i, f] = total_f / filled_f
        return
    # Many fields: every field's sum at once, row after row of the window.  Each field's values
    # are added in the same order as above, and the loop over the fields vectorises (unsigned
    # indices: no check for negative ones).
    total = np.empty(d)
    filled = np.empty(d)
    fields = np.uint64(d)
    for i in range(n):
        for f in range(fields):
            total[f] = 0.0
            filled[f] = 0.0
        for k in range(np.uint64(size)):
            row = np.uint64(i) + k
            for f in range(fields):
                v = padded[row, f]
                if power == 2:
                    v = v * v
                if full or v == v:
                    total[f] += v
                    filled[f] += 1.0
        for f in range(fields):
            out[i, f] = total[f] / filled[f]


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
    # The remembered scores sorted, kept from one fit to the next inside the call: a fit merges the
    # scores that came and went since the last one into it instead of sorting ``memory`` scores again.
    ordered = np.empty(memory, dtype=np.float32)
    merged = np.empty(memory, dtype=np.float32)
    m = -1  # scores in ``ordered``; -1 while it must be sorted afresh
    changes = memory // 2  # most scores followed between two fits; beyond, the next fit sorts afresh
    came = np.empty(changes, dtype=np.float32)
    went = np.empty(changes, dtype=np.float32)
    n_came, n_went = 0, 0
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
                value = np.float32(np.minimum(np.maximum(r, -big), big))
                slot = count[0] % memory
                if m >= 0 and n_came < changes:
                    if history[slot] == history[slot]:
                        went[n_went] = history[slot]
                        n_went += 1
                    came[n_came] = value
                    n_came += 1
                else:
                    m = -1
                history[slot] = value
                count[0] += 1
            if count[0] % every != 0:
                continue
        # fit
        n = min(count[0], memory)
        if n < min_scores:
            continue
        if m >= 0:
            m = _merge_changes(ordered, m, went, n_went, came, n_came, merged)
        if m < 0:
            m = 0
            for i in range(memory):
                if history[i] == history[i]:
                    ordered[m] = history[i]
                    m += 1
            ordered[:m].sort()
        n_came, n_went = 0, 0
        beta[0] = _calibration_fit(ordered, n, levels, memory, big, log2, knots)
        fitted[0] = True


def _calibration_fit(ordered, n, levels, memory, big, log2, knots):
    """Fit a calibrator to its sorted scores ``ordered[:n]``: ``knots`` ``(K,)`` at ``levels``, in
    place; returns ``beta``, the tail's scale above the last knot (float32; shared by
    :func:`calibrated_points` and the streaming step's ``calibrated_rows``)."""
    K = knots.shape[0]
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
    return np.float32(np.maximum(scale, np.float64(least)))


def _merge_changes(ordered, m, went, n_went, came, n_came, merged):
    """The sorted ``ordered[:m]`` without the scores ``went[:n_went]`` and with ``came[:n_came]``, in place.

    Returns the new count, or -1 when a score that went is not there (the
    caller then sorts afresh).  Equal scores are interchangeable, so the
    result is the sorted array a fresh sort gives.
    """
    _insertion_sort(went, n_went)
    _insertion_sort(came, n_came)
    g, c, size = 0, 0, 0
    for i in range(m):
        v = ordered[i]
        if g < n_went and v == went[g]:
            g += 1
            continue
        while c < n_came and came[c] < v:
            merged[size] = came[c]
            size += 1
            c += 1
        merged[size] = v
        size += 1
    if g < n_went:
        return -1
    while c < n_came:
        merged[size] = came[c]
        size += 1
        c += 1
    for i in range(size):
        ordered[i] = merged[i]
    return size


def _insertion_sort(values, n):
    """Sort ``values[:n]`` in place (a few dozen scores: faster than a general sort)."""
    for i in range(1, n):
        v = values[i]
        j = i
        while j > 0 and values[j - 1] > v:
            values[j] = values[j - 1]
            j -= 1
        values[j] = v


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
def tree_walks(node_words, leaf_words, owner, xq, n_trees, n_inner, n_leaves, depth, mask, shift, out):
    """Sum of leaf path lengths of each point over its stream's trees (``detectors.isolation_forest.mean_path_length``).

    ``node_words`` int16 and ``leaf_words`` uint8 are the flat forests, tree
    ``owner[p] * n_trees + t`` at ``tree * n_inner`` and ``tree * n_leaves``;
    ``xq`` ``(N, m)`` int16 the quantised points.  A node word holds the
    feature in its low ``shift`` bits and the threshold above them; a point
    goes right when its value exceeds the threshold.  ``out`` ``(N,)`` gets
    each point's sum over its trees (small integers: exact in any order).
    Four points walk side by side: a walk is a chain of dependent loads,
    and four independent chains keep the core busy while each one waits.
    """
    N = owner.shape[0]
    full = N - N % 4
    for p in range(0, full, 4):
        first0, first1 = owner[p] * n_trees, owner[p + 1] * n_trees
        first2, first3 = owner[p + 2] * n_trees, owner[p + 3] * n_trees
        total0, total1, total2, total3 = 0.0, 0.0, 0.0, 0.0
        for t in range(n_trees):
            base0, base1 = (first0 + t) * n_inner, (first1 + t) * n_inner
            base2, base3 = (first2 + t) * n_inner, (first3 + t) * n_inner
            node0, node1, node2, node3 = 0, 0, 0, 0
            for _ in range(depth):
                word0, word1 = node_words[base0 + node0], node_words[base1 + node1]
                word2, word3 = node_words[base2 + node2], node_words[base3 + node3]
                node0 = 2 * node0 + (2 if xq[p, word0 & mask] > (word0 >> shift) else 1)
                node1 = 2 * node1 + (2 if xq[p + 1, word1 & mask] > (word1 >> shift) else 1)
                node2 = 2 * node2 + (2 if xq[p + 2, word2 & mask] > (word2 >> shift) else 1)
                node3 = 2 * node3 + (2 if xq[p + 3, word3 & mask] > (word3 >> shift) else 1)
            total0 += leaf_words[(first0 + t) * n_leaves + node0 - n_inner]
            total1 += leaf_words[(first1 + t) * n_leaves + node1 - n_inner]
            total2 += leaf_words[(first2 + t) * n_leaves + node2 - n_inner]
            total3 += leaf_words[(first3 + t) * n_leaves + node3 - n_inner]
        out[p], out[p + 1], out[p + 2], out[p + 3] = total0, total1, total2, total3
    for p in range(full, N):
        total = 0.0
        for t in range(n_trees):
            tree = owner[p] * n_trees + t
            node = 0
            for _ in range(depth):
                word = node_words[tree * n_inner + node]
                value = xq[p, word & mask]
                node = 2 * node + (2 if value > (word >> shift) else 1)
            total += leaf_words[tree * n_leaves + node - n_inner]
        out[p] = total


@compiled
def lof_points(reference_t, k_distance, lrd, owner, x, n_neighbors, out):
    """LOF of new points, each against its stream's reference set (``detectors.lof.lof_score``), in float32 as it.

    ``reference_t`` ``(S, m, W)``, ``k_distance`` and ``lrd`` ``(S, W)`` are
    the bank's fitted arrays (float32, unused slots ``inf``), ``owner``
    ``(N,)`` each point's stream and ``x`` ``(N, m)`` float32 the points.
    The float32 sums over the ``W`` slots follow numpy's pairwise summation
    (eight lanes, combined pairwise, the remainder after): the same bits as
    ``np.where(near, reach, 0).sum(axis=1)``, so the same LOFs.
    """
    N, m = x.shape
    W = reference_t.shape[2]
    squared = np.empty(W, dtype=np.float32)
    smallest = np.empty(n_neighbors, dtype=np.float32)
    reach_lanes = np.empty(8, dtype=np.float32)
    lrd_lanes = np.empty(8, dtype=np.float32)
    zero = np.float32(0.0)
    for p in range(N):
        s = owner[p]
        for w in range(W):
            squared[w] = zero
        for j in range(m):
            # One feature's differences to every slot: contiguous, unsigned indices, so it vectorises.
            slots, value = reference_t[s, j], x[p, j]
            for w in range(np.uint64(W)):
                diff = slots[w] - value
                diff = diff * diff
                squared[w] = squared[w] + diff
        # The k-th smallest squared distance (np.partition's), by insertion into the k smallest so far.
        for i in range(n_neighbors):
            smallest[i] = np.inf
        for w in range(W):
            v = squared[w]
            if v < smallest[n_neighbors - 1]:
                i = n_neighbors - 1
                while i > 0 and smallest[i - 1] > v:
                    smallest[i] = smallest[i - 1]
                    i -= 1
                smallest[i] = v
        k_squared = smallest[n_neighbors - 1]
        n_near = 0
        # Each slot's reach distance and lrd where near, else 0, summed as numpy sums a row.
        for w in range(W):
            near = squared[w] <= k_squared
            if near:
                n_near += 1
        reach_sum, lrd_sum = zero, zero
        if W < 8:
            for w in range(W):
                if squared[w] <= k_squared:
                    reach_sum += np.maximum(np.sqrt(squared[w]), k_distance[s, w])
                    lrd_sum += lrd[s, w]
        else:
            # Slot w adds to lane w % 8, block of eight after block (the lanes' loop vectorises).
            reaches, rates = k_distance[s], lrd[s]
            for w in range(np.uint64(8)):
                near = squared[w] <= k_squared
                reach_lanes[w] = np.maximum(np.sqrt(squared[w]), reaches[w]) if near else zero
                lrd_lanes[w] = rates[w] if near else zero
            for block in range(np.uint64(1), np.uint64(W // 8)):
                for lane in range(np.uint64(8)):
                    w = block * np.uint64(8) + lane
                    near = squared[w] <= k_squared
                    reach_lanes[lane] += np.maximum(np.sqrt(squared[w]), reaches[w]) if near else zero
                    lrd_lanes[lane] += rates[w] if near else zero
            reach_sum = ((reach_lanes[0] + reach_lanes[1]) + (reach_lanes[2] + reach_lanes[3])) + (
                (reach_lanes[4] + reach_lanes[5]) + (reach_lanes[6] + reach_lanes[7]))
            lrd_sum = ((lrd_lanes[0] + lrd_lanes[1]) + (lrd_lanes[2] + lrd_lanes[3])) + (
                (lrd_lanes[4] + lrd_lanes[5]) + (lrd_lanes[6] + lrd_lanes[7]))
            for w in range(W - (W % 8), W):
                near = squared[w] <= k_squared
                reach_sum += np.maximum(np.sqrt(squared[w]), k_distance[s, w]) if near else zero
                lrd_sum += lrd[s, w] if near else zero
        mean_reach = np.float64(reach_sum) / n_near
        mean_lrd = np.float64(lrd_sum) / n_near
        out[p] = mean_lrd * (mean_reach + 1e-10)


@compiled
def lof_reference(window, limit, out_center, out_scale, out_reference, out_reference_t):
    """One stream's LOF reference set from its full window (``detectors.lof`` ``_refit``'s standardisation).

    ``window`` ``(W, m)`` float32, every slot filled.  Per feature, what
    ``detectors.features.robust_center_scale`` gives for a full window: the
    median (the mean of the two middle values for even ``W``) and 1.4826
    times the median absolute deviation from it, in float64, then cast to
    float32; then ``(value - centre) / scale`` in float32, clipped to
    ``+-limit``.  Writes the centre and scale ``(m,)``, the reference
    ``(W, m)`` and its transpose ``(m, W)``, and returns True; returns False,
    writing nothing, when a value is not finite or a feature is flat (a MAD
    of at most ``1e-9 (1 + |centre|)``): numpy's path handles those.
    """
    W, m = window.shape
    ordered = np.empty(W)
    centre = np.empty(m)
    scale = np.empty(m)
    half = W // 2
    for f in range(m):
        for i in range(W):
            v = np.float64(window[i, f])
            if not math.isfinite(v):
                return False
            ordered[i] = v
        ordered.sort()
        centre[f] = ordered[half] if W % 2 else (ordered[half - 1] + ordered[half]) / 2
        for i in range(W):
            ordered[i] = abs(np.float64(window[i, f]) - centre[f])
        ordered.sort()
        scale[f] = 1.4826 * (ordered[half] if W % 2 else (ordered[half - 1] + ordered[half]) / 2)
        if scale[f] <= 1e-9 * (1.0 + abs(centre[f])):
            return False
    top, bottom = np.float32(limit), np.float32(-limit)
    for f in range(m):
        c, s = np.float32(centre[f]), np.float32(scale[f])
        out_center[f], out_scale[f] = c, s
        for i in range(W):
            value = min(max((window[i, f] - c) / s, bottom), top)
            out_reference[i, f] = value
            out_reference_t[f, i] = value
    return True


@compiled
def lof_fits(reference, n_neighbors, out_k_distance, out_lrd, out_lof):
    """k-distance, lrd and LOF of every reference point (``detectors.lof.lof_fit``), in its dtypes and sum orders.

    ``reference`` ``(s, W, m)`` float32, NaN rows unused.  Distances,
    k-distances and reach distances in float32, as ``lof_fit`` computes
    them; a row's sums over the ``W`` slots in numpy's pairwise order
    (eight lanes, combined pairwise, the remainder after): float32 for the
    reach distances, float64 for the neighbours' lrd.  Writes
    ``out_k_distance`` and ``out_lrd`` ``(s, W)`` float32 and ``out_lof``
    ``(s, W)`` float64 (unused slots inf, 0 and NaN).
    """
    S, W, m = reference.shape
    k = n_neighbors
    filled = np.empty((W, m), dtype=np.float32)
    features = np.empty((m, W), dtype=np.float32)  # filled, feature-major
    unused = np.empty(W, dtype=np.bool_)
    squared = np.empty((W, W), dtype=np.float32)
    k_squared = np.empty(W, dtype=np.float32)
    n_near = np.empty(W, dtype=np.int64)
    smallest = np.empty(k, dtype=np.float32)
    lrd = np.empty(W)
    lanes32 = np.empty(8, dtype=np.float32)
    lanes64 = np.empty(8)
    zero32 = np.float32(0.0)
    tail = W - (W % 8)
    for s in range(S):
        for a in range(W):
            unused[a] = False
            for f in range(m):
                if reference[s, a, f] != reference[s, a, f]:
                    unused[a] = True
            for f in range(m):
                filled[a, f] = np.inf if unused[a] else reference[s, a, f]
        for f in range(m):
            for a in range(W):
                features[f, a] = filled[a, f]
        for a in range(W):
            row = squared[a]
            for b in range(W):
                row[b] = zero32
            for f in range(m):
                # One feature's differences to every slot: contiguous, unsigned indices, so it vectorises.
                slots, value = features[f], filled[a, f]
                for b in range(np.uint64(W)):
                    diff = value - slots[b]
                    diff = diff * diff
                    row[b] = row[b] + diff
            for b in range(W):
                if squared[a, b] != squared[a, b]:
                    squared[a, b] = np.inf
            squared[a, a] = np.inf
            for i in range(k):
                smallest[i] = np.inf
            for b in range(W):
                v = squared[a, b]
                if v < smallest[k - 1]:
                    i = k - 1
                    while i > 0 and smallest[i - 1] > v:
                        smallest[i] = smallest[i - 1]
                        i -= 1
                    smallest[i] = v
            k_squared[a] = smallest[k - 1]
            count = 0
            for b in range(W):
                if squared[a, b] <= k_squared[a]:
                    count += 1
            n_near[a] = count
        for a in range(W):
            # Reach distances of the neighbours, summed as numpy sums the row (float32).
            total = zero32
            if W < 8:
                for b in range(W):
                    if squared[a, b] <= k_squared[a]:
                        total += np.sqrt(np.maximum(squared[a, b], k_squared[b]))
            else:
                # Slot b adds to lane b % 8, block of eight after block (the lanes' loop vectorises).
                row, limit = squared[a], k_squared[a]
                for b in range(np.uint64(8)):
                    lanes32[b] = np.sqrt(np.maximum(row[b], k_squared[b])) if row[b] <= limit else zero32
                for block in range(np.uint64(1), np.uint64(W // 8)):
                    for lane in range(np.uint64(8)):
                        b = block * np.uint64(8) + lane
                        lanes32[lane] += np.sqrt(np.maximum(row[b], k_squared[b])) if row[b] <= limit else zero32
                total = ((lanes32[0] + lanes32[1]) + (lanes32[2] + lanes32[3])) + (
                    (lanes32[4] + lanes32[5]) + (lanes32[6] + lanes32[7]))
                for b in range(tail, W):
                    if squared[a, b] <= k_squared[a]:
                        total += np.sqrt(np.maximum(squared[a, b], k_squared[b]))
            lrd[a] = 1.0 / (np.float64(total) / n_near[a] + 1e-10)
        for a in range(W):
            # The neighbours' lrd, summed as numpy sums the row (float64).
            total = 0.0
            if W < 8:
                for b in range(W):
                    if squared[a, b] <= k_squared[a]:
                        total += lrd[b]
            else:
                row, limit = squared[a], k_squared[a]
                for b in range(np.uint64(8)):
                    lanes64[b] = lrd[b] if row[b] <= limit else 0.0
                for block in range(np.uint64(1), np.uint64(W // 8)):
                    for lane in range(np.uint64(8)):
                        b = block * np.uint64(8) + lane
                        lanes64[lane] += lrd[b] if row[b] <= limit else 0.0
                total = ((lanes64[0] + lanes64[1]) + (lanes64[2] + lanes64[3])) + (
                    (lanes64[4] + lanes64[5]) + (lanes64[6] + lanes64[7]))
                for b in range(tail, W):
                    if squared[a, b] <= k_squared[a]:
                        total += lrd[b]
            out_lof[s, a] = np.nan if unused[a] else total / n_near[a] / lrd[a]
            out_k_distance[s, a] = np.inf if unused[a] else np.sqrt(k_squared[a])
            out_lrd[s, a] = 0.0 if unused[a] else np.float32(lrd[a])


@compiled
def forest_samples(points, n_valid, keys, n_trees, sample_size, n_inner, node_domain, out_values, out_used,
                   out_start, out_fraction):
    """The random draws and samples of ``detectors.isolation_forest.build_forests``, the same integers.

    For stream ``i`` (``points`` ``(s, W, m)`` int16, ``n_valid`` and
    ``keys`` ``(s,)``): slot ``j`` of tree ``t`` samples window point
    ``pick`` (slot ``j`` itself when the window holds at most
    ``sample_size`` points, else ``(32 random bits * n_valid) >> 32``,
    below ``W``), the 32-bit halves of the splitmix64 words of counters
    ``0, 1, ..`` under the stream's key; node ``k`` of each tree draws from
    counters ``node_domain + ..``: a start feature ``((bits & 0xFFFF) * m)
    >> 16`` and a split fraction ``(bits >> 16) * 2**-16``.  Writes the
    sampled points feature-major ``out_values`` ``(m, s * n_trees *
    sample_size)``, which of them count ``out_used``, and ``out_start`` and
    ``out_fraction`` ``(s * n_trees, n_inner)``.
    """
    s, w, m = points.shape
    per_stream = n_trees * sample_size
    golden = np.uint64(0x9E3779B97F4A7C15)
    for i in range(s):
        key = keys[i]
        valid = n_valid[i]
        psi = min(valid, sample_size)
        for k in range(per_stream):
            bits = _half_word(key, np.uint64(k >> 1), k & 1, golden)
            slot = k % sample_size
            pick = slot if valid <= sample_size else (bits * valid) >> 32
            pick = min(pick, w - 1)
            at = i * per_stream + k
            for f in range(m):
                out_values[f, at] = points[i, pick, f]
            out_used[at] = slot < psi
        for t in range(n_trees):
            for node in range(n_inner):
                k = t * n_inner + node
                bits = _half_word(key, node_domain + np.uint64(k >> 1), k & 1, golden)
                out_start[i * n_trees + t, node] = ((bits & 0xFFFF) * m) >> 16
                out_fraction[i * n_trees + t, node] = (bits >> 16) * 2.0**-16


def _half_word(key, counter, high, golden):
    """The low (``high`` 0) or high 32 bits, as int64, of splitmix64's word for ``(key, counter)``
    (``detectors.isolation_forest._draw`` then ``_halves``)."""
    z = key + (counter + np.uint64(1)) * golden
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return np.int64(z >> np.uint64(32)) if high else np.int64(z & np.uint64(0xFFFFFFFF))


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
    server scores, and the engine's first tick, do not wait about 20 s for
    the compiler.  Scores a seeded series of one field and one of 38 (a wide
    embedding is standardised by a kernel of its own), long enough for the
    refitted members to refit inside a block, and steps a small bank of each
    tick by tick (the streaming step's kernels, :mod:`detectors.bank_kernels`)
    until its members have refitted.
    """
    from .ensemble import EnsembleDetector

    rng = np.random.default_rng(0)
    for fields in (1, 38):
        EnsembleDetector().label_series(rng.normal(0.0, 1.0, (rows, fields)))
        _step_small_bank(fields)
    _loaded.append(True)


#: Set once :func:`load_for_threads` (or :func:`warm_up`) has run in this process.
_loaded: list = []


def load_for_threads() -> None:
    """Load the streaming step's kernels on the calling thread, once per process, before threads call them.

    Under gevent (the server's worker) numba's import makes its compiler lock
    a gevent lock, which a native worker thread must never wait on: a kernel
    compiled or loaded from the cache there first would hang the tick.  So
    the engine calls this before it hands banks to its threads: a small bank
    stepped here until its members have refitted, and a short block, make
    every kernel of the step (and of a refit inside a block) ready, and the
    threads then only run them.  About a second on a first tick when the
    kernels are cached (:func:`warm_up` at install).
    """
    if _loaded:
        return
    from .ensemble import EnsembleDetector

    _step_small_bank(1)
    EnsembleDetector().label_series(np.random.default_rng(0).normal(0.0, 1.0, (200, 1)))
    _loaded.append(True)


def _step_small_bank(fields: int) -> None:
    """Step a bank of four streams tick by tick until its members have refitted and calibrated."""
    from .ensemble import EnsembleDetector

    rng = np.random.default_rng(1)
    bank = EnsembleDetector().reset(4, fields)
    for _ in range(160):
        bank.step(rng.normal(0.0, 1.0, (4, fields)))
