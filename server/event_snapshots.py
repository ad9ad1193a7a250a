"""Restarts that remember, for entity-keyed events: each schema's scorer state, saved and restored.

The numeric engine's snapshot (server/snapshots.py) has a sibling file,
``<snapshot>.events.npz`` in the same format (``detectors/snapshot.py``: numpy
arrays plus JSON, written atomically), holding every served schema's
:class:`~server.pipeline.scoring.Scorer` state: per entity key the ids in use,
their last-seen times and every column (learned baselines, the repeat rules'
recent matches, the overlap rules' open sessions, windowed counts), and the
baselines' population.  It is written with the engine's snapshot (periodically
by the process that holds the scheduler lock, and at graceful shutdown), but
apart from it: the scorers are exported between two batches under the
pipeline's lock, not between two ticks, and one file can be refused without
the other.

Each file records the id of the last push event allocated when it was taken:
the export runs between two batches, and a marker job queued right after it
on the (first-in, first-out) writer learns that id.  Every stored batch of
scored events has one push event naming its rows, so at start
:meth:`EventSnapshots.catch_up` finds the batches stored after the snapshot
(after a kill -9 these were scored but are not in it) and replays them, batch
by batch as they were scored, through their scorer, learning only: nothing is
stored or published again.  The stored rows carry every field a scorer reads
(server/event_field_sql.py reads each back); numbers come back from the
``fields`` JSON exactly as they were scored (orjson writes each float's
shortest exact form; rows stored before it kept 15 significant digits), so a
replay learns what the crashed process learned.

What a replay cannot bring back: batches whose push events retention already
deleted (RETENTION_EVENTS newest are kept; a warning says so), and batches
scored but whose write failed (they were never stored).

A file that cannot be read, that covers push events this database does not
have, or whose scorer state was written by other code or for another
declaration of the schema, is refused with a warning: that scorer starts
cold, as it would without a snapshot.
"""
from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import numpy as np

from detectors.snapshot import SnapshotError, read_snapshot, write_snapshot

from .concurrency import DedicatedThread
from .event_field_sql import field_sql
from .snapshots import LastIdJob, last_stored_id

__all__ = ["EventSnapshots", "event_snapshot_path"]

log = logging.getLogger(__name__)


def event_snapshot_path(snapshot: Path | None) -> Path | None:
    """The scorers' file beside the engine's snapshot ``snapshot`` (None: snapshots are off)."""
    if snapshot is None:
        return None
    return snapshot.with_name(f"{snapshot.stem}.events{snapshot.suffix}")


class EventSnapshots:
    """Saves, restores and catches up the event scorers of an :class:`~server.pipeline.ingest.Ingest`.

    Parameters
    ----------
    ingest : server.pipeline.ingest.Ingest
    path : Path or None
        The file; None turns it off.
    db_path : Path
        The database, read (read-only) for the replay.
    write_timeout : float
        Seconds to wait for the writer's marker.
    """

    def __init__(self, ingest, path: Path | None, db_path: Path, write_timeout: float):
        self.ingest = ingest
        self.path = path
        self.db_path = db_path
        self.write_timeout = write_timeout
        #: The last push event the restored file covers (None: nothing restored, nothing to replay).
        self.last_event_id: int | None = None
        self.last_bytes: int | None = None
        self._file_thread = DedicatedThread("event-snapshot")

    # -- start-up ---------------------------------------------------------------------------
    def restore(self) -> int:
        """Put each saved scorer in place; return how many were restored (a refused one starts cold)."""
        if self.path is None or not self.path.exists():
            return 0
        from .pipeline.scoring import Scorer

        started = time.perf_counter()
        try:
            meta, arrays = read_snapshot(self.path)
            last_event_id = int(meta["last_event_id"])
            stored = last_stored_id(self.db_path, "events")
            if last_event_id > stored:
                raise SnapshotError(f"it covers push events up to id {last_event_id} but the database "
                                    f"ends at {stored} (another database?)")
            saved = dict(meta["scorers"])
        except Exception as exc:  # whatever is wrong with the file, the server starts (cold)
            log.warning("event scorer snapshot %s refused, scorers start cold: %s", self.path, exc)
            return 0
        restored = 0
        for name in self.ingest.schema_names:
            if name not in saved:
                log.warning("event scorer snapshot %s has no state of %s: it starts cold", self.path, name)
                continue
            prefix = f"{name}/"
            try:
                scorer = Scorer.restored(self.ingest.schema(name), saved[name],
                                         {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
            except Exception as exc:
                log.warning("event scorer snapshot %s refused for %s, it starts cold: %s", self.path, name, exc)
                continue
            self.ingest.restore_scorer(scorer)
            restored += 1
            log.info("restored the %s scorer (%s entities)", name,
                     ", ".join(f"{n} {e}" for e, n in scorer.entity_counts().items()))
        if restored:
            self.last_event_id = last_event_id
        log.info("event scorer snapshot %s: %d of %d schemas restored, up to push event %d, in %.0f ms",
                 self.path, restored, len(self.ingest.schema_names), last_event_id,
                 (time.perf_counter() - started) * 1000)
        return restored

    def undo_cut_short_imports(self) -> int:
        """Remove the rows of the imports the last stop cut short (event_writes.IMPORT_KEY), before
        :meth:`catch_up` would replay them; it writes, so it runs on the event loop.  Returns the rows."""
        from .event_writes import undo_unfinished_imports
        from .writer import WriterError

        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            return undo_unfinished_imports(self.ingest.writer, conn, self.write_timeout)
        except WriterError as exc:  # another server writes to this database: its imports are its own
            log.warning("imports cut short by the last stop were not removed: %s", exc)
            return 0
        finally:
            conn.close()

    def catch_up(self) -> int:
        """Replay the batches stored after the restored snapshot, learning only; return the events replayed."""
        if self.last_event_id is None:
            return 0
        started = time.perf_counter()
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            oldest = conn.execute("SELECT min(id) FROM events").fetchone()[0]
            if oldest is not None and oldest > self.last_event_id + 1:
                log.warning("push events %d to %d were pruned: the event batches among them are not "
                            "replayed into the scorers", self.last_event_id + 1, oldest - 1)
            batches = conn.execute("SELECT first_point_id, last_point_id FROM events WHERE type = 'events' "
                                   "AND id > ? AND last_point_id >= first_point_id ORDER BY id",
                                   [self.last_event_id]).fetchall()
            if not batches:
                return 0
            first_row = min(b[0] for b in batches)
            stored = {name: _stored_frame_rows(conn, self.ingest.schema(name), first_row)
                      for name in self.ingest.schema_names}
        finally:
            conn.close()
        replayed = 0
        for name, (ids, frame) in stored.items():
            for lo, hi in batches:
                start, stop = np.searchsorted(ids, [lo, hi + 1])
                if stop <= start:
                    continue  # another schema's batch, or an undone import's
                try:
                    self.ingest.learn(name, frame.iloc[start:stop].reset_index(drop=True))
                except Exception as exc:  # one bad stored batch costs itself, not the start-up
                    log.error("replay of %s events %d-%d after the snapshot: %s: %s",
                              name, lo, hi, type(exc).__name__, exc)
                    continue
                replayed += int(stop - start)
        if replayed:
            log.info("replayed %d events stored after the event scorer snapshot in %.0f ms", replayed,
                     (time.perf_counter() - started) * 1000)
        return replayed

    # -- saving ---------------------------------------------------------------------------------
    def save(self) -> int | None:
        """Save every loaded scorer now; return the file's size (None when off, nothing loaded, or failed).

        A failure is logged, never raised: the engine's snapshot and the server go on.
        """
        if self.path is None:
            return None
        try:
            started = time.perf_counter()
            taken = self.ingest.checkpoint(_export, LastIdJob("events"))
            if taken is None:
                return None
            (meta, arrays), marker = taken
            meta["last_event_id"] = marker.wait(self.write_timeout)
            exported = time.perf_counter()
            size = self._file_thread.run(write_snapshot, self.path, meta, arrays)
        except Exception:
            log.exception("event scorer snapshot %s failed; the next start replays from the last one", self.path)
            return None
        self.last_bytes = size
        log.info("event scorer snapshot %s: %s, %.1f MB (export %.0f ms, write %.0f ms)", self.path,
                 ", ".join(f"{name} {sum(t['rows'] for t in s['tables'].values())} entity rows"
                           for name, s in meta["scorers"].items()),
                 size / 1e6, (exported - started) * 1000, (time.perf_counter() - exported) * 1000)
        return size

    def close(self) -> None:
        self._file_thread.close()


def _export(scorers: dict) -> tuple[dict, dict]:
    """Runs on the pipeline thread, between two batches."""
    meta: dict = {"scorers": {}, "saved_at": time.time()}
    arrays: dict[str, np.ndarray] = {}
    for name, scorer in scorers.items():
        meta["scorers"][name], scorer_arrays = scorer.export_state()
        arrays.update({f"{name}/{k}": v for k, v in scorer_arrays.items()})
    return meta, arrays


def _stored_frame_rows(conn: sqlite3.Connection, schema, first_row: int):
    """``(row ids, typed frame)`` of a schema's events stored from row ``first_row`` on, as
    :meth:`Schema.coerce` would have typed them (every field read back in SQLite)."""
    import pandas as pd

    selected = [field_sql(schema, name) for name in schema.fields]
    rows = conn.execute(f"SELECT id, {', '.join(selected)} FROM scored_events "
                        "WHERE schema = ? AND id >= ? ORDER BY id", [schema.name, first_row]).fetchall()
    columns = list(zip(*rows)) if rows else [()] * (len(selected) + 1)
    ids = np.array(columns[0], dtype=np.int64)
    out = {}
    for spec, values in zip(schema.fields.values(), columns[1:]):
        if spec.type == "string":
            out[spec.name] = np.array(["" if v is None else str(v) for v in values], dtype=object)
        else:  # numbers, integers and datetimes (epoch seconds): NULL is a missing optional value
            out[spec.name] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return ids, pd.DataFrame(out, index=pd.RangeIndex(len(ids)))

