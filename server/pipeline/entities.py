"""Entities at scale: one row per entity (a user, a charger), created on first sight, evicted when idle.

An :class:`EntityTable` maps one entity key's ids to rows of numpy columns
that the baselines and rules keep their per-entity state in.  Rows are
claimed on first sight and freed when an entity has not been seen for
``idle_seconds`` of event time; when ``capacity`` rows are in use, the least
recently seen entity makes room.  So memory stays bounded however many
distinct ids a feed carries.

Looking ids up costs one dict access per *distinct* entity of a batch
(after ``pandas.factorize``), not per event; everything else is array work.

>>> table = EntityTable(capacity=2, idle_seconds=60)
>>> table.add_column("total", (), 0.0)
>>> rows = table.rows(np.array(["a", "b", "a"], dtype=object), np.array([0.0, 1.0, 2.0]))
>>> rows.tolist(), len(table)
([0, 1, 0], 2)
>>> _ = table.rows(np.array(["c"], dtype=object), np.array([100.0]))  # a and b idle > 60 s
>>> table.ids(), table.evicted
(['c'], 2)
"""
from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = ["EntityTable", "WindowCounts", "count_in_window"]


class EntityTable:
    """Rows of per-entity state for one entity key, with idle eviction and a hard capacity."""

    def __init__(self, capacity: int, idle_seconds: float, initial: int = 1024):
        if capacity < 1 or idle_seconds <= 0:
            raise ValueError("capacity must be >= 1 and idle_seconds > 0")
        self.capacity = int(capacity)
        self.idle_seconds = float(idle_seconds)
        self._allocated = min(self.capacity, int(initial))
        self._index: dict[Any, int] = {}
        self._ids = np.full(self._allocated, None, dtype=object)
        self.last_seen = np.full(self._allocated, -np.inf)
        self._free = list(range(self._allocated - 1, -1, -1))
        self._columns: dict[str, tuple[tuple, Any]] = {}
        self.columns: dict[str, np.ndarray] = {}
        #: The latest event time seen: the clock idle eviction runs on.
        self.clock = -np.inf
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._index)

    def ids(self) -> list:
        return [self._ids[r] for r in sorted(self._index.values())]

    def ids_of(self, rows: np.ndarray) -> np.ndarray:
        """The ids of ``rows`` (in use), as an object array."""
        return self._ids[rows]

    def row_of(self, entity_id) -> int | None:
        return self._index.get(entity_id)

    def add_column(self, name: str, shape: tuple, fill, dtype=float) -> None:
        """Declare a per-entity column of ``shape`` per row, reset to ``fill`` for new entities."""
        if name in self.columns:
            raise ValueError(f"column {name!r} exists")
        self._columns[name] = (tuple(shape), fill)
        self.columns[name] = np.full((self._allocated, *shape), fill, dtype=dtype)

    def nbytes(self) -> int:
        """Bytes of the numpy state (ids and the index dict not counted; see the benchmark)."""
        return self.last_seen.nbytes + self._ids.nbytes + sum(c.nbytes for c in self.columns.values())

    # -- snapshots ----------------------------------------------------------------------------
    def layout(self) -> dict:
        """What a saved state must match to be loaded here: bounds and every column's kind."""
        return {"capacity": self.capacity, "idle_seconds": self.idle_seconds,
                "columns": {name: [self.columns[name].dtype.str, list(shape), repr(fill)]
                            for name, (shape, fill) in self._columns.items()}}

    def export_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The rows in use, packed in row order: ``(meta, arrays)`` for :meth:`import_state`.

        Only live rows are saved (at most ``capacity``), so a snapshot's size
        follows the entities kept, not the table's allocation.  Ids and object
        columns are saved as text (a snapshot holds no pickled objects), with a
        mask where an object column holds None; an id is text already when it
        comes from the scorer (see ``Scorer.score``).
        """
        rows = np.array(sorted(self._index.values()), dtype=np.int64)
        arrays = {"ids": _as_text(self._ids[rows]), "last_seen": self.last_seen[rows].copy()}
        for name, column in self.columns.items():
            values = column[rows]  # fancy indexing copies: the table may go on changing
            if values.dtype.hasobject:
                arrays[f"none:{name}"] = np.equal(values, None)
                values = _as_text(np.where(arrays[f"none:{name}"], "", values))
            arrays[f"column:{name}"] = values
        meta = {"layout": self.layout(), "rows": len(rows), "clock": self.clock, "evicted": self.evicted}
        return meta, arrays

    def import_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Load an :meth:`export_state` into this empty table; ``ValueError`` (nothing changed) if it differs."""
        if self._index:
            raise ValueError("state is imported into an empty table only")
        if meta.get("layout") != self.layout():
            raise ValueError(f"entity table layout differs: here {self.layout()}, saved {meta.get('layout')}")
        n = int(meta["rows"])
        if n > self.capacity:
            raise ValueError(f"{n} saved rows exceed the capacity of {self.capacity}")
        ids = arrays["ids"]
        columns = {}
        for name, (shape, _) in self._columns.items():
            values = arrays[f"column:{name}"]
            if values.shape != (n, *shape):
                raise ValueError(f"column {name!r} has shape {values.shape}, expected {(n, *shape)}")
            if self.columns[name].dtype.hasobject:
                values = np.where(arrays[f"none:{name}"], None, values.astype(object))
            columns[name] = values
        if len(ids) != n or len(arrays["last_seen"]) != n or len(set(ids.tolist())) != n:
            raise ValueError("saved ids and times do not match the saved rows")
        if n > self._allocated:
            self._grow(n)
        self._ids[:n] = ids.astype(object)
        self._index.update(zip(ids.tolist(), range(n)))
        self.last_seen[:n] = arrays["last_seen"]
        for name, values in columns.items():
            self.columns[name][:n] = values
        self._free = list(range(self._allocated - 1, n - 1, -1))
        self.clock = float(meta["clock"])
        self.evicted = int(meta["evicted"])

    # -- lookups ------------------------------------------------------------------------------
    def rows(self, ids: np.ndarray, times: np.ndarray) -> np.ndarray:
        """The row of each id (claiming rows for new ids), and mark them seen at ``times``."""
        codes, uniques = pd.factorize(ids)
        index = self._index
        # map over a list with the dict's own get: no Python frame per id (a generator's cost
        # twice the lookups' at 10,000 ids of 100,000).
        unique_rows = np.fromiter(map(index.get, uniques.tolist(), itertools.repeat(-1)), dtype=np.int64,
                                  count=len(uniques))
        latest = np.full(len(uniques), -np.inf)
        np.maximum.at(latest, codes, times)
        if len(times):
            self.clock = max(self.clock, float(np.nanmax(times)))
        known = unique_rows >= 0
        # Seen now, before any eviction below could take them for idle.
        np.maximum.at(self.last_seen, unique_rows[known], latest[known])
        new = np.flatnonzero(~known)
        if new.size:
            unique_rows[new] = self._claim(len(new), protect=unique_rows[unique_rows >= 0])
            for position, row in zip(new.tolist(), unique_rows[new].tolist()):
                index[uniques[position]] = row
                self._ids[row] = uniques[position]
            self.last_seen[unique_rows[new]] = latest[new]
        return unique_rows[codes]

    def evict_idle(self) -> int:
        """Free the rows of entities unseen for ``idle_seconds`` of event time; return how many."""
        idle = np.flatnonzero(self.last_seen < self.clock - self.idle_seconds)
        idle = idle[self._ids[idle] != None]  # noqa: E711 -- elementwise on an object array
        self._release(idle)
        return len(idle)

    # -- rows -------------------------------------------------------------------------------
    def _claim(self, n: int, protect: np.ndarray) -> np.ndarray:
        if len(self._free) < n:
            self.evict_idle()
        if len(self._free) < n and self._allocated < self.capacity:
            self._grow(min(self.capacity, max(self._allocated * 2, len(self._index) + n)))
        if len(self._free) < n:
            # Full of recently seen entities: forget the least recently seen (not this batch's).
            seen = self.last_seen.copy()
            seen[protect] = np.inf
            seen[self._ids == None] = np.inf  # noqa: E711
            need = n - len(self._free)
            if need > self.capacity - len(protect):
                raise ValueError(f"a batch names more than {self.capacity} distinct entities")
            self._release(np.argpartition(seen, need - 1)[:need])
        taken = [self._free.pop() for _ in range(n)]
        return np.array(taken, dtype=np.int64)

    def _release(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        for row in rows.tolist():
            del self._index[self._ids[row]]
            self._ids[row] = None
            self._free.append(row)
        self.last_seen[rows] = -np.inf
        for name, (_, fill) in self._columns.items():
            self.columns[name][rows] = fill
        self.evicted += len(rows)

    def _grow(self, allocated: int) -> None:
        old = self._allocated
        extra = allocated - old
        self._ids = np.concatenate([self._ids, np.full(extra, None, dtype=object)])
        self.last_seen = np.concatenate([self.last_seen, np.full(extra, -np.inf)])
        for name, (shape, fill) in self._columns.items():
            column = self.columns[name]
            self.columns[name] = np.concatenate([column, np.full((extra, *shape), fill, dtype=column.dtype)])
        self._free = list(range(allocated - 1, old - 1, -1)) + self._free
        self._allocated = allocated


def _as_text(values: np.ndarray) -> np.ndarray:
    """An object array of ids as a fixed-width unicode array (at least one character wide)."""
    return values.astype(str) if len(values) else np.zeros(0, "<U1")


class WindowCounts(NamedTuple):
    """What :func:`count_in_window` found for a batch."""

    #: Per event of the batch: its entity's events in the window up to it (itself included).
    counts: np.ndarray
    #: Per event of the batch: whether it lies in a window whose count reaches ``min_count``.
    covered: np.ndarray
    #: Remembered events (of earlier batches) that lie in such a window: their entity rows ...
    earlier_rows: np.ndarray
    #: ... and their times.
    earlier_times: np.ndarray


def count_in_window(ring: np.ndarray, rows: np.ndarray, times: np.ndarray, window: float,
                    min_count: int | None = None) -> WindowCounts:
    """Count each event's entity's events within ``window`` seconds up to it, and remember them.

    ``ring`` is an ``(entities, K)`` column of each entity's K latest event
    times (-inf when empty), updated in place.  An event counts itself, the
    earlier events of its batch and the remembered ones in ``(t - window, t]``;
    so the count is exact up to K remembered events.

    Returns a :class:`WindowCounts`: per event, its count, and whether it lies
    in the window of some event whose count reaches ``min_count`` (so a rule
    can mark every event of a qualifying window of this batch, not only the
    last); and the remembered events of earlier batches in such a window (so
    a rule can have those marked too, where they are stored).

    >>> ring = np.full((2, 3), -np.inf)
    >>> counts, covered, _, _ = count_in_window(ring, np.array([0, 0, 1, 0]),
    ...                                         np.array([0., 10., 20., 4000.]), 3600, min_count=2)
    >>> counts.tolist(), covered.tolist(), ring[0].tolist()
    ([1, 2, 1, 1], [True, True, False, False], [4000.0, 10.0, 0.0])
    >>> found = count_in_window(ring, np.array([0]), np.array([4100.]), 3600, min_count=2)
    >>> found.counts.tolist(), found.earlier_rows.tolist(), found.earlier_times.tolist()
    ([2], [0], [4000.0])
    """
    n, K = len(rows), ring.shape[1]
    nothing = np.zeros(0, dtype=np.int64)
    if n == 0:
        return WindowCounts(nothing, np.zeros(0, dtype=bool), nothing, np.zeros(0))
    entities, local = np.unique(rows, return_inverse=True)
    history = ring[entities]
    remembered = np.isfinite(history).ravel()
    h_entity = np.repeat(np.arange(len(entities)), K)[remembered]
    h_time = history.ravel()[remembered]
    entity = np.concatenate([h_entity, local])
    time = np.concatenate([h_time, times])
    position = np.concatenate([np.full(len(h_time), -1), np.arange(n)])
    order = np.lexsort((position, time, entity))  # history first on ties, batch in its own order
    entity, time, position = entity[order], time[order], position[order]
    base = float(time.min())
    span = float(time.max()) - base + window + 1.0
    # One sorted key for (entity, time), so one searchsorted finds every window's start.
    key = entity * span + (time - base)
    lower = np.searchsorted(key, key - window, side="right")
    at = np.arange(len(key))
    counts = at - lower + 1
    is_batch = position >= 0
    out_counts = np.empty(n, dtype=np.int64)
    out_counts[position[is_batch]] = counts[is_batch]
    covered = np.zeros(n, dtype=bool)
    earlier_rows, earlier_times = nothing, np.zeros(0)
    if min_count is not None:
        ends = np.flatnonzero(is_batch & (counts >= min_count))
        if ends.size:
            marks = np.zeros(len(key) + 1, dtype=np.int64)
            np.add.at(marks, lower[ends], 1)
            np.add.at(marks, ends + 1, -1)
            inside = np.cumsum(marks[:-1]) > 0
            covered[position[is_batch & inside]] = True
            remembered_inside = ~is_batch & inside
            earlier_rows, earlier_times = entities[entity[remembered_inside]], time[remembered_inside]
    # Remember each entity's K latest times: rank counted from its group's end.
    group_end = np.searchsorted(entity, entity, side="right") - 1
    rank = group_end - at
    keep = rank < K
    ring[entities] = -np.inf
    ring[entities[entity[keep]], rank[keep]] = time[keep]
    return WindowCounts(out_counts, covered, earlier_rows, earlier_times)
