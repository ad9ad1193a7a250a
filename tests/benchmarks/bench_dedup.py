"""Each event stored once: what finding the events stored already costs, by design, then end to end.

Part 1, the designs (``--designs``), at the storage level: a database holding ``--kept`` stored
events (``bench_ingest.keep_events``) is given the design's structure, built from those events as
its migration would (timed), then ``--events`` new events are stored in batches of 10,000, each
batch looked up first (on a read connection of its own, as the ingest does), then inserted with
the design's own writes and committed with synchronous=FULL in WAL mode.  Printed per design and
kind of id (``sequential``: the EV feed's ``S00000042``, a counter; ``random``: UUIDs): rows/s of
look-up plus store, the look-up alone per event, for new ids and for ids all stored already (a
file sent again), and the bytes written to disk per event (the WAL, then the checkpoints' copies).
The designs:

- ``none``: no look-up, as before;
- ``index_id``: an index on ``scored_events (event_id)``, the schema checked on the rows found:
  the server's (migration 14, :func:`server.event_storage.migration_event_id_index`);
- ``index_schema_id``: an index on ``(schema, event_id)``;
- ``hash_keys``: a table of 64-bit hashes of ``schema, id`` as the INTEGER PRIMARY KEY (rowid),
  with the row id of the event; ``hash_keys_without_rowid``: the same table ``WITHOUT ROWID``.

Part 2, end to end: the server's upload path (check, read, look-up, score, store through the
single writer, push) of a CSV of ``--events`` sessions (``bench_ingest.write_sessions``) onto
``--kept`` stored, without the look-up and its index (as before) and with them, then the same
file again (every event a duplicate: looked up and dropped, nothing scored or stored).

    .venv/bin/python tests/benchmarks/bench_dedup.py
    .venv/bin/python tests/benchmarks/bench_dedup.py --kept 1000000 --events 200000
    .venv/bin/python tests/benchmarks/bench_dedup.py --part 1 --designs none,index_id --ids random
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import KEPT_FIELDS, SERVER_SWITCH_INTERVAL, keep_events, write_sessions, written_bytes  # noqa: E402
from server.event_storage import migration_event_id_index, stored_event_ids  # noqa: E402
from server.pipeline import duplicates  # noqa: E402
from server.pipeline.ingest import Ingest  # noqa: E402
from server.pipeline.schema import load_schema  # noqa: E402
from server.sources.upload import CHUNK_ROWS, FileSource  # noqa: E402
from server.storage import migrate, open_reader, open_writer  # noqa: E402
from server.writer import Writer  # noqa: E402

SCHEMA = "ev_charging"
USERS = 100_000
#: The server's index, dropped again to store as before (migration 14).
EVENT_ID_INDEX = "idx_scored_events_event_id"


def hash_key(schema: str, event_id: str) -> int:
    """A signed 64-bit key of an event: its schema and id hashed (BLAKE2b, stable across processes)."""
    digest = hashlib.blake2b(f"{schema}\0{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Design:
    """How the events stored already are found: built from the stored events, looked up, written."""

    name = "none"

    def build(self, db) -> None:
        """Make the design's structure from the events stored (what its migration would do)."""

    def stored(self, conn, ids: list[str]) -> set[str]:
        """Those of ``ids`` stored already."""
        return set()

    def record(self, db, ids: list[str], first_row: int) -> None:
        """The design's own writes for a batch stored from row ``first_row`` on (inside its transaction)."""


class IndexOnId(Design):
    """The server's: an index on ``event_id`` (migration 14), looked up by its own function."""

    name = "index_id"

    def build(self, db) -> None:
        migration_event_id_index(db)

    def stored(self, conn, ids):
        return stored_event_ids(conn, SCHEMA, ids)


class IndexOnSchemaAndId(Design):
    name = "index_schema_id"

    def build(self, db) -> None:
        db.execute("CREATE INDEX idx_bench_schema_event_id ON scored_events (schema, event_id)")

    def stored(self, conn, ids):
        rows = conn.execute("SELECT event_id FROM scored_events WHERE schema = ? AND "
                            "event_id IN (SELECT value FROM json_each(?))", [SCHEMA, json.dumps(ids)])
        return {r[0] for r in rows}


class HashKeys(Design):
    """A compact table of hashed ids: ``key`` the rowid, ``row`` the event's row id."""

    name = "hash_keys"
    table_options = ""

    def build(self, db) -> None:
        db.execute(f"CREATE TABLE event_keys (key INTEGER PRIMARY KEY, row INTEGER NOT NULL){self.table_options}")
        db.conn.create_function("event_key", 2, hash_key, deterministic=True)
        db.execute("INSERT OR IGNORE INTO event_keys (key, row) "
                   "SELECT event_key(schema, event_id), id FROM scored_events ORDER BY 1")

    def stored(self, conn, ids):
        keys = {hash_key(SCHEMA, i): i for i in ids}
        rows = conn.execute("SELECT key FROM event_keys WHERE key IN (SELECT value FROM json_each(?))",
                            [json.dumps(list(keys))])
        return {keys[r[0]] for r in rows}

    def record(self, db, ids, first_row):
        db.conn.executemany("INSERT OR IGNORE INTO event_keys (key, row) VALUES (?, ?)",
                            [(hash_key(SCHEMA, i), first_row + n) for n, i in enumerate(ids)])


class HashKeysWithoutRowid(HashKeys):
    name = "hash_keys_without_rowid"
    table_options = " WITHOUT ROWID"


DESIGNS = {d.name: d for d in (Design(), IndexOnId(), IndexOnSchemaAndId(), HashKeys(), HashKeysWithoutRowid())}


def new_ids(kind: str, count: int) -> list[str]:
    if kind == "sequential":
        return [f"S{i:08d}" for i in range(count)]
    return [str(uuid.uuid4()) for _ in range(count)]


def kept_database(path: Path, kept: int):
    """A migrated database holding ``kept`` stored events, without the server's id index."""
    db = open_writer(path, "FULL")
    migrate(db)
    db.execute(f"DROP INDEX {EVENT_ID_INDEX}")
    if kept:
        keep_events(db, kept, USERS)
    return db


def store_batch(db, ids: list[str], first_row: int) -> None:
    """A batch of ordinary sessions into ``scored_events`` (as the writer's copy leaves them)."""
    rows = [(first_row + n, i, 1.7e9 + first_row + n, f"U{(first_row + n) % USERS}", f"C{(first_row + n) % 10_000}")
            for n, i in enumerate(ids)]
    db.conn.executemany(
        "INSERT INTO scored_events (id, schema, event_id, timestamp, fields, risk, flagged, is_anomaly, entity_1, "
        f"entity_2, origin, received_at) VALUES (?1, '{SCHEMA}', ?2, ?3, '{KEPT_FIELDS}', 0, 0, 0, ?4, ?5, 'bench', 0)",
        rows)


def time_design(design: Design, kind: str, kept: int, events: int, batch: int, tmp: Path) -> dict:
    """Build ``design`` on ``kept`` stored events, store ``events`` new ones through it, look them all up again."""
    path = tmp / f"{design.name}-{kind}.db"
    db = kept_database(path, kept)
    started = time.perf_counter()
    design.build(db)
    db.conn.commit()
    built = time.perf_counter() - started
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    reader = open_reader(path).conn
    ids = new_ids(kind, events)
    written, started, looking = written_bytes(), time.perf_counter(), 0.0
    for first in range(0, events, batch):
        chunk = ids[first:first + batch]
        look = time.perf_counter()
        if design.stored(reader, chunk):
            raise AssertionError(f"{design.name}: new ids found stored")
        looking += time.perf_counter() - look
        db.conn.execute("BEGIN")
        store_batch(db, chunk, kept + 1 + first)
        design.record(db, chunk, kept + 1 + first)
        db.conn.commit()
    wall = time.perf_counter() - started
    written = written_bytes() - written
    again = time.perf_counter()
    for first in range(0, events, batch):
        chunk = ids[first:first + batch]
        if design is not DESIGNS["none"] and len(design.stored(reader, chunk)) != len(chunk):
            raise AssertionError(f"{design.name}: stored ids not found")
    again = time.perf_counter() - again
    reader.close()
    db.close()
    size = path.stat().st_size
    path.unlink()
    return {"build": built, "rate": events / wall, "lookup_us": looking / events * 1e6,
            "again_us": again / events * 1e6, "written": written / events, "size": size}


def part_designs(args, tmp: Path) -> None:
    print(f"== designs: {args.events:,} new events in batches of {args.batch:,} onto {args.kept:,} stored "
          f"(synchronous=FULL, WAL)")
    print(f"{'design':24} {'ids':10} {'build s':>8} {'rows/s':>9} {'look-up us/ev':>13} "
          f"{'all stored us/ev':>16} {'written B/ev':>12} {'db MiB':>7}")
    for kind in args.ids.split(","):
        for name in args.designs.split(","):
            r = time_design(DESIGNS[name], kind, args.kept, args.events, args.batch, tmp)
            print(f"{name:24} {kind:10} {r['build']:8.2f} {r['rate']:9,.0f} {r['lookup_us']:13.1f} "
                  f"{r['again_us']:16.1f} {r['written']:12,.0f} {r['size'] / 2**20:7.0f}", flush=True)


def sessions_file(path: Path, events: int, kind: str) -> Path:
    """``bench_ingest.write_sessions``' sessions, their ids made ``kind`` (sequential or random)."""
    write_sessions(path, events, USERS, 10_000, 6.0)
    frame = pd.read_csv(path, dtype=object)
    frame["session_id"] = new_ids(kind, events)
    frame.to_csv(path, index=False)
    return path


def import_file(db_path: Path, csv: Path, schema, looked_up: bool) -> tuple[float, float, int, int, int]:
    """The server's upload path, once: wall s, CPU s, events stored, duplicates, bytes written."""
    writer = Writer(db_path, "FULL", 64).start()
    ingest = Ingest([schema.name], writer, write_timeout=300.0)
    if not looked_up:  # as before: every event scored and stored
        ingest._stored_once.fresh = lambda batch: duplicates.FreshEvents(batch, frozenset(), 0)
    ingest.scorers  # noqa: B018 -- loaded before the clock starts, as a running server has them
    source = FileSource(csv, schema)
    wall, cpu, written = time.perf_counter(), time.process_time(), written_bytes()
    try:
        summary = ingest.import_source(source, "bench")
    finally:
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ingest.close()
        writer.stop()
    return wall, cpu, summary.events, summary.duplicates, written_bytes() - written


def part_end_to_end(args, tmp: Path) -> None:
    schema = load_schema(SCHEMA)
    print(f"== end to end: {args.events:,} sessions uploaded onto {args.kept:,} stored "
          f"(check, read, look-up, score, store FULL, push)")
    print(f"{'run':52} {'wall s':>7} {'rows/s':>9} {'cpu s':>6} {'stored':>8} {'duplicates':>10} {'written B/ev':>12}")
    for kind in args.ids.split(","):
        csv = sessions_file(tmp / f"sessions-{kind}.csv", args.events, kind)
        for looked_up in (False, True):
            db_path = tmp / f"e2e-{kind}-{looked_up}.db"
            db = kept_database(db_path, args.kept)
            if looked_up:
                migration_event_id_index(db)
            db.conn.commit()
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()
            design = "index_id, look-up" if looked_up else "before: no look-up"
            for label in ("first upload", "same file again") if looked_up else ("first upload",):
                wall, cpu, stored, dropped, written = import_file(db_path, csv, schema, looked_up)
                print(f"{design + ', ' + kind + ' ids, ' + label:52} {wall:7.2f} {args.events / wall:9,.0f} "
                      f"{cpu:6.2f} {stored:8,} {dropped:10,} {written / args.events:12,.0f}", flush=True)
            db_path.unlink()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kept", type=int, default=1_000_000, help="events stored before (default a million)")
    parser.add_argument("--events", type=int, default=200_000, help="new events stored (default 200,000)")
    parser.add_argument("--batch", type=int, default=CHUNK_ROWS, help=f"events per batch (default {CHUNK_ROWS:,})")
    parser.add_argument("--designs", default=",".join(DESIGNS), help=f"comma-separated, of {', '.join(DESIGNS)}")
    parser.add_argument("--ids", default="sequential,random", help="kinds of ids: sequential, random or both")
    parser.add_argument("--part", choices=("1", "2", "both"), default="both")
    args = parser.parse_args(argv)
    sys.setswitchinterval(SERVER_SWITCH_INTERVAL)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("1", "both"):
            part_designs(args, Path(tmp))
        if args.part in ("2", "both"):
            part_end_to_end(args, Path(tmp))
    print(f"(load average {load:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores: "
          f"wall times and rows/s suffer when other jobs run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
