"""Discords: the z-normalised distance of a stream's latest stretch to its nearest earlier stretch, at a few lengths.

For each window length ``w`` the detector keeps a causal *left matrix
profile* value: the smallest z-normalised Euclidean distance between the
newest ``w`` points and any earlier ``w`` points within a bounded history
(overlaps closer than a quarter window excluded, as in the matrix-profile
literature).  A stretch whose shape nothing in the history resembles -- a
discord -- is far from all of them.  Several lengths catch short glitches
and slow shape changes alike.

Each window is summarised by :data:`BLOCKS` block means (piecewise
aggregate approximation, ``w / BLOCKS`` points per block) and its running
dot products with every earlier stretch are updated once per block, newest
term in, oldest out (the STOMP recurrence), so a block costs ``O(history)``
per stream and a tick about ``history / block`` per window.  Streams close
their blocks on staggered phases, so a lock-step bank spreads that work
over the ticks.  The distance is held between block ends.

Z-normalisation divides by each stretch's spread; a flat stretch would make
noise look like shape, so spreads are floored at :data:`FLAT_SHARE` of the
stream's typical stretch spread.

Each length's distances are calibrated per stream by a
:class:`~detectors.calibration.TailCalibrator` (peaks over threshold); the
score is the rarest length's tail probability times the number of lengths
(a Bonferroni bound).

Why not stumpy: its streaming ``stumpi`` keeps one Python object per stream,
grows its profile with the whole history, and updates one point at a time
for one series; the engine needs one vectorised step for thousands of
streams with bounded memory.
"""
from __future__ import annotations

import numpy as np

from .base import Detector
from .calibration import TailCalibrator
from .pattern import _as_slice
from .registry import register
from .stats import score_from_logp

__all__ = ["DiscordDetector"]

#: Block means per window (the resolution of a shape).
BLOCKS = 8
#: Stretches closer than this many blocks overlap too much to count as earlier matches (a quarter window).
EXCLUSION = BLOCKS // 4
#: A stretch's spread is floored at this share of the stream's typical spread.
FLAT_SHARE = 0.1
#: Weight of a new stretch spread in the running typical spread.
SPREAD_RATE = 1.0 / 64.0
#: Blocks between exact recomputations of the running dot products (rounding cannot pile up).
RESYNC = 512


class _Window:
    """The running left-matrix-profile state of one window length for every stream."""

    def __init__(self, n_streams: int, length: int, lags: int):
        self.block = max(1, length // BLOCKS)
        self.lags = int(lags)
        S, width = n_streams, self.lags + BLOCKS + 1
        # Block means, newest first: column k is the block k blocks back.
        self.means = np.zeros((S, width))
        # Dot product, mean and spread of the stretch starting k blocks back (column 0: the newest).
        self.dot = np.zeros((S, self.lags + 1))
        self.centre = np.zeros((S, self.lags + 1))
        self.spread = np.zeros((S, self.lags + 1))
        self.typical = np.zeros(S)
        self.sum = np.zeros(S)
        self.fill = np.zeros(S, dtype=np.int64)
        # Staggered first blocks: stream i closes its first block after 1 + i % block points.
        self.size = 1 + np.arange(S, dtype=np.int64) % self.block
        self.blocks = np.zeros(S, dtype=np.int64)
        self.calibrator = TailCalibrator().reset(S)
        self.logp = np.zeros(S)
        #: Each stream's left matrix-profile distance at its last block end (0 until known).
        self.distance = np.zeros(S)

    def add(self, rows: np.ndarray, x: np.ndarray) -> None:
        """Add the rows' points; close the blocks that are full and update their distances."""
        self.sum[rows] += x
        self.fill[rows] += 1
        closing = rows[self.fill[rows] >= self.size[rows]]
        if closing.size:
            self._close(closing)

    def _close(self, rows):
        M, L = BLOCKS, self.lags
        # Staggered phases make the closing rows of a lock-step bank evenly spaced: as a slice,
        # the per-lag arrays below are views updated in place, not copies written back.
        at = _as_slice(rows)
        means = self.means[at]
        means[:, 1:] = means[:, :-1]
        means[:, 0] = self.sum[rows] / self.fill[rows]
        blocks = self.blocks[rows] + 1
        dot = self.dot[at]
        # The newest stretch moved by one block: its dot product with the stretch k blocks back
        # gains the newest term and loses the oldest.
        dot[:, 1:] += means[:, :1] * means[:, 1:L + 1] - means[:, M:M + 1] * means[:, M + 1:M + L + 1]
        due = np.flatnonzero((blocks + rows) % RESYNC == 0)
        if due.size:
            dot[due] = _exact_dots(means[due], L)
        newest = means[:, :M]
        centre, spread = self.centre[at], self.spread[at]
        centre[:, 1:], spread[:, 1:] = centre[:, :-1], spread[:, :-1]
        centre[:, 0], spread[:, 0] = newest.mean(axis=1), newest.std(axis=1)
        full = blocks >= M
        typical = self.typical[rows]
        typical = np.where(full & (typical > 0), typical + SPREAD_RATE * (spread[:, 0] - typical),
                           np.where(full, spread[:, 0], typical))
        floor = FLAT_SHARE * typical[:, None] + 1e-12 * (np.abs(centre[:, :1]) + 1.0)
        sd = np.sqrt(spread**2 + floor**2)
        with np.errstate(all="ignore"):
            correlation = (dot / M - centre[:, :1] * centre) / (sd[:, :1] * sd)
        distance2 = 2.0 * M * (1.0 - np.clip(correlation, -1.0, 1.0))
        # Earlier stretches only: whole, in the history, and apart from the newest by the exclusion zone.
        lag = np.arange(L + 1)[None, :]
        usable = (lag >= EXCLUSION) & (lag <= (blocks - M)[:, None]) & full[:, None]
        nearest = np.where(usable, distance2, np.inf).min(axis=1)
        known = np.isfinite(nearest)
        distance = np.sqrt(np.maximum(nearest, 0.0) / (2.0 * M))  # 0 (same shape) .. ~1 (unrelated)
        self.logp[rows] = np.where(known, self.calibrator.log_tail_probability(rows, distance), 0.0)
        if known.any():
            self.calibrator.update(rows[known], distance[known])
        self.distance[rows] = np.where(known, distance, 0.0)
        if not isinstance(at, slice):
            self.means[rows], self.dot[rows] = means, dot
            self.centre[rows], self.spread[rows] = centre, spread
        self.typical[rows] = typical
        self.blocks[rows] = blocks
        self.sum[rows], self.fill[rows], self.size[rows] = 0.0, 0, self.block


def _exact_dots(means: np.ndarray, lags: int) -> np.ndarray:
    """Dot products ``(r, lags + 1)`` of the newest ``BLOCKS`` block means with those ``k`` blocks back."""
    exact = np.zeros((len(means), lags + 1))
    for i in range(BLOCKS):
        exact += means[:, i:i + 1] * means[:, i:i + lags + 1]
    return exact


@register
class DiscordDetector(Detector):
    """Left matrix-profile distance of the latest stretch at several lengths, calibrated per stream.

    See :mod:`detectors.discord`.  Univariate: a matrix profile compares
    shapes of one series (score each field as its own stream).

    Parameters
    ----------
    windows : tuple of int
        Stretch lengths in points (each at least :data:`BLOCKS`; rounded
        down to whole blocks of ``w // 8`` points).
    lags : int
        Earlier stretches compared per length, one per block: the history
        reaches ``lags * w / 8`` points back.
    warmup : int
        Points a stream must have learned before it may score above 0.
    threshold : float
        Default flag threshold on the score.

    Examples
    --------
    >>> t = np.arange(3000)
    >>> x = np.sin(2 * np.pi * t / 60) + np.random.default_rng(0).normal(0, 0.05, 3000)
    >>> x[2400:2430] = np.sin(2 * np.pi * t[2400:2430] / 15)   # the rhythm changes for 30 points
    >>> s = DiscordDetector().score_series(x)
    >>> bool(s[2400:2500].max() > 0.5), bool(np.quantile(s[1000:2400], 0.99) < s[2400:2500].max())
    (True, True)
    """

    name = "discord"
    multivariate = False
    # A lone spike in a noisy stretch barely changes its z-normalised shape: value detectors score those.
    scores_points = False

    def __init__(self, *, windows=(24, 96, 384), lags: int = 256, warmup: int = 100, threshold: float = 0.5):
        super().__init__(warmup=warmup, threshold=threshold)
        self.windows = tuple(int(w) for w in windows)
        self.lags = int(lags)

    def _allocate(self, n_streams, n_features):
        if not self.windows or min(self.windows) < BLOCKS:
            raise ValueError(f"{self.name}: give one or more windows of at least {BLOCKS} points")
        if self.lags < BLOCKS:
            raise ValueError(f"{self.name}: lags must be at least {BLOCKS}")
        self.windows_ = [_Window(n_streams, w, self.lags) for w in self.windows]

    def _score_and_learn(self, X, present):
        rows = np.flatnonzero(present)
        x = np.clip(np.nan_to_num(X[rows, 0]), -1e150, 1e150)  # keeps products of an absurd value finite
        for window in self.windows_:
            window.add(rows, x)
        logp = np.min([w.logp for w in self.windows_], axis=0) + np.log(len(self.windows_))
        return score_from_logp(logp)
