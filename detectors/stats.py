"""The one score scale every detector shares, and the statistics the simple detectors need.

A detector finds the tail probability ``p`` of a point under its model of
normal behaviour and reports ``score = 1 - p ** (1/10)``: a score ``s`` means
``p = (1 - s) ** 10``.  So 0.5 is about one in a thousand, 0.75 one in a
million and 0.9 one in ten billion, and scores keep their order far into the
tail (to about 25 standard deviations) instead of all rounding to 1.0
(``1 - p`` does past ``p < 1e-16``, about 8 standard deviations).

Squared standardised distances over ``d`` fields are read against a
chi-square law with ``d`` degrees of freedom (the two-sided Gaussian tail for
one field).

>>> round(float(score_from_logp(np.log(1e-3))), 3)
0.499
>>> round(float(chi2_score(np.array([9.0]), 1)[0]), 3)    # |z| = 3: p = 0.0027
0.446
>>> round(z_multiplier(float(chi2_score(np.array([9.0]), 1)[0])), 6)
3.0
>>> bool(chi2_score(np.array([100.0]), 1)[0] < chi2_score(np.array([400.0]), 1)[0] < 1.0)
True
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Scores are ``1 - p ** (1 / SCORE_POWER)``.
SCORE_POWER = 10.0
#: Relative floor on a spread estimate, so a flat window does not divide by zero.
SPREAD_FLOOR = 1e-9
_LOG2 = float(np.log(2.0))


def score_from_logp(logp) -> np.ndarray:
    """Map natural-log tail probabilities to scores in [0, 1]."""
    return -np.expm1(np.minimum(logp, 0.0) / SCORE_POWER)


def logp_from_score(score) -> np.ndarray:
    """Map scores back to natural-log tail probabilities (the inverse of :func:`score_from_logp`)."""
    return SCORE_POWER * np.log1p(-np.clip(score, 0.0, 1.0 - 1e-16))


def chi2_logp(z2: np.ndarray, d: int) -> np.ndarray:
    """Return ``log P(chi2_d >= z2)`` without underflow far into the tail."""
    # scipy.special only (imported here, ~0.3 s): scipy.stats would cost the server's start most of a
    # second, and its chi2.logsf is log(chdtrc) (equal to 2e-16, the same zeros, on d = 2..64).
    from scipy import special

    z2 = np.maximum(np.nan_to_num(z2, nan=0.0, posinf=1e300), 0.0)
    if d == 1:
        return _LOG2 + special.log_ndtr(-np.sqrt(z2))
    with np.errstate(divide="ignore"):
        return np.log(special.chdtrc(d, z2))


def hotelling_logp(t2: np.ndarray, d: int, n) -> np.ndarray:
    """Return ``log P(T2 >= t2)`` of a new Gaussian point against the mean and unbiased covariance of ``n`` earlier ones.

    A distance from an *estimated* mean and covariance is heavier-tailed than
    chi-square: ``n (n - d) / ((n + 1) (n - 1) d) * T2`` follows Snedecor's F
    law with ``d`` and ``n - d`` degrees of freedom (the prediction form of
    Hotelling's T2), Student's t squared for one field.  Read against
    chi-square, the distances of 38 Gaussian fields from their last 100 points
    were "rarer than 1 %" at half of the points.  With ``n`` (a scalar or one
    per distance) at most ``d + 1`` the covariance cannot be estimated (it is
    singular, only a ridge inverts it): no evidence, ``log p = 0``.  Past the
    float range of the F tail the chi-square tail of the same statistic takes
    over, so far-out points keep their order.

    >>> d2 = np.array([9.0, 9.0, 30.0, 30.0])
    >>> np.round(np.exp(hotelling_logp(d2, 1, np.array([10, 10_000, 10, 2]))), 4).tolist()
    [0.0188, 0.0027, 0.0005, 1.0]
    >>> float(np.exp(hotelling_logp(np.array([38.0]), 38, 100))[0]) > 0.9  # chi-square's median: common here
    True
    """
    from scipy import special

    t2 = np.maximum(np.nan_to_num(np.asarray(t2, dtype=float), nan=0.0, posinf=1e300), 0.0)
    n = np.broadcast_to(np.asarray(n, dtype=float), t2.shape)
    logp = np.zeros(t2.shape)
    fits = n > d + 1
    if fits.any():
        m = n[fits]
        f = t2[fits] * m * (m - d) / ((m + 1.0) * (m - 1.0) * d)
        with np.errstate(divide="ignore"):
            tail = np.log(special.fdtrc(d, m - d, f))
        far = ~np.isfinite(tail)
        if far.any():  # rare: only these need the chi-square tail
            tail[far] = chi2_logp(f[far] * d, d)
        logp[fits] = tail
    return logp


def chi2_score(z2: np.ndarray, d: int) -> np.ndarray:
    """Return the score of a squared standardised distance over ``d`` fields."""
    return score_from_logp(chi2_logp(z2, d))


@lru_cache(maxsize=256)  # asked every tick with the same few thresholds; scipy's isf costs ~50 us a call
def z_multiplier(threshold: float, d: int = 1) -> float:
    """Return the distance (in spreads) at which a point of ``d`` fields reaches ``threshold``."""
    from scipy import special

    p = (1.0 - min(max(threshold, 0.0), 1.0 - 1e-15)) ** SCORE_POWER
    return float(np.sqrt(special.chdtri(d, max(p, 1e-300))))  # chi2.isf(p, d), without scipy.stats


def median_of_three(a, b, c):
    """Elementwise median of three numbers or arrays (NaN where any is NaN); plain enough for numba too.

    >>> median_of_three(np.array([1.0, 5.0]), np.array([1e300, 2.0]), np.array([3.0, -1e300])).tolist()
    [3.0, 2.0]
    """
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def floored(spread: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Return ``spread`` raised to a tiny floor relative to the centre's magnitude."""
    return np.maximum(spread, SPREAD_FLOOR * (np.abs(centre) + 1.0))
