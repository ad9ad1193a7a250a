"""Seeded EV charging sessions at public chargers, with labelled injected fraud, DoS and conflicts.

About 100 chargers and 1,000 users.  Each charger has a power (7.4 kW AC to
150 kW DC), a tariff per kWh (20 % dearer from 17:00 to 21:00 UTC) and a
few regular users; each user has a car (battery, charging power) and a
usual energy per session.  A charger's day is a queue: an idle gap, a
session, an idle gap of a minute or more, ..., so normal sessions never overlap on one charger;
few sessions start between 01:00 and 05:00; about 2 % of sessions are
aborted after a few minutes.

Injected anomalies, each labelled in the ``label`` column (empty for normal):

``billing_fraud``        a normal session (of 2 kWh or more) whose payment is cut: to
                         under 1 when it delivered over 50 kWh, otherwise to 2-35 % of its tariff.
``dos_attack``           a burst of 3-8 bookings of under 5 minutes each, by one
                         user on one charger within an hour, delivering almost nothing.
``multi_user_conflict``  a second user's session that starts while another user's
                         session on the same charger is still going.

Days are made in order and each from its own child generator, so the same
seed gives the same sessions however the days are asked for; :meth:`~EVChargingGenerator.state`
and :meth:`~EVChargingGenerator.restore` let a restarted feed continue where it stopped.

>>> gen = EVChargingGenerator(seed=1)
>>> day = gen.next_day()
>>> sorted(day.columns) == sorted(COLUMNS), day["start_time"].is_monotonic_increasing
(True, True)
>>> bool(EVChargingGenerator(seed=1).next_day().equals(day))
True
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .base import DEFAULT_START

__all__ = ["COLUMNS", "EVChargingGenerator", "KINDS"]

COLUMNS = ("session_id", "user_id", "charger_id", "start_time", "duration", "energy", "payment",
           "ip_address", "label")
KINDS = ("billing_fraud", "dos_attack", "multi_user_conflict")
_DAY = 86400.0
_POWERS = np.array([7.4, 11.0, 22.0, 50.0, 150.0])
_POWER_SHARES = np.array([0.25, 0.25, 0.2, 0.15, 0.15])
#: Sessions per charger per day the queue is drawn for (far more than fit in a day).
_QUEUE = 64


class EVChargingGenerator:
    """Endless, seeded days of charging sessions.

    Parameters
    ----------
    seed : int
    n_users, n_chargers : int
    start : float
        Epoch seconds of the first day's midnight (default 2026-01-01 UTC).
    billing_fraud_rate, conflict_rate : float
        Fraction of normal sessions turned into fraud, and given a conflicting second user.
    dos_bursts_per_day : float
        Expected number of DoS bursts a day.
    """

    def __init__(self, seed: int = 0, n_users: int = 1000, n_chargers: int = 100,
                 start: float = DEFAULT_START, billing_fraud_rate: float = 0.01,
                 conflict_rate: float = 0.005, dos_bursts_per_day: float = 1.5):
        if n_users < 2 or n_chargers < 1:
            raise ValueError("needs at least two users and one charger")
        for name, rate in (("billing_fraud_rate", billing_fraud_rate), ("conflict_rate", conflict_rate)):
            if not 0 <= rate <= 0.2:
                raise ValueError(f"{name} must be in [0, 0.2]")
        if dos_bursts_per_day < 0:
            raise ValueError("dos_bursts_per_day must be >= 0")
        self.seed, self.n_users, self.n_chargers = int(seed), int(n_users), int(n_chargers)
        self.start = float(start)
        self.billing_fraud_rate, self.conflict_rate = float(billing_fraud_rate), float(conflict_rate)
        self.dos_bursts_per_day = float(dos_bursts_per_day)
        self.reset()

    def reset(self) -> "EVChargingGenerator":
        rng = np.random.default_rng([self.seed, 0xEC])
        C, U = self.n_chargers, self.n_users
        self.charger_ids_ = np.array([f"C{i:03d}" for i in range(C)], dtype=object)
        self.user_ids_ = np.array([f"U{i:04d}" for i in range(U)], dtype=object)
        self.charger_kw_ = rng.choice(_POWERS, C, p=_POWER_SHARES)
        dc = self.charger_kw_ >= 50
        self.price_ = np.round(np.where(dc, rng.uniform(0.45, 0.69, C), rng.uniform(0.25, 0.45, C)), 2)
        self.gap_minutes_ = rng.uniform(30, 180, C)
        self.battery_ = rng.uniform(40, 100, U)
        self.car_kw_ = np.where(rng.random(U) < 0.6, 11.0, 7.4)
        self.car_kw_ = np.where(rng.random(U) < 0.5, 150.0, self.car_kw_)  # DC-capable cars
        self.usual_kwh_ = np.exp(rng.uniform(np.log(8), np.log(45), U))
        self.ip_ = np.array([f"10.{i // 250}.{i % 250}.{rng.integers(1, 255)}" for i in range(U)], dtype=object)
        # Each user charges at three chargers; a charger's regulars are its users.
        homes = np.array([rng.choice(C, 3, replace=False) for _ in range(U)])
        regulars = [np.flatnonzero((homes == c).any(axis=1)) for c in range(C)]
        regulars = [r if len(r) else rng.choice(U, 3, replace=False) for r in regulars]
        width = max(len(r) for r in regulars)
        self.regulars_ = np.array([np.resize(r, width) for r in regulars])
        self.regular_count_ = np.array([len(r) for r in regulars])
        self.free_at_ = self.start - rng.uniform(0, 120, C) * 60.0
        self.day_ = 0
        self.sessions_made_ = 0
        return self

    # -- public API ---------------------------------------------------------------------------
    def next_day(self) -> pd.DataFrame:
        """The sessions starting on the next simulated day, in start order."""
        rng = np.random.default_rng([self.seed, self.day_])
        day_start = self.start + self.day_ * _DAY
        normal = self._normal_day(rng, day_start)
        frame = self._inject(rng, normal, day_start)
        frame = frame.sort_values("start_time", kind="stable").reset_index(drop=True)
        numbers = self.sessions_made_ + np.arange(len(frame))
        frame.insert(0, "session_id", np.array([f"S{k:08d}" for k in numbers], dtype=object))
        self.sessions_made_ += len(frame)
        self.day_ += 1
        return frame[list(COLUMNS)]

    def sessions_bound_per_day(self) -> int:
        """More sessions than one day can make: every charger's queue, and as many injected again."""
        return self.n_chargers * _QUEUE * 2

    def state(self) -> dict:
        """Where the generator is, as plain JSON data: :meth:`restore` continues from it exactly.

        The next day's sessions depend only on the seed, the day number, the sessions made so
        far (their numbering) and when each charger is next free.
        """
        return {"seed": self.seed, "n_users": self.n_users, "n_chargers": self.n_chargers,
                "start": self.start, "day": self.day_, "sessions_made": self.sessions_made_,
                "free_at": [float(t) for t in self.free_at_]}

    def restore(self, state: dict) -> "EVChargingGenerator":
        """Continue from :meth:`state`; a ValueError when it was taken from another generator."""
        mine = (self.seed, self.n_users, self.n_chargers, self.start)
        theirs = tuple(state.get(k) for k in ("seed", "n_users", "n_chargers", "start"))
        if theirs != mine:
            raise ValueError(f"a state of generator {theirs} cannot continue generator {mine}")
        free_at = np.asarray(state["free_at"], dtype=float)
        if free_at.shape != (self.n_chargers,) or int(state["day"]) < 0 or int(state["sessions_made"]) < 0:
            raise ValueError("the generator state is malformed")
        self.day_, self.sessions_made_ = int(state["day"]), int(state["sessions_made"])
        self.free_at_ = free_at.copy()
        return self

    def days(self, n: int) -> pd.DataFrame:
        """The next ``n`` days of sessions as one frame."""
        return pd.concat([self.next_day() for _ in range(n)], ignore_index=True)

    # -- internals ----------------------------------------------------------------------------
    def _normal_day(self, rng, day_start: float) -> pd.DataFrame:
        C = self.n_chargers
        # At least a minute between sessions: one car leaves, the next plugs in.
        gaps = (1.0 + rng.exponential(self.gap_minutes_[:, None], (C, _QUEUE))) * 60.0
        pick = rng.integers(0, self.regular_count_[:, None], (C, _QUEUE))
        users = self.regulars_[np.arange(C)[:, None], pick]
        energy = np.minimum(np.exp(rng.normal(np.log(self.usual_kwh_[users]), 0.3)), self.battery_[users])
        energy = np.maximum(energy, 1.0)
        power = np.minimum(self.charger_kw_[:, None], self.car_kw_[users]) * rng.uniform(0.7, 0.95, (C, _QUEUE))
        minutes = energy / power * 60.0 + rng.uniform(2, 15, (C, _QUEUE))
        aborted = rng.random((C, _QUEUE)) < 0.02
        minutes = np.where(aborted, rng.uniform(1, 5, (C, _QUEUE)), minutes)
        energy = np.where(aborted, power * minutes / 60.0 * rng.uniform(0.1, 0.5, (C, _QUEUE)), energy)
        busy = minutes * 60.0
        starts = self.free_at_[:, None] + np.cumsum(gaps, axis=1) + np.cumsum(busy, axis=1) - busy
        ends = starts + busy
        today = starts < day_start + _DAY
        last = today.sum(axis=1) - 1
        has = last >= 0
        self.free_at_[has] = ends[np.flatnonzero(has), last[has]]
        hour = np.mod(starts, _DAY) / 3600.0
        quiet = (hour >= 1) & (hour < 5) & (rng.random((C, _QUEUE)) < 0.7)
        keep = today & (starts >= day_start) & ~quiet
        c, k = np.nonzero(keep)
        frame = pd.DataFrame({"user": users[c, k], "charger": c, "start_time": starts[c, k],
                              "duration": minutes[c, k], "energy": energy[c, k]})
        frame["label"] = ""
        return frame

    def _tariff(self, charger: np.ndarray, start: np.ndarray) -> np.ndarray:
        hour = np.mod(start, _DAY) / 3600.0
        return self.price_[charger] * np.where((hour >= 17) & (hour < 21), 1.2, 1.0)

    def _inject(self, rng, frame: pd.DataFrame, day_start: float) -> pd.DataFrame:
        charger = frame["charger"].to_numpy()
        start = frame["start_time"].to_numpy()
        energy = frame["energy"].to_numpy()
        payment = energy * self._tariff(charger, start)
        label = frame["label"].to_numpy(dtype=object).copy()
        # Fraud is energy taken and not paid for: a session that delivered next to nothing is no fraud.
        fraud = (rng.random(len(frame)) < self.billing_fraud_rate) & (energy >= 2.0)
        label[fraud] = "billing_fraud"
        big = fraud & (energy > 50)
        payment[big] = rng.uniform(0.0, 0.99, big.sum())
        cut = fraud & ~big
        payment[cut] *= rng.uniform(0.02, 0.35, cut.sum())
        frame = frame.assign(payment=payment, label=label)
        parts = [frame, self._conflicts(rng, frame), self._dos_bursts(rng, frame, day_start)]
        out = pd.concat(parts, ignore_index=True)
        out["payment"] = np.round(out["payment"].to_numpy(), 2)
        out["duration"] = np.round(out["duration"].to_numpy(), 2)
        out["energy"] = np.round(out["energy"].to_numpy(), 3)
        out["user_id"] = self.user_ids_[out.pop("user").to_numpy()]
        c = out.pop("charger").to_numpy()
        out["charger_id"] = self.charger_ids_[c]
        out["ip_address"] = self.ip_[self._user_index(out["user_id"].to_numpy())]
        return out

    def _user_index(self, ids: np.ndarray) -> np.ndarray:
        return np.array([int(i[1:]) for i in ids], dtype=np.int64) if len(ids) else np.zeros(0, np.int64)

    def _conflicts(self, rng, frame: pd.DataFrame) -> pd.DataFrame:
        """Second users starting inside long normal sessions, ending before them."""
        minutes = frame["duration"].to_numpy()
        chosen = np.flatnonzero((minutes >= 30) & (frame["label"].to_numpy() == "")
                                & (rng.random(len(frame)) < self.conflict_rate))
        if chosen.size == 0:
            return frame.iloc[:0]
        host = frame.iloc[chosen]
        offset = host["duration"].to_numpy() * rng.uniform(0.1, 0.6, len(chosen))
        remaining = host["duration"].to_numpy() - offset
        duration = np.maximum(5.0, remaining * rng.uniform(0.3, 0.95, len(chosen)))
        charger = host["charger"].to_numpy()
        start = host["start_time"].to_numpy() + offset * 60.0
        users = (host["user"].to_numpy() + rng.integers(1, self.n_users, len(chosen))) % self.n_users
        power = np.minimum(self.charger_kw_[charger], self.car_kw_[users]) * rng.uniform(0.7, 0.95, len(chosen))
        energy = power * duration / 60.0
        return pd.DataFrame({"user": users, "charger": charger, "start_time": start,
                             "duration": duration, "energy": energy,
                             "payment": energy * self._tariff(charger, start),
                             "label": "multi_user_conflict"})

    def _dos_bursts(self, rng, frame: pd.DataFrame, day_start: float) -> pd.DataFrame:
        """Bursts of short bookings by one user, each placed in an idle gap of one charger."""
        bursts = rng.poisson(self.dos_bursts_per_day)
        if bursts == 0 or frame.empty:
            return frame.iloc[:0]
        ordered = frame.sort_values(["charger", "start_time"])
        c = ordered["charger"].to_numpy()
        s = ordered["start_time"].to_numpy()
        e = s + ordered["duration"].to_numpy() * 60.0
        same = c[1:] == c[:-1]
        gap_start, gap_end, gap_charger = e[:-1][same], s[1:][same], c[1:][same]
        parts = []
        for _ in range(bursts):  # a handful a day: the loop is per burst, not per session
            n = int(rng.integers(3, 9))
            minutes = rng.uniform(0.5, 4.5, n)
            pauses = rng.uniform(1, 6, n) * 60.0
            length = float(np.sum(minutes * 60.0 + pauses))
            fits = np.flatnonzero(gap_end - gap_start > length + 1200.0)
            if fits.size == 0:
                continue
            g = fits[rng.integers(0, fits.size)]
            starts = gap_start[g] + 600.0 + np.cumsum(pauses) - pauses[0] + np.cumsum(minutes * 60.0) - minutes * 60.0
            gap_start[g] = starts[-1] + minutes[-1] * 60.0  # a second burst may not reuse this time
            user = int(rng.integers(0, self.n_users))
            charger = np.full(n, gap_charger[g])
            energy = rng.uniform(0.0, 0.3, n)
            parts.append(pd.DataFrame({"user": user, "charger": charger, "start_time": starts,
                                       "duration": minutes, "energy": energy,
                                       "payment": energy * self._tariff(charger, starts),
                                       "label": "dos_attack"}))
        return pd.concat(parts, ignore_index=True) if parts else frame.iloc[:0]
