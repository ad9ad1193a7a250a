"""Anomaly episodes: when they happen, and how each kind is written over the normal points.

An *episode* is a run of consecutive points that all carry the same anomaly
kind: one point for a ``spike``, a few to a few dozen for the others, then the
stream is back to normal.  Episodes never overlap and are separated by at
least one normal point.

Sizes are given in units of the stream's *local noise scale* (the standard
deviation of its point-to-point noise at that moment), so a 6-scale spike is
equally visible on a quiet night and on a busy afternoon.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["ANOMALY_KINDS", "LENGTHS", "MAGNITUDES", "Episode", "EpisodeScheduler", "apply_episode"]

ANOMALY_KINDS = ("spike", "level_shift", "drift", "variance", "stuck", "dropout", "contextual")

#: Episode length in points, inclusive range, per kind.
LENGTHS = {
    "spike": (1, 1),
    "level_shift": (8, 24),
    "drift": (12, 36),
    "variance": (8, 24),
    "stuck": (4, 10),
    "dropout": (3, 12),
    "contextual": (6, 24),
}

#: Episode size in local noise scales, range per kind (unused by stuck, dropout and contextual,
#: which replace values instead of offsetting them). For a drift it is the offset reached at the
#: end of the ramp; for a variance change, the standard deviation of the added noise.
MAGNITUDES = {
    "spike": (6.0, 10.0),
    "level_shift": (6.0, 10.0),
    "drift": (8.0, 12.0),
    "variance": (5.0, 8.0),
    "stuck": (0.0, 0.0),
    "dropout": (0.0, 0.0),
    "contextual": (0.0, 0.0),
}


@dataclass
class Episode:
    """One planned anomaly: ``length`` points from index ``start`` on the fields in ``fields``."""

    kind: str
    start: int
    length: int
    fields: np.ndarray
    magnitude: float
    #: For ``stuck``: the reading the sensor froze at, set when the episode is first written.
    anchor: np.ndarray | None = None

    @property
    def stop(self) -> int:
        """Index one past the episode's last point."""
        return self.start + self.length


class EpisodeScheduler:
    """Plans non-overlapping episodes just ahead of the points that need them.

    Parameters
    ----------
    rng : numpy.random.Generator
        The scheduler's own generator, so planning never disturbs the normal points.
    rate : float
        Expected long-run fraction of labelled points, in [0, 0.5]; 0 plans nothing.
    kinds : dict of str to int
        Kinds this stream uses, each with an integer weight.
    fields : tuple of str
        The stream's fields.
    kind_fields : dict
        Per kind, the fields it hits: a tuple of names, ``"one"`` for one field
        drawn per episode, missing for all fields.
    signs : dict of str to int
        Per kind, +1 or -1 to fix the direction; missing kinds draw it per episode.
    lengths, magnitudes : dict
        Per kind, ``(low, high)`` ranges that override :data:`LENGTHS` and :data:`MAGNITUDES`.
    warmup : int
        No episode starts before this index.
    place : callable
        ``place(kind, start, length, rng) -> (start, length)``: lets the stream move
        or shorten an episode (contextual episodes must fall in quiet hours).

    Notes
    -----
    Kinds are drawn from a shuffled bag holding each kind ``weight`` times, refilled
    when empty, so every kind of a stream shows up within a few episodes.  The gap
    between episodes is ``min_gap + Exponential(mean_gap - min_gap)`` with
    ``mean_gap = mean_length * (1 - rate) / rate`` and ``min_gap = mean_gap / 4``,
    which makes the expected labelled fraction ``rate``; the first episode starts
    ``Uniform(0, mean_gap)`` points after ``warmup``.  When ``place`` delays an
    episode, the following gap is shortened by the delay (never below ``min_gap``);
    a delay longer than ``mean_gap`` would starve the rate, so that kind waits
    for the next episode and the bag's next kind goes first.
    """

    def __init__(
        self,
        *,
        rng: np.random.Generator,
        rate: float,
        kinds: dict,
        fields: tuple,
        kind_fields: dict,
        signs: dict,
        lengths: dict,
        magnitudes: dict,
        warmup: int,
        place: Callable,
    ):
        self.rng = rng
        self.kinds = dict(kinds)
        self.fields = tuple(fields)
        self.kind_fields = dict(kind_fields)
        self.signs = dict(signs)
        self.lengths = {**LENGTHS, **lengths}
        self.magnitudes = {**MAGNITUDES, **magnitudes}
        self.place = place
        self.pending_: list[Episode] = []
        self.bag_: list[str] = []
        weights = np.array(list(self.kinds.values()), dtype=float)
        mean_lengths = np.array([sum(self.lengths[k]) / 2.0 for k in self.kinds])
        self.mean_length_ = float(weights @ mean_lengths / weights.sum())
        if rate > 0:
            self.mean_gap_ = self.mean_length_ * (1.0 - rate) / rate
            self.min_gap_ = max(1, int(self.mean_gap_ / 4.0))
            self.next_start_: int | None = int(warmup + rng.uniform(0.0, self.mean_gap_))
        else:
            self.mean_gap_, self.min_gap_, self.next_start_ = np.inf, 0, None

    def overlapping(self, lo: int, hi: int) -> list[Episode]:
        """Episodes touching indices ``[lo, hi)``, planning ahead as needed; finished ones are dropped."""
        while self.next_start_ is not None and self.next_start_ < hi:
            self.pending_.append(self._plan())
        self.pending_ = [ep for ep in self.pending_ if ep.stop > lo]
        return [ep for ep in self.pending_ if ep.start < hi]

    def _next_kind(self, excluding: str | None = None) -> str:
        """Pop the bag's next kind other than ``excluding``, adding a shuffled round when none is left."""
        if all(kind == excluding for kind in self.bag_):
            round_ = [kind for kind, weight in self.kinds.items() for _ in range(weight)]
            self.bag_ = [round_[i] for i in self.rng.permutation(len(round_))] + self.bag_
        return self.bag_.pop(max(i for i, kind in enumerate(self.bag_) if kind != excluding))

    def _field_mask(self, kind: str) -> np.ndarray:
        chosen = self.kind_fields.get(kind, self.fields)
        if chosen == "one":
            chosen = (self.fields[int(self.rng.integers(len(self.fields)))],)
        return np.array([name in chosen for name in self.fields])

    def _plan(self) -> Episode:
        rng = self.rng
        planned = self.next_start_
        kind = self._next_kind()
        start, length = self.place(kind, planned, self._draw_length(kind), rng)
        if start - planned > self.mean_gap_ and len(self.kinds) > 1:
            # Waiting that long for the right hour would starve the rate: keep the kind
            # on top of the bag for the next episode and take another one now.
            deferred, kind = kind, self._next_kind(excluding=kind)
            self.bag_.append(deferred)
            start, length = self.place(kind, planned, self._draw_length(kind), rng)
        size_low, size_high = self.magnitudes[kind]
        sign = self.signs.get(kind) or (1 if rng.random() < 0.5 else -1)
        episode = Episode(kind, start, length, self._field_mask(kind), sign * rng.uniform(size_low, size_high))
        gap = self.min_gap_ + rng.exponential(self.mean_gap_ - self.min_gap_)
        self.next_start_ = episode.stop + max(self.min_gap_, int(round(gap - (start - planned))))
        return episode

    def _draw_length(self, kind: str) -> int:
        low, high = self.lengths[kind]
        return int(self.rng.integers(low, high + 1))


def apply_episode(
    episode: Episode,
    first_index: int,
    values: np.ndarray,
    scale: np.ndarray,
    labels: np.ndarray,
    *,
    previous_row: np.ndarray | None,
    floors: np.ndarray,
    contextual_shift: Callable[[slice], np.ndarray],
    rng: np.random.Generator,
) -> None:
    """Write the part of ``episode`` that falls in a block of points, in place.

    Parameters
    ----------
    episode : Episode
    first_index : int
        Absolute index of the block's first row.
    values, scale : ndarray of shape (n, d)
        The block's normal values (overwritten) and local noise scales.
    labels : ndarray of object, shape (n,)
        Kind per row, None for normal rows (overwritten inside the episode).
    previous_row : ndarray or None
        The row just before the block, for a stuck episode starting on its first row.
    floors : ndarray of shape (d,)
        What each field reads when its sensor drops out.
    contextual_shift : callable
        Given a slice of block rows, the ``(rows, d)`` offset that moves them to the
        stream's busy-hour level.
    rng : numpy.random.Generator
        Draws the extra noise of a variance change.
    """
    a = max(episode.start, first_index) - first_index
    b = min(episode.stop, first_index + len(values)) - first_index
    if a >= b:
        return
    rows = slice(a, b)
    fields = episode.fields
    kind = episode.kind
    if kind in ("spike", "level_shift"):
        values[rows, fields] += episode.magnitude * scale[rows][:, fields]
    elif kind == "drift":
        position = np.arange(a, b) + first_index - episode.start
        ramp = (position + 1.0) / episode.length
        values[rows, fields] += episode.magnitude * ramp[:, None] * scale[rows][:, fields]
    elif kind == "variance":
        extra = rng.standard_normal((b - a, int(fields.sum())))
        values[rows, fields] += abs(episode.magnitude) * extra * scale[rows][:, fields]
    elif kind == "stuck":
        if episode.anchor is None:
            before = values[a - 1] if a > 0 else previous_row
            episode.anchor = np.array(values[a] if before is None else before, dtype=float)
        values[rows, fields] = episode.anchor[fields]
    elif kind == "dropout":
        values[rows, fields] = floors[fields]
    elif kind == "contextual":
        values[rows, fields] += contextual_shift(rows)[:, fields]
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}")
    labels[rows] = kind
