"""Per-stream plumbing shared by the windowed detectors: causal features, robust scale, refit schedule.

Everything here holds the state of ``S`` streams in numpy arrays with the
stream on axis 0 and is updated for a whole tick at once.

* :class:`CausalEmbedding` turns each new point into a small feature vector
  built from the present point and the stream's past only (value, first
  difference, deviation from a moving average), so a model of the window can
  see shape, not only the distribution of values.
* :class:`RefitSchedule` says which streams refit their model on this tick:
  each stream refits every ``every`` of its own points, and no more than a
  fixed budget of streams refit in one tick, so the work per tick is bounded
  and refits spread out across ticks.
"""
from __future__ import annotations

import math

import numpy as np

from .stats import SPREAD_FLOOR, floored, median_of_three

__all__ = [
    "EMBED_PARTS",
    "parse_embed",
    "CausalEmbedding",
    "RefitSchedule",
    "robust_center_scale",
]

#: The feature parts an embedding may combine, joined with "+" (e.g. "value+diff").
EMBED_PARTS = ("value", "diff", "dev")
#: A value more than this many mean absolute deviations from the moving average is learned as if it were that far.
DEV_LIMIT = 8.0
_SPREAD_RATE = 2.0 / 101.0  # the mean absolute deviation spans about 100 points
#: Seed of the random projection of wide embeddings (fixed: every stream and run uses the same directions).
_PROJECTION_SEED = 20240601
#: Span (points) of the running centre and spread that standardise a wide embedding before projection.
_SCALE_SPAN = 256
#: Standardised features are clipped here before projection (as the forest's quantisation clips at 8 SD).
_STANDARD_LIMIT = 8.0


def parse_embed(embed: str) -> tuple[str, ...]:
    """Split an embedding spec such as ``"value+diff"`` into its parts; ValueError if unknown.

    >>> parse_embed("value+diff+dev")
    ('value', 'diff', 'dev')
    """
    if not isinstance(embed, str):
        raise ValueError(f"embed must be a string such as 'value+diff', got {embed!r}")
    parts = tuple(p.strip() for p in embed.split("+"))
    unknown = [p for p in parts if p not in EMBED_PARTS]
    if unknown or not parts:
        raise ValueError(f"unknown embed part(s) {unknown} in {embed!r}; use {'+'.join(EMBED_PARTS)}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"embed {embed!r} repeats a part")
    return parts


class CausalEmbedding:
    """Feature vectors from the present point and the past of each stream.

    Parameters
    ----------
    embed : str
        Parts joined by ``+``: ``value`` (the d fields), ``diff`` (the change
        since the stream's previous point), ``dev`` (the distance from an
        exponential moving average of the previous points).
    span : float
        Span of the moving average used by ``dev`` (alpha = 2 / (span + 1)).
    max_width : int or None
        Most features a point may have.  When the parts give more (many
        fields), each feature is standardised by its own running centre and
        mean absolute deviation (winsorised at +-8 of them, so one absurd
        value cannot move them), and the standardised vector is projected on
        ``max_width - 2`` fixed random +-1 directions (Achlioptas), which keep
        distances between points approximately (Johnson-Lindenstrauss), plus
        the largest absolute standardised feature and their root mean square,
        so one extreme field among many still stands out.  A model's cost
        and memory stay bounded at any field count.

    Notes
    -----
    ``diff`` and ``dev`` are 0 on a stream's first point.  Absent rows (NaN)
    leave the state untouched, so a gap simply joins the points either side.
    The projection is the same for every stream (a fixed seed).

    Examples
    --------
    >>> emb = CausalEmbedding("value+diff").reset(1, 1)
    >>> [emb.transform(np.array([[v]]), np.array([True]))[0].tolist() for v in (1.0, 3.0, 2.0)]
    [[1.0, 0.0], [3.0, 2.0], [2.0, -1.0]]
    >>> wide = CausalEmbedding("diff+dev", max_width=16).reset(2, 64)
    >>> wide.width_, wide.transform(np.ones((2, 64)), np.ones(2, dtype=bool)).shape
    (16, (2, 16))
    """

    def __init__(self, embed: str = "value+diff", span: float = 10.0, max_width: int | None = None):
        self.embed = embed
        self.span = span
        self.max_width = max_width

    def reset(self, n_streams: int, n_features: int) -> "CausalEmbedding":
        """Forget all streams and allocate state for ``n_streams`` streams of ``n_features`` fields."""
        self.parts_ = parse_embed(self.embed)
        if self.span < 1:
            raise ValueError("span must be at least 1")
        self.n_features_ = int(n_features)
        self.width_ = self.n_features_ * len(self.parts_)
        self.previous_ = np.zeros((n_streams, n_features))
        self.average_ = np.zeros((n_streams, n_features))
        #: Running mean absolute deviation from the average, to winsorise what the average learns.
        self.spread_ = np.zeros((n_streams, n_features))
        self.deviations_ = np.zeros(n_streams, dtype=np.int64)
        self.started_ = np.zeros(n_streams, dtype=bool)
        self.projection_ = None
        if self.max_width is not None and self.width_ > self.max_width:
            full = self.width_
            if self.max_width < 3:
                raise ValueError("max_width must be at least 3 (a projection and two summaries)")
            k = self.max_width - 2
            signs = np.random.default_rng(_PROJECTION_SEED).integers(0, 2, (full, k))
            self.projection_ = ((2.0 * signs - 1.0) / np.sqrt(k)).astype(np.float32)
            self.scaled_count_ = np.zeros(n_streams, dtype=np.int64)
            self.feature_centre_ = np.zeros((n_streams, full), dtype=np.float32)
            self.feature_scale_ = np.zeros((n_streams, full), dtype=np.float32)
            self.width_ = int(self.max_width)
        return self

    def transform(self, X: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Return the ``(S, width_)`` float32 features of tick ``X``, then remember the present rows."""
        started = self.started_[:, None]
        # On a stream's first point there is no past: its change and deviation are 0.
        previous = np.where(started, self.previous_, X)
        average = np.where(started, self.average_, X)
        features = self._assemble(X, previous, average)
        keep = present[:, None]
        deviations = self.deviations_[:, None].copy()
        # The third point restarts the average at the median of the first three and the spread at their
        # median deviation from it (the average holds the first point until then): one absurd value among
        # them cannot own the average, or the spread that judges what it learns next.
        third = started & (deviations == 1)
        centre, restart_spread = average, self.spread_
        if third.any():  # a few ticks of a stream's life: not every tick's work
            centre = median_of_three(average, self.previous_, X)
            restart_spread = median_of_three(np.abs(average - centre), np.abs(self.previous_ - centre),
                                              np.abs(X - centre))
        # The average learns winsorised values (at most DEV_LIMIT typical deviations from it), so one
        # absurd value cannot drag it away and make every later deviation look alike.  The floor lets a
        # stream that started flat (no spread yet) learn a new level, slowly at first.
        reach = DEV_LIMIT * floored(self.spread_, average)
        learned = np.where(deviations >= 2, np.clip(X, average - reach, average + reach), X)
        rate = np.maximum(1.0 / (deviations + 1.0), _SPREAD_RATE)  # the first deviations weigh alike
        learns_spread = keep & started
        spread = np.where(third, restart_spread, self.spread_ + rate * (np.abs(learned - average) - self.spread_))
        self.spread_ = np.where(learns_spread, spread, self.spread_)
        self.deviations_ += learns_spread[:, 0]
        alpha = 2.0 / (self.span + 1.0)
        second = started & (deviations == 0)
        moved = np.where(second, average, np.where(third, centre, average + alpha * (learned - average)))
        self.average_ = np.where(keep, moved, self.average_)
        self.previous_ = np.where(keep, X, self.previous_)
        self.started_ |= present
        if self.projection_ is not None:
            features = self._project(features, present)
        return features

    def transform_block(self, row: int, points: np.ndarray) -> np.ndarray:
        """Return the ``(n, width_)`` features of ``n`` successive points of stream ``row``, as ``n`` transforms would.

        The running average is a recursion (each point's winsorised value
        moves it), so it is followed point by point in a compiled kernel
        (:mod:`detectors.kernels`), with the same arithmetic as
        :meth:`transform`; the features are then built at once; a wide
        embedding's running standardisation (also a recursion, in float32) is
        followed the same way, and projected at once.
        """
        from .kernels import embedding_points

        n, d = points.shape
        previous, average = np.empty((n, d)), np.empty((n, d))
        # The row's state as writable views and one-element slices: the kernel updates them in place.
        embedding_points(np.ascontiguousarray(points, dtype=float), self.previous_[row], self.average_[row],
                         self.spread_[row], self.deviations_[row:row + 1], self.started_[row:row + 1],
                         2.0 / (self.span + 1.0), DEV_LIMIT, _SPREAD_RATE, SPREAD_FLOOR, previous, average)
        features = self._assemble(points, previous, average)
        return features if self.projection_ is None else self._project_block(row, features)

    def _assemble(self, X: np.ndarray, previous: np.ndarray, average: np.ndarray) -> np.ndarray:
        """The float32 feature parts of points ``X`` given each one's previous point and running average."""
        d = self.n_features_
        features = np.empty((len(X), d * len(self.parts_)), dtype=np.float32)
        for i, part in enumerate(self.parts_):
            block = features[:, i * d : (i + 1) * d]
            if part == "value":
                block[:] = X
            else:
                np.subtract(X, previous if part == "diff" else average, out=block, casting="same_kind")
        return features

    def _project_block(self, row: int, features: np.ndarray) -> np.ndarray:
        """:meth:`_project` of ``n`` successive feature rows of stream ``row``: the recursion compiled, the product at once."""
        from .kernels import standardised_points

        z = np.empty(features.shape, dtype=np.float32)
        standardised_points(np.ascontiguousarray(features, dtype=np.float32), self.scaled_count_[row:row + 1],
                            self.feature_centre_[row], self.feature_scale_[row], _STANDARD_LIMIT,
                            2.0 / (_SCALE_SPAN + 1.0), z)
        return self._summarised(z)

    def _project(self, features: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Standardise each feature by its running centre and spread, then project on the fixed random directions."""
        n = self.scaled_count_
        centre, scale = self.feature_centre_, self.feature_scale_
        known = (n > 0)[:, None]
        floor = 1e-9 * (np.abs(centre) + 1.0)
        with np.errstate(all="ignore"):
            z = np.where(known, (features - centre) / np.maximum(scale, floor), 0.0)
        z = np.clip(np.nan_to_num(z), -_STANDARD_LIMIT, _STANDARD_LIMIT).astype(np.float32)
        # Learn from the winsorised feature, so a single absurd value moves centre and spread by a bounded step.
        rate = np.maximum(1.0 / (n + 1.0), 2.0 / (_SCALE_SPAN + 1.0))[:, None].astype(np.float32)
        winsorised = np.where(known & (scale > 0), centre + z * np.maximum(scale, floor), features)
        keep = present[:, None]
        new_centre = centre + rate * (winsorised - centre)
        new_scale = np.where(known, scale + rate * (np.abs(winsorised - centre) - scale), 0.0)
        self.feature_centre_ = np.where(keep, new_centre, centre).astype(np.float32)
        self.feature_scale_ = np.where(keep, new_scale, scale).astype(np.float32)
        self.scaled_count_ = n + present
        return self._summarised(z)

    def _summarised(self, z: np.ndarray) -> np.ndarray:
        """Standardised features ``z`` ``(n, full)`` projected on the fixed directions, plus their two summaries."""
        # The projection keeps distances; two summaries keep a lone extreme field from drowning among many.
        out = np.empty((len(z), self.width_), dtype=np.float32)
        # In float64: a float32 product rounds differently for one row and for many (BLAS kernels), and a
        # stream must score alike alone (a block on a one-stream twin) and in a bank.
        out[:, :-2] = z.astype(np.float64) @ self.projection_.astype(np.float64)
        out[:, -2] = np.abs(z).max(axis=1)
        out[:, -1] = np.sqrt(np.mean(z * z, axis=1))
        return out


class RefitSchedule:
    """Which streams refit their model on this tick.

    A stream is *due* once it has learned ``first`` points, then every
    ``every`` of its own points after each refit.  Due streams wait in a
    queue; at most ``budget_`` of them (lowest index first) refit per tick,
    where ``budget_ = max(min_budget, ceil(headroom * S / every))``: a little
    above the average rate ``S / every``, so the queue drains, yet one tick
    never refits the whole bank.  Streams that start together therefore
    spread their first fits over about ``every / headroom`` ticks and stay
    staggered afterwards.

    Notes
    -----
    A stream's refit times depend on the other streams only when more than
    ``budget_`` streams are due on the same tick; below that, a stream scored
    in a bank behaves exactly as if it were scored alone.

    Examples
    --------
    >>> schedule = RefitSchedule(first=3, every=4, min_budget=2).reset(5)
    >>> [schedule.advance(np.ones(5, dtype=bool)).tolist() for _ in range(6)]
    [[], [], [0, 1], [2, 3], [4], []]
    """

    def __init__(self, first: int, every: int, min_budget: int = 8, headroom: float = 1.25):
        self.first = first
        self.every = every
        self.min_budget = min_budget
        self.headroom = headroom

    def reset(self, n_streams: int) -> "RefitSchedule":
        """Allocate the schedule of ``n_streams`` streams, none fitted yet."""
        if self.first < 1 or self.every < 1 or self.min_budget < 1 or self.headroom < 1:
            raise ValueError("first, every and min_budget must be at least 1, headroom at least 1.0")
        self.countdown_ = np.full(n_streams, self.first, dtype=np.int64)
        self.pending_ = np.zeros(n_streams, dtype=bool)
        self.fits_ = np.zeros(n_streams, dtype=np.int64)
        self.budget_ = max(int(self.min_budget), math.ceil(self.headroom * n_streams / self.every))
        return self

    def advance(self, present: np.ndarray) -> np.ndarray:
        """Count one learned point for the present rows; return the rows to refit now (ascending)."""
        self.countdown_[present] -= 1
        self.pending_ |= present & (self.countdown_ <= 0)
        rows = np.flatnonzero(self.pending_)[: self.budget_]
        self.pending_[rows] = False
        self.countdown_[rows] = self.every
        self.fits_[rows] += 1
        return rows


def robust_center_scale(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row, per-feature median and robust scale of ``points`` ``(r, n, w)``, ignoring NaN.

    The scale is 1.4826 * MAD (the standard deviation for Gaussian data); where
    the MAD is 0 (a mostly constant feature) the standard deviation is used,
    and where that is 0 too, 1.  Both results are float32 ``(r, w)``.

    >>> c, s = robust_center_scale(np.array([[[1.0], [2.0], [3.0], [100.0]]]))
    >>> float(c[0, 0]), round(float(s[0, 0]), 4)
    (2.5, 1.4826)
    """
    points = np.asarray(points, dtype=np.float64)
    full = not np.isnan(points).any()
    center = _full_median(points) if full else np.nanmedian(points, axis=1)
    deviation = np.abs(points - center[:, None, :])
    scale = 1.4826 * (_full_median(deviation) if full and not np.isnan(deviation).any()
                      else (np.median if full else np.nanmedian)(deviation, axis=1))
    tiny = 1e-9 * (1.0 + np.abs(center))
    flat = scale <= tiny
    if flat.any():  # rare: only then pay for the standard deviations
        spread = (np.std if full else np.nanstd)(points, axis=1)
        scale = np.where(flat, spread, scale)
        scale = np.where(scale > tiny, scale, 1.0)
    return center.astype(np.float32), scale.astype(np.float32)


def _full_median(values: np.ndarray) -> np.ndarray:
    """``np.median(values, axis=1)`` of values without NaN, by one partition (the same numbers).

    np.median's checks and its mean of the two middle values cost more than
    the partition on the small windows a refit reads, hundreds of times a
    series; the middle values and ``(a + b) / 2`` are what it computes.

    >>> v = np.random.default_rng(0).normal(size=(3, 10, 2))
    >>> [bool((_full_median(w) == np.median(w, axis=1)).all()) for w in (v, v[:, :9])]
    [True, True]
    """
    n = values.shape[1]
    half = n // 2
    if n % 2:
        return np.partition(values, half, axis=1)[:, half]
    part = np.partition(values, (half - 1, half), axis=1)
    return (part[:, half - 1] + part[:, half]) / 2
