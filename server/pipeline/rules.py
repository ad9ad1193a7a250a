"""Declarative domain rules beside the learned baselines, each evaluated over a whole batch.

A rule is declared in a schema's ``[[rules]]`` list and names the anomaly
``type`` it finds, its ``severity`` (the engine's scale) and a ``reason``
template.  Three kinds:

* ``condition``: every ``[feature, op, value]`` of ``when`` holds for the event
  (``energy > 50`` and ``payment < 1``).
* ``repeat``: ``count`` events of one entity match ``when`` within ``window``
  (three sessions shorter than 5 minutes by one user within an hour); every
  event of a qualifying window is marked: those in the batch at once, those
  of earlier batches (the entity's recent matches are remembered across
  batches) through ``state.mark_earlier``, for the store to amend.
* ``overlap``: an event starts before an earlier event of the same entity has
  ended, and the two differ in ``distinct`` (two users on one charger).

``apply`` reads the batch's columns (a mapping of names to equally long
arrays) and the per-entity state, and returns a boolean mask and per-event values for the reason; the
reason text is formatted only for the events flagged.

>>> rule = rule_from_data({"type": "billing_fraud", "kind": "condition", "severity": "critical",
...                        "when": [["energy", ">", 50], ["payment", "<", 1]]}, {"energy", "payment"}, ())
>>> frame = pd.DataFrame({"energy": [60.0, 60.0, 10.0], "payment": [0.5, 20.0, 0.0]})
>>> mask, extra = rule.apply(frame, None)
>>> mask.tolist(), rule.reason(frame.iloc[0].to_dict(), {})
([True, False, False], 'energy 60 > 50 and payment 0.5 < 1')
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd

from .entities import count_in_window

__all__ = ["ConditionRule", "OverlapRule", "RepeatRule", "Rule", "rule_from_data"]

OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
             "==": operator.eq, "!=": operator.ne}


class Rule(Protocol):
    """What the scorer needs of a rule."""

    type: str
    severity: str

    def columns(self) -> list[tuple[str, str, tuple, Any, Any]]:
        """Per-entity state: (entity key, column name, shape, fill, dtype) for each column."""

    def apply(self, frame, state) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A mask of the events the rule flags, and per-event values its reason may name."""

    def reason(self, values: Mapping[str, Any], extra: Mapping[str, Any]) -> str:
        """The reason for one flagged event (its fields, and the rule's values at it)."""


Condition = tuple[str, str, float]


def _holds(frame, when: Sequence[Condition]) -> np.ndarray:
    mask = None
    for feature, op, value in when:
        with np.errstate(invalid="ignore"):
            holds = OPERATORS[op](np.asarray(frame[feature], dtype=float), value)
        mask = holds if mask is None else mask & holds
    return mask


def _describe(values: Mapping[str, Any], when: Sequence[Condition]) -> str:
    return " and ".join(f"{f} {_number(values.get(f))} {op} {v:g}" for f, op, v in when)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float, np.floating)) else str(value)


def _format(template: str | None, values: Mapping[str, Any], extra: Mapping[str, Any],
            default: str) -> str:
    if not template:
        return default
    try:
        return template.format(**values, **extra)
    except (KeyError, ValueError, IndexError):  # a value of an unexpected type: say it plainly
        return default


@dataclass(frozen=True)
class ConditionRule:
    type: str
    severity: str
    when: tuple[Condition, ...]
    template: str | None = None

    def columns(self):
        return []

    def apply(self, frame, state):
        return _holds(frame, self.when), {}

    def reason(self, values, extra):
        return _format(self.template, values, extra, _describe(values, self.when))


@dataclass(frozen=True)
class RepeatRule:
    type: str
    severity: str
    entity: str
    when: tuple[Condition, ...]
    count: int
    window: float
    template: str | None = None

    @property
    def column(self) -> str:
        return f"rule:{self.type}:{self.entity}:times"

    def columns(self):
        return [(self.entity, self.column, (self.count,), -np.inf, float)]

    def apply(self, frame, state):
        n = len(state.times)
        matching = np.flatnonzero(_holds(frame, self.when))
        mask = np.zeros(n, dtype=bool)
        counts = np.zeros(n, dtype=np.int64)
        if matching.size:
            ring = state.table(self.entity).columns[self.column]
            rows = state.rows(self.entity)[matching]
            found = count_in_window(ring, rows, state.times[matching], self.window, self.count)
            mask[matching] = found.covered
            counts[matching] = found.counts
            if found.earlier_rows.size:
                # Matches of earlier batches in a window this batch completes: stored already, so
                # the store amends them; each is told the highest count its entity reached here.
                reached = found.counts >= self.count
                peak = pd.Series(found.counts[reached]).groupby(rows[reached]).max()
                state.mark_earlier(self, self.entity, found.earlier_rows, found.earlier_times,
                                   peak.reindex(found.earlier_rows).to_numpy(dtype=np.int64))
        return mask, {"count": counts}

    def reason(self, values, extra):
        default = (f"{self.count} or more events by {self.entity} {values.get(self.entity)} "
                   f"with {_describe(values, self.when)} within {self.window / 60:g} min")
        count = max(int(extra.get("count", 0)), self.count)
        return _format(self.template, values, {**extra, "count": count}, default)


@dataclass(frozen=True)
class OverlapRule:
    type: str
    severity: str
    entity: str
    start: str
    duration: str
    duration_seconds: float
    distinct: str
    template: str | None = None

    @property
    def _end_column(self) -> str:
        return f"rule:{self.type}:{self.entity}:end"

    @property
    def _holder_column(self) -> str:
        return f"rule:{self.type}:{self.entity}:holder"

    def columns(self):
        return [(self.entity, self._end_column, (), -np.inf, float),
                (self.entity, self._holder_column, (), None, object)]

    def apply(self, frame, state):
        n = len(state.times)
        table, rows = state.table(self.entity), state.rows(self.entity)
        start = np.asarray(frame[self.start], dtype=float)
        end = start + np.nan_to_num(np.asarray(frame[self.duration], dtype=float)) * self.duration_seconds
        other = np.asarray(frame[self.distinct], dtype=object)
        entities, local = np.unique(rows, return_inverse=True)
        ends, holders = table.columns[self._end_column], table.columns[self._holder_column]
        base = min(float(start.min()), float(end.min())) - 1.0
        # Each entity's remembered occupation as a pseudo-event sorted before its batch events.
        k = len(entities)
        entity = np.concatenate([np.arange(k), local])
        s = np.concatenate([np.full(k, base), start])
        e = np.concatenate([np.maximum(ends[entities], base), end])
        who = np.concatenate([holders[entities], other])
        position = np.concatenate([np.full(k, -1), np.arange(n)])
        order = np.lexsort((position, s, entity))
        entity, s, e, who, position = entity[order], s[order], e[order], who[order], position[order]
        span = float(e.max()) - base + 1.0
        key = entity * span + (e - base)  # every group's keys lie above the previous group's
        running = np.maximum.accumulate(key)
        at = np.arange(len(key))
        holder_at = np.maximum.accumulate(np.where(key == running, at, 0))
        previous_end = np.concatenate([[-np.inf], running[:-1]]) - entity * span + base
        previous_holder = np.concatenate([[0], holder_at[:-1]])
        is_batch = position >= 0
        clash = is_batch & (s < previous_end) & (who[previous_holder] != who)
        mask = np.zeros(n, dtype=bool)
        mask[position[clash]] = True
        until = np.full(n, np.nan)
        holder = np.full(n, None, dtype=object)
        until[position[clash]] = previous_end[clash]
        holder[position[clash]] = who[previous_holder[clash]]
        last = np.searchsorted(entity, np.arange(k), side="right") - 1
        ends[entities] = running[last] - np.arange(k) * span + base
        holders[entities] = who[holder_at[last]]
        return mask, {"other": holder, "until": until}

    def reason(self, values, extra):
        from .event import iso_time

        until = extra.get("until")
        until_text = iso_time(float(until)) if until is not None and np.isfinite(until) else "?"
        default = (f"{self.entity} {values.get(self.entity)} still in use by {self.distinct} "
                   f"{extra.get('other')} until {until_text}")
        return _format(self.template, values, {**extra, "until": until_text}, default)


def _conditions(when: Any, known: set) -> tuple[Condition, ...]:
    if not isinstance(when, list) or not when:
        raise ValueError("when needs a list of [feature, op, value] conditions")
    out = []
    for condition in when:
        if not (isinstance(condition, list) and len(condition) == 3):
            raise ValueError(f"condition {condition!r} is not [feature, op, value]")
        feature, op, value = condition
        if feature not in known:
            raise ValueError(f"condition on unknown feature {feature!r}")
        if op not in OPERATORS:
            raise ValueError(f"operator {op!r} is not one of {list(OPERATORS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"condition value {value!r} is not a number")
        out.append((feature, op, float(value)))
    return tuple(out)


def rule_from_data(spec: Mapping[str, Any], known: set, entities: Sequence[str]) -> Rule:
    """Build one rule from its schema declaration (``ValueError`` naming what is wrong)."""
    from .schema import check_severity, parse_duration

    kind = spec.get("kind")
    allowed = {"condition": {"when"}, "repeat": {"entity", "when", "count", "window"},
               "overlap": {"entity", "start", "duration", "duration_unit", "distinct"}}
    if kind not in allowed:
        raise ValueError(f"kind must be one of {list(allowed)}, got {kind!r}")
    extra = set(spec) - allowed[kind] - {"type", "kind", "severity", "reason"}
    if extra:
        raise ValueError(f"unknown key(s) {sorted(extra)} for a {kind} rule")
    if not isinstance(spec.get("type"), str) or not spec["type"]:
        raise ValueError("type needs a non-empty string (the anomaly type)")
    common = {"type": spec["type"], "severity": check_severity(spec.get("severity")),
              "template": spec.get("reason")}
    if kind == "condition":
        return ConditionRule(when=_conditions(spec.get("when"), known), **common)
    if spec.get("entity") not in entities:
        raise ValueError(f"entity must be one of {list(entities)}")
    if kind == "repeat":
        count = spec.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not 2 <= count <= 1024:
            raise ValueError("count must be a whole number between 2 and 1024")
        return RepeatRule(entity=spec["entity"], when=_conditions(spec.get("when"), known),
                          count=count, window=parse_duration(spec.get("window", "1h")), **common)
    for key in ("start", "duration", "distinct"):
        if spec.get(key) not in known and spec.get(key) not in entities:
            raise ValueError(f"{key} names no field: {spec.get(key)!r}")
    unit = spec.get("duration_unit", "s")
    return OverlapRule(entity=spec["entity"], start=spec["start"], duration=spec["duration"],
                       duration_seconds=parse_duration(f"1{unit}"), distinct=spec["distinct"],
                       **common)
