"""The pipeline's server side: score batches of a schema's events, mark flagged entities, store them.

One :class:`Ingest` per app holds a :class:`~server.pipeline.scoring.Scorer`
per schema.  Scorers keep per-entity state and are not thread-safe, so every
batch is scored under one lock, on a dedicated OS thread (under gevent that
keeps numpy off the event loop), and queued to the single writer while the
lock is held, so the database sees batches in the order they were scored.
A batch is read and scored while the writer copies the one before into its
table and commits it (:meth:`Ingest.store`), a part of the write that holds
no GIL.

Each event is stored once: the events of a batch that are stored already (a file
uploaded again, a retried request, a feed re-sending), queued to be, or repeated in
it are dropped before it is scored, whatever the source
(server/pipeline/duplicates.py), and an import's summary counts them.

An import (an uploaded file, a replayed one) is all or nothing: its batches
are stored under one origin, and if a write fails the ones already stored
are deleted again; it is marked in progress in the database until its last
batch has committed, so one cut short by a crash is deleted at the next start.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..concurrency import DedicatedThread
from .duplicates import StoredOnce
from .event import EventBatch

__all__ = ["ImportSummary", "Ingest", "check_schema_names"]

log = logging.getLogger(__name__)

_SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
#: How often :meth:`Ingest.store` looks whether the writer has staged a batch (s).
_STAGED_POLL_S = 0.002


def check_schema_names(raw: str) -> dict[str, Path]:
    """The SCHEMAS setting's schema files by the name each serves (checked at start-up, without pandas).

    An entry is a bundled schema's name (``server/pipeline/schemas/<name>.toml``) or the path of a
    TOML file of one's own (a new domain declared as data, no code), e.g.
    ``ANOMALY_SCHEMAS=ev_charging,/etc/anomaly/electricity.toml``.  The whole file is checked
    when the schemas load (:func:`server.pipeline.schema.load_schema`); here that each entry is
    there, reads as TOML and names its schema once, and a file of one's own is loaded whole, so
    a wrong declaration stops the start with the file and key named (the bundled ones are
    checked by the tests; loading one imports pandas, which the start otherwise leaves out).
    """
    import tomllib

    from ..settings import SettingsError

    known = sorted(p.stem for p in _SCHEMA_DIR.glob("*.toml"))
    files: dict[str, Path] = {}
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        if not entry.endswith(".toml"):
            if entry not in known:
                raise SettingsError(f"ANOMALY_SCHEMAS={raw!r}: unknown schema {entry!r}; known: {known}, "
                                    "or the path of a .toml file")
            path = _SCHEMA_DIR / f"{entry}.toml"
        else:
            path = Path(entry).expanduser()
        try:
            name = tomllib.loads(path.read_text(encoding="utf-8")).get("name")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"ANOMALY_SCHEMAS: {entry}: {exc}") from None
        if not isinstance(name, str) or not name:
            raise SettingsError(f"ANOMALY_SCHEMAS: {entry}: the file declares no `name`")
        if name in files:
            raise SettingsError(f"ANOMALY_SCHEMAS: two files declare the schema {name!r}: "
                                f"{files[name]} and {path}")
        if path.parent != _SCHEMA_DIR:
            from .schema import SchemaError, load_schema
            try:
                load_schema(path)
            except SchemaError as exc:
                raise SettingsError(f"ANOMALY_SCHEMAS: {exc}") from None
        files[name] = path
    return files


@dataclass
class ImportSummary:
    """What an import stored: counts, counts per type and severity, and its anomalies."""

    schema: str
    origin: str
    #: Events stored: new ones only.
    events: int = 0
    #: Events not stored, scored or counted: stored already, or repeating one earlier in the import.
    duplicates: int = 0
    anomalies: int = 0
    flagged: int = 0
    types: dict = field(default_factory=dict)
    severities: dict = field(default_factory=dict)
    anomaly_list: list = field(default_factory=list)
    seconds: float = 0.0

    def add(self, count: int, anomalies: list[dict], flagged: int, keep: int) -> None:
        self.events += count
        self.anomalies += len(anomalies)
        self.flagged += flagged
        for a in anomalies:
            for t in a["types"]:
                self.types[t] = self.types.get(t, 0) + 1
            self.severities[a["severity"]] = self.severities.get(a["severity"], 0) + 1
        room = keep - len(self.anomaly_list)
        if room > 0:
            self.anomaly_list.extend(anomalies[:room])

    def amend(self, amended: list, keep: int) -> None:
        """Count the events of this import that a later batch of it amended (a DoS burst across
        two batches: server/event_amendments.py); those of other origins are not this import's."""
        for a in amended:
            event = a.stored
            if event.get("origin") != self.origin:
                continue
            self.types[a.signal["type"]] = self.types.get(a.signal["type"], 0) + 1
            if a.newly_anomalous:
                self.anomalies += 1
            else:
                self.severities[a.severity_before] = self.severities.get(a.severity_before, 0) - 1
            self.severities[event["severity"]] = self.severities.get(event["severity"], 0) + 1
            listed = next((i for i, e in enumerate(self.anomaly_list) if e.get("id") == event["id"]), None)
            if listed is not None:
                self.anomaly_list[listed] = event
            elif a.newly_anomalous and len(self.anomaly_list) < keep:
                self.anomaly_list.append(event)
        self.severities = {k: v for k, v in self.severities.items() if v > 0}

    def to_dict(self) -> dict:
        return {"schema": self.schema, "origin": self.origin, "events": self.events,
                "duplicates": self.duplicates, "anomalies": self.anomalies, "flagged": self.flagged,
                "types": self.types, "severities": self.severities, "seconds": round(self.seconds, 3),
                "anomaly_list": self.anomaly_list,
                "truncated": self.anomalies > len(self.anomaly_list)}


class Ingest:
    """Scores and stores batches of events, per schema; holds the operators' flags."""

    def __init__(self, schemas: Sequence[str] | Mapping[str, Path], writer, write_timeout: float):
        """``schemas``: bundled schemas' names, or schema files by name (:func:`check_schema_names`)."""
        files = schemas if isinstance(schemas, Mapping) else check_schema_names(",".join(schemas))
        self.schema_files: dict[str, Path] = dict(files)
        self.schema_names = tuple(self.schema_files)
        from ..event_storage import register_schema_files

        register_schema_files(self.schema_files)
        self.writer = writer
        self.write_timeout = write_timeout
        self._stored_once = StoredOnce(self._connect_reader)
        self.flags: dict[str, dict[str, set]] = {}
        self._schemas: dict | None = None
        self._scorers: dict = {}
        self._load_lock = threading.Lock()
        self._lock = threading.Lock()
        self._thread = DedicatedThread("pipeline")
        #: Files are parsed here, off the event loop and beside the scoring thread.
        self._parser = DedicatedThread("upload")
        self._closed = False

    @property
    def schemas(self) -> dict:
        """The served schemas by name, loaded on first use (pandas stays out of the start-up)."""
        if self._schemas is None:
            with self._load_lock:
                if self._schemas is None:
                    from .schema import load_schema
                    from .scoring import Scorer

                    schemas = {name: load_schema(path) for name, path in self.schema_files.items()}
                    self._scorers = {name: Scorer(schema) for name, schema in schemas.items()}
                    self._schemas = schemas
        return self._schemas

    @property
    def scorers(self) -> dict:
        self.schemas  # noqa: B018 -- loads them
        return self._scorers

    def load_flags(self, rows: Iterable[dict]) -> None:
        from ..event_writes import flags_by_key

        self.flags = flags_by_key(rows)

    def _connect_reader(self):
        """A read-only connection to the writer's database (where a batch's events are looked for)."""
        from ..storage import open_reader

        return open_reader(self.writer.path).conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._thread.close()
        self._parser.close()
        self._stored_once.close()

    def schema(self, name: str):
        if name not in self.schemas:
            raise LookupError(f"unknown schema {name!r}; known: {sorted(self.schemas)}")
        return self.schemas[name]

    # -- batches ----------------------------------------------------------------------------
    def store(self, batches: Iterable[EventBatch], origin: str, *, keep_anomalies: int = 1000,
              whole: bool = False) -> ImportSummary:
        """Score and store every batch; wait for the commits; return a summary.

        ``whole=True`` makes it one import: its events are stored under a
        unique origin, removed again if any write fails, or at the next start
        if the server stops before its last batch has committed.
        """
        started = time.perf_counter()
        origin = f"{origin}:{uuid.uuid4().hex[:12]}" if whole else origin
        summary: ImportSummary | None = None
        jobs = []
        #: The batch queued before: its rows staged, its copy into the table and its commit still
        #: running on the writer thread, without the GIL, while the next batch is read and scored.
        pending = None
        try:
            for batch in batches:
                if summary is None:
                    summary = ImportSummary(batch.schema.name, origin)
                job, duplicates = self._score_and_queue(batch, origin, whole)
                summary.duplicates += duplicates
                if job is None:
                    continue  # every event of the batch was stored before
                jobs.append(job)
                if pending is not None:
                    self._collect(pending, summary, keep_anomalies)
                # Staged before the next batch is read and scored: staging binds its rows one
                # by one, and Python's sqlite3 hands the GIL over at every row; against a
                # thread running Python meanwhile, each hand-off waits up to the switch
                # interval (overlapping the whole write lost at the server's 1 ms: bench_ingest
                # alternately at load average 2.5-3.1, 18,100-20,700 events/s stored and pushed
                # against 19,000-28,400 written before the next batch was scored).
                self._wait_staged(job)
                pending = job
            if pending is not None:
                self._collect(pending, summary, keep_anomalies)
            if whole and jobs:
                self._finish(origin)
        except BaseException:
            if whole and jobs:
                self._undo(origin)
            raise
        if summary is None:
            summary = ImportSummary("", origin)
        summary.seconds = time.perf_counter() - started
        return summary

    def import_source(self, source, origin: str, keep_anomalies: int = 1000) -> ImportSummary:
        """Check a file source whole, then score and store all of it (or nothing)."""
        self._parser.run(source.start)
        batches = iter(source.batches())

        def parsed():
            while (batch := self._parser.run(next, batches, None)) is not None:
                yield batch

        return self.store(parsed(), origin, keep_anomalies=keep_anomalies, whole=True)

    def _score_and_queue(self, batch: EventBatch, origin: str, whole: bool = False):
        """Drop the batch's events stored before, score the rest and queue them to the writer.

        Returns the queued job (None when no event of the batch was new) and the events dropped.
        The look-up and the scoring run under the lock, in batch order: a batch's events are
        looked for among those of every batch queued before it.
        """
        from ..event_writes import ScoredEventsJob

        scorer = self.scorers[batch.schema.name]
        flags = self.flags.get(batch.schema.name, {})

        def score():
            fresh = self._stored_once.fresh(batch)
            if not len(fresh.batch):
                return fresh, None
            scored = scorer.score(fresh.batch.frame)
            scored.mark_flagged(flags)
            return fresh, ScoredEventsJob(scored, origin, whole)

        with self._lock:
            if self._closed:
                raise RuntimeError("the pipeline is shutting down")
            fresh, job = self._thread.run(score)
            if job is not None:
                job = self.writer.submit(job, timeout=self.write_timeout)
                self._stored_once.queued(fresh, job)
            return job, fresh.duplicates

    def _wait_staged(self, job) -> None:
        """Wait until the writer has staged ``job``'s rows, or has finished with it (a job that
        never ran, its batch's commit failed: its error is raised when it is collected).

        Polled (a sleep yields to gevent's loop in the server): the flag is set on the writer's
        OS thread, and the staging of a batch takes tens of milliseconds.
        """
        deadline = time.monotonic() + self.write_timeout
        while not (job.staged or job.done.is_set()):
            if time.monotonic() > deadline:
                from ..writer import WriteTimeout

                raise WriteTimeout(f"a batch's rows were not staged within {self.write_timeout} s")
            time.sleep(_STAGED_POLL_S)

    def _collect(self, job, summary: ImportSummary, keep: int) -> None:
        _, anomalies = job.wait(self.write_timeout)
        summary.add(len(job.rows), anomalies, int(job.batch.flagged.sum()), keep)
        summary.amend(job.amended, keep)

    def _finish(self, origin: str) -> None:
        """The import's batches are all committed: it is no longer marked in progress (a stop
        before this commits has it undone at the next start: event_writes.IMPORT_KEY)."""
        from ..event_writes import ImportFinishedJob

        self.writer.write(ImportFinishedJob(origin), self.write_timeout)

    def _undo(self, origin: str) -> None:
        from ..event_writes import DeleteImportJob

        try:
            removed = self.writer.write(DeleteImportJob(origin), self.write_timeout)
            log.warning("import %s failed; removed its %d stored events", origin, removed)
        except Exception:
            log.exception("import %s failed and its stored events could not be removed", origin)

    # -- snapshots (server/event_snapshots.py) -----------------------------------------------
    def checkpoint(self, export: Callable[[dict], Any], marker):
        """Run ``export(scorers)`` between two batches, then queue ``marker`` to the writer.

        Returns ``(export's result, the queued marker)``: every batch the export
        saw was queued before the marker, every later one after it.  None when
        no schema was ever loaded (nothing scored, nothing restored: nothing to
        save) or the pipeline is closed.
        """
        with self._lock:
            if self._closed or self._schemas is None:
                return None
            result = self._thread.run(export, dict(self._scorers))
            return result, self.writer.submit(marker, timeout=self.write_timeout)

    def restore_scorer(self, scorer) -> None:
        """Put a restored scorer in place of its schema's (at start, before any batch)."""
        with self._lock:
            self.schema(scorer.schema.name)
            self._scorers[scorer.schema.name] = scorer

    def learn(self, schema_name: str, frame) -> None:
        """Score a batch without storing it: the scorer learns it (the replay after a snapshot)."""
        self.schemas  # noqa: B018 -- loads them, outside the lock
        with self._lock:
            self._thread.run(self._scorers[schema_name].score, frame)

    # -- actions ----------------------------------------------------------------------------
    def flag(self, schema: str, entity: str, entity_id: str, by: str, note: str,
             clear: bool = False) -> dict | None:
        """Flag (or clear) an entity: persisted first, then applied to the events that follow."""
        from ..event_writes import FlagJob

        if entity not in self.schema(schema).entities:
            raise LookupError(f"{entity!r} is not an entity of {schema}; use one of "
                              f"{list(self.schemas[schema].entities)}")
        row = self.writer.write(FlagJob(schema, entity, entity_id, by, note, clear), self.write_timeout)
        with self._lock:
            ids = self.flags.setdefault(schema, {}).setdefault(entity, set())
            if clear:
                ids.discard(entity_id)
            else:
                ids.add(entity_id)
        return row

    def acknowledge(self, event_row: int, actor: dict, note: str) -> dict:
        """Acknowledge an anomalous event as ``actor`` (name, address, token); NotFound if none."""
        from ..event_writes import AcknowledgeJob

        return self.writer.write(AcknowledgeJob(event_row, actor, note), self.write_timeout)
