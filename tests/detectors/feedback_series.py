"""The series of the 'not an anomaly' tests (engine and API): a noisy sine with an injected bump."""
from __future__ import annotations

import numpy as np

#: The injected pattern: a five-point bump added to the series (about 4 to 7 standard deviations
#: of the baseline's noise above a sine of amplitude 5).
BUMP = np.array([12.0, 18.0, 22.0, 18.0, 12.0])


def bumped_series(seed: int, phase: float, length: int, starts) -> np.ndarray:
    """``length`` points of ``50 + 5 sin(2 pi t / 300 + phase)`` plus N(0, 1) noise, with
    :data:`BUMP` added at each of ``starts``."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    x = 50 + 5 * np.sin(2 * np.pi * t / 300 + phase) + rng.normal(0, 1, length)
    for start in starts:
        x[start:start + len(BUMP)] += BUMP
    return x
