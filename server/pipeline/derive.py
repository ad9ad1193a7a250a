"""Derived features, declared in a schema and computed over a whole batch with numpy.

Three kinds, each a small class with ``compute(columns, state)`` (``columns``
maps names to equally long arrays: a dict of numpy arrays or a DataFrame):

* ``ratio = [numerator, denominator]`` (with ``scale`` and ``min_denominator``):
  e.g. payment per kWh; NaN where the denominator is too small to mean anything.
* ``hour_of = field``: the hour of day (UTC, fractional) of a date-time field.
* ``count_per = entity`` with ``window`` (and ``cap``): how many events the
  entity had in the last ``window``, this one included; kept per entity in
  the entity table, so it spans batches.

>>> frame = pd.DataFrame({"payment": [5.0, 1.0], "energy": [10.0, 0.1]})
>>> Ratio("per_kwh", "payment", "energy", min_denominator=0.5).compute(frame, None).tolist()
[0.5, nan]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .entities import count_in_window

__all__ = ["CountPer", "HourOf", "Ratio", "derived_from_data"]


@dataclass(frozen=True)
class Ratio:
    name: str
    numerator: str
    denominator: str
    scale: float = 1.0
    min_denominator: float = 0.0

    def compute(self, frame: pd.DataFrame, state) -> np.ndarray:
        num = np.asarray(frame[self.numerator], dtype=float)
        den = np.asarray(frame[self.denominator], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.scale * num / den
        out[~(den > self.min_denominator)] = np.nan
        return out


@dataclass(frozen=True)
class HourOf:
    name: str
    field: str

    def compute(self, frame: pd.DataFrame, state) -> np.ndarray:
        """
        >>> HourOf("h", "t").compute(pd.DataFrame({"t": [0.0, 5400.0, 86400.0 + 3600]}), None).tolist()
        [0.0, 1.5, 1.0]
        """
        return np.mod(np.asarray(frame[self.field], dtype=float), 86400.0) / 3600.0


@dataclass(frozen=True)
class CountPer:
    name: str
    entity: str
    window: float
    cap: int = 16

    @property
    def column(self) -> str:
        return f"derived:{self.name}"

    def columns(self) -> list[tuple[str, tuple, Any]]:
        """The per-entity columns this feature keeps: its last ``cap`` event times."""
        return [(self.column, (self.cap,), -np.inf)]

    def compute(self, frame: pd.DataFrame, state) -> np.ndarray:
        table, rows = state.table(self.entity), state.rows(self.entity)
        counts = count_in_window(table.columns[self.column], rows, state.times, self.window).counts
        return np.minimum(counts, self.cap).astype(float)


def derived_from_data(name: str, spec: Mapping[str, Any], fields: Mapping, entities) -> Any:
    """Build one derived feature from its schema declaration (``ValueError`` when wrong)."""
    from .schema import parse_duration

    numeric = {f for f, s in fields.items() if s.type in ("number", "integer")}
    kinds = [k for k in ("ratio", "hour_of", "count_per") if k in spec]
    if len(kinds) != 1:
        raise ValueError("needs exactly one of ratio, hour_of, count_per")
    allowed = {"ratio": {"ratio", "scale", "min_denominator"}, "hour_of": {"hour_of"},
               "count_per": {"count_per", "window", "cap"}}[kinds[0]]
    if set(spec) - allowed:
        raise ValueError(f"unknown key(s) {sorted(set(spec) - allowed)}; allowed: {sorted(allowed)}")
    if "ratio" in spec:
        pair = spec["ratio"]
        if not (isinstance(pair, list) and len(pair) == 2 and all(p in numeric for p in pair)):
            raise ValueError(f"ratio needs [numerator, denominator] among the numeric fields {sorted(numeric)}")
        return Ratio(name, pair[0], pair[1], float(spec.get("scale", 1.0)),
                     float(spec.get("min_denominator", 0.0)))
    if "hour_of" in spec:
        if spec["hour_of"] not in fields or fields[spec["hour_of"]].type != "datetime":
            raise ValueError("hour_of needs a datetime field")
        return HourOf(name, spec["hour_of"])
    if spec["count_per"] not in entities:
        raise ValueError(f"count_per needs one of the entities {list(entities)}")
    cap = int(spec.get("cap", 16))
    if not 1 <= cap <= 1024:
        raise ValueError("cap must be between 1 and 1024")
    return CountPer(name, spec["count_per"], parse_duration(spec.get("window", "1h")), cap)
