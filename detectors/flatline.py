"""Stuck readings: a run of identical values far longer than a stream's own history of repeats makes likely.

A frozen sensor keeps sending its last reading.  Its values stay inside the
field's usual range, so no record and no point-wise surprise sees it; what
is new is the *repetition*.  :class:`FlatlineTracker` marks, per field of
each stream, every value equal to the field's previous one, and scores runs
of those repeats by the field's own history of repeats
(:class:`~detectors.runs.RunTracker`): a continuous reading that has never
repeated is stuck after a few identical values, while a quantised one that
idles at the same value every night needs a run far longer than its
nightly ones.

The stream's ``log p`` is its rarest field's times the number of fields
(Bonferroni), so a stated false-alarm rate holds per stream, not per field.

>>> tracker = FlatlineTracker(mature=1).reset(n_streams=1, n_features=1)
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(size=400), np.full(5, 0.5)])
>>> logp = [float(tracker.update(np.array([[v]]), np.array([True]))[0]) for v in x]
>>> max(logp[:401])                          # no repeat: nothing to say
0.0
>>> [round(v, 1) for v in logp[401:]]        # 1 in 400 for the first repeat, rarer for each next one
[-6.0, -12.0, -13.1, -13.8]
"""
from __future__ import annotations

import numpy as np

from .runs import RunTracker

#: Pairs of a field's values before a run of repeats counts in full (as many points as a value
#: record needs, ``detectors.ensemble.VALUE_MATURE``).
FLATLINE_MATURE = 400

__all__ = ["FlatlineTracker"]


class FlatlineTracker:
    """Runs of repeated values of ``d`` fields of ``S`` streams, scored by each field's own repeat history.

    Parameters
    ----------
    mature : int
        Pairs of values a field has shown before a run of repeats counts in full.
    memory : int or None
        Repeats after which a run counts no more (None: no limit).
    """

    #: As its run tracker's (detectors/runs.py): restored with the running values.
    snapshot_tunable = ("mature", "memory")

    def __init__(self, mature: int = FLATLINE_MATURE, memory: int | None = None):
        self.mature = int(mature)
        self.memory = memory

    def reset(self, n_streams: int, n_features: int) -> "FlatlineTracker":
        """Forget everything; allocate state for ``n_streams`` streams of ``n_features`` fields."""
        #: Each field's last value (NaN before the first point).
        self.last_ = np.full((n_streams, n_features), np.nan)
        #: Runs of repeats per field.
        self.repeats_ = RunTracker(self.mature, self.memory).reset(n_streams, n_features)
        return self

    @staticmethod
    def _per_stream(field_logp):
        """The rarest field's ``log p`` times the number of fields (Bonferroni), never above 0."""
        d = field_logp.shape[-1]
        return np.minimum(field_logp.min(axis=-1) + np.log(d), 0.0)

    def update(self, X: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Return each stream's ``log p`` ``(S,)`` of its current run of repeats (0 without one), then learn ``X``."""
        present = present[:, None]
        pairs = present & ~np.isnan(self.last_)
        logp = self.repeats_.update(pairs & (X == self.last_), pairs)
        self.last_ = np.where(present, X, self.last_)
        return self._per_stream(logp)

    def update_ticks(self, X: np.ndarray, present: np.ndarray) -> np.ndarray:
        """:meth:`update` over ``T`` ticks ``X`` ``(T, S, d)`` (``present``: ``(T, S)``); return the ``(T, S)`` ``log p``."""
        T, S, d = X.shape
        if T == 0:
            return np.zeros((0, S))
        present = np.broadcast_to(present[:, :, None], X.shape)
        # The last value before each tick: the latest present one, or the stored one.
        latest = np.maximum.accumulate(np.where(present, np.arange(T)[:, None, None], -1), axis=0)
        before = np.concatenate([np.full((1, S, d), -1), latest[:-1]])
        last = np.where(before >= 0, np.take_along_axis(X, np.maximum(before, 0), axis=0), self.last_[None])
        pairs = present & ~np.isnan(last)
        logp = self.repeats_.update_ticks(pairs & (X == last), pairs)
        self.last_ = np.where(present[-1], X[-1], last[-1])
        return self._per_stream(logp)
