"""Score batches of a schema's events: derived features, learned baselines, rules, one verdict each.

The :class:`Scorer` owns one :class:`~server.pipeline.entities.EntityTable`
per entity key of its schema, and in it every per-entity column that the
derived features, baselines and rules keep.  ``score(frame)`` works on the
whole batch at once: each step is a handful of numpy calls, none per event.

One scale for every kind of evidence: a learned deviation of ``z`` standard
units has the normal tail probability ``p = P(Z > |z|)``; a rule's declared
severity stands for the lower edge of that severity's band on the engine's
scale (:func:`detectors.engine.severity_of`: a tail probability
``p_t ** step`` where ``p_t`` is the threshold's).  An event's risk is its
strongest evidence, ``100 * log p / (4 log p_t)`` clipped to 0-100, so a
deviation at the threshold is risk 25 and a critical rule is risk 88.

>>> from .schema import load_schema
>>> scorer = Scorer(load_schema("ev_charging"))
>>> frame = pd.DataFrame({"session_id": ["s1"], "user_id": ["u1"], "charger_id": ["c1"],
...     "start_time": [0.0], "duration": [60.0], "energy": [62.0], "payment": [0.5],
...     "ip_address": [""], "label": [""]})
>>> event = scorer.score(frame).events()[0]
>>> event.types, event.severity, event.risk
(('billing_fraud',), 'critical', 88)
>>> event.explanation
'billing_fraud (rule, critical): delivered 62.0 kWh for a payment of 0.50'
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy.special import log_ndtr

from detectors.engine import SEVERITIES, severity_of
from detectors.snapshot import SnapshotMismatch

from .baselines import Baselines, rounds
from .derive import CountPer
from .entities import EntityTable
from .event import ORDINARY, ScoredEvent, Signal, summarise
from .schema import Schema

__all__ = ["ORDINARY", "EarlierMarks", "ScoredBatch", "Scorer"]

#: Each severity's lower edge on the engine's scale, as a power of the threshold's tail probability.
SEVERITY_STEPS = dict(zip(SEVERITIES, (1.0, 1.5, 2.25, 3.5)))
#: The power of the threshold's tail probability that is risk 100.
RISK_FULL = 4.0
#: Written into every saved scorer state; raise it when the meaning of a saved column changes
#: (a saved state of another version is refused: the scorer starts cold).
STATE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class EarlierMarks:
    """A rule's verdict on events of earlier batches that this batch's evidence completes
    (the first two of three short sessions): already stored, so the store amends their rows.

    An event is named by its entity id and timestamp, and it matched the rule's
    ``when`` (that is how the rule remembered it).
    """

    rule: Any
    #: The entity key (e.g. user_id) and, per marked event, its id and time.
    entity: str
    ids: np.ndarray
    times: np.ndarray
    #: Per marked event, the count its window reached (for the reason).
    counts: np.ndarray
    #: The risk the rule gives (as to the events of the batch it marks).
    risk: int

    def __len__(self) -> int:
        return len(self.ids)


class _BatchState:
    """What derived features and rules read of the batch: entity rows and times; what rules
    say of earlier batches' events."""

    def __init__(self, tables: dict[str, EntityTable], rows: dict[str, np.ndarray], times: np.ndarray):
        self._tables, self._rows, self.times = tables, rows, times
        #: ``(rule, entity, ids, times, counts)`` per :meth:`mark_earlier` call.
        self.earlier: list[tuple] = []

    def table(self, entity: str) -> EntityTable:
        return self._tables[entity]

    def rows(self, entity: str) -> np.ndarray:
        return self._rows[entity]

    def mark_earlier(self, rule, entity: str, rows: np.ndarray, times: np.ndarray, counts: np.ndarray) -> None:
        """``rule`` flags remembered events of ``entity`` (table rows, times) from earlier batches."""
        self.earlier.append((rule, entity, self._tables[entity].ids_of(rows), times, counts))


class Scorer:
    """Scores one schema's events batch by batch, keeping per-entity state between batches."""

    def __init__(self, schema: Schema):
        self.schema = schema
        spec = schema.baseline
        self.tables = {e: EntityTable(spec.max_entities, spec.idle_seconds) for e in schema.entities}
        for feature in schema.derived:
            if isinstance(feature, CountPer):
                for name, shape, fill in feature.columns():
                    self.tables[feature.entity].add_column(name, shape, fill)
        for rule in schema.rules:
            for entity, name, shape, fill, dtype in rule.columns():
                self.tables[entity].add_column(name, shape, fill, dtype=dtype)
        self.baselines: dict[str, tuple[list, Baselines]] = {}
        for entity in schema.entities:
            features = [f for f in spec.features if f.entity == entity]
            if features:
                model = Baselines([(f.feature, f.transform, f.min_scale) for f in features],
                                  spec.memory, spec.warmup)
                model.attach(self.tables[entity])
                self.baselines[entity] = (features, model)
        self.threshold_logp = float(log_ndtr(-spec.threshold))
        self.events_scored = 0

    def entity_counts(self) -> dict[str, int]:
        return {e: len(t) for e, t in self.tables.items()}

    def state_bytes(self) -> int:
        return sum(t.nbytes() for t in self.tables.values())

    # -- snapshots ----------------------------------------------------------------------------
    def signature(self) -> dict:
        """What a saved state must have been written with: this code's state version, the schema's
        declarations that give the state its meaning (entities, derived features, baselines, rules;
        not reason texts, help or aliases), and each entity table's layout."""
        schema = self.schema
        rules = tuple(dataclasses.replace(r, template=None) for r in schema.rules)
        declared = repr((schema.timestamp, schema.entities, schema.derived, schema.baseline, rules))
        return {"state_version": STATE_VERSION, "schema": schema.name,
                "declaration": hashlib.sha256(declared.encode()).hexdigest(),
                "tables": {e: t.layout() for e, t in self.tables.items()}}

    def export_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(meta, arrays)`` of every entity table and baseline population, copies (see :meth:`restored`)."""
        meta = {"signature": self.signature(), "events_scored": self.events_scored, "tables": {}}
        arrays = {}
        for entity, table in self.tables.items():
            meta["tables"][entity], table_arrays = table.export_state()
            arrays.update({f"{entity}/{k}": v for k, v in table_arrays.items()})
        for entity, (_, model) in self.baselines.items():
            arrays.update({f"{entity}/{k}": v for k, v in model.export_state().items()})
        return meta, arrays

    @classmethod
    def restored(cls, schema: Schema, meta: dict, arrays: dict[str, np.ndarray]) -> "Scorer":
        """A scorer of ``schema`` with a saved state in; :class:`SnapshotMismatch` if that state was
        written by other code or for another declaration of the schema."""
        scorer = cls(schema)
        ours, saved = scorer.signature(), meta.get("signature")
        if saved != ours:
            differs = sorted(k for k in ours if not isinstance(saved, dict) or saved.get(k) != ours[k])
            raise SnapshotMismatch(f"scorer state of {schema.name} was saved with another {', '.join(differs)}")
        try:
            for entity, table in scorer.tables.items():
                prefix = f"{entity}/"
                table.import_state(meta["tables"][entity],
                                   {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
            for entity, (_, model) in scorer.baselines.items():
                model.import_state({k[len(entity) + 1:]: v for k, v in arrays.items()
                                    if k.startswith(f"{entity}/population:")})
        except (KeyError, ValueError) as exc:
            raise SnapshotMismatch(f"scorer state of {schema.name}: {exc}") from exc
        scorer.events_scored = int(meta.get("events_scored", 0))
        return scorer

    def score(self, frame: pd.DataFrame) -> "ScoredBatch":
        """Score a typed batch (from :meth:`Schema.coerce`), then learn it."""
        schema = self.schema
        # Plain numpy columns from here on: pandas' per-call overhead would dominate small batches.
        features = {c: frame[c].to_numpy() for c in frame.columns}
        n = len(frame)
        times = features[schema.timestamp].astype(float)
        if n:
            for table in self.tables.values():  # forget the idle first, so none of them is judged by stale habits
                table.clock = max(table.clock, float(np.nanmax(times)))
                table.evict_idle()
        for e in schema.entities:
            features[e] = _as_ids(features[e])
        rows = {e: self.tables[e].rows(features[e], times) for e in schema.entities}
        state = _BatchState(self.tables, rows, times)
        for derived in schema.derived:
            features[derived.name] = derived.compute(features, state)

        logp = np.zeros(n)
        signals: dict[int, list[tuple[float, Signal]]] = {}
        flagged_any = np.zeros(n, dtype=bool)
        threshold = schema.baseline.threshold
        # Rules first: an event a rule flags (a billing fraud) teaches no baseline either.
        applied = [(rule, *rule.apply(features, state)) for rule in schema.rules]
        by_rule = np.zeros(n, dtype=bool)
        for _, mask, _ in applied:
            by_rule |= mask
        for entity, (specs, model) in self.baselines.items():
            X = np.column_stack([np.asarray(features[f.feature], dtype=float) for f in specs])
            z = np.zeros(X.shape)
            # Each event is scored after its entity's earlier events of the batch were learned
            # (an uploaded file's own history counts), in at most MOST_ROUNDS passes.  Not
            # learned: any deviation beyond the threshold, watched or not (robust baselines), and
            # any event a rule flagged.
            for idx in rounds(rows[entity]):
                at, values = rows[entity][idx], X[idx]
                z[idx] = np.nan_to_num(model.score(at, values))
                skip = (np.abs(z[idx]) >= threshold).any(axis=1) | by_rule[idx]
                model.learn(at, values, skip=skip)
            deviation = _watched_deviation(z, specs)
            with np.errstate(invalid="ignore"):
                tail = log_ndtr(-deviation)
            logp = np.minimum(logp, tail.min(axis=1) if tail.size else 0.0)
            beyond = deviation >= threshold
            flagged_any |= beyond.any(axis=1)
            for i, j in zip(*np.nonzero(beyond)):
                signals.setdefault(int(i), []).append(
                    (float(tail[i, j]), self._baseline_signal(specs[j], features, int(i), float(z[i, j]))))

        for rule, mask, extra in applied:
            strength = self.threshold_logp * SEVERITY_STEPS[rule.severity]
            logp[mask] = np.minimum(logp[mask], strength)
            flagged_any |= mask
            for i in np.flatnonzero(mask).tolist():
                values = _row(features, i)
                reason = rule.reason(values, {k: v[i] for k, v in extra.items()})
                signals.setdefault(i, []).append((strength, Signal(rule.type, "rule", reason, rule.severity)))

        self.events_scored += n
        risk = np.clip(np.round(100.0 * logp / (RISK_FULL * self.threshold_logp)), 0, 100).astype(int)
        earlier = [EarlierMarks(rule, entity, ids, marked_times, counts, self._risk_of(rule.severity))
                   for rule, entity, ids, marked_times, counts in state.earlier]
        return ScoredBatch(schema, features, risk, flagged_any, signals, earlier)

    def _risk_of(self, severity: str) -> int:
        strength = self.threshold_logp * SEVERITY_STEPS[severity]
        return int(np.clip(np.round(100.0 * strength / (RISK_FULL * self.threshold_logp)), 0, 100))

    def _baseline_signal(self, spec, features: dict, i: int, z: float) -> Signal:
        kind = spec.type_of(above=z > 0)
        p = float(np.exp(log_ndtr(-abs(z))))
        threshold = float(np.exp(self.threshold_logp))
        severity = severity_of(1.0 - p, 1.0 - threshold) or SEVERITIES[0]
        value = features[spec.feature][i]
        reason = (f"{spec.feature} {value:.4g} is {abs(z):.1f} sd {'above' if z > 0 else 'below'} the "
                  f"usual of {spec.entity} {features[spec.entity][i]}")
        return Signal(kind, "baseline", reason, severity)


def _watched_deviation(z: np.ndarray, specs) -> np.ndarray:
    """How far each deviation goes on the side its feature watches, in standard units (a
    deviation on an unwatched side counts as none)."""
    sign = np.array([{"both": 0.0, "high": 1.0, "low": -1.0}[f.sides] for f in specs])
    return np.where(sign == 0.0, np.abs(z), np.maximum(sign * z, 0.0))


def _as_ids(values: np.ndarray) -> np.ndarray:
    """Entity ids as Python str, as they are stored: a live source's 5 and a file's "5" are one entity
    (and a saved table's ids, which are text, still match after a restart)."""
    values = np.asarray(values, dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # one C scan, no copy
        return values
    return values.astype(str).astype(object)


def _row(columns: dict, i: int) -> dict:
    return {c: _plain(v[i]) for c, v in columns.items()}


def _plain(value):
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class ScoredBatch:
    """A scored batch: its features, risks and flags as arrays, events built only when asked."""

    def __init__(self, schema: Schema, features: dict, risk: np.ndarray,
                 is_anomaly: np.ndarray, signals: dict[int, list], earlier: list[EarlierMarks] | None = None):
        self.schema = schema
        self.features = features
        self.risk = risk
        self.is_anomaly = is_anomaly
        self._signals = signals
        #: Rules' verdicts on stored events of earlier batches (:class:`EarlierMarks`), for the store.
        self.earlier = earlier or []
        #: Events one of whose entities an operator has flagged (set by the caller).
        self.flagged = np.zeros(len(risk), dtype=bool)

    def mark_flagged(self, flags: dict[str, set]) -> None:
        """Mark the events of flagged entities: ``flags`` maps an entity key to flagged ids."""
        for key, ids in flags.items():
            if ids and key in self.features:
                self.flagged |= pd.Index(self.features[key]).isin(list(ids))

    def __len__(self) -> int:
        return len(self.risk)

    def anomaly_indices(self) -> np.ndarray:
        return np.flatnonzero(self.is_anomaly)

    def types_of(self, i: int) -> tuple[str, ...]:
        ranked = sorted(self._signals.get(i, []), key=lambda s: s[0])
        return tuple(dict.fromkeys(s.type for _, s in ranked))

    def type_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for i in self._signals:
            for t in self.types_of(i):
                counts[t] = counts.get(t, 0) + 1
        return counts

    def events(self, indices: Iterable[int] | None = None) -> list[ScoredEvent]:
        """The scored events at ``indices`` (all when None), as typed events."""
        schema = self.schema
        indices = range(len(self)) if indices is None else indices
        out = []
        for i in indices:
            i = int(i)
            values = _row(self.features, i)
            ranked = [s for _, s in sorted(self._signals.get(i, []), key=lambda s: s[0])]
            severity, types, explanation = summarise(ranked)
            truth = values.pop(schema.truth, None) if schema.truth else None
            out.append(ScoredEvent(
                schema=schema.name, event_id=str(values[schema.id]), timestamp=float(values[schema.timestamp]),
                entities={e: str(values[e]) for e in schema.entities}, fields=values,
                risk=int(self.risk[i]), severity=severity,
                is_anomaly=bool(self.is_anomaly[i]), types=types,
                explanation=explanation,
                signals=tuple(ranked), flagged=bool(self.flagged[i]), truth=truth or None))
        return out

    def anomalies(self) -> list[ScoredEvent]:
        return self.events(self.anomaly_indices())
