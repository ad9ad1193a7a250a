"""Learned per-entity baselines: each (entity, feature) is a row of a few numbers in numpy.

Why not the engine's ensemble per entity: measured on this machine, the
default ensemble keeps about 54 KB per three-field stream and one step of a
2,000-row bank takes about 130 ms (zscore+mad alone: 22 KB and 60 ms), and a
bank steps every row on every tick.  100,000 entities would take over 5 GB
and seconds per step, while an event touches one entity.  An event stream
per entity needs less: an exponentially weighted mean and variance of each
(transformed) feature, which costs 20 bytes per (entity, feature) and is
updated for a whole batch with a few ``bincount`` calls.

An entity's baseline is its own mean and variance shrunk towards its
population's (all entities of that key) with the weight of ``warmup``
events, so a new user is judged by everyone's habits at first and by their
own after a few sessions.  Each event is scored before it is learned, and an
event beyond ``threshold`` is not learned, so an attack does not teach its
own baseline (nor does one a rule flags, :class:`~server.pipeline.scoring.Scorer`).
Within a batch, events are scored in :func:`rounds`, each after its entity's
earlier ones were learned, so a file's own history counts.

>>> from .entities import EntityTable
>>> table = EntityTable(capacity=10, idle_seconds=1e9)
>>> model = Baselines([("x", "none", 0.1)], memory=100, warmup=5)
>>> model.attach(table)
>>> rng = np.random.default_rng(0)
>>> rows = np.zeros(200, dtype=np.int64)
>>> z = model.score(rows, rng.normal(10, 1, (200, 1)))  # a cold entity: nothing known yet
>>> model.learn(rows, rng.normal(10, 1, (200, 1)), np.zeros(200, bool))
>>> float(np.round(model.score(rows[:1], np.array([[16.0]]))[0, 0], 1))
5.9
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["Baselines", "LOG_FLOOR", "MOST_ROUNDS", "rounds"]

#: Values below this are taken as this before a log transform (a zero stays finite).
LOG_FLOOR = 1e-3


class Baselines:
    """Exponentially weighted mean and variance per (entity, feature), with a population prior.

    Parameters
    ----------
    features : sequence of (name, transform, min_scale)
        ``transform`` is ``"log"`` (the natural log, of at least :data:`LOG_FLOOR`,
        for positive skewed measures such as energy or price, whose changes are
        relative) or ``"none"``; ``min_scale`` is the
        smallest standard deviation (in transformed units) a baseline may
        claim, so a perfectly regular entity does not flag every tiny change.
    memory : int
        Events an entity remembers: older ones weigh ``exp(-1)`` less after this many.
    warmup : int
        The population prior's weight, in events.
    """

    def __init__(self, features: Sequence[tuple[str, str, float]], memory: int, warmup: int):
        self.names = [f[0] for f in features]
        self.log = np.array([f[1] == "log" for f in features])
        self.min_var = np.array([f[2] for f in features], dtype=float) ** 2
        self.memory = float(memory)
        self.warmup = float(warmup)
        d = len(self.names)
        self.population = {"mean": np.zeros(d), "var": np.zeros(d), "n": np.zeros(d)}
        self.table = None

    @property
    def prefix(self) -> str:
        return "baseline:" + ",".join(self.names)

    def attach(self, table) -> None:
        """Keep the per-entity state in ``table``'s columns (reset when an entity is evicted)."""
        d = len(self.names)
        for part in ("mean", "var", "n"):
            table.add_column(f"{self.prefix}:{part}", (d,), 0.0, dtype=np.float64 if part != "n" else np.float32)
        self.table = table

    def _state(self, part: str) -> np.ndarray:
        return self.table.columns[f"{self.prefix}:{part}"]

    def export_state(self) -> dict[str, np.ndarray]:
        """The population's state (the per-entity state is in the table's columns)."""
        return {f"population:{part}": values.copy() for part, values in self.population.items()}

    def import_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Load an :meth:`export_state`; ``ValueError`` (nothing changed) if its shapes differ."""
        loaded = {part: np.array(arrays[f"population:{part}"], dtype=float) for part in self.population}
        if any(values.shape != self.population[part].shape for part, values in loaded.items()):
            raise ValueError(f"baseline population of {self.names} has another shape")
        self.population = loaded

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        out = X.copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, self.log] = np.log(np.maximum(X[:, self.log], LOG_FLOOR))
        return out

    def score(self, rows: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Deviation of each value from its entity's baseline, in standard units (NaN: no evidence)."""
        Y = self.transform(X)
        n = self._state("n")[rows].astype(float)
        pop = self.population
        # The population judges only once it has seen ``warmup`` values itself.
        prior = np.where(pop["n"] >= self.warmup, self.warmup, 0.0)
        weight = n + prior
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (n * self._state("mean")[rows] + prior * pop["mean"]) / weight
            var = (n * self._state("var")[rows] + prior * pop["var"]) / weight
            z = (Y - mean) / np.sqrt(var + self.min_var)
        z[(prior == 0) & (n < self.warmup)] = np.nan  # no baseline yet: no evidence either way
        return z

    def learn(self, rows: np.ndarray, X: np.ndarray, skip: np.ndarray) -> None:
        """Fold a batch into each entity's baseline and the population's; ``skip`` rows are not learned."""
        Y = self.transform(X)
        mean, var, count = self._state("mean"), self._state("var"), self._state("n")
        for j in range(len(self.names)):
            ok = np.isfinite(Y[:, j]) & ~skip
            if not ok.any():
                continue
            y = Y[ok, j]
            entities, local = np.unique(rows[ok], return_inverse=True)
            k = np.bincount(local).astype(float)
            batch_mean = np.bincount(local, y) / k
            batch_var = np.bincount(local, (y - batch_mean[local]) ** 2) / k
            m, v, n = _fold(mean[entities, j], var[entities, j], count[entities, j].astype(float),
                            batch_mean, batch_var, k, self.memory)
            mean[entities, j], var[entities, j], count[entities, j] = m, v, n
            pop = self.population
            pop["mean"][j], pop["var"][j], pop["n"][j] = (float(a[0]) for a in _fold(
                pop["mean"][j:j + 1], pop["var"][j:j + 1], pop["n"][j:j + 1],
                np.array([y.mean()]), np.array([y.var()]), np.array([float(len(y))]),
                self.memory * 10))


#: The most score-then-learn passes one batch makes per entity key (:func:`rounds`).
MOST_ROUNDS = 32


def rounds(rows: np.ndarray, most: int = MOST_ROUNDS) -> list[np.ndarray]:
    """A batch's event indices in rounds, so each event is scored after its entity's earlier ones
    in the batch were learned: round ``k`` holds every entity's ``k``-th event (batch order).

    An entity with more than ``most`` events in the batch has them in ``most`` runs of consecutive
    events instead, each scored against what the runs before it taught: the passes stay at most
    ``most`` whatever the file (one consumer's year of hourly readings is 8,760 events).

    >>> [r.tolist() for r in rounds(np.array([7, 3, 7, 7, 3]))]
    [[0, 1], [2, 4], [3]]
    >>> [r.tolist() for r in rounds(np.zeros(6, dtype=np.int64), most=2)]
    [[0, 1, 2], [3, 4, 5]]
    """
    n = rows.size
    if n == 0:
        return []
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, counts)
    count = np.repeat(counts, counts)
    round_of = np.empty(n, dtype=np.int64)
    round_of[order] = np.where(count > most, rank * most // count, rank)
    by_round = np.argsort(round_of, kind="stable")
    cuts = np.flatnonzero(np.diff(round_of[by_round])) + 1
    return np.split(by_round, cuts)


def _fold(mean, var, n, batch_mean, batch_var, k, memory):
    """Merge a batch's mean and variance into running ones that remember ``memory`` values."""
    remembered = np.minimum(n, memory)
    w = remembered / (remembered + k)
    new_mean = w * mean + (1 - w) * batch_mean
    new_var = w * (var + (mean - new_mean) ** 2) + (1 - w) * (batch_var + (batch_mean - new_mean) ** 2)
    return new_mean, new_var, np.minimum(n + k, 1e9)
