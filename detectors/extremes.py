"""How rare a record is: the tail beyond a channel's recent maximum, learned from the maxima of its recent blocks.

A record tracker (:mod:`detectors.novelty`) knows, for each channel, the
maxima of the last few blocks of ``m`` points.  Two facts turn a new value
``x`` above the recent maximum ``M`` of ``n`` points into a tail probability:

* **Distribution-free:** among ``n + 1`` exchangeable points the newest is
  the highest with probability ``1 / (n + 1)``, whatever their distribution.
* **Extreme value theory:** the maxima of blocks of ``m`` points follow a
  generalised extreme value (GEV) law ``(location, scale, shape)`` whatever
  the distribution of the points (for the distributions streams show), and
  then beyond any high level ``M`` the excess of a point is generalised
  Pareto with the same ``shape`` and the scale ``scale + shape * (M -
  location)`` (threshold stability).  So the chance that a record beats
  ``M`` by more than ``e`` is ``(1 + shape * e / scale_M) ** (-1 / shape)``
  (``exp(-e / scale_M)`` at shape 0).

The GEV is fitted to the *quartiles* of the block maxima, not their mean or
their top: an anomaly owns a block or two, which moves the upper quartile
little and the fit hardly at all (the channel's own records, which anomalies
own, once widened a learned scale until injected anomalies went unseen).
The shape is kept in ``[0, SHAPE_MAX]``: a light tail (Gaussian noise, a
bounded seasonal swing) is read as exponential, which errs towards fewer
alarms, and a heavy tail (Student t) keeps its power law.

The numpy code here is the streaming path; the compiled record kernel
(``detectors.kernels.record_ticks``) mirrors it scalar by scalar.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["SHAPE_MAX", "BISECTIONS", "fit_block_maxima", "log_excess_probability"]

#: Heaviest tail shape fitted (Student t with 2 degrees of freedom): beyond it the quartiles of a
#: few block maxima say more about noise than about the tail.
SHAPE_MAX = 0.5
#: Halvings of ``[0, SHAPE_MAX]`` when solving for the shape (far below any shape's noise).
BISECTIONS = 40
#: Shapes below this are the Gumbel limit (shape 0), computed with logarithms instead of powers.
GUMBEL_BELOW = 1e-9
#: ``-log`` of the quartile levels 0.25, 0.5, 0.75: the GEV quantile at level ``q`` is
#: ``location + scale * reduced(-log q, shape)``.
LOG_LOWER, LOG_MIDDLE, LOG_UPPER = -math.log(0.25), -math.log(0.5), -math.log(0.75)


def reduced(minus_log_level, shape):
    """The standard GEV quantile at level ``exp(-minus_log_level)`` for ``shape`` (``>= 0``), elementwise."""
    shape = np.asarray(shape, dtype=float)
    gumbel = shape < GUMBEL_BELOW
    safe = np.where(gumbel, 1.0, shape)
    return np.where(gumbel, -np.log(minus_log_level), (minus_log_level ** -safe - 1.0) / safe)


def fit_block_maxima(maxima: np.ndarray):
    """``(shape, scale, location)`` ``(R,)`` of the GEV through the quartiles of each row of ``maxima`` ``(R, B)``.

    Unfilled blocks are ``-inf`` and left out (each row needs at least one
    filled block; a row of equal maxima gets scale 0).  The quartiles are
    linearly interpolated order statistics; the shape solves, by bisection,
    the ratio of the upper to the lower quartile gap.
    """
    ordered = np.sort(maxima, axis=1)
    B = ordered.shape[1]
    filled = np.isfinite(ordered).sum(axis=1)
    quartiles = []
    for level in (0.25, 0.5, 0.75):
        position = (B - filled) + level * (filled - 1)
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, B - 1)
        weight = position - below
        low = np.take_along_axis(ordered, below[:, None], axis=1)[:, 0]
        high = np.take_along_axis(ordered, above[:, None], axis=1)[:, 0]
        quartiles.append(low + weight * (high - low))
    lower, middle, upper = quartiles
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (upper - middle) / (middle - lower)
    low_shape, high_shape = np.zeros(len(ratio)), np.full(len(ratio), SHAPE_MAX)
    for _ in range(BISECTIONS):
        shape = 0.5 * (low_shape + high_shape)
        middle_std = reduced(LOG_MIDDLE, shape)
        fitted = (reduced(LOG_UPPER, shape) - middle_std) / (middle_std - reduced(LOG_LOWER, shape))
        heavier = fitted < ratio
        low_shape = np.where(heavier, shape, low_shape)
        high_shape = np.where(heavier, high_shape, shape)
    shape = 0.5 * (low_shape + high_shape)
    scale = (upper - lower) / (reduced(LOG_UPPER, shape) - reduced(LOG_LOWER, shape))
    location = middle - scale * reduced(LOG_MIDDLE, shape)
    return shape, scale, location


def log_excess_probability(shape, scale, location, record, excess, scale_floor):
    """``log P(excess over record > excess | above record)`` under the fitted tail (elementwise).

    ``scale_floor`` bounds the tail's scale at the record from below (a
    channel of quantised values has equal block maxima: scale 0, which
    would make every new record infinitely rare).
    """
    at_record = np.maximum(scale + shape * (record - location), scale_floor)
    gumbel = shape < GUMBEL_BELOW
    safe = np.where(gumbel, 1.0, shape)
    return np.where(gumbel, -excess / at_record, -np.log1p(safe * excess / at_record) / safe)
