"""Building blocks for the streams' normal behaviour: clock-driven cycles and correlated noise.

Every cycle is a function of the simulated UTC timestamp, so a stream's
pattern follows simulated time whatever ``step_seconds`` is.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SECONDS_PER_DAY", "hour_of_day", "day_start", "daily_wave", "business_hours", "weekly_factor", "ar1"]

SECONDS_PER_DAY = 86_400.0
# 1970-01-01 was a Thursday: shifting by three days puts Monday at 0.
_EPOCH_WEEKDAY = 3.0


def hour_of_day(timestamps: np.ndarray) -> np.ndarray:
    """Hour of the UTC day, fractional, in [0, 24)."""
    return np.mod(timestamps, SECONDS_PER_DAY) / 3600.0


def day_start(timestamps: np.ndarray) -> np.ndarray:
    """Timestamp of the UTC midnight that opens each timestamp's day."""
    return np.floor(np.asarray(timestamps) / SECONDS_PER_DAY) * SECONDS_PER_DAY


def daily_wave(timestamps: np.ndarray, peak_hour: float) -> np.ndarray:
    """A smooth daily cycle in [0, 1]: 1 at ``peak_hour``, 0 twelve hours away."""
    phase = 2.0 * np.pi * (hour_of_day(timestamps) - peak_hour) / 24.0
    return 0.5 * (1.0 + np.cos(phase))


def business_hours(timestamps: np.ndarray, open_hour: float, close_hour: float, steepness: float) -> np.ndarray:
    """About 1 between ``open_hour`` and ``close_hour``, about 0 outside, with logistic ramps.

    ``steepness`` is per hour; gentle ramps keep the normal morning rise from
    looking like a level shift to a detector.
    """
    hour = hour_of_day(timestamps)
    rise = 1.0 / (1.0 + np.exp(-steepness * (hour - open_hour)))
    fall = 1.0 / (1.0 + np.exp(steepness * (hour - close_hour)))
    return rise * fall


def weekly_factor(timestamps: np.ndarray, weekend_level: float, ramp_hours: float = 8.0) -> np.ndarray:
    """1 on weekdays, ``weekend_level`` on Saturday and Sunday, with raised-cosine ramps.

    The ramps are centred on Saturday's and Monday's midnights so the weekend
    never arrives as an unlabelled step.
    """
    days = np.asarray(timestamps) / SECONDS_PER_DAY + _EPOCH_WEEKDAY
    hours = np.mod(days, 7.0) * 24.0  # 0 = Monday 00:00, the weekend is [120, 168)
    # Count the first half of the week as following the weekend, so both ramps lie on one axis.
    hours = np.where(hours < 84.0, hours + 168.0, hours)
    half = ramp_hours / 2.0
    rising = np.clip((hours - (120.0 - half)) / ramp_hours, 0.0, 1.0)
    falling = np.clip((168.0 + half - hours) / ramp_hours, 0.0, 1.0)
    weight = 0.5 * (1.0 - np.cos(np.pi * np.minimum(rising, falling)))
    return 1.0 + (weekend_level - 1.0) * weight


def ar1(rng: np.random.Generator, last: np.ndarray, phi: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Continue unit-variance AR(1) noise for ``n`` steps from the row ``last``.

    Returns the ``(n, d)`` noise and its final row (the state for the next call).
    """
    from scipy.signal import lfilter  # here: scipy.signal is slow to import and a server may start without it

    last = np.asarray(last, dtype=float)
    shocks = rng.standard_normal((n, last.size)) * np.sqrt(1.0 - phi * phi)
    noise, _ = lfilter([1.0], [1.0, -phi], shocks, axis=0, zi=(phi * last)[None, :])
    return noise, noise[-1].copy()
