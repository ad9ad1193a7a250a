"""How rare a record is: the tail beyond a channel's recent maximum, learned from the highest of its block maxima.

A record tracker (:mod:`detectors.novelty`) knows, for each channel, the
maxima of the last few blocks of ``m`` points.  Two facts turn a new value
``x`` above the recent maximum ``M`` of ``n`` points into a tail probability:

* **Distribution-free:** among ``n + 1`` exchangeable points the newest is
  the highest with probability ``1 / (n + 1)``, whatever their distribution.
* **Extreme value theory:** block maxima of a light-tailed channel (Gaussian,
  exponential, a bounded swing plus noise) follow a Gumbel law of some scale
  ``beta``, and beyond any high level the excess of a single point is then
  exponential with the same ``beta`` (threshold stability).  So the chance
  that a record beats ``M`` by more than ``e`` is ``exp(-e / beta)``.

``beta`` is read from the *top* few block maxima only: the upper tail of a
Gumbel law is exponential, so the spacings ``i * (m_(i) - m_(i+1))`` of its
highest order statistics are exponential of mean ``beta`` (Rényi), and their
median is ``beta * ln 2``.  The top maxima are what matters for a record: on
a seasonal channel they are the peaks of the cycle, whose spread is the noise
at the peak, not the swing of the cycle.  The median of the spacings below the
highest maximum, not their mean, because an anomaly owns a block or two, and
so the top spacing or two (the channel's
own records, which anomalies own, once widened a learned scale until injected
anomalies went unseen).

The numpy code here is the streaming path; the compiled record kernel
(``detectors.kernels.record_ticks``) mirrors it scalar by scalar.
"""
from __future__ import annotations

import numpy as np

__all__ = ["top_spacing_scale", "log_excess_probability", "gaussian_record_scale"]


def top_spacing_scale(maxima: np.ndarray, top: int) -> np.ndarray:
    """The exponential tail scale ``(R,)`` from the ``top`` highest of each row of ``maxima`` ``(R, B)``.

    Unfilled blocks are ``-inf`` and sort last; each row needs at least
    ``top`` (>= 3) filled blocks.  The spacings below the highest maximum,
    ``i * (m_(i) - m_(i+1))`` for ``i = 2 .. top - 1``, their median over
    ``ln 2`` (the median of an even count is the mean of its middle two).
    The highest maximum is left out because an anomaly owns it; with it in,
    the anomaly's spacing would shift every other one to a larger weight.
    """
    highest = -np.sort(-maxima, axis=1)[:, 1:top]
    count = top - 2
    spacings = np.sort((highest[:, :-1] - highest[:, 1:]) * np.arange(2, top), axis=1)
    middle = 0.5 * (spacings[:, (count - 1) // 2] + spacings[:, count // 2])
    return middle / np.log(2.0)


def log_excess_probability(scale, excess, scale_floor):
    """``log P(excess over the record > excess | above it)`` for an exponential tail (elementwise).

    ``scale_floor`` bounds the scale from below (a channel of quantised
    values has equal block maxima: scale 0, which would make every new
    record infinitely rare).
    """
    return -excess / np.maximum(scale, scale_floor)


def gaussian_record_scale(sigma, n):
    """The Gumbel scale ``sigma / sqrt(2 ln n)`` of the maximum of ``n`` Gaussian points of spread ``sigma``.

    The maximum of ``n`` independent normal points of spread ``sigma`` is
    Gumbel with this scale for large ``n`` (the classical norming constant
    ``b_n``), so by threshold stability a record beats the last one by more
    than ``e`` with probability about ``exp(-e / b_n)``: the excess of a
    record measured in the stream's own noise, whatever the width of its
    range.  ``n`` below 3 counts as 3 (the log must be positive).

    >>> round(float(gaussian_record_scale(1.0, 4000)), 3)
    0.246
    """
    n = np.maximum(np.asarray(n, dtype=float), 3.0)
    return np.asarray(sigma, dtype=float) / np.sqrt(2.0 * np.log(n))
