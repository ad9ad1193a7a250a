"""Isolation Forest, one small forest per stream, kept in numpy arrays and scored one tick at a time.

Each stream keeps a sliding window of its recent causal feature vectors
(:class:`~detectors.features.CausalEmbedding`, by default the change since
the previous point and the deviation from a moving average) and regrows its
forest on that window every ``refit_every`` points; a
:class:`~detectors.features.RefitSchedule` lets only a slice of the streams
refit on any one tick.  A tick is scored for all streams at once by walking
every stream's trees one depth level at a time with flat fancy indexing; no
per-stream model object exists.  Random draws come from a counter-based
hash of (seed, fit number, tree, node), so a stream's forests do not depend
on the other streams of its bank.

Storage, per stream:

* the window's features are standardised with the window's median and
  robust scale and quantised to int16 steps of 1/256 robust SD (clipped at
  +-8 SD), so every split is an integer comparison;
* every tree is a complete binary tree of depth ``D = ceil(log2(sample_size))``
  in heap order; an internal node is one int16 word
  ``threshold << 4 | feature`` (a point goes right when its value exceeds the
  threshold).  A node where isolation stopped early (one point left, or no
  feature varies) routes everything left, and the leftmost leaf below it
  holds the path length ``depth + c(n)``;
* every leaf is one uint8: the path length times a fixed scale.

The raw score is the usual ``2 ** (-E[h] / c(psi))``; a
:class:`~detectors.calibration.TailCalibrator` maps it to ``1 - p``.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .refitted import RefittedModelDetector
from .calibration import TailCalibrator
from .features import CausalEmbedding, RefitSchedule, robust_center_scale
from .registry import register
from .window import RollingWindow

__all__ = [
    "IsolationForestDetector",
    "average_path_length",
    "build_forests",
    "mean_path_length",
    "quantise",
]

_FEATURE_BITS = 4
_MAX_FEATURES = 1 << _FEATURE_BITS
_Q_LIMIT = 2047  # 12-bit signed thresholds leave 4 bits of the int16 word for the feature
_Q_PER_SD = 256.0
_ROUTE_LEFT = np.int16(_Q_LIMIT << _FEATURE_BITS)  # no quantised value exceeds it
_MIN_FIT_POINTS = 16
_WALK_CHUNK = 256  # streams per walk chunk: their trees stay in cache across levels
_FIT_CHUNK = 64  # streams per refit chunk: bounds the temporary arrays

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_NODE_DOMAIN = np.uint64(1 << 40)  # random-draw counters of nodes, apart from those of samples


def average_path_length(n) -> np.ndarray:
    """``c(n)``: the mean path length of an unsuccessful search in a binary search tree of ``n`` points.

    >>> np.round(average_path_length([0, 1, 2, 64, 256]), 3).tolist()
    [0.0, 0.0, 1.0, 7.472, 10.245]
    """
    n = np.asarray(n, dtype=np.float64)
    safe = np.maximum(n, 3.0)
    harmonic = np.log(safe - 1.0) + np.euler_gamma
    c = 2.0 * harmonic - 2.0 * (safe - 1.0) / safe
    return np.where(n > 2, c, np.where(n == 2, 1.0, 0.0))


def tree_depth(sample_size: int) -> int:
    """Depth of the trees grown on ``sample_size`` points: ``ceil(log2(sample_size))``, at least 1."""
    return max(1, math.ceil(math.log2(sample_size)))


def leaf_scale(sample_size: int) -> float:
    """Leaves store ``round(path_length * leaf_scale)`` in a uint8; the longest path must fit."""
    longest = tree_depth(sample_size) + float(average_path_length(sample_size))
    return float(math.floor(255.0 / longest))


def quantise(values: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Standardise ``values`` (``(..., w)``, broadcast against ``center``/``scale``) into int16 steps."""
    z = (values - center) / scale * np.float32(_Q_PER_SD)
    z = np.clip(np.nan_to_num(z, nan=0.0), -_Q_LIMIT, _Q_LIMIT)
    return np.rint(z).astype(np.int16)


def _mix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a well-mixed 64-bit hash of each uint64 (wraps on purpose)."""
    z = np.array(z, dtype=np.uint64, copy=True, ndmin=1)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _draw(keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Random 64-bit words for ``(key, counter)`` pairs: a counter-based generator.

    Draws depend on a stream's own key and counters only, never on which other
    streams refit in the same batch, so a stream scores alike alone or in a bank.
    """
    return _mix64(keys + (counters + np.uint64(1)) * _GOLDEN)


def _halves(words: np.ndarray) -> np.ndarray:
    """Split each 64-bit random word into two 32-bit ones (as int64), along the last axis."""
    low = (words & np.uint64(0xFFFFFFFF)).astype(np.int64)
    high = (words >> np.uint64(32)).astype(np.int64)
    return np.stack([low, high], axis=-1).reshape(*words.shape[:-1], -1)


def fit_keys(seed: int, fits: np.ndarray) -> np.ndarray:
    """One random key per fit: the ``fits``-th fit of any stream under ``seed`` uses the same draws."""
    seed_word = _mix64(np.uint64(seed % (1 << 64)))
    return _mix64(seed_word ^ _mix64(np.asarray(fits, dtype=np.uint64) * _GOLDEN))


def build_forests(points, n_valid, keys, *, n_trees: int, sample_size: int, compiled: bool = False):
    """Grow ``n_trees`` isolation trees for each of ``s`` streams, all streams and trees at once.

    Parameters
    ----------
    points : ndarray of int16, shape (s, W, m)
        Quantised window of each stream; slots ``[0, n_valid)`` are used.
    n_valid : ndarray of int, shape (s,)
        Points in each window (at least 1).
    keys : ndarray of uint64, shape (s,)
        Random key of each stream's fit (see :func:`fit_keys`).
    n_trees, sample_size : int
        Trees per stream and points per tree (``psi``).  A tree samples
        ``psi`` points with replacement, or takes the whole window when it
        holds at most ``psi`` points.
    compiled : bool
        Grow the trees in a compiled kernel, tree after tree (the same
        trees; for the fast path, where one stream refits at a time and the
        level-by-level numpy calls cost more than the work).

    Returns
    -------
    nodes : ndarray of int16, shape (s, n_trees, 2**D - 1)
    leaves : ndarray of uint8, shape (s, n_trees, 2**D)
    psi : ndarray of int64, shape (s,)
        Points per tree, ``min(n_valid, sample_size)``.

    Notes
    -----
    Trees grow level by level.  At each node a random feature is drawn; if it
    does not vary among the node's points the next feature (cyclically) is
    tried, and a node where none varies ends, as in scikit-learn.  The split
    is a uniform integer threshold in ``[min, max)`` of the node's points.
    """
    points = np.asarray(points, dtype=np.int16)
    n_valid = np.asarray(n_valid, dtype=np.int64)
    s, w, m = points.shape
    n_forest = s * n_trees
    depth = tree_depth(sample_size)
    n_inner, n_leaves = 2**depth - 1, 2**depth
    psi = np.minimum(n_valid, sample_size)
    encoded = _encoded_lengths(depth, sample_size)
    if compiled:
        return _compiled_forests(points, n_valid, keys, n_trees, sample_size, depth, encoded) + (psi,)

    # Subsample: slot j of tree t of stream i holds window point pick[i, t, j].
    slot = np.arange(sample_size)
    half = _halves(_draw(keys[:, None], np.arange((n_trees * sample_size + 1) // 2, dtype=np.uint64)))
    drawn = (half[:, : n_trees * sample_size].reshape(s, n_trees, sample_size) * n_valid[:, None, None]) >> 32
    pick = np.where(n_valid[:, None, None] <= sample_size, slot, drawn)
    pick = np.minimum(pick, w - 1)  # slots beyond a short window are unused (binned below)
    flat = (np.arange(s)[:, None, None] * w + pick).reshape(-1)
    n = flat.size
    values = np.ascontiguousarray(points.reshape(s * w, m).take(flat, axis=0).T).reshape(-1)  # feature-major
    point = np.arange(n)
    used = np.broadcast_to(slot < psi[:, None, None], pick.shape).reshape(-1)
    # Global node id of each point: tree * width + node at the current level; points that are
    # unused or whose node has ended sit in one extra "bin" id, n_forest * width.
    segment = np.where(used, np.repeat(np.arange(n_forest), sample_size), n_forest)

    # All random draws of all nodes at once: a start feature and a split fraction per node,
    # from 32 random bits each.
    n_draws = (n_trees * n_inner + 1) // 2
    half = _halves(_draw(keys[:, None], _NODE_DOMAIN + np.arange(n_draws, dtype=np.uint64)))
    half = half[:, : n_trees * n_inner].reshape(n_forest, n_inner)
    start_all = ((half & 0xFFFF) * m) >> 16
    fraction_all = (half >> 16) * 2.0**-16
    del half

    node_words = np.full(n_forest * n_inner, _ROUTE_LEFT, dtype=np.int16)
    leaf_words = np.zeros(n_forest * n_leaves, dtype=np.uint8)
    opened = np.ones(n_forest, dtype=bool)  # nodes that exist: the children of split nodes
    int16_max, int16_min = np.iinfo(np.int16).max, np.iinfo(np.int16).min

    for level in range(depth + 1):
        width = 2**level
        n_nodes = n_forest * width
        count = np.bincount(segment, minlength=n_nodes + 1)[:n_nodes]
        if level == depth:
            # Leaves: the global node id is the leaf's flat index.
            leaf_words[opened] = encoded[level, count[opened]]
            break
        start = start_all[:, width - 1 : 2 * width - 1].reshape(-1)
        fraction = fraction_all[:, width - 1 : 2 * width - 1].reshape(-1)
        need = np.zeros(n_nodes + 1, dtype=bool)
        need[:n_nodes] = count >= 2
        # First try each node's random feature, over all points at once.
        candidate = np.append(start, 0)  # the bin's entry
        first_values = values.take((candidate * n).take(segment) + point)
        lo = np.full(n_nodes + 1, int16_max, dtype=np.int16)
        hi = np.full(n_nodes + 1, int16_min, dtype=np.int16)
        np.minimum.at(lo, segment, first_values)
        np.maximum.at(hi, segment, first_values)
        varies = need & (hi > lo)
        feature = np.where(varies, candidate, -1)
        low, high = lo.astype(np.int64), hi.astype(np.int64)  # used only where a node splits
        need &= ~varies
        retried = bool(need.any())
        if retried:
            # Nodes whose feature is constant there (few: mostly duplicated points) take the
            # next feature, cyclically, that varies among their points, if any does.
            waiting = np.flatnonzero(need)
            compact = np.full(n_nodes + 1, -1, dtype=np.int64)
            compact[waiting] = np.arange(waiting.size)
            members = np.flatnonzero(need.take(segment))
            cseg = compact.take(segment.take(members))
            member_values = values.reshape(m, n)[:, members].T
            lo_all = np.full((waiting.size, m), int16_max, dtype=np.int16)
            hi_all = np.full((waiting.size, m), int16_min, dtype=np.int16)
            np.minimum.at(lo_all, cseg, member_values)
            np.maximum.at(hi_all, cseg, member_values)
            order = (start[waiting][:, None] + np.arange(m)) % m
            varies_in_order = np.take_along_axis(hi_all > lo_all, order, axis=1)
            found = varies_in_order.any(axis=1)
            chosen = order[np.arange(waiting.size), np.argmax(varies_in_order, axis=1)]
            nodes_found, chosen, rows_found = waiting[found], chosen[found], np.flatnonzero(found)
            feature[nodes_found] = chosen
            low[nodes_found] = lo_all[rows_found, chosen]
            high[nodes_found] = hi_all[rows_found, chosen]

        split = feature >= 0
        threshold = np.full(n_nodes + 1, int16_max, dtype=np.int64)  # nothing exceeds it: go left
        threshold[:n_nodes] = np.where(
            split[:n_nodes], low[:n_nodes] + np.floor(fraction * (high[:n_nodes] - low[:n_nodes])), int16_max
        )
        at = np.flatnonzero(split)
        node_words[(at // width) * n_inner + (width - 1) + at % width] = (
            (threshold[at] << _FEATURE_BITS) | feature[at]
        ).astype(np.int16)
        # A node that ends here keeps its path length in its leftmost leaf.
        ended = np.flatnonzero(opened & ~split[:n_nodes])
        leaf_words[ended << (depth - level)] = encoded[level, count[ended]]

        v = first_values
        if retried:  # the points of nodes that settled on another feature
            v[members] = values.take(feature.take(segment.take(members)).clip(0) * n + members)
        right = v > threshold.take(segment)
        # Points of split nodes go to child 2 * node (+1 on the right); all others to the bin.
        child = np.where(split, 2 * np.arange(n_nodes + 1), 2 * n_nodes)
        segment = child.take(segment) + right
        opened = np.repeat(split[:n_nodes], 2)

    return (
        node_words.reshape(s, n_trees, n_inner),
        leaf_words.reshape(s, n_trees, n_leaves),
        psi,
    )


@functools.lru_cache(maxsize=None)
def _encoded_lengths(depth: int, sample_size: int) -> np.ndarray:
    """``encoded[level, n]``: the stored path length of a node that ends at ``level`` holding ``n`` points
    (read only; the same for every fit of a forest of this shape)."""
    encoded = np.arange(depth + 1)[:, None] + average_path_length(np.arange(sample_size + 1))[None, :]
    encoded = np.rint(encoded * leaf_scale(sample_size)).astype(np.uint8)
    encoded.flags.writeable = False
    return encoded


def _compiled_forests(points, n_valid, keys, n_trees: int, sample_size: int, depth: int, encoded):
    """:func:`build_forests` with ``compiled``: the same draws and samples
    (:func:`detectors.kernels.forest_samples`), the trees grown tree after tree
    (:func:`detectors.kernels.grow_trees`); returns ``(nodes, leaves)``."""
    from .kernels import forest_samples, grow_trees

    s, _, m = points.shape
    n_forest, n_inner, n_leaves = s * n_trees, 2**depth - 1, 2**depth
    n = n_forest * sample_size
    values, used = np.empty((m, n), dtype=np.int16), np.empty(n, dtype=bool)
    start_all, fraction_all = np.empty((n_forest, n_inner), dtype=np.int64), np.empty((n_forest, n_inner))
    forest_samples(np.ascontiguousarray(points), n_valid, np.ascontiguousarray(keys, dtype=np.uint64), n_trees,
                   sample_size, n_inner, _NODE_DOMAIN, values, used, start_all, fraction_all)
    node_words = np.full(n_forest * n_inner, _ROUTE_LEFT, dtype=np.int16)
    leaf_words = np.zeros(n_forest * n_leaves, dtype=np.uint8)
    grow_trees(values, used, start_all, fraction_all, encoded, sample_size, depth, _FEATURE_BITS, node_words,
               leaf_words)
    return node_words.reshape(s, n_trees, n_inner), leaf_words.reshape(s, n_trees, n_leaves)


def mean_path_length(nodes, leaves, owner, xq, *, sample_size: int, compiled: bool = False) -> np.ndarray:
    """Mean path length of each point over its stream's trees.

    With ``compiled``, each point walks its trees in a compiled kernel
    (:func:`detectors.kernels.tree_walks`, the same integer walk and the same
    sum of small integers, so the same lengths): a block's few hundred
    points between two refits, where numpy's per-level calls cost more than
    the walk.

    Parameters
    ----------
    nodes, leaves : ndarray, shape (S, T, 2**D - 1) and (S, T, 2**D)
        The forests of all streams, as returned by :func:`build_forests`.
    owner : ndarray of int, shape (N,)
        The stream whose forest scores each point.
    xq : ndarray of int16, shape (N, m)
        Quantised points.
    """
    n_streams, n_trees, n_inner = nodes.shape
    n_leaves = leaves.shape[2]
    depth = tree_depth(sample_size)
    node_words = nodes.reshape(-1)
    leaf_words = leaves.reshape(-1)
    xq = np.ascontiguousarray(xq, dtype=np.int16)
    m = xq.shape[1]
    flat_x = xq.reshape(-1)
    owner = np.asarray(owner, dtype=np.intp)
    out = np.empty(owner.size, dtype=np.float64)
    local = np.arange(n_trees, dtype=np.intp)
    mask = np.int16(_MAX_FEATURES - 1)
    shift = np.int16(_FEATURE_BITS)
    if compiled:
        from .kernels import tree_walks

        tree_walks(node_words, leaf_words, owner, xq, n_trees, n_inner, n_leaves, depth, _MAX_FEATURES - 1,
                   _FEATURE_BITS, out)
        return out / (n_trees * leaf_scale(sample_size))
    for a in range(0, owner.size, _WALK_CHUNK):
        b = min(owner.size, a + _WALK_CHUNK)
        tree = owner[a:b, None] * n_trees + local  # (c, T) global tree ids
        position = tree * n_inner  # heap index 0 of each tree
        root_less_one = position - 1
        x_start = np.arange(a * m, b * m, m, dtype=np.intp)[:, None]
        for _ in range(depth):
            word = node_words.take(position)
            value = flat_x.take(x_start + (word & mask))
            # child of heap node n is 2n + 1 (+1 when going right), in global positions:
            position = 2 * position - root_less_one + (value > (word >> shift))
        leaf = position - tree * n_inner - n_inner + tree * n_leaves
        out[a:b] = leaf_words.take(leaf).sum(axis=1, dtype=np.float64)
    return out / (n_trees * leaf_scale(sample_size))


def _without_clipped(points: np.ndarray, n_valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move window points that reach the quantisation clip (beyond 8 robust SD) behind the used slots.

    Such a point (one absurd value) would stretch every split range of the
    forest grown on it and blur all the others until the next refit; it
    still scores as the most extreme point the forest can tell.  A window
    where more than half the points are clipped keeps them all.

    >>> p = np.array([[[1], [2047], [3], [0]]], dtype=np.int16)
    >>> kept, n = _without_clipped(p, np.array([3]))
    >>> kept[0, :, 0].tolist(), n.tolist()
    ([1, 3, 2047, 0], [2])
    """
    slots = np.arange(points.shape[1])[None, :]
    used = slots < n_valid[:, None]
    clipped = used & (np.abs(points.astype(np.int32)) >= _Q_LIMIT).any(axis=2)
    keep = used & ~clipped
    n_kept = keep.sum(axis=1)
    enough = n_kept * 2 > n_valid
    if not (clipped.any(axis=1) & enough).any():
        return points, n_valid
    # Kept points first, then the clipped ones, then unused slots, each in their order.
    rank = np.where(keep, 0, np.where(used, 1, 2))
    order = np.argsort(rank, axis=1, kind="stable")
    order = np.where(enough[:, None], order, slots)
    return np.take_along_axis(points, order[:, :, None], axis=1), np.where(enough, n_kept, n_valid)


@register
class IsolationForestDetector(RefittedModelDetector):
    """Isolation Forest on each stream's sliding window of causal features, refit on a schedule.

    Parameters
    ----------
    n_trees : int
        Trees per stream.
    sample_size : int
        Points each tree is grown on (``psi``); trees have depth ``ceil(log2(psi))``.
    window : int
        Recent points each stream keeps to refit its forest on.
    refit_every : int
        A stream regrows its forest every ``refit_every`` of its points (a few
        streams per tick; see :class:`~detectors.features.RefitSchedule`).
    embed : str
        Feature parts per point, see :class:`~detectors.features.CausalEmbedding`.
        The default leaves out the raw value: between refits a drifting
        level (trend, daily cycle) leaves the window's range and would be
        flagged on every point, while changes and deviations stay comparable.
    warmup : int
        Points before a stream may score above 0; the first forest is grown
        once a stream has ``max(warmup, 16)`` points (a few ticks later when
        more streams are due than one tick may refit).
    threshold : float
        Default flag threshold on the calibrated score.
    seed : int or None
        Seed of the random draws; the same seed gives the same scores.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(1200)
    >>> series = np.sin(2 * np.pi * t / 50) + 0.1 * rng.standard_normal(1200)
    >>> series[1000] += 3.0
    >>> scores = IsolationForestDetector(seed=0).score_series(series)
    >>> bool((scores[:64] == 0).all())  # warm-up
    True
    >>> # The spike outranks 99.6 % of the points; 0.8 % of the points pass p = 0.5 % (score 0.411).
    >>> round(float(scores[1000]), 3), round(float(np.mean(scores[64:] < scores[1000])), 3)
    (0.448, 0.996)
    >>> round(float(np.mean(scores[64:] > 0.411)), 3)
    0.008

    Like any isolation forest, it cannot tell a spike far outside the
    window's range from the window's most extreme points (both are isolated
    at the same depth), so big spikes rank high but not always on top.
    """

    name = "isolation_forest"
    multivariate = True

    def __init__(
        self,
        *,
        n_trees: int = 32,
        sample_size: int = 64,
        window: int = 256,
        refit_every: int = 512,
        embed: str = "diff+dev",
        warmup: int = 64,
        threshold: float = 0.5,
        seed: int | None = 0,
    ):
        super().__init__(warmup=warmup, threshold=threshold)
        self.n_trees = n_trees
        self.sample_size = sample_size
        self.window = window
        self.refit_every = refit_every
        self.embed = embed
        self.seed = seed

    # -- state ----------------------------------------------------------------
    def _allocate(self, n_streams: int, n_features: int) -> None:
        if self.n_trees < 1:
            raise ValueError("n_trees must be at least 1")
        if not 2 <= self.sample_size <= 4096:
            raise ValueError("sample_size must lie in [2, 4096]")
        if self.window < 2 or self.refit_every < 1:
            raise ValueError("window must be at least 2 and refit_every at least 1")
        # Many fields: the embedding projects to the 16 features a node word can name.
        self.embedding_ = CausalEmbedding(self.embed, max_width=_MAX_FEATURES).reset(n_streams, n_features)
        width = self.embedding_.width_
        self.seed_ = self.seed if self.seed is not None else int(np.random.SeedSequence().entropy % (1 << 63))
        self.window_ = RollingWindow(n_streams, self.window, width, dtype=np.float32)
        first_fit = max(self.warmup, _MIN_FIT_POINTS)
        self.schedule_ = RefitSchedule(first=first_fit, every=self.refit_every).reset(n_streams)
        self.calibrator_ = TailCalibrator().reset(n_streams)
        depth = tree_depth(self.sample_size)
        self.nodes_ = np.full((n_streams, self.n_trees, 2**depth - 1), _ROUTE_LEFT, dtype=np.int16)
        self.leaves_ = np.zeros((n_streams, self.n_trees, 2**depth), dtype=np.uint8)
        self.center_ = np.zeros((n_streams, width), dtype=np.float32)
        self.scale_ = np.ones((n_streams, width), dtype=np.float32)
        self.norm_ = np.ones(n_streams, dtype=np.float32)  # c(psi) of each stream's forest
        self.fitted_ = np.zeros(n_streams, dtype=bool)

    # -- scoring --------------------------------------------------------------
    def _refit_chunk(self) -> int:
        return _FIT_CHUNK

    def raw_scores(self, rows: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Uncalibrated isolation scores ``2 ** (-E[h] / c(psi))`` of ``features`` under the forests of ``rows``."""
        xq = quantise(features, self.center_[rows], self.scale_[rows])
        return self._path_scores(rows, xq)

    def _block_raw_scores(self, rows, features):
        xq = quantise(features, self.center_[rows], self.scale_[rows])
        return self._path_scores(rows, xq, compiled=True)

    def _path_scores(self, owner: np.ndarray, xq: np.ndarray, compiled: bool = False) -> np.ndarray:
        length = mean_path_length(self.nodes_, self.leaves_, owner, xq, sample_size=self.sample_size,
                                  compiled=compiled)
        return np.exp2(-length / self.norm_[owner])

    def _refit(self, rows: np.ndarray, compiled: bool = False) -> None:
        values, n_valid = self.window_.buffer[rows], self.window_.count[rows]
        center, scale = robust_center_scale(values)
        points = quantise(values, center[:, None, :], scale[:, None, :])
        points, n_valid = _without_clipped(points, n_valid)
        keys = fit_keys(self.seed_, self.schedule_.fits_[rows])
        nodes, leaves, psi = build_forests(
            points, n_valid, keys, n_trees=self.n_trees, sample_size=self.sample_size, compiled=compiled
        )
        self.nodes_[rows] = nodes
        self.leaves_[rows] = leaves
        self.center_[rows] = center
        self.scale_[rows] = scale
        self.norm_[rows] = average_path_length(psi)
        first = ~self.fitted_[rows]
        self.fitted_[rows] = True
        if first.any():
            self._seed_calibration(rows[first], points[first], n_valid[first], compiled)
        # A block refits its one row by the kernel; a tick's several rows, numpy's vectorised fit does at once.
        (self.calibrator_.fit_compiled if compiled and len(rows) == 1 else self.calibrator_.fit)(rows)

    def _seed_calibration(self, rows, points, n_valid, compiled: bool = False) -> None:
        """Give a stream's first calibration the scores of its window points (no past scores exist yet)."""
        keep = min(points.shape[1], self.calibrator_.memory)
        used = np.arange(keep)[None, :] < n_valid[:, None]
        owner = np.broadcast_to(rows[:, None], used.shape)[used]
        raw = np.full(used.shape, np.nan)
        raw[used] = self._path_scores(owner, points[:, :keep][used], compiled)
        self.calibrator_.push(rows, raw)
