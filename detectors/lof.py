"""Local Outlier Factor against each stream's recent window, scored for all streams in one step.

At a refit a stream copies its sliding window of causal feature vectors
(:class:`~detectors.features.CausalEmbedding`, by default the change since
the previous point and the deviation from a moving average) into a
*reference set* of ``window`` points, standardised per feature with the
window's median and robust scale, and precomputes each reference point's
k-distance and local reachability density (lrd).  A
:class:`~detectors.features.RefitSchedule` lets only a slice of the streams
refit on any one tick.  Scoring a new point of every stream is then a few
array operations: squared distances to the stream's reference points
``(S, W)``, the k-th smallest by ``np.partition``, the reachability
distances of the k nearest, the new point's lrd and
``LOF = mean(lrd of neighbours) / lrd(new point)``, exactly as
scikit-learn's ``LocalOutlierFactor(novelty=True)`` defines it.  The raw
score is ``log(LOF)``; a :class:`~detectors.calibration.TailCalibrator`
maps it to ``1 - p``.
"""
from __future__ import annotations

import numpy as np

from .refitted import RefittedModelDetector
from .calibration import TailCalibrator
from .features import CausalEmbedding, RefitSchedule, robust_center_scale
from .registry import register
from .window import RollingWindow

__all__ = ["LocalOutlierFactorDetector", "lof_fit", "lof_score"]

_LRD_EPSILON = 1e-10  # as scikit-learn: duplicates give a huge, not infinite, density
_SCORE_CHUNK = 1024  # streams per scoring chunk: the (chunk, W) temporaries stay in cache
_FIT_PAIRS = 1 << 17  # point pairs per refit chunk: bounds the (chunk, W, W) distance tensor
#: Most features per point: wider embeddings (many fields) are projected to this many, so a
#: stream's reference set and a tick's distances cost the same at any field count.
MAX_WIDTH = 16
_STANDARD_LIMIT = 1e6


def lof_fit(reference: np.ndarray, n_neighbors: int):
    """k-distance, lrd and LOF of every reference point, for a batch of reference sets.

    Parameters
    ----------
    reference : ndarray, shape (s, W, m)
        Reference sets; rows holding NaN are unused slots (each set needs more
        than ``n_neighbors`` used ones).
    n_neighbors : int
        k.

    Returns
    -------
    k_distance, lrd, lof : ndarray, shape (s, W)
        Per reference point (computed in ``reference``'s float dtype); unused
        slots get ``inf``, 0 and NaN.

    Notes
    -----
    The k nearest neighbours of a point are those within its k-distance.
    Where several points tie at exactly that distance all of them count
    (scikit-learn keeps an arbitrary k); exact duplicates share their
    k-distance and lrd, so for them the result is the same.
    """
    reference = np.asarray(reference)
    if reference.dtype not in (np.float32, np.float64):
        reference = reference.astype(np.float64)
    s, w, m = reference.shape
    unused = np.isnan(reference).any(axis=2)
    filled = np.where(unused[:, :, None], np.inf, reference)
    squared = np.zeros((s, w, w), dtype=reference.dtype)
    with np.errstate(invalid="ignore"):
        for j in range(m):
            diff = filled[:, :, None, j] - filled[:, None, :, j]
            squared += diff * diff
    squared[np.isnan(squared)] = np.inf  # inf - inf between two unused slots
    squared[:, np.arange(w), np.arange(w)] = np.inf  # a point is not its own neighbour
    k = n_neighbors
    k_squared = np.partition(squared, k - 1, axis=2)[:, :, k - 1]
    near = squared <= k_squared[:, :, None]
    n_near = near.sum(axis=2)
    k_distance = np.sqrt(k_squared)
    # reach(p, o) = max(k-distance(o), d(p, o)), averaged over the neighbours o of p
    reach = np.sqrt(np.maximum(squared, k_squared[:, None, :]))
    with np.errstate(invalid="ignore", divide="ignore"):  # unused slots
        lrd = 1.0 / (np.where(near, reach, 0.0).sum(axis=2) / n_near + _LRD_EPSILON)
        lof = np.where(near, lrd[:, None, :], 0.0).sum(axis=2) / n_near / lrd
    lrd = lrd.astype(reference.dtype)
    k_distance[unused] = np.inf
    lrd[unused] = 0.0
    lof[unused] = np.nan
    return k_distance, lrd, lof


def compiled_lof_fit(reference: np.ndarray, n_neighbors: int):
    """:func:`lof_fit` of float32 reference sets by a compiled kernel (:func:`detectors.kernels.lof_fits`), the same arrays.

    A block refits one stream at a time, where numpy's calls on one small
    ``(1, W, W)`` set cost more than the arithmetic.
    """
    from .kernels import lof_fits

    s, w, _ = reference.shape
    k_distance, lrd, lof = np.empty((s, w), np.float32), np.empty((s, w), np.float32), np.empty((s, w))
    lof_fits(np.ascontiguousarray(reference), n_neighbors, k_distance, lrd, lof)
    return k_distance, lrd, lof


def lof_score(reference_t, k_distance, lrd, x, n_neighbors: int) -> np.ndarray:
    """LOF of new points, each against its own reference set.

    Parameters
    ----------
    reference_t : ndarray, shape (N, m, W)
        Reference sets, feature-major (unused slots ``inf``).
    k_distance, lrd : ndarray, shape (N, W)
        From :func:`lof_fit`.
    x : ndarray, shape (N, m)
        One new point per reference set.
    n_neighbors : int
        k (the same as at fit).
    """
    n, m, w = reference_t.shape
    dtype = reference_t.dtype
    x = np.asarray(x, dtype=dtype)
    out = np.empty(n, dtype=np.float64)
    k = n_neighbors
    for a in range(0, n, _SCORE_CHUNK):
        b = min(n, a + _SCORE_CHUNK)
        squared = np.zeros((b - a, w), dtype=dtype)
        diff = np.empty_like(squared)
        for j in range(m):
            np.subtract(reference_t[a:b, j, :], x[a:b, j, None], out=diff)
            diff *= diff
            squared += diff
        k_squared = np.partition(squared, k - 1, axis=1)[:, k - 1 : k]
        near = squared <= k_squared
        n_near = near.sum(axis=1)
        np.sqrt(squared, out=squared)
        reach = np.maximum(squared, k_distance[a:b], out=squared)
        with np.errstate(invalid="ignore"):  # inf * 0 in unused slots, never near
            mean_reach = np.where(near, reach, 0).sum(axis=1) / n_near
            mean_lrd = np.where(near, lrd[a:b], 0).sum(axis=1) / n_near
        out[a:b] = mean_lrd * (mean_reach + _LRD_EPSILON)
    return out


def _finite(standardised: np.ndarray) -> np.ndarray:
    """Clip standardised features to +-1e6, so an absurd (or infinite) value keeps distances finite."""
    return np.clip(standardised, -_STANDARD_LIMIT, _STANDARD_LIMIT)


@register
class LocalOutlierFactorDetector(RefittedModelDetector):
    """Local Outlier Factor of each new point against its stream's recent window, refit on a schedule.

    Parameters
    ----------
    n_neighbors : int
        k, the neighbours of a point.
    window : int
        Reference points per stream (the most recent points at the last refit).
    refit_every : int
        A stream renews its reference set every ``refit_every`` of its points
        (a few streams per tick; see :class:`~detectors.features.RefitSchedule`).
    embed : str
        Feature parts per point, see :class:`~detectors.features.CausalEmbedding`.
        The default leaves out the raw value: between refits a drifting
        level (trend, daily cycle) leaves the window's range and would be
        flagged on every point, while changes and deviations stay comparable.
    scale : bool
        Standardise each feature by the reference window's median and robust
        scale (otherwise raw features, as scikit-learn would see them).
    warmup : int
        Points before a stream may score above 0; the first reference set is
        taken once a stream has ``max(warmup, 2 * n_neighbors)`` points (a few
        ticks later when more streams are due than one tick may refit).
    threshold : float
        Default flag threshold on the calibrated score.

    Notes
    -----
    LOF has no random draws, so there is no seed: the scores are always
    reproducible.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(600)
    >>> series = np.sin(2 * np.pi * t / 50) + 0.1 * rng.standard_normal(600)
    >>> series[500] += 3.0
    >>> scores = LocalOutlierFactorDetector().score_series(series)
    >>> int(np.argmax(scores)), bool(scores[500] > 0.75), bool(np.median(scores[300:]) < 0.1)
    (500, True, True)
    """

    name = "lof"
    multivariate = True

    def __init__(
        self,
        *,
        n_neighbors: int = 10,
        window: int = 64,
        refit_every: int = 128,
        embed: str = "diff+dev",
        scale: bool = True,
        warmup: int = 64,
        threshold: float = 0.5,
    ):
        super().__init__(warmup=warmup, threshold=threshold)
        self.n_neighbors = n_neighbors
        self.window = window
        self.refit_every = refit_every
        self.embed = embed
        self.scale = scale

    def _allocate(self, n_streams: int, n_features: int) -> None:
        if self.n_neighbors < 1:
            raise ValueError("n_neighbors must be at least 1")
        if self.window <= self.n_neighbors or self.refit_every < 1:
            raise ValueError("window must exceed n_neighbors and refit_every must be at least 1")
        self.embedding_ = CausalEmbedding(self.embed, max_width=MAX_WIDTH).reset(n_streams, n_features)
        width = self.embedding_.width_
        self.window_ = RollingWindow(n_streams, self.window, width, dtype=np.float32)
        first_fit = max(self.warmup, 2 * self.n_neighbors)
        self.schedule_ = RefitSchedule(first=first_fit, every=self.refit_every).reset(n_streams)
        self.calibrator_ = TailCalibrator().reset(n_streams)
        self.reference_ = np.full((n_streams, width, self.window), np.inf, dtype=np.float32)
        self.k_distance_ = np.full((n_streams, self.window), np.inf, dtype=np.float32)
        self.lrd_ = np.zeros((n_streams, self.window), dtype=np.float32)
        self.center_ = np.zeros((n_streams, width), dtype=np.float32)
        self.scale_ = np.ones((n_streams, width), dtype=np.float32)
        self.fitted_ = np.zeros(n_streams, dtype=bool)

    def _refit_chunk(self) -> int:
        return max(1, _FIT_PAIRS // self.window**2)

    def raw_scores(self, rows: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Uncalibrated scores ``log(LOF)`` of ``features`` against the reference sets of ``rows``."""
        x = _finite((features - self.center_[rows]) / self.scale_[rows])
        if rows.size == self.n_streams_ and (rows == np.arange(rows.size)).all():  # all rows, in order: no copy
            args = (self.reference_, self.k_distance_, self.lrd_)
        else:
            args = (self.reference_[rows], self.k_distance_[rows], self.lrd_[rows])
        lof = lof_score(*args, x, self.n_neighbors)
        return np.log(np.maximum(lof, 1e-30))

    def _block_raw_scores(self, rows: np.ndarray, features: np.ndarray) -> np.ndarray:
        """:meth:`raw_scores` by a compiled kernel (:func:`detectors.kernels.lof_points`, the same float32 sums)."""
        from .kernels import lof_points

        x = np.ascontiguousarray(_finite((features - self.center_[rows]) / self.scale_[rows]), dtype=self.reference_.dtype)
        lof = np.empty(len(x))
        lof_points(self.reference_, self.k_distance_, self.lrd_, np.asarray(rows, dtype=np.int64), x,
                   self.n_neighbors, lof)
        return np.log(np.maximum(lof, 1e-30))

    def _refit_block(self, row: int) -> None:
        """:meth:`_refit` of one stream inside a block: a full, scaled window in two compiled calls
        (:func:`detectors.kernels.lof_reference`, then the fit), else :meth:`_refit`; the same model."""
        from .kernels import lof_fits, lof_reference

        window, width = self.window_.buffer[row], self.reference_.shape[1]
        reference = np.empty((1, self.window, width), dtype=np.float32)
        center, scale = np.empty(width, dtype=np.float32), np.empty(width, dtype=np.float32)
        if not (self.scale and self.fitted_[row] and self.window_.count[row] == self.window
                and lof_reference(window, _STANDARD_LIMIT, center, scale, reference[0], self.reference_[row])):
            self._refit(np.array([row]), compiled=True)
            return
        lof_fits(reference, self.n_neighbors, self.k_distance_[row:row + 1], self.lrd_[row:row + 1],
                 np.empty((1, self.window)))
        self.center_[row], self.scale_[row] = center, scale
        self.calibrator_.fit_compiled(np.array([row]))

    def _refit(self, rows: np.ndarray, compiled: bool = False) -> None:
        values = self.window_.buffer[rows]  # unused slots are NaN: they become unused reference slots
        if self.scale:
            center, scale = robust_center_scale(values)
        else:
            center = np.zeros(values.shape[::2], dtype=np.float32)
            scale = np.ones_like(center)
        reference = (values - center[:, None, :]) / scale[:, None, :]
        reference = np.where(np.isnan(reference), np.nan, _finite(reference))  # NaN marks unused slots
        if compiled and reference.dtype == np.float32:
            k_distance, lrd, lof = compiled_lof_fit(reference, self.n_neighbors)
        else:
            k_distance, lrd, lof = lof_fit(reference, self.n_neighbors)
        self.reference_[rows] = np.where(np.isnan(reference), np.inf, reference).transpose(0, 2, 1)
        self.k_distance_[rows] = k_distance
        self.lrd_[rows] = lrd
        self.center_[rows] = center
        self.scale_[rows] = scale
        first = ~self.fitted_[rows]
        self.fitted_[rows] = True
        if first.any():
            # No past scores yet: start from the reference points' own LOFs.
            keep = self.calibrator_.memory
            self.calibrator_.push(rows[first], np.log(np.maximum(lof[first][:, -keep:], 1e-30)))
        # A block refits its one row by the kernel; a tick's several rows, numpy's vectorised fit does at once.
        (self.calibrator_.fit_compiled if compiled and len(rows) == 1 else self.calibrator_.fit)(rows)
