"""Which entity an event anomaly is about, and one batch's anomalies grouped per alert subject.

An anomalous event of a schema (an EV charging session) names several entities
(its user and its charger) and one or more anomaly types.  Its alert is kept per
(schema, entity, type), so each type must say which of the event's entities it
concerns: a DoS attack is the user's doing, two users on one charger is the
charger's conflict.  :func:`subjects_of` decides it when the schema is loaded:

1. a type declared under ``[alerts.subjects]`` in the schema concerns that entity key
   (``billing_fraud = "user_id"``: the user took the energy, even where the
   charger's usual tariff is what shows it);
2. otherwise the entity key of the rule (``repeat``, ``overlap``) or of the
   learned baseline that finds the type, when exactly one key does;
3. otherwise (a ``condition`` rule names no entity; producers with different
   keys) the schema must declare it: loading fails, naming the type.

A schema without entity keys has no subjects: its anomalies stay events.

The alert's ``entity`` is ``key=value`` (``user_id=U0042``): a user and a charger may
share an id, and the key tells the dashboard and the receivers where the events are
(``/api/anomalies?schema=ev_charging&user_id=U0042&type=dos_attack``).  That form is
how an event alert is told from a stream's: a point names its entity plainly (``pump-1``).

:func:`group_anomalies` turns a stored batch's anomalies (thousands out of 50,000
events) into one :class:`~.lifecycle.SubjectAnomalies` per subject, so the
lifecycle writes once per alert, never once per event.

>>> subjects = {"dos_attack": "user_id", "multi_user_conflict": "charger_id"}
>>> anomalies = [
...     {"id": 7, "event_id": "s7", "risk": 62, "entities": {"user_id": "U1", "charger_id": "C1"},
...      "signals": [{"type": "dos_attack", "origin": "rule", "severity": "high", "reason": "3 short"}]},
...     {"id": 9, "event_id": "s9", "risk": 70, "entities": {"user_id": "U1", "charger_id": "C2"},
...      "signals": [{"type": "dos_attack", "origin": "rule", "severity": "high", "reason": "4 short"},
...                  {"type": "multi_user_conflict", "origin": "rule", "severity": "high",
...                   "reason": "C2 in use"}]}]
>>> [(g.entity, g.type, g.count, g.first_id, g.last_id) for g in group_anomalies("ev", subjects, anomalies)]
[('charger_id=C2', 'multi_user_conflict', 1, 9, 9), ('user_id=U1', 'dos_attack', 2, 7, 9)]
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlencode

from ..pipeline.event import MAX_ENTITY_ID_LENGTH
from ..validation import MAX_NAME_LENGTH
from .lifecycle import SEVERITIES, SubjectAnomalies

__all__ = ["MAX_ENTITY_LABEL_LENGTH", "anomalies_path", "entity_label", "event_entity",
           "group_anomalies", "subjects_of"]

#: The longest alert ``entity``: an entity key (a name), ``=``, and the longest id an upload
#: takes, so that every entity's alert can be filtered and silenced.
MAX_ENTITY_LABEL_LENGTH = MAX_NAME_LENGTH + 1 + MAX_ENTITY_ID_LENGTH

_ENTITY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.+)", re.DOTALL)


def entity_label(key: str, value: str) -> str:
    """The alert ``entity`` of an event's entity: ``user_id=U0042``."""
    return f"{key}={value}"


def event_entity(entity: str | None) -> tuple[str, str] | None:
    """``(key, id)`` of an alert entity written by :func:`entity_label`, else None."""
    match = _ENTITY.fullmatch(entity) if entity else None
    return None if match is None else (match.group(1), match.group(2))


def anomalies_path(stream: str, entity: str | None, type_: str) -> str | None:
    """The API path of the event anomalies behind an event alert (None for a stream's alert)."""
    found = event_entity(entity)
    if found is None:
        return None
    return "/api/anomalies?" + urlencode({"schema": stream, found[0]: found[1], "type": type_})


def subjects_of(declared: Any, entities: Sequence[str], baseline_features: Iterable,
                rules: Iterable) -> dict[str, str]:
    """The entity key each anomaly type of a schema concerns (see the module's doc).

    ``declared`` is the schema's ``[alerts.subjects]`` table (or None).  Raises ValueError
    naming the type when a declaration is wrong or a type's subject is undecided.
    """
    declared = {} if declared is None else declared
    if not isinstance(declared, Mapping):
        raise ValueError("subjects must be a table of anomaly type = entity key")
    producers: dict[str, set] = {}  # type -> entity keys of what finds it (None: no entity)
    for feature in baseline_features:
        for type_ in feature.types():
            producers.setdefault(type_, set()).add(feature.entity)
    for rule in rules:
        producers.setdefault(rule.type, set()).add(getattr(rule, "entity", None))
    for type_, key in declared.items():
        if type_ not in producers:
            raise ValueError(f"{type_!r} is not an anomaly type of this schema; its types: {sorted(producers)}")
        if key not in entities:
            raise ValueError(f"{type_} = {key!r}: must be one of the entities {list(entities)}")
    if not entities:
        return {}
    subjects = {}
    for type_, keys in sorted(producers.items()):
        if type_ in declared:
            subjects[type_] = declared[type_]
        elif len(keys) == 1 and None not in keys:
            subjects[type_] = next(iter(keys))
        else:
            found = "a condition rule, which names no entity" if None in keys else f"the entities {sorted(keys)}"
            raise ValueError(f"{type_!r} is found by {found}: declare the entity its alerts concern, "
                             f"e.g. {type_} = {entities[0]!r}")
    return subjects


def group_anomalies(stream: str, subjects: Mapping[str, str],
                    anomalies: Sequence[Mapping[str, Any]]) -> list[SubjectAnomalies]:
    """One entry per (entity, type) of a stored batch's anomalies, in (entity, type) order.

    ``anomalies`` are the batch's anomalous events as stored (their ``id``, ``event_id``,
    ``risk``, ``entities`` and ``signals``); a type's severity is the worst of its own signals,
    its score the event's risk / 100, its summary the riskiest event's reason for it.
    """
    import pandas as pd

    rank = {s: i for i, s in enumerate(SEVERITIES)}
    # One row per (event, signal): the only per-event step, flattening the stored objects;
    # grouping and every aggregate are pandas' vectorised groupby.
    rows = [(n, s["type"], rank.get(s["severity"], 0), s["reason"])
            for n, a in enumerate(anomalies) for s in a["signals"] if s["type"] in subjects]
    if not rows:
        return []
    frame = pd.DataFrame(rows, columns=["event", "type", "severity", "reason"])
    events = pd.DataFrame({"id": [a["id"] for a in anomalies], "risk": [a["risk"] for a in anomalies],
                           "event_id": [a["event_id"] for a in anomalies],
                           "entities": [a["entities"] for a in anomalies]})
    frame = frame.join(events, on="event")
    keys = frame["type"].map(subjects)
    frame["entity"] = [entity_label(k, e[k]) for k, e in zip(keys, frame["entities"])]
    # An event with two signals of one type (two baselines) counts once, with its worst one.
    frame = (frame.sort_values(["risk", "severity"], ascending=False, kind="stable")
             .drop_duplicates(["event", "type"]))
    grouped = frame.groupby(["entity", "type"], sort=True)
    stats = grouped.agg(count=("event", "size"), severity=("severity", "max"), risk=("risk", "max"),
                        first_id=("id", "min"), last_id=("id", "max"))
    # frame is sorted worst first, so each group's first row is its riskiest event.
    riskiest = grouped[["event_id", "reason"]].first()
    return [SubjectAnomalies(stream=stream, entity=entity, type=type_, count=int(s.count),
                             severity=SEVERITIES[int(s.severity)], peak_score=float(s.risk) / 100.0,
                             first_id=int(s.first_id), last_id=int(s.last_id),
                             summary=f"{r.event_id}: {r.reason}")
            for (entity, type_), s, r in zip(stats.index, stats.itertuples(), riskiest.itertuples())]
