"""Turn raw anomaly scores into calibrated scores, per stream, from each stream's past raw scores.

Raw scores of model-based detectors (isolation-forest path lengths, local
outlier factors) are not probabilities, and their scale differs from stream
to stream.  :class:`TailCalibrator` remembers the last ``memory`` raw scores
of every stream and, when asked to refit a stream, summarises them as

* a few empirical quantiles ("knots") up to the ``1 - tail`` quantile ``u``:
  below ``u`` the score is the empirical distribution function, interpolated
  linearly between knots (so it stays at or below ``1 - tail``);
* an exponential tail above ``u`` (peaks over threshold): with ``beta`` the
  scale of the excesses of the remembered scores above ``u``, estimated
  from their median (``median / ln 2``) so that one absurd raw score cannot
  stretch the tail for the whole memory, ``p(r) = tail * exp(-(r - u) / beta)``.

:meth:`TailCalibrator.level` gives ``1 - p``; :meth:`TailCalibrator.transform`
gives the score every detector reports, ``1 - p ** (1/10)``
(:mod:`detectors.stats`), computed from ``log p`` so far tails keep their order.

For a fixed state the map is continuous and non-decreasing in the raw score.
The state changes only in :meth:`TailCalibrator.fit` (which
:meth:`TailCalibrator.update` calls every ``every`` pushed scores of a
stream), from scores pushed before, so a detector that transforms a raw
score before pushing it stays causal.
"""
from __future__ import annotations

import numpy as np

from .stats import score_from_logp

__all__ = ["TailCalibrator"]


class TailCalibrator:
    """Per-stream peaks-over-threshold calibration of raw scores (higher raw = more anomalous).

    Parameters
    ----------
    tail : float
        Fraction of past raw scores treated as the tail; the threshold ``u``
        is their ``1 - tail`` quantile.  Must lie in (0, 0.5].
    memory : int
        Past raw scores remembered per stream.
    n_knots : int
        Quantiles kept per stream for the body of the distribution, from the
        minimum (level 0) to ``u`` (level ``1 - tail``).
    min_scores : int
        A stream is calibrated (scores above 0) once a refit saw at least this
        many remembered scores.
    every : int
        :meth:`update` refits a stream each time its count of pushed scores
        reaches a multiple of ``every``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> cal = TailCalibrator(tail=0.1, memory=200).reset(2)
    >>> past = np.stack([rng.exponential(1.0, 200), rng.exponential(10.0, 200)], axis=1)
    >>> for raw in past:
    ...     cal.push(np.arange(2), raw)
    >>> cal.fit(np.arange(2))
    >>> # The same raw score is rarer on the stream whose raw scores are small.
    >>> np.round(cal.level(np.arange(2), np.array([5.0, 5.0])), 3).tolist()
    [0.995, 0.349]
    >>> np.round(cal.transform(np.arange(2), np.array([5.0, 5.0])), 3).tolist()
    [0.414, 0.042]
    >>> # Monotone: a larger raw score never gets a smaller calibrated score.
    >>> scores = cal.transform(np.zeros(5, dtype=int), np.array([0.0, 0.5, 2.0, 5.0, 20.0]))
    >>> bool(np.all(np.diff(scores) >= 0)), bool(scores[0] == 0), round(float(scores[-1]), 3)
    (True, True, 0.914)
    """

    def __init__(self, tail: float = 0.1, memory: int = 256, n_knots: int = 5, min_scores: int = 8, every: int = 32):
        self.tail = tail
        self.memory = memory
        self.n_knots = n_knots
        self.min_scores = min_scores
        self.every = every

    def reset(self, n_streams: int) -> "TailCalibrator":
        """Forget all streams and allocate state for ``n_streams`` streams."""
        if not 0.0 < self.tail <= 0.5:
            raise ValueError("tail must lie in (0, 0.5]")
        if self.n_knots < 2 or self.memory < self.n_knots or self.min_scores < 2 or self.every < 1:
            raise ValueError("need n_knots >= 2, memory >= n_knots, min_scores >= 2 and every >= 1")
        self.levels_ = np.linspace(0.0, 1.0 - self.tail, self.n_knots)
        self.history_ = np.full((n_streams, self.memory), np.nan, dtype=np.float32)
        self.count_ = np.zeros(n_streams, dtype=np.int64)
        self.knots_ = np.zeros((n_streams, self.n_knots), dtype=np.float32)
        self.beta_ = np.ones(n_streams, dtype=np.float32)
        self.fitted_ = np.zeros(n_streams, dtype=bool)
        return self

    def push(self, rows: np.ndarray, raw: np.ndarray) -> None:
        """Remember raw scores: ``raw`` is ``(r,)`` (one per row) or ``(r, n)``, NaN entries skipped."""
        rows = np.asarray(rows)
        # An absurd raw score is remembered as the largest float32, never inf (inf - inf breaks the knots).
        big = np.finfo(np.float32).max
        raw = np.clip(np.asarray(raw, dtype=np.float64), -big, big).astype(np.float32)
        if raw.ndim == 1:
            raw = raw[:, None]
        raw = raw[:, -self.memory:]  # older entries would be overwritten anyway
        keep = ~np.isnan(raw)
        hit_row, hit_col = np.nonzero(keep)
        offset = (np.cumsum(keep, axis=1) - 1)[hit_row, hit_col]
        target = rows[hit_row]
        self.history_[target, (self.count_[target] + offset) % self.memory] = raw[hit_row, hit_col]
        self.count_[rows] += keep.sum(axis=1)

    def update(self, rows: np.ndarray, raw: np.ndarray) -> None:
        """Push one raw score per row, then refit the rows whose count of scores reached a multiple of ``every``."""
        rows = np.asarray(rows)
        self.push(rows, raw)
        self.fit(rows[self.count_[rows] % self.every == 0])

    def update_points(self, row: int, raw: np.ndarray, fit_first: bool = False) -> np.ndarray:
        """Scores of ``n`` successive raw scores of stream ``row``, each transformed then learned by :meth:`update`.

        What ``n`` calls of :meth:`transform` and :meth:`update` give (after
        :meth:`fit` of the row with ``fit_first``), as one compiled kernel
        (:mod:`detectors.kernels`): the fast path's calibration, which refits
        every ``every`` scores inside a block.
        """
        from .kernels import calibrated_points

        logp = np.empty(len(raw))
        calibrated_points(np.ascontiguousarray(raw, dtype=np.float64), self.history_[row], self.count_[row:row + 1],
                          self.knots_[row], self.beta_[row:row + 1], self.fitted_[row:row + 1], self.levels_,
                          float(self.tail), int(self.min_scores), int(self.every), bool(fit_first), logp)
        return score_from_logp(logp)

    def fit_compiled(self, rows: np.ndarray) -> None:
        """:meth:`fit` of a few rows through the compiled kernel (a block's refit; the same knots and tail)."""
        for row in np.asarray(rows):
            self.update_points(int(row), np.zeros(0), fit_first=True)

    def fit(self, rows: np.ndarray) -> None:
        """Refit the knots and tail of ``rows`` from their remembered scores."""
        rows = np.asarray(rows)
        n = np.minimum(self.count_[rows], self.memory)
        ok = n >= self.min_scores
        rows, n = rows[ok], n[ok]
        if rows.size == 0:
            return
        ordered = np.sort(self.history_[rows], axis=1)  # NaN (unused slots) sort last
        # Linear-interpolated quantiles over each row's n valid scores.
        position = self.levels_[None, :] * (n[:, None] - 1)
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, n[:, None] - 1)
        weight = (position - below).astype(np.float32)
        low = np.take_along_axis(ordered, below, axis=1)
        high = np.take_along_axis(ordered, above, axis=1)
        knots = low + weight * (high - low)
        u = knots[:, -1:]
        valid = np.arange(self.memory)[None, :] < n[:, None]
        over = valid & (ordered > u)
        count = over.sum(axis=1)
        # The excesses are the sorted row's last ``count`` valid scores: their median sits in the middle.
        middle = np.clip(n - count + (count - 1) // 2, 0, self.memory - 1)
        median = np.take_along_axis(ordered, middle[:, None], axis=1)[:, 0] - u[:, 0]
        beta = np.where(count > 0, np.nan_to_num(median, posinf=0.0) / np.log(2.0), 0.0)
        # A tail with no spread (constant raw scores) still needs a positive scale.
        beta = np.maximum(beta, 1e-6 + 1e-3 * np.abs(u[:, 0]))
        self.knots_[rows] = knots
        self.beta_[rows] = beta
        self.fitted_[rows] = True

    def log_tail_probability(self, rows: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Return ``log p`` of the raw scores of ``rows`` (0, i.e. p = 1, for uncalibrated rows)."""
        rows = np.asarray(rows)
        raw = np.asarray(raw, dtype=np.float64)
        knots = self.knots_[rows].astype(np.float64)
        u = knots[:, -1]
        levels = self.levels_
        # Index of the first knot above raw: 0 = below the minimum, n_knots = at or above u.
        j = (raw[:, None] >= knots).sum(axis=1)
        inner = np.clip(j, 1, self.n_knots - 1)
        low = np.take_along_axis(knots, (inner - 1)[:, None], axis=1)[:, 0]
        high = np.take_along_axis(knots, inner[:, None], axis=1)[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = np.clip((raw - low) / (high - low), 0.0, 1.0)
        body = levels[inner - 1] + fraction * (levels[inner] - levels[inner - 1])
        body = np.where(j == 0, 0.0, body)
        log_tail = np.log(self.tail) - np.maximum(raw - u, 0.0) / self.beta_[rows]
        logp = np.where(j >= self.n_knots, log_tail, np.log1p(-np.minimum(body, 1.0 - self.tail)))
        return np.where(self.fitted_[rows], logp, 0.0)

    def level(self, rows: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Map the raw scores of ``rows`` to ``1 - p``: the calibrated quantile level; 0 for uncalibrated rows."""
        return -np.expm1(self.log_tail_probability(rows, raw))

    def transform(self, rows: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Map the raw scores of ``rows`` to scores on the shared scale ``1 - p ** (1/10)``; 0 for uncalibrated rows."""
        return score_from_logp(self.log_tail_probability(rows, raw))
