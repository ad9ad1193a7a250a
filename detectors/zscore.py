"""Rolling z-score: distance of a point from the mean of its stream's recent window."""
from __future__ import annotations

import numpy as np

from .base import BLOCK_NUMBERS, Detector
from .registry import register
from .stats import SPREAD_FLOOR, floored, hotelling_logp, score_from_logp, z_multiplier
from .window import RollingWindow, trailing, window_mean

#: Relative ridge added to the variances before inverting the covariance.
RIDGE = 1e-6


@register
class ZScoreDetector(Detector):
    """Rolling z-score (Mahalanobis distance for several fields) over the last ``window`` points.

    The mean and covariance come from the ``window`` points before the one
    scored; the squared distance is read against the law it has for a
    Gaussian stream when both are estimated from those points (Hotelling's:
    an F law, :func:`~detectors.stats.hotelling_logp`), so the score is
    ``1 - p`` of a Gaussian stream.  Until 4 December 2026 it was read against
    chi-square, as if the mean and covariance were known: on 38 Gaussian
    fields half of the points scored as rarer than 1 %.

    Parameters
    ----------
    window : int
        Number of past points the mean and spread are estimated from.
    warmup : int
        Points a stream must have learned before it may score above 0.
    threshold : float
        Default flag threshold on the score.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(10, 1, 200); x[150] = 18
    >>> s = ZScoreDetector(window=50).score_series(x)
    >>> int(np.argmax(s)), bool(s[150] > 0.75), float(s[:30].max())
    (150, True, 0.0)
    """

    name = "zscore"

    def __init__(self, *, window: int = 100, warmup: int = 30, threshold: float = 0.5):
        super().__init__(warmup=warmup, threshold=threshold)
        self.window = int(window)

    def _allocate(self, n_streams, n_features):
        self.window_ = RollingWindow(n_streams, self.window, n_features)

    def _moments(self):
        return self._per_tick("moments", lambda: window_moments(
            self.window_.buffer, self.window_.count, bool((self.window_.count == self.window).all()),
            self.window_.mean))

    def _score_and_learn(self, X, present):
        mean, cov = self._moments()
        # Read against the points the window held before this one: scored before it is learned.
        logp = hotelling_logp(squared_distance(X, mean, cov), self.n_features_, self.window_.count)
        self.window_.push(X, present)
        return score_from_logp(logp)

    def expected_range(self):
        return _range(*self._moments(), self.threshold)

    def _score_block(self, row, points, with_range):
        history = self.window_.history(row)
        if self.n_features_ > 1 and len(history) == self.window and _slides(history, points):
            d2, mean, var = sliding_distances(history, points, self.window)
            failed = np.flatnonzero(np.isnan(d2))
            if len(failed):  # a covariance Cholesky cannot factorise: numpy's solve, as the step does
                windows, _ = trailing(history, points, self.window)
                moments = window_moments(windows[failed], np.full(len(failed), self.window), True)
                d2[failed] = squared_distance(points[failed], *moments)
                # The kernel stops a failed row part-way: its mean and variances come from numpy too.
                mean[failed] = moments[0]
                var[failed] = floored(np.diagonal(moments[1], axis1=1, axis2=2), moments[0])
            expected = _range_of(mean, var, self.threshold) if with_range else None
        else:
            d2, expected = [], ([], [])
            # The numpy windows, in pieces of bounded memory.
            step = max(64, BLOCK_NUMBERS // (self.window * self.n_features_ ** 2))
            for a in range(0, len(points), step):
                piece_d2, piece_range = self._numpy_block(history, points, a, a + step, with_range)
                d2.append(piece_d2)
                if with_range:
                    expected[0].append(piece_range[0])
                    expected[1].append(piece_range[1])
            d2 = np.concatenate(d2)
            expected = tuple(np.concatenate(part) for part in expected) if with_range else None
        # Each point's window: the stream's history and the block's points before it, at most ``window``.
        counts = np.minimum(len(history) + np.arange(len(points)), self.window)
        self.window_.extend(row, points)
        return score_from_logp(hotelling_logp(np.asarray(d2, dtype=float), self.n_features_, counts)), expected

    def _numpy_block(self, history, points, start, stop, with_range):
        """Distances (and ranges) of ``points[start:stop]`` from their windows, in numpy (what the step computes)."""
        before = np.concatenate([history, points[:start]])[-self.window:]
        windows, counts = trailing(before, points[start:stop], self.window)
        mean, cov = window_moments(windows, counts, bool((counts == self.window).all()))
        return squared_distance(points[start:stop], mean, cov), _range(mean, cov, self.threshold) if with_range else None

    def _block_width(self):
        # The sliding kernel holds a point's mean and variances; the numpy windows go in pieces of their own.
        return 2

    def _points_to_fill(self, row):
        return self.window - int(self.window_.count[row])


def window_moments(windows: np.ndarray, count: np.ndarray, full: bool, means=None):
    """Mean ``(R, d)`` and unbiased covariance ``(R, d, d)`` of windows ``(R, W, d)`` holding ``count`` points each.

    ``means(power)``, when given, returns ``window_mean(windows, full, power)`` (a ring buffer's own
    :meth:`~detectors.window.RollingWindow.mean`, compiled on a bank's step).
    """
    if means is None:
        means = lambda power: window_mean(windows, full, power)  # noqa: E731
    mean = means(1)
    n = np.maximum(count - 1, 1)[:, None, None]
    if windows.shape[2] == 1:
        unbiased = (count / n[:, 0, 0])[:, None, None]
        cov = (means(2) - mean**2)[:, :, None] * unbiased
        return mean, np.maximum(cov, 0.0)
    with np.errstate(all="ignore"):
        dev = np.nan_to_num(windows - mean[:, None, :])
    return mean, np.matmul(dev.transpose(0, 2, 1), dev) / n


def squared_distance(X: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distances ``(R,)`` of rows ``X`` from ``mean`` under ``cov`` (ridged, floored)."""
    cov = cov.copy()
    d = X.shape[1]
    diag = np.arange(d)
    # A small ridge keeps perfectly correlated (or flat) fields invertible.
    var = floored(cov[:, diag, diag], mean)
    cov[:, diag, diag] = var * (1.0 + RIDGE)
    resid = np.nan_to_num(X - mean)
    if d == 1:
        return resid[:, 0] ** 2 / cov[:, 0, 0]
    return np.einsum("si,si->s", resid, np.linalg.solve(cov, resid[:, :, None])[:, :, 0])


def _range(mean, cov, threshold):
    return _range_of(mean, floored(np.diagonal(cov, axis1=1, axis2=2), mean), threshold)


def _range_of(mean, var, threshold):
    spread = np.sqrt(var)
    k = z_multiplier(threshold, 1)
    return mean - k * spread, mean + k * spread


#: Largest magnitude the sliding moments accept: their squares and products stay far from overflow.
SLIDING_LIMIT = 1e100


def _slides(history: np.ndarray, points: np.ndarray) -> bool:
    """Whether :func:`sliding_distances` applies: every value finite and well inside float range."""
    return bool(np.abs(history).max() < SLIDING_LIMIT and np.abs(points).max() < SLIDING_LIMIT)


def sliding_distances(history: np.ndarray, points: np.ndarray, size: int):
    """Squared distances ``(n,)`` of ``points`` from their full trailing windows, with each window's mean and
    floored variances ``(n, d)``: :func:`window_moments` and :func:`squared_distance` by a compiled slide
    (NaN where the ridged covariance does not factorise).

    >>> rng = np.random.default_rng(0)
    >>> history, points = rng.normal(size=(50, 3)), rng.normal(size=(80, 3))
    >>> d2, mean, var = sliding_distances(history, points, 50)
    >>> windows, counts = trailing(history, points, 50)
    >>> bool(np.allclose(d2, squared_distance(points, *window_moments(windows, counts, True)), rtol=1e-12))
    True
    """
    from .kernels import sliding_distances as slide

    n, d = points.shape
    padded = np.ascontiguousarray(np.concatenate([history[-size:], points[:-1]]), dtype=float)
    d2, mean, var = np.empty(n), np.empty((n, d)), np.empty((n, d))
    if n:
        slide(padded, np.ascontiguousarray(points, dtype=float), size, RIDGE, SPREAD_FLOOR, d2, mean, var)
    return d2, mean, var
