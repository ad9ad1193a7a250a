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

__all__ = [
    "EMBED_PARTS",
    "parse_embed",
    "CausalEmbedding",
    "RefitSchedule",
    "robust_center_scale",
]

#: The feature parts an embedding may combine, joined with "+" (e.g. "value+diff").
EMBED_PARTS = ("value", "diff", "dev")


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

    Notes
    -----
    ``diff`` and ``dev`` are 0 on a stream's first point.  Absent rows (NaN)
    leave the state untouched, so a gap simply joins the points either side.

    Examples
    --------
    >>> emb = CausalEmbedding("value+diff").reset(1, 1)
    >>> [emb.transform(np.array([[v]]), np.array([True]))[0].tolist() for v in (1.0, 3.0, 2.0)]
    [[1.0, 0.0], [3.0, 2.0], [2.0, -1.0]]
    """

    def __init__(self, embed: str = "value+diff", span: float = 10.0):
        self.embed = embed
        self.span = span

    def reset(self, n_streams: int, n_features: int) -> "CausalEmbedding":
        """Forget all streams and allocate state for ``n_streams`` streams of ``n_features`` fields."""
        self.parts_ = parse_embed(self.embed)
        if self.span < 1:
            raise ValueError("span must be at least 1")
        self.n_features_ = int(n_features)
        self.width_ = self.n_features_ * len(self.parts_)
        self.previous_ = np.zeros((n_streams, n_features))
        self.average_ = np.zeros((n_streams, n_features))
        self.started_ = np.zeros(n_streams, dtype=bool)
        return self

    def transform(self, X: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Return the ``(S, width_)`` float32 features of tick ``X``, then remember the present rows."""
        started = self.started_[:, None]
        # On a stream's first point there is no past: its change and deviation are 0.
        previous = np.where(started, self.previous_, X)
        average = np.where(started, self.average_, X)
        features = np.empty((len(X), self.width_), dtype=np.float32)
        d = self.n_features_
        for i, part in enumerate(self.parts_):
            block = features[:, i * d : (i + 1) * d]
            if part == "value":
                block[:] = X
            else:
                np.subtract(X, previous if part == "diff" else average, out=block, casting="same_kind")
        alpha = 2.0 / (self.span + 1.0)
        keep = present[:, None]
        self.previous_ = np.where(keep, X, self.previous_)
        self.average_ = np.where(keep, average + alpha * (X - average), self.average_)
        self.started_ |= present
        return features


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
    median = np.median if full else np.nanmedian
    center = median(points, axis=1)
    scale = 1.4826 * median(np.abs(points - center[:, None, :]), axis=1)
    tiny = 1e-9 * (1.0 + np.abs(center))
    flat = scale <= tiny
    if flat.any():  # rare: only then pay for the standard deviations
        spread = (np.std if full else np.nanstd)(points, axis=1)
        scale = np.where(flat, spread, scale)
        scale = np.where(scale > tiny, scale, 1.0)
    return center.astype(np.float32), scale.astype(np.float32)
