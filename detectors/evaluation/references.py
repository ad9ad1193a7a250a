"""Reference detectors scored beside ours in the same run: a rolling Hotelling T² and River's HalfSpaceTrees.

Neither is tuned on any labels.  Both flag a point when its score exceeds the
``1 - alpha`` quantile of the reference's own scores on the warm-up (train)
rows of the same series, past the reference's own warm-up -- the same kind of
rule as a stated false-alarm rate, learned without labels.  ``alpha``
defaults to 1e-3, the tail probability behind the default ensemble's
point-wise cap.
"""
from __future__ import annotations

import numpy as np

__all__ = ["rolling_t2", "half_space_trees", "train_quantile_flags", "T2_WINDOW", "T2_RIDGE", "DEFAULT_ALPHA"]

#: Points of history a rolling T² estimates its mean and covariance from.
T2_WINDOW = 1000
#: Ridge added to the covariance, as a fraction of the window's mean variance (keeps one-hot and
#: constant fields invertible).
T2_RIDGE = 1e-3
#: Stated false-alarm rate of the references' flags.
DEFAULT_ALPHA = 1e-3


def rolling_t2(series: list, window: int = T2_WINDOW, ridge: float = T2_RIDGE, progress=None) -> list[np.ndarray]:
    """Score series with the same field count by a causal rolling Hotelling T², batched over the series.

    The score of row ``t`` is ``(x_t - m)' (C + r I)^-1 (x_t - m)``, where
    ``m`` and ``C`` are the sample mean and covariance of the (up to)
    ``window`` rows before ``t`` and ``r = ridge * trace(C) / d`` (plus
    1e-12 so a constant window stays invertible).  A series scores 0 until
    it has ``max(30, 2 d)`` rows of history.  Each tick updates running sums
    of ``x`` and ``x x'`` (one row in, one out) for every series at once;
    the sums are recomputed from the window every ``window`` ticks so
    rounding cannot drift.

    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=(400, 2)); x[300] = [4.0, -4.0]
    >>> scores = rolling_t2([x], window=200)[0]
    >>> int(np.argmax(scores)), bool(scores[:30].max() == 0)
    (300, True)
    """
    arrays = [np.asarray(s, dtype=float).reshape(len(s), -1) for s in series]
    if not arrays:
        return []
    d = arrays[0].shape[1]
    if any(a.shape[1] != d for a in arrays):
        raise ValueError("all series must have the same number of fields")
    if window < 2:
        raise ValueError("window must be at least 2")
    n_series, length = len(arrays), max(len(a) for a in arrays)
    min_history = min(window, max(30, 2 * d))
    # Values relative to each series' first row: running sums of small numbers round less.
    origin = np.stack([a[0] for a in arrays])
    padded = np.zeros((length, n_series, d))
    present = np.zeros((length, n_series), dtype=bool)
    for i, a in enumerate(arrays):
        padded[: len(a), i] = a - origin[i]
        present[: len(a), i] = True
    ring = np.zeros((window, n_series, d))
    total = np.zeros((n_series, d))
    outer = np.zeros((n_series, d, d))
    count = np.zeros(n_series)
    scores = np.zeros((length, n_series))
    eye = np.eye(d)
    for t in range(length):
        x = padded[t]
        ready = count >= min_history
        if ready.any():
            n = count[ready][:, None]
            mean = total[ready] / n
            cov = (outer[ready] - n[:, :, None] * mean[:, :, None] * mean[:, None, :]) / np.maximum(n - 1, 1)[:, :, None]
            cov = 0.5 * (cov + cov.transpose(0, 2, 1))
            scale = np.clip(np.trace(cov, axis1=1, axis2=2) / d, 0.0, None)
            cov += (ridge * scale + 1e-12)[:, None, None] * eye
            delta = x[ready] - mean
            solved = np.linalg.solve(cov, delta[:, :, None])[:, :, 0]
            scores[t, ready] = np.maximum(np.einsum("ij,ij->i", delta, solved), 0.0)
        # Learn: the row enters the window, the row ``window`` ticks old leaves it.  A finished
        # series (no row on this tick) keeps its window: it is no longer scored.
        slot = t % window
        live = present[t]
        leaving = np.where((live & (count >= window))[:, None], ring[slot], 0.0)
        entering = np.where(live[:, None], x, 0.0)
        total += entering - leaving
        outer += entering[:, :, None] * entering[:, None, :] - leaving[:, :, None] * leaving[:, None, :]
        ring[slot] = np.where(live[:, None], x, ring[slot])
        count = np.where(live, np.minimum(count + 1, window), count)
        if slot == window - 1:
            # Slots a series has not filled yet hold zeros, so the ring's sums are exact for every series.
            total = ring.sum(axis=0)
            outer = np.einsum("wsi,wsj->sij", ring, ring)
        if progress is not None and (t + 1) % 1000 == 0:
            progress(1000)
    if progress is not None:
        progress(length % 1000)
    return [scores[: len(a), i].copy() for i, a in enumerate(arrays)]


def half_space_trees(values, warmup: int, seed: int = 42, **params) -> np.ndarray:
    """Score one series with River's ``HalfSpaceTrees`` (score, then learn, row by row).

    HalfSpaceTrees assumes features in [0, 1], so every field is min/max
    scaled by its range on the warm-up (train) rows -- the only part a
    causal detector could have seen before the judged rows; a field constant
    there is divided by 1.  Later values outside that range fall outside
    [0, 1], which the trees treat as lying beyond their outermost split.
    ``params`` go to ``HalfSpaceTrees`` (River's defaults otherwise: 10 trees
    of height 8, window 250).

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(600, 3)); x[550] = [6.0, -6.0, 6.0]
    >>> scores = half_space_trees(x, warmup=300)
    >>> int(np.argmax(scores)), bool(scores[:250].max() == 0)
    (550, True)
    """
    from river.anomaly import HalfSpaceTrees

    values = np.asarray(values, dtype=float).reshape(len(values), -1)
    reference = values[: max(int(warmup), 1)]
    low, span = reference.min(axis=0), np.ptp(reference, axis=0)
    scaled = (values - low) / np.where(span > 0, span, 1.0)
    model = HalfSpaceTrees(seed=seed, **params)
    scores = np.empty(len(values))
    for t, row in enumerate(scaled.tolist()):
        point = dict(enumerate(row))
        scores[t] = model.score_one(point)
        model.learn_one(point)
    return scores


def train_quantile_flags(scores, warmup: int, alpha: float = DEFAULT_ALPHA,
                         skip: int = 0) -> tuple[np.ndarray, float]:
    """Flag rows whose score exceeds the ``1 - alpha`` quantile of the scores of warm-up rows ``skip..warmup``.

    ``skip`` leaves out the reference's own warm-up (rows it scores 0 while
    it fills its window); with no warm-up row left after it, every warm-up
    row is used, and with no warm-up rows at all nothing is flagged.  Returns
    the flags and the threshold.

    >>> flags, threshold = train_quantile_flags(np.r_[np.linspace(0, 1, 101), [0.5, 2.0]], warmup=101, alpha=0.01)
    >>> round(threshold, 3), np.flatnonzero(flags).tolist()
    (0.99, [100, 102])
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    scores = np.asarray(scores, dtype=float)
    calibration = scores[min(skip, max(warmup - 1, 0)) : warmup]
    if not len(calibration):
        return np.zeros(len(scores), dtype=bool), float("inf")
    threshold = float(np.quantile(calibration, 1.0 - alpha))
    return scores > threshold, threshold
