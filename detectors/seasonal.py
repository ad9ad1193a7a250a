"""Seasonal profile: each stream's level plus its learned hour-of-day and hour-of-week shapes, from the points' times.

A stream's expected value is ``level + daily(hour) + weekly(hour of week)``:

* ``level`` follows the de-seasonalised value (time constant a day);
* ``daily`` has 24 hourly bins and ``weekly`` 168, each read and learned by
  linear interpolation between the two nearest bin centres, so a smooth
  cycle is followed smoothly;
* every part learns the same residual, clipped at :data:`CLIP` typical
  residuals (a Huber step), so one absurd value moves none of them much.

Three predictors are kept side by side -- the level alone, with the daily
shape, with both shapes -- each with its running mean absolute error; a
stream is judged by the one that has predicted it best lately.  So a daily
or weekly shape is used only when the timestamps show one; a series without
a cycle is scored against its level, as a robust z-score.

Rates are set in time, not points (``1 - exp(-dt / tau)``), so a stream
sampled every minute and one sampled every hour learn a day alike.  Without
timestamps (NaN times) a point counts as one ``nominal_step`` and only the
level model can be learned.

The score reads the squared residual in units of the chosen predictor's
typical residual as a chi-square with one degree of freedom per field.

**A young stream's first points.**  Clipping needs a typical residual, and
a new stream has none: its first points are learned as they come, and the
very first one *is* the level and sets the first errors.  One absurd value
among them (a 1e300 at power-on) would own the level, the errors and so the
clip for tens of thousands of points.  So each field keeps a summary of its
first :data:`YOUTH` points (their highest and lowest value, and the mean,
spread and range of the others), and once it has learned them its extremes
are judged against the others (:meth:`SeasonalDetector._judge_youth`): an
extreme beyond their range by more than :data:`YOUTH_REACH` times it was
not a value of the stream, and the field's model restarts from the points
judged normal.  A field without one is left exactly as it learned.
"""
from __future__ import annotations

import numpy as np

from .base import Detector
from .registry import register
from .stats import chi2_score, floored, z_multiplier

__all__ = ["SeasonalDetector", "cycle_position"]

DAY, WEEK = 86400.0, 7 * 86400.0
HOURS_PER_DAY, HOURS_PER_WEEK = 24, 168
#: Residuals are learned clipped at this many typical residuals.
CLIP = 4.0
#: An hour's typical residual is taken as at least this share of the stream's overall one.
HOUR_ERROR_FLOOR = 0.25
#: Mean absolute error to standard deviation of a Gaussian, sqrt(pi / 2).
MAE_TO_SIGMA = 1.2533141373155003
#: Longest gap (seconds) counted in one rate: after an outage a stream does not forget everything at once.
MAX_STEP = 6 * 3600.0
#: The unix epoch fell on a Thursday: add 3 days so that day 0 of the week is a Monday.
_EPOCH_WEEKDAY = 3
#: Points a stream learns as they come before its first points are judged: enough for the range of
#: the others to say what the stream's values look like (the ensemble's records judge theirs after as
#: many, detectors/novelty.py STEP_AFTER).
YOUTH = 30
#: A young extreme is absurd when it lies beyond the range of the other young points by more than this
#: many times that range.  28 Gaussian points span some 4 sigma, so that is some 16 typical residuals
#: past the others: the young outliers of a heavy-tailed stream (t with 3 degrees of freedom,
#: exponential) stay inside, a unit error or a sensor's garbage at power-on lies far beyond.  (A
#: first value within it is forgotten as the level and errors average on: it never owned the clip.)
YOUTH_REACH = 4.0


def cycle_position(seconds: np.ndarray, period: float, bins: int, offset: float = 0.0):
    """Return ``(lower_bin, upper_bin, upper_weight)``: linear interpolation between bin centres of a cycle.

    >>> lo, hi, w = cycle_position(np.array([3.0 * 3600, 3.25 * 3600]), DAY, 24)
    >>> lo.tolist(), hi.tolist(), w.tolist()
    ([2, 2], [3, 3], [0.5, 0.75])
    """
    position = ((seconds + offset) % period) / period * bins - 0.5
    floor = np.floor(position)
    lower = floor.astype(np.int64) % bins
    return lower, (lower + 1) % bins, position - floor


@register
class SeasonalDetector(Detector):
    """Distance from a learned level + hour-of-day + hour-of-week profile, in units of the typical residual.

    Parameters
    ----------
    level_days : float
        Time constant of the level, in days.
    daily_days, weekly_days : float
        Memory of each daily bin and each weekly bin, in days: how many
        cycles' worth of visits a bin averages.
    error_days : float
        Time constant of the predictors' running errors, in days.
    nominal_step : float
        Seconds a point counts for when it has no timestamp.
    warmup : int
        Points a stream must have learned before it may score above 0.
    threshold : float
        Default flag threshold on the score.

    Examples
    --------
    Three weeks of five-minute points: busy by day, quiet at night.

    >>> t = np.arange(0, 21 * 86400, 300.0)
    >>> hour = (t % 86400) / 3600
    >>> rng = np.random.default_rng(0)
    >>> x = 20 + 80 * ((hour > 8) & (hour < 20)) + rng.normal(0, 3, t.size)
    >>> at_3am = np.flatnonzero(hour == 3.0)[-1]
    >>> x[at_3am] = 100.0                    # a daytime level at 3 a.m.
    >>> det = SeasonalDetector()
    >>> s = det.score_series(x, timestamps=t)
    >>> bool(s[at_3am] > 0.9), bool(np.quantile(s[4000:], 0.99) < 0.5)
    (True, True)
    >>> low, high = det.expected_range()     # for the point after the last one (a night point)
    >>> bool(0 <= low[0, 0] < 20 < high[0, 0] < 40)
    True
    """

    name = "seasonal"
    uses_time = True
    #: Learned state added after snapshots were first written (see detectors/snapshot.py): an older
    #: snapshot is restored without a summary of its streams' first points, and none of them is judged.
    snapshot_added = ("young_", "young_high_", "young_low_", "young_mean_", "young_m2_", "young_top_",
                      "young_bottom_")

    def __init__(self, *, level_days: float = 1.0, daily_days: float = 7.0, weekly_days: float = 28.0,
                 error_days: float = 3.0, nominal_step: float = 300.0, warmup: int = 30, threshold: float = 0.5):
        super().__init__(warmup=warmup, threshold=threshold)
        self.level_days = float(level_days)
        self.daily_days = float(daily_days)
        self.weekly_days = float(weekly_days)
        self.error_days = float(error_days)
        self.nominal_step = float(nominal_step)

    def _allocate(self, n_streams, n_features):
        if min(self.level_days, self.daily_days, self.weekly_days, self.error_days, self.nominal_step) <= 0:
            raise ValueError("time constants and nominal_step must be positive")
        S, d = n_streams, n_features
        self.level_ = np.zeros((S, d))
        self.count_ = np.zeros(S, dtype=np.int64)
        self.daily_ = np.zeros((S, d, HOURS_PER_DAY), dtype=np.float32)
        self.weekly_ = np.zeros((S, d, HOURS_PER_WEEK), dtype=np.float32)
        #: Visits (interpolation weights) each bin has learned: the first visits are averaged equally.
        self.daily_visits_ = np.zeros((S, HOURS_PER_DAY), dtype=np.float32)
        self.weekly_visits_ = np.zeros((S, HOURS_PER_WEEK), dtype=np.float32)
        #: Running mean absolute error of the three predictors: level, + daily, + weekly.
        self.error_ = np.zeros((S, d, 3))
        #: Mean absolute error of the fullest predictor by hour of day: quiet hours are judged by their own noise.
        self.hour_error_ = np.zeros((S, d, HOURS_PER_DAY), dtype=np.float32)
        self.hour_error_visits_ = np.zeros((S, HOURS_PER_DAY), dtype=np.float32)
        self.last_time_ = np.full(S, np.nan)
        self.last_step_ = np.zeros(S)
        #: Summary of each stream's first YOUTH points (see _judge_youth): how many it holds, each field's
        #: highest and lowest value, and the mean, sum of squared deviations, highest and lowest of the others.
        self.young_ = np.zeros(S, dtype=np.int64)
        self.young_high_ = np.full((S, d), -np.inf)
        self.young_low_ = np.full((S, d), np.inf)
        self.young_mean_ = np.zeros((S, d))
        self.young_m2_ = np.zeros((S, d))
        self.young_top_ = np.full((S, d), -np.inf)
        self.young_bottom_ = np.full((S, d), np.inf)

    # -- the model ----------------------------------------------------------
    def _positions(self, times):
        safe = np.nan_to_num(times)
        return (cycle_position(safe, DAY, HOURS_PER_DAY),
                cycle_position(safe, WEEK, HOURS_PER_WEEK, _EPOCH_WEEKDAY * DAY))

    @staticmethod
    def _read(profile, rows, position):
        lower, upper, weight = position
        flat = profile.reshape(-1)
        w = weight[:, None]
        return (1 - w) * flat.take(_cells(profile, rows, lower)) + w * flat.take(_cells(profile, rows, upper))

    def _predictions(self, rows, times):
        """Return ``(r, d, 3)`` predictions of the level, level + daily, level + daily + weekly models."""
        day, week = self._positions(times)
        timed = ~np.isnan(times)[:, None]
        daily = np.where(timed, self._read(self.daily_, rows, day), 0.0)
        weekly = np.where(timed, self._read(self.weekly_, rows, week), 0.0)
        level = self.level_[rows]
        return np.stack([level, level + daily, level + daily + weekly], axis=2), (day, week)

    def _chosen(self, rows):
        """Index ``(r, d)`` of each field's best predictor lately (the simpler one on ties)."""
        error = self.error_[rows]
        # A richer model must beat a simpler one by 2 %: noise alone never makes a shape look useful.
        handicap = np.array([1.0, 1.02, 1.04])
        return np.argmin(error * handicap, axis=2)

    def _scale(self, rows, chosen, centre, day):
        error = np.take_along_axis(self.error_[rows], chosen[:, :, None], axis=2)[:, :, 0]
        # With a shape in use, the hour's own typical residual (a sharp daily step is hard to
        # follow to the minute, the middle of the night is not), but no less than a quarter of the overall one.
        hourly = np.maximum(self._read(self.hour_error_, rows, day), HOUR_ERROR_FLOOR * error)
        known = self.hour_error_visits_[rows[:, None], np.stack(day[:2], axis=1)].min(axis=1) >= 1.0
        error = np.where((chosen > 0) & known[:, None], hourly, error)
        return floored(MAE_TO_SIGMA * error, centre)

    def _score_and_learn(self, X, present):
        rows = np.flatnonzero(present)
        times = self.time_[rows]
        x = X[rows]
        predictions, positions = self._predictions(rows, times)
        chosen = self._chosen(rows)
        centre = np.take_along_axis(predictions, chosen[:, :, None], axis=2)[:, :, 0]
        scale = self._scale(rows, chosen, centre, positions[0])
        z2 = np.sum(np.minimum(((x - centre) / scale) ** 2, 1e300), axis=1)
        scores = np.zeros(self.n_streams_)
        scores[rows] = np.where(self.count_[rows] >= 2, chi2_score(z2, self.n_features_), 0.0)
        self._learn(rows, x, times, predictions, positions, scale)
        return scores

    def _learn(self, rows, x, times, predictions, positions, scale):
        n = self.count_[rows]
        first = n == 0
        timed = ~np.isnan(times)
        dt = np.where(timed & ~np.isnan(self.last_time_[rows]), times - self.last_time_[rows], self.nominal_step)
        dt = np.clip(dt, 0.0, MAX_STEP)
        # Residuals of the fullest model, clipped at CLIP typical residuals once those are known.
        full = predictions[:, :, 2]
        reach = CLIP * scale
        seasoned = (n >= 3)[:, None]
        learned = np.where(seasoned, np.clip(x, full - reach, full + reach), x)
        residual = np.where(first[:, None], 0.0, learned - full)
        # Predictor errors, from the clipped value too (one absurd point cannot inflate them for long).
        error_rate = np.maximum(_rate(dt, self.error_days * DAY), 1.0 / (n + 1.0))[:, None, None]
        miss = np.abs(learned[:, :, None] - predictions)
        self.error_[rows] = np.where(first[:, None, None] | (n == 1)[:, None, None], miss,
                                     self.error_[rows] + error_rate * (miss - self.error_[rows]))
        level_rate = np.maximum(_rate(dt, self.level_days * DAY), 1.0 / (n + 1.0))[:, None]
        self.level_[rows] = np.where(first[:, None], x, self.level_[rows] + level_rate * residual)
        on = rows[timed & ~first]
        if on.size:
            keep = timed & ~first
            res, step = residual[keep], dt[keep]
            day, week = (tuple(p[keep] for p in pos) for pos in positions)
            self._learn_profile(self.daily_, self.daily_visits_, on, res, day, step, self.daily_days * DAY, HOURS_PER_DAY)
            self._learn_profile(self.weekly_, self.weekly_visits_, on, res, week, step, self.weekly_days * DAY,
                                HOURS_PER_WEEK)
            typical = self._read(self.hour_error_, on, day)
            self._learn_profile(self.hour_error_, self.hour_error_visits_, on, miss[keep, :, 2] - typical, day, step,
                                self.daily_days * DAY, HOURS_PER_DAY)
        had_time = timed & ~np.isnan(self.last_time_[rows])
        self.last_step_[rows] = np.where(had_time, times - self.last_time_[rows], self.last_step_[rows])
        self.last_time_[rows] = np.where(timed, times, self.last_time_[rows])
        self.count_[rows] = n + 1
        # Only a summary of all of a stream's points is judged (one restored from an older snapshot is not).
        young = (n < YOUTH) & (self.young_[rows] == n)
        if young.any():
            self._remember_young(rows[young], x[young])
            grown = rows[young & (n + 1 == YOUTH)]
            if grown.size:
                self._judge_youth(grown)

    def _remember_young(self, rows, x):
        """Add the points ``x`` ``(r, d)`` to the summary of ``rows``' first points.

        The others (all points but the highest and the lowest) only ever
        grow: a new extreme pushes the old one among them.  So their mean and
        spread are running sums of values no absurd extreme enters, and need
        no point stored.
        """
        k = self.young_[rows][:, None]
        high, low = self.young_high_[rows], self.young_low_[rows]
        # The value that joins the others: the extreme a new one displaces, or the point itself.  With
        # fewer than 2 points before it every point is an extreme, and the others are none.
        joining = np.where(x > high, high, np.where(x < low, low, x))
        joins = k >= 2
        with np.errstate(invalid="ignore", over="ignore"):
            mean, m2 = _welford_add(self.young_mean_[rows], self.young_m2_[rows], k - 2.0, joining, joins)
        self.young_mean_[rows], self.young_m2_[rows] = mean, m2
        self.young_top_[rows] = np.where(joins, np.maximum(self.young_top_[rows], joining), self.young_top_[rows])
        self.young_bottom_[rows] = np.where(joins, np.minimum(self.young_bottom_[rows], joining),
                                            self.young_bottom_[rows])
        self.young_high_[rows] = np.maximum(high, x)
        self.young_low_[rows] = np.minimum(low, x)
        self.young_[rows] += 1

    def _judge_youth(self, rows):
        """Restart the fields of ``rows`` whose first :data:`YOUTH` points held an absurd extreme.

        Until then a stream had no typical residual to clip by, so its first
        points were learned as they came: an absurd one moved the level, the
        errors and the profiles by itself, and made the errors (hence the
        clip) as absurd, for tens of thousands of points.  Now the others
        have a range: an extreme beyond it by more than :data:`YOUTH_REACH`
        times that range (never less than the scale's floor) lies far past
        what learning lets through once the scale is known (CLIP typical
        residuals).  Its effect on the model cannot be
        taken out point by point, so the field restarts from the points
        judged normal (:meth:`_restart`); a field without such an extreme is
        left exactly as it learned.
        """
        top, bottom = self.young_top_[rows], self.young_bottom_[rows]
        high, low = self.young_high_[rows], self.young_low_[rows]
        mean, m2 = self.young_mean_[rows], self.young_m2_[rows]
        with np.errstate(invalid="ignore", over="ignore"):
            reach = YOUTH_REACH * floored(top - bottom, mean)
            too_high, too_low = high > top + reach, low < bottom - reach
            absurd = (too_high | too_low) & np.isfinite(reach) & np.isfinite(mean)
            if not absurd.any():
                return
            # The normal points: the others and an extreme that is not cut.
            count = np.full(mean.shape, YOUTH - 2.0)
            mean, m2 = _welford_add(mean, m2, count, high, ~too_high)
            count = count + ~too_high
            mean, m2 = _welford_add(mean, m2, count, low, ~too_low)
            count = count + ~too_low
            sigma = np.sqrt(m2 / (count - 1.0))
        self._restart(rows, absurd, mean, sigma)

    def _restart(self, rows, fields, level, sigma):
        """Start the ``fields`` ``(r, d)`` of ``rows`` afresh: level ``level``, typical residual from ``sigma``, no shape.

        Every predictor and every hour starts with the same error, so the
        level alone judges the stream until a shape has been learned again
        and proves better.  Bin visits are per stream, shared by its fields,
        and kept: a restarted field's bins learn at the rate of bins that
        visited, which is never slower than the time rate.
        """
        typical = (sigma / MAE_TO_SIGMA)[:, :, None]
        cut = fields[:, :, None]
        self.level_[rows] = np.where(fields, level, self.level_[rows])
        self.error_[rows] = np.where(cut, typical, self.error_[rows])
        self.hour_error_[rows] = np.where(cut, typical, self.hour_error_[rows])
        self.daily_[rows] = np.where(cut, 0.0, self.daily_[rows])
        self.weekly_[rows] = np.where(cut, 0.0, self.weekly_[rows])

    @staticmethod
    def _learn_profile(profile, visits, rows, residual, position, dt, memory, bins):
        """Move the two bins around each point towards the residual, by their interpolation weights."""
        lower, upper, weight = position
        # A bin is visited for 1/bins of each cycle: its rate per point makes it remember `memory` of time.
        base = _rate(dt * bins, memory)
        flat, flat_visits = profile.reshape(-1), visits.reshape(-1)
        for b, w in ((lower, 1.0 - weight), (upper, weight)):
            at = rows * bins + b
            seen = flat_visits.take(at) + w
            flat_visits[at] = seen
            rate = (w * np.maximum(base, w / np.maximum(seen, 1e-9)))[:, None]
            cells = _cells(profile, rows, b)
            flat[cells] = flat.take(cells) + rate * residual

    # -- explanations -----------------------------------------------------
    def expected_range(self):
        rows = np.arange(self.n_streams_)
        # The next point's time is unknown: take the last point's time plus the stream's last step.
        predictions, (day, _) = self._predictions(rows, self.last_time_ + self.last_step_)
        chosen = self._chosen(rows)
        centre = np.take_along_axis(predictions, chosen[:, :, None], axis=2)[:, :, 0]
        half = z_multiplier(self.threshold, 1) * self._scale(rows, chosen, centre, day)
        unknown = (self.count_ < 2)[:, None]
        return np.where(unknown, np.nan, centre - half), np.where(unknown, np.nan, centre + half)


def _cells(profile, rows, bins):
    """Flat indices ``(r, d)`` of bin ``bins[i]`` of every field of stream ``rows[i]`` in a ``(S, d, B)`` profile."""
    _, d, width = profile.shape
    return (rows[:, None] * d + np.arange(d)[None, :]) * width + bins[:, None]


def _welford_add(mean, m2, count, value, add):
    """Return the mean and the sum of squared deviations of ``count`` values after adding ``value`` where ``add``.

    >>> mean, m2 = _welford_add(np.array([2.0]), np.array([2.0]), np.array([2.0]), np.array([5.0]), np.array([True]))
    >>> mean.tolist(), m2.tolist()                  # 1, 3 then 5: mean 3, deviations 4 + 0 + 4
    ([3.0], [8.0])
    """
    grown = np.maximum(count + 1.0, 1.0)
    delta = value - mean
    moved = mean + delta / grown
    return np.where(add, moved, mean), np.where(add, m2 + delta * (value - moved), m2)


def _rate(dt, tau):
    """The weight of a new observation after ``dt`` seconds in an average with time constant ``tau``."""
    return -np.expm1(-np.asarray(dt, dtype=float) / tau)
