"""A domain's schema, declared as data (one TOML file per domain) and checked when loaded.

A schema names the event's fields and their types, its id, its timestamp, its
entity keys, the features derived from each batch, the learned per-entity
baselines and the domain rules (see ``schemas/ev_charging.toml``).  Loading
checks every name and value and raises :class:`SchemaError` naming the file
and the key, as :mod:`server.settings` does for settings.

The schema also turns raw columns into typed ones: :meth:`Schema.resolve_headers`
maps a file's headers onto fields (``session_id``, ``sessionId``,
``Session ID`` and any declared alias are the same field) and
:meth:`Schema.coerce` types a chunk of string columns in a few vectorised
calls, or raises :class:`BadData` listing what was expected, what was found
and on which lines.

>>> schema = load_schema("ev_charging")
>>> schema.entities, schema.timestamp
(('user_id', 'charger_id'), 'start_time')
>>> mapping = schema.resolve_headers(["sessionId", "user_id", "chargerId", "startTime",
...                                   "duration", "energy_kwh", "payment"])
>>> mapping["sessionId"], mapping["energy_kwh"]
('session_id', 'energy')
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from detectors.engine import SEVERITIES

from .event import EARLIEST_TIME, LATEST_TIME, MAX_ENTITY_ID_LENGTH

# pandas is imported in the functions that type a file's columns: the server's start (which loads
# this module for BadData) must not pay the half second of importing it.
if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BadData", "BaselineFeature", "BaselineSpec", "FieldSpec", "Schema", "SchemaError",
           "TimeOfDayClock", "load_schema", "normalise_header", "parse_duration", "SCHEMA_DIR"]

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
FIELD_TYPES = ("string", "number", "integer", "datetime")
TRANSFORMS = ("none", "log")
#: Which deviations from a learned baseline are anomalies (see :class:`BaselineFeature`).
SIDES = ("both", "high", "low")
#: How many offending lines an error message quotes before summarising.
QUOTED_LINES = 5


class SchemaError(ValueError):
    """A schema declaration is wrong; the message names the file and the key."""


class BadData(ValueError):
    """Input does not fit the schema; the message lists what was expected, found, and where."""

    def __init__(self, message: str, *, expected: Sequence[str] = (), found: Sequence[str] = (),
                 line: int | None = None):
        super().__init__(message)
        self.expected = list(expected)
        self.found = list(found)
        self.line = line

    def to_dict(self) -> dict:
        return {"error": str(self), "expected": self.expected, "found": self.found,
                "line": self.line}


def normalise_header(name: str) -> str:
    """The key a header is matched on: lower case, letters and digits only.

    >>> [normalise_header(h) for h in ("session_id", "sessionId", "Session ID", "SESSION-ID")]
    ['sessionid', 'sessionid', 'sessionid', 'sessionid']
    """
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|h|d)\s*$")
_UNIT_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``90s``, ``5min``, ``1h`` or ``7d``.

    >>> parse_duration("1h"), parse_duration("7d"), parse_duration("2.5min")
    (3600.0, 604800.0, 150.0)
    """
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 5min, 1h or 7d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class FieldSpec:
    """One field of an event: its type, whether a file must have it, its unit and aliases."""

    name: str
    type: str
    required: bool = True
    unit: str = ""
    help: str = ""
    minimum: float | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class BaselineFeature:
    """One learned (entity key, feature) baseline and the anomaly types of its deviations.

    ``sides`` says which deviations are anomalies: ``"both"``, or only ``"high"`` (above the
    baseline) or ``"low"``.  A deviation on the other side is neither flagged nor counted in the
    risk (a session that delivered far less energy than its user's usual was cut short, which
    costs nobody when energy is billed per kWh); it is still kept out of the baseline it
    deviates from, like every deviation beyond the threshold.
    """

    entity: str
    feature: str
    transform: str = "none"
    min_scale: float = 0.0
    low: str | None = None
    high: str | None = None
    # Out of the repr, which the scorer's state signature hashes: the sides change what is
    # flagged, not what is learned, so a saved state stays good when they change.
    sides: str = field(default="both", repr=False)

    def type_of(self, above: bool) -> str:
        """The anomaly type of a deviation above (or below) the baseline: its declared type,
        else ``unusual_<feature>``."""
        return (self.high if above else self.low) or f"unusual_{self.feature}"

    def types(self) -> set[str]:
        """The anomaly types this baseline can give: one per side it watches."""
        return {self.type_of(above) for above, side in ((True, "high"), (False, "low"))
                if self.sides in ("both", side)}


@dataclass(frozen=True)
class BaselineSpec:
    threshold: float = 4.5
    memory: int = 200
    warmup: int = 5
    idle_seconds: float = 7 * 86400.0
    max_entities: int = 100_000
    features: tuple[BaselineFeature, ...] = ()


@dataclass(frozen=True, eq=False)
class Schema:
    """A domain's events: fields, id, timestamp, entities, derived features, baselines, rules."""

    name: str
    description: str
    id: str
    timestamp: str
    entities: tuple[str, ...]
    fields: Mapping[str, FieldSpec]
    truth: str | None = None
    derived: tuple = ()
    baseline: BaselineSpec = field(default_factory=BaselineSpec)
    rules: tuple = ()
    #: The entity key each anomaly type concerns: its alerts are per (schema, entity, type)
    #: (``[alerts.subjects]``, decided by server/alerts/subjects.py).
    alert_subjects: Mapping[str, str] = field(default_factory=dict)

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields.values() if f.required]

    @property
    def feature_names(self) -> list[str]:
        """Numeric fields and derived features: everything a baseline or rule may read."""
        numeric = [f.name for f in self.fields.values() if f.type in ("number", "integer")]
        return numeric + [d.name for d in self.derived] + [self.timestamp]

    def describe_columns(self) -> list[str]:
        """The expected columns as an error message lists them (optional ones marked)."""
        return [f.name + ("" if f.required else " (optional)") for f in self.fields.values()]

    # -- headers ----------------------------------------------------------------------------
    @property
    def _header_keys(self) -> dict[str, str]:
        return _header_keys(self)

    def resolve_headers(self, headers: Sequence[str]) -> dict[str, str]:
        """Map a file's headers to field names; raise :class:`BadData` if a required one is missing.

        Unknown headers are ignored (mapped to nothing); two headers naming
        the same field are an error.
        """
        keys = self._header_keys
        mapping: dict[str, str] = {}
        seen: dict[str, str] = {}
        for header in headers:
            name = keys.get(normalise_header(header))
            if name is None:
                continue
            if name in seen:
                raise BadData(f"columns {seen[name]!r} and {header!r} both name the field {name!r}",
                              expected=self.describe_columns(), found=list(headers), line=1)
            seen[name] = header
            mapping[header] = name
        missing = [f for f in self.required if f not in seen]
        if missing:
            raise BadData(f"missing column(s) {', '.join(missing)}; expected "
                          f"{', '.join(self.describe_columns())} (snake_case or camelCase); found "
                          f"{', '.join(map(str, headers)) or 'no columns'}",
                          expected=self.describe_columns(), found=list(headers), line=1)
        return mapping

    # -- values -----------------------------------------------------------------------------
    def coerce(self, raw: pd.DataFrame, first_line: int, clock: "TimeOfDayClock") -> pd.DataFrame:
        """Type a chunk whose columns are already field names and whose cells are strings.

        ``first_line`` is the file line of the chunk's first row (the header is
        line 1), for error messages.  Returns a frame with every field (absent
        optional ones empty), the timestamp as float epoch seconds.
        """
        import pandas as pd

        out: dict[str, Any] = {}
        n = len(raw)
        for spec in self.fields.values():
            if spec.name not in raw:
                out[spec.name] = (np.full(n, np.nan) if spec.type in ("number", "integer")
                                  else np.full(n, "", dtype=object))
                continue
            column = raw[spec.name]
            if spec.type in ("number", "integer") and column.dtype.kind == "f":
                # Already parsed by the CSV reader's C code; empty cells arrive as NaN.
                values = column.to_numpy(dtype=float)
                bad = ~np.isfinite(values) if spec.required else np.isinf(values)
                self._check(spec, bad, first_line, "a number", column.fillna(""))
                if spec.minimum is not None:
                    self._check(spec, values < spec.minimum, first_line,
                                f"a number >= {spec.minimum:g}", column)
                out[spec.name] = values
                continue
            # Object columns of Python str: pandas 3's "str" dtype converts ~50x slower.
            text = column if column.dtype == object else column.astype(object)
            if spec.type == "string":
                values = text.to_numpy(dtype=object)
                if spec.required:
                    self._check(spec, values == "", first_line, "a non-empty value")
                if spec.name in self.entities:
                    self._check_entity_ids(spec, values, first_line)
                out[spec.name] = values
            elif spec.type in ("number", "integer"):
                values = _floats(text)
                bad = ~np.isfinite(values)
                if not spec.required:
                    bad &= (text.str.strip() != "").to_numpy()
                self._check(spec, bad, first_line, "a number", column)
                if spec.minimum is not None:
                    self._check(spec, values < spec.minimum, first_line,
                                f"a number >= {spec.minimum:g}", column)
                if spec.type == "integer":
                    self._check(spec, np.isfinite(values) & (values != np.round(values)),
                                first_line, "a whole number", column)
                out[spec.name] = values
            else:
                values = clock.parse(text)
                self._check(spec, ~np.isfinite(values), first_line,
                            "an ISO-8601 date-time, epoch seconds or a time of day HH:MM[:SS]", column)
                out[spec.name] = values
        return pd.DataFrame(out, index=pd.RangeIndex(n))

    def _check_entity_ids(self, spec: FieldSpec, values: np.ndarray, first_line: int) -> None:
        """An entity id longer than /api/flags takes could never be flagged: the file is refused."""
        import pandas as pd

        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        too_long = lengths > MAX_ENTITY_ID_LENGTH
        if too_long.any():  # quoted by their start and length, not in full (they may be megabytes)
            shown = pd.Series([f"{v[:20]}... ({n} characters)" for v, n in zip(values, lengths)])
            self._check(spec, too_long, first_line,
                        f"an id of at most {MAX_ENTITY_ID_LENGTH} characters", shown)

    def _check(self, spec: FieldSpec, bad, first_line: int, wanted: str, column=None) -> None:
        bad = np.asarray(bad, dtype=bool)
        if not bad.any():
            return
        rows = np.flatnonzero(bad)
        lines = [int(first_line + r) for r in rows[:QUOTED_LINES]]
        shown = "" if column is None else f": found {', '.join(repr(str(column.iloc[r])) for r in rows[:3])}"
        more = f" and {len(rows) - QUOTED_LINES} more" if len(rows) > QUOTED_LINES else ""
        raise BadData(f"column {spec.name!r} needs {wanted} on every line; line(s) "
                      f"{', '.join(map(str, lines))}{more} do not{shown}",
                      expected=[f"{spec.name}: {wanted}"],
                      found=[] if column is None else [str(column.iloc[r]) for r in rows[:3]],
                      line=lines[0])


def _floats(text: pd.Series) -> np.ndarray:
    """Floats of a string column; NaN where a value is no number (fast when all are)."""
    try:
        return np.array(text.to_numpy(), dtype=float)
    except (ValueError, TypeError):
        import pandas as pd

        return pd.to_numeric(text.str.strip(), errors="coerce").to_numpy(dtype=float)


@lru_cache(maxsize=None)
def _header_keys(schema: Schema) -> dict[str, str]:
    keys = {}
    for spec in schema.fields.values():
        for alias in (spec.name, *spec.aliases):
            keys[normalise_header(alias)] = spec.name
    return keys


_TIME_OF_DAY = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")


class TimeOfDayClock:
    """Places times of day on dates: the import's day first, the next day after midnight passes.

    A file of times of day is read in order; when a time falls more than
    twelve hours before the previous one, midnight has passed.  The clock
    keeps its day across chunks.

    >>> import pandas as pd
    >>> clock = TimeOfDayClock(day=0.0)
    >>> clock.parse(pd.Series(["23:30", "23:50", "00:10", "1970-01-02T00:20:00Z"])).tolist()
    [84600.0, 85800.0, 87000.0, 87600.0]
    """

    def __init__(self, day: float | None = None):
        if day is None:
            import pandas as pd

            day = pd.Timestamp.now(tz="UTC").normalize().timestamp()
        self.day = float(day)
        self.previous: float | None = None

    def parse(self, text: pd.Series) -> np.ndarray:
        """Epoch seconds of each value (NaN where a value is neither form)."""
        import pandas as pd

        text = text if text.dtype == object else text.astype(object)
        if len(text) and "-" in str(text.iloc[0]):
            try:  # the common case, a column of ISO date-times, in one strict call
                stamps = pd.to_datetime(text, utc=True, format="ISO8601")
                return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(copy=True)
            except (ValueError, TypeError, OverflowError):
                pass
        out = np.full(len(text), np.nan)
        numeric = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
        is_number = np.isfinite(numeric)
        out[is_number] = numeric[is_number]
        of_day = text.str.match(_TIME_OF_DAY).to_numpy(dtype=bool) & ~is_number
        if of_day.any():
            seconds = pd.to_timedelta(text[of_day].where(text[of_day].str.count(":") == 2,
                                                         text[of_day] + ":00"),
                                      errors="coerce").dt.total_seconds().to_numpy(copy=True)
            seconds[(seconds < 0) | (seconds >= 86400)] = np.nan
            out[of_day] = self._place(seconds)
        rest = ~is_number & ~of_day
        if rest.any():
            stamps = pd.to_datetime(text[rest], utc=True, format="ISO8601", errors="coerce")
            values = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
            out[rest] = values
        with np.errstate(invalid="ignore"):  # no date-time: refused with its line (event.EARLIEST_TIME)
            out[(out < EARLIEST_TIME) | (out > LATEST_TIME)] = np.nan
        return out

    def _place(self, seconds: np.ndarray) -> np.ndarray:
        finite = np.isfinite(seconds)
        s = seconds[finite]
        if s.size == 0:
            return seconds
        previous = np.concatenate([[s[0] if self.previous is None else self.previous], s[:-1]])
        days = np.cumsum(s < previous - 43200.0)
        placed = seconds.copy()
        placed[finite] = self.day + days * 86400.0 + s
        self.day += float(days[-1]) * 86400.0
        self.previous = float(s[-1])
        return placed


# -- loading ------------------------------------------------------------------------------------
def load_schema(name_or_path: str | Path) -> Schema:
    """Load and check a schema: a name under ``schemas/`` or a path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = SCHEMA_DIR / f"{name_or_path}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = sorted(p.stem for p in SCHEMA_DIR.glob("*.toml"))
        raise SchemaError(f"no schema {str(name_or_path)!r}; known: {known}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SchemaError(f"{path}: {exc}") from None
    return schema_from_data(data, origin=str(path))


def schema_from_data(data: Mapping[str, Any], origin: str = "<schema>") -> Schema:
    """Build a :class:`Schema` from its declaration (parsed TOML), checking every key."""
    from .derive import derived_from_data
    from .rules import rule_from_data

    def fail(key: str, message: str):
        raise SchemaError(f"{origin}: {key}: {message}")

    _only(data, {"name", "description", "id", "timestamp", "entities", "truth", "fields", "derived",
                 "baseline", "rules", "alerts"}, "", fail)
    for key in ("name", "id", "timestamp"):
        if not isinstance(data.get(key), str) or not data[key]:
            fail(key, "needs a non-empty string")
    fields: dict[str, FieldSpec] = {}
    for name, spec in (data.get("fields") or {}).items():
        _only(spec, {"type", "required", "unit", "help", "minimum", "aliases"}, f"fields.{name}", fail)
        if spec.get("type") not in FIELD_TYPES:
            fail(f"fields.{name}.type", f"must be one of {FIELD_TYPES}")
        fields[name] = FieldSpec(name=name, type=spec["type"], required=bool(spec.get("required", True)),
                                 unit=str(spec.get("unit", "")), help=str(spec.get("help", "")),
                                 minimum=spec.get("minimum"), aliases=tuple(spec.get("aliases", ())))
    if not fields:
        fail("fields", "declares no field")
    keys: dict[str, str] = {}
    for spec in fields.values():
        for alias in (spec.name, *spec.aliases):
            key = normalise_header(alias)
            if keys.get(key, spec.name) != spec.name:
                fail(f"fields.{spec.name}.aliases", f"{alias!r} already names field {keys[key]!r}")
            keys[key] = spec.name
    for key in ("id", "timestamp"):
        if data[key] not in fields:
            fail(key, f"{data[key]!r} is not a declared field")
    if fields[data["timestamp"]].type != "datetime":
        fail("timestamp", f"field {data['timestamp']!r} must have type datetime")
    entities = tuple(data.get("entities") or ())
    for entity in entities:
        if entity not in fields or fields[entity].type != "string":
            fail("entities", f"{entity!r} must be a declared string field")
    truth = data.get("truth")
    if truth is not None and truth not in fields:
        fail("truth", f"{truth!r} is not a declared field")

    derived = []
    known = set(fields)
    for name, spec in (data.get("derived") or {}).items():
        if name in known:
            fail(f"derived.{name}", "already names a field or derived feature")
        try:
            derived.append(derived_from_data(name, spec, fields, entities))
        except (ValueError, TypeError, KeyError) as exc:
            fail(f"derived.{name}", str(exc))
        known.add(name)

    base = dict(data.get("baseline") or {})
    _only(base, {"threshold", "memory", "warmup", "idle", "max_entities", "features"}, "baseline", fail)
    features = []
    for i, spec in enumerate(base.pop("features", [])):
        where = f"baseline.features[{i}]"
        _only(spec, {"entity", "feature", "transform", "min_scale", "low", "high", "sides"}, where, fail)
        if spec.get("entity") not in entities:
            fail(f"{where}.entity", f"must be one of the entities {list(entities)}")
        if spec.get("feature") not in known - set(entities):
            fail(f"{where}.feature", f"{spec.get('feature')!r} is no numeric field or derived feature")
        if spec.get("transform", "none") not in TRANSFORMS:
            fail(f"{where}.transform", f"must be one of {TRANSFORMS}")
        if not isinstance(spec.get("min_scale", 0.0), (int, float)) or spec.get("min_scale", 0.0) < 0:
            fail(f"{where}.min_scale", "must be a number >= 0")
        if spec.get("sides", "both") not in SIDES:
            fail(f"{where}.sides", f"must be one of {SIDES}")
        if spec.get("low") is not None and spec.get("sides") == "high" or \
                spec.get("high") is not None and spec.get("sides") == "low":
            fail(f"{where}.sides", f"names a type for a side it does not watch (sides = {spec['sides']!r})")
        features.append(BaselineFeature(entity=spec["entity"], feature=spec["feature"],
                                        transform=spec.get("transform", "none"),
                                        min_scale=float(spec.get("min_scale", 0.0)),
                                        low=spec.get("low"), high=spec.get("high"),
                                        sides=spec.get("sides", "both")))
    try:
        baseline = BaselineSpec(
            threshold=_positive(base.get("threshold", 4.5), "threshold"),
            memory=int(_positive(base.get("memory", 200), "memory")),
            warmup=int(base.get("warmup", 5)),
            idle_seconds=parse_duration(base.get("idle", "7d")),
            max_entities=int(_positive(base.get("max_entities", 100_000), "max_entities")),
            features=tuple(features))
    except (ValueError, TypeError) as exc:
        fail("baseline", str(exc))

    rules = []
    for i, spec in enumerate(data.get("rules") or []):
        try:
            rules.append(rule_from_data(spec, known, entities))
        except (ValueError, TypeError, KeyError) as exc:
            fail(f"rules[{i}]", str(exc))
    from ..alerts.subjects import subjects_of

    alerts = data.get("alerts") or {}
    _only(alerts, {"subjects"}, "alerts", fail)
    try:
        alert_subjects = subjects_of(alerts.get("subjects"), entities, features, rules)
    except ValueError as exc:
        fail("alerts.subjects", str(exc))
    return Schema(name=data["name"], description=str(data.get("description", "")), id=data["id"],
                  timestamp=data["timestamp"], entities=entities, fields=fields, truth=truth,
                  derived=tuple(derived), baseline=baseline, rules=tuple(rules),
                  alert_subjects=alert_subjects)


def _only(mapping: Any, allowed: set, where: str, fail) -> None:
    if not isinstance(mapping, Mapping):
        fail(where or "schema", "must be a table")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        fail(where or "schema", f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_severity(value: Any) -> str:
    if value not in SEVERITIES:
        raise ValueError(f"severity must be one of {list(SEVERITIES)}, got {value!r}")
    return value
