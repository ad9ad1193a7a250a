"""Restarts that remember: the engine's learned state, the generators and the tick count, saved and restored.

A snapshot (``detectors/snapshot.py`` format: numpy arrays plus JSON, written
atomically) is taken every ``SNAPSHOT_INTERVAL`` seconds by the process that
holds the scheduler lock, and once more at graceful shutdown.  Each one
records the id of the last point the engine had scored when it was taken: it
is exported between two ticks or submits, and a marker job queued right after
it on the (first-in, first-out) writer learns the last point id allocated.

At start, before the streams are registered, :meth:`Snapshots.restore` loads
the last snapshot; after them, :meth:`Snapshots.catch_up` replays the points
stored since (after a kill -9 these were scored but are not in the
snapshot) through the engine, learning only: nothing is stored or published
again, nothing is skipped.  The built-in generators skip the points they had
already produced, and tick numbers continue from the last stored one.

A snapshot that cannot be read, or that was written by other code, other
detectors or other parameters, is refused with a warning: the server then
starts cold, as it would without one.  Parameters that only steer how the
learned state is used (``snapshot_tunable``, detectors/snapshot.py) take their
running value instead, so a new default for one of them keeps the state.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from detectors.snapshot import SnapshotError, read_snapshot, write_snapshot

from .concurrency import DedicatedThread
from .writer import Transaction, WriteJob

__all__ = ["LastIdJob", "Snapshots", "last_stored_id", "snapshot_path"]

log = logging.getLogger(__name__)

#: Names of the arrays of the engine inside a snapshot file.
_ENGINE = "engine/"


class LastIdJob(WriteJob):
    """A write that writes nothing: its result is the last id of ``kind`` (the writer's id
    counters: "points", "events" for push events) allocated before it."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def apply(self, tx: Transaction) -> int:
        return tx.allocate(self.kind, 0) - 1


def snapshot_path(setting: str, db_path: Path) -> Path | None:
    """The snapshot file of the SNAPSHOT_PATH setting: None for "off", beside the database for "auto"."""
    if setting.lower() == "off":
        return None
    if setting.lower() == "auto":
        return db_path.with_name(db_path.name + ".snapshot.npz")
    from .settings import resolve_path
    return resolve_path(setting)


class Snapshots:
    """Saves and restores the monitor's engine, generators and tick count.

    Parameters
    ----------
    monitor : server.monitor.Monitor
    path : Path or None
        The snapshot file; None turns snapshots off (catch_up still continues tick numbers).
    interval : float
        Seconds between two periodic snapshots (0: only at shutdown).
    """

    def __init__(self, monitor, path: Path | None, interval: float, events=None):
        self.monitor = monitor
        #: The event scorers' sibling file (server/event_snapshots.py), saved with this one.
        self.events = events
        self.path = path
        self.interval = interval
        self.last_point_id: int | None = None  # what the restored snapshot covers
        self.last_saved_at = time.monotonic()
        self.last_bytes: int | None = None
        self._saving = threading.Lock()
        self._file_thread = DedicatedThread("snapshot")

    # -- start-up ---------------------------------------------------------------------------
    def restore(self) -> bool:
        """Load the snapshot into the engine and generators (before the streams are registered)."""
        if self.path is None or not self.path.exists():
            return False
        started = time.perf_counter()
        try:
            meta, arrays = read_snapshot(self.path)
            last_point_id = int(meta["last_point_id"])
            stored = last_stored_id(self.monitor.db_path, "points")
            if last_point_id > stored:
                raise SnapshotError(f"it covers points up to id {last_point_id} but the database "
                                    f"ends at {stored} (another database?)")
            engine_arrays = {k[len(_ENGINE):]: v for k, v in arrays.items() if k.startswith(_ENGINE)}
            self.monitor.engine.import_state(meta["engine"], engine_arrays)
        except Exception as exc:  # whatever is wrong with the file, the server starts (cold)
            log.warning("snapshot %s refused, starting cold: %s", self.path, exc)
            return False
        for name, gen in self.monitor.generators.items():
            state = meta.get("generators", {}).get(name)
            try:
                if state is None:
                    raise ValueError("no saved state")
                gen.resume(state)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                gen.reset()
                log.warning("generator %r starts from its first point: %s", name, exc)
        self.monitor.tick_count = int(meta.get("tick_count", 0))
        self.last_point_id = last_point_id
        log.info("restored snapshot %s (%d streams, up to point %d, tick %d) in %.0f ms", self.path,
                 len(meta["engine"]["streams"]["names"]), last_point_id, self.monitor.tick_count,
                 (time.perf_counter() - started) * 1000)
        return True

    def catch_up(self) -> int:
        """Replay points stored after the snapshot (learning only); continue tick numbers; return the count."""
        monitor = self.monitor
        stale = [name for name in monitor.engine.streams() if name not in monitor.streams]
        remove = getattr(monitor.engine, "remove_stream", None)
        for name in stale if remove is not None else ():
            remove(name)  # deleted after the snapshot was taken
        conn = sqlite3.connect(f"file:{monitor.db_path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT tick FROM points WHERE tick IS NOT NULL "
                               "ORDER BY id DESC LIMIT 1").fetchone()
            if row is not None:
                monitor.tick_count = max(monitor.tick_count, int(row[0]))
            if self.last_point_id is None:
                return 0
            rows = conn.execute("SELECT source, tick, field_values FROM points WHERE id > ? "
                                "ORDER BY id", [self.last_point_id]).fetchall()
        finally:
            conn.close()
        started = time.perf_counter()
        rounds: list[dict[str, dict]] = []
        per_source: dict[str, int] = {}
        drawn: dict[str, int] = {}
        for source, tick, values in rows:
            if not monitor.engine.has_stream(source):
                continue
            k = per_source.get(source, 0)
            per_source[source] = k + 1
            if k == len(rounds):
                rounds.append({})
            rounds[k][source] = json.loads(values)
            if tick is not None and source in monitor.generators:
                drawn[source] = drawn.get(source, 0) + 1
        for points in rounds:  # the k-th point of each stream in step k: each stream's order is kept
            try:
                monitor.engine.step(points)
            except Exception as exc:  # one bad stored point costs its round, not the start-up
                log.error("replay after the snapshot: %s: %s", type(exc).__name__, exc)
        for name, count in drawn.items():
            monitor.generators[name].take(count)
        if rows:
            log.info("replayed %d points stored after the snapshot in %.0f ms", len(rows),
                     (time.perf_counter() - started) * 1000)
        return len(rows)

    # -- saving ---------------------------------------------------------------------------------
    def save_if_due(self) -> int | None:
        """The periodic job: a snapshot when the last one is at least an interval old."""
        if self.path is None or self.interval <= 0:
            return None
        if time.monotonic() - self.last_saved_at < 0.9 * self.interval:
            return None  # e.g. the scheduler's first run, right after start-up
        return self.save()

    def save(self, closing: bool = False) -> int | None:
        """Take a snapshot now, and one of the event scorers; return the engine's size in bytes
        (None when off or the monitor is closed)."""
        if self.path is None:
            return None
        try:
            return self._save_engine(closing)
        finally:
            if self.events is not None:
                self.events.save()  # logs its own failure: the engine's snapshot does not depend on it

    def _save_engine(self, closing: bool) -> int | None:
        with self._saving:
            started = time.perf_counter()
            # At shutdown the engine steps no more, so its arrays are saved without a copy.
            export = (lambda: self._export(copy=False)) if closing else self._export
            taken = self.monitor.checkpoint(export, LastIdJob("points"), closing=closing)
            if taken is None:
                return None
            (meta, arrays), marker = taken
            meta["last_point_id"] = marker.wait(self.monitor.write_timeout)
            exported = time.perf_counter()
            size = self._file_thread.run(write_snapshot, self.path, meta, arrays)
            self.last_saved_at = time.monotonic()
            self.last_bytes = size
            log.info("snapshot %s: %d streams, %.1f MB (export %.0f ms, write %.0f ms)", self.path,
                     len(meta["engine"]["streams"]["names"]), size / 1e6,
                     (exported - started) * 1000, (time.perf_counter() - exported) * 1000)
            return size

    def close(self) -> None:
        self._file_thread.close()
        if self.events is not None:
            self.events.close()

    def _export(self, copy: bool = True) -> tuple[dict, dict]:
        """Runs on the engine thread, between ticks and submits."""
        monitor = self.monitor
        engine_meta, engine_arrays = monitor.engine.export_state(copy=copy)
        generators = {name: gen.state() for name, gen in monitor.generators.items()
                      if hasattr(gen, "state")}
        meta: dict[str, Any] = {"engine": engine_meta, "generators": generators,
                                "tick_count": monitor.tick_count, "saved_at": time.time()}
        return meta, {_ENGINE + k: v for k, v in engine_arrays.items()}


def last_stored_id(db_path: Path, table: str) -> int:
    """The highest row id of ``table`` (0 when empty), read on a read-only connection of its own."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0])
    finally:
        conn.close()
