"""What several members of the ensemble compute alike from a block, computed once for all of them.

The default ensemble's ``iqr`` and ``mad`` members each keep the last
``window`` values of every field, sorted, and a block slides both sorted
windows over the same points (:func:`detectors.window.trailing_order_stats`,
the largest share of a wide block's time).  Inside :func:`sharing` (the
ensemble scores its members' blocks there), the first member to ask for
the statistics of some history and points gets them from one slide that
reads every level either member needs; the next member asking for the same
windows reads its own levels from that result instead of sliding again.
Each statistic is computed by the same kernel code from the same sorted
window whether it is shared or not, so the scores do not change.

The refitted members (``lof`` and ``isolation_forest`` by default) both
embed a block's points with a :class:`~detectors.features.CausalEmbedding`
of the same parameters, from the same running state (both have learned the
same points): :func:`embedded` gives the second one the first one's features
and state after the block instead of a second pass (at 38 fields the
embedding's recursion, standardisation and projection cost about 3 us a
point each time).  It is shared only when the parameters, the stream's
embedding state and the points are equal, so the features are those the
member would compute itself.

Outside :func:`sharing` nothing is kept: a member scored alone computes its
own statistics.  Inside, what waits for its second reader is a few numbers
per point and field, at most :data:`KEPT_NUMBERS` in all (past that, each
member computes its own), dropped when the block ends.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from .base import BLOCK_NUMBERS
from .window import trailing_order_stats

__all__ = ["sharing", "order_stats", "embedded"]

#: Quantile levels one shared slide reads (iqr's quartiles; mad's median among them), and the centre's.
SHARED_LEVELS = (0.25, 0.5, 0.75)
SHARED_CENTRE = 1
#: Most numbers kept for a second reader at once (64 MB): a long wide block is shared up to there.
KEPT_NUMBERS = 4 * BLOCK_NUMBERS

_state = threading.local()


@contextlib.contextmanager
def sharing():
    """Let the members scored inside share their trailing windows' order statistics (see the module docstring)."""
    outer = getattr(_state, "entries", None)
    if outer is None:
        _state.entries, _state.kept = {}, 0
    try:
        yield
    finally:
        if outer is None:
            _state.entries, _state.kept = None, 0


def order_stats(history, points, size: int, levels: tuple, centre: int, with_deviation: bool):
    """:func:`~detectors.window.trailing_order_stats` of ``levels``, shared inside :func:`sharing` when it can be.

    Returns what ``trailing_order_stats(history, points, size, levels,
    centre, with_deviation)`` returns.  A request is shared when its levels
    are among :data:`SHARED_LEVELS` and its centre is their median.
    """
    entries = getattr(_state, "entries", None)
    shareable = (entries is not None and all(level in SHARED_LEVELS for level in levels)
                 and levels[centre] == SHARED_LEVELS[SHARED_CENTRE])
    if not shareable:
        return trailing_order_stats(history, points, size, levels, centre, with_deviation)
    # Found by a digest of the windows' values, then compared in full (a digest can collide).
    digest = (size, history.shape, points.shape, hash(history.tobytes()), hash(points.tobytes()))
    value = _take(digest, lambda key: _same_windows(key, (size, history, points)))
    if value is not None:
        return _read(value, levels, with_deviation)
    # What an entry holds: the windows' history and points, their statistics and counts.
    n, d = points.shape
    numbers = history.size + points.size + n * d * (len(SHARED_LEVELS) + 2) + n
    if not _fits(numbers):
        return trailing_order_stats(history, points, size, levels, centre, with_deviation)
    value = trailing_order_stats(history, points, size, SHARED_LEVELS, SHARED_CENTRE, True)
    _keep(digest, (size, history.copy(), points.copy()), value, numbers)
    return _read(value, levels, with_deviation)


def _take(digest, same):
    """The value kept under ``digest`` whose key ``same`` accepts, removed (it was kept for this,
    its second reader: no other member asks for it); None when there is none."""
    entries = _state.entries
    waiting = entries.get(digest, [])
    for k, (key, value, numbers) in enumerate(waiting):
        if same(key):
            del waiting[k]
            if not waiting:
                del entries[digest]
            _state.kept -= numbers
            return value
    return None


def _fits(numbers: int) -> bool:
    """Whether an entry of ``numbers`` numbers may be kept (at most :data:`KEPT_NUMBERS` at once)."""
    return _state.kept + numbers <= KEPT_NUMBERS


def _keep(digest, key, value, numbers: int) -> None:
    """Keep ``value`` under ``digest`` for its second reader, who finds it by ``key`` (:func:`_take`)."""
    _state.entries.setdefault(digest, []).append((key, value, numbers))
    _state.kept += numbers


def _same_windows(key, other) -> bool:
    (size, history, points), (other_size, other_history, other_points) = key, other
    return (size == other_size and history.shape == other_history.shape and points.shape == other_points.shape
            and np.array_equal(history, other_history) and np.array_equal(points, other_points))


def _read(value, levels, with_deviation):
    quantiles, deviation, mean_deviation, counts = value
    columns = [SHARED_LEVELS.index(level) for level in levels]
    return quantiles[:, columns], deviation if with_deviation else None, mean_deviation, counts


def embedded(embedding, row: int, points: np.ndarray) -> np.ndarray:
    """``embedding.transform_block(row, points)``, shared inside :func:`sharing` with an embedding alike.

    An embedding is alike when its parameters and stream ``row``'s state
    (:func:`_embedding_state`) are equal; the second one asking takes the
    first one's features and its state after the block.
    """
    entries = getattr(_state, "entries", None)
    if entries is None:
        return embedding.transform_block(row, points)
    before = _embedding_state(embedding, row)
    digest = ("embedding", embedding.embed, embedding.span, embedding.max_width, points.shape,
              hash(points.tobytes()), tuple(hash(part.tobytes()) for part in before))
    kept = _take(digest, lambda key: np.array_equal(key[0], points)
                 and all(np.array_equal(a, b) for a, b in zip(key[1], before)))
    if kept is not None:
        features, after = kept
        for name, value in zip(_state_names(embedding), after):
            getattr(embedding, name)[row] = value
        return features.copy()
    features = embedding.transform_block(row, points)
    numbers = points.size + features.size + 2 * sum(part.size for part in before)
    if _fits(numbers):
        _keep(digest, (points.copy(), before), (features.copy(), _embedding_state(embedding, row)), numbers)
    return features


#: A causal embedding's per-stream state, and what a projection of many fields adds to it.
_EMBEDDING_STATE = ("previous_", "average_", "spread_", "deviations_", "started_")
_PROJECTION_STATE = ("scaled_count_", "feature_centre_", "feature_scale_")


def _state_names(embedding) -> tuple:
    return _EMBEDDING_STATE + (_PROJECTION_STATE if embedding.projection_ is not None else ())


def _embedding_state(embedding, row: int) -> tuple:
    """Copies of stream ``row``'s embedding state, in :func:`_state_names` order."""
    return tuple(np.array(getattr(embedding, name)[row], copy=True) for name in _state_names(embedding))
