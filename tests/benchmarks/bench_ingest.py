"""Ingest of entity-keyed events end to end: parse, check, score, store, push; memory per entity.

Writes a CSV of EV charging sessions over 100,000 users and 10,000 chargers
(not timed), then runs the upload path as the server does: the whole-file
check (``FileSource.start``), then :meth:`Ingest.import_source` (read into
batches, score each (derived features, per-entity baselines, rules), store it
through the single writer into SQLite in WAL mode with synchronous=FULL, and
publish its push event to the hub).  Latency is per batch (every event of a batch
is pushed in its one push event): from the moment its scoring starts to the
hub's publish after its commit, so it includes waiting for the batch before.  A second run
scores without storing, to split the cost.  The store's two halves are timed in CPU and in
wall seconds: the writer thread's wall beyond its CPU is time it waited, for the disk (fsync)
or for the GIL (Python's sqlite3 lets go of it for every row it steps, and takes it back only
when the scoring thread lets go), or for a core when other processes run.  The writer's CPU is split
at the moment a batch is staged (``server/event_writes.py``): before it, the rows are bound into the
staging table while the scoring thread waits; after it, one ``INSERT ... SELECT`` and the commit run
without the GIL, beside the next batch's scoring.  Memory per entity is the numpy
state of the entity tables divided by the entities held, plus the id index
(dict entry and id string) measured on a sample.  The whole-file check keeps its typed batches
for the read, up to a memory budget (``FileSource.keep_bytes``): the read pass parses only the
batches past it, and what was kept is printed.  ``--kept N`` first fills the database with
``N`` stored events over the same users, as a server holding its retention
(``RETENTION_SCORED_EVENTS``, a million by default) has them: the indexes are that large when
the import lands.  The bytes the process wrote to disk while storing (the WAL, then the
checkpoints' copies into the database file) are printed per event.

    .venv/bin/python tests/benchmarks/bench_ingest.py
    .venv/bin/python tests/benchmarks/bench_ingest.py --events 1000000 --users 100000
    .venv/bin/python tests/benchmarks/bench_ingest.py --kept 1000000
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from server import event_writes  # noqa: E402
from server.event_writes import ScoredEventsJob  # noqa: E402
from server.hub import Hub  # noqa: E402
from server.pipeline.ingest import Ingest  # noqa: E402
from server.pipeline.schema import load_schema  # noqa: E402
from server.pipeline.scoring import Scorer  # noqa: E402
from server.sources.upload import CHUNK_ROWS, KEEP_BYTES, FileSource  # noqa: E402
from server.storage import migrate, open_writer  # noqa: E402
from server.settings import SETTINGS_BY_NAME  # noqa: E402
from server.writer import Writer  # noqa: E402

#: The server sets this switch interval at start (THREAD_SWITCH_INTERVAL): the writer thread gets the
#: GIL back sooner after each SQLite call.  The benchmark runs with the server's, not Python's 5 ms.
SERVER_SWITCH_INTERVAL = SETTINGS_BY_NAME["THREAD_SWITCH_INTERVAL"].default

T0 = 1_767_225_600.0


def write_sessions(path: Path, events: int, users: int, chargers: int, days: float, seed: int = 0) -> None:
    """Sessions over ``days``, every user appearing, each charger's sessions one after another.

    Session i starts at ``i * step`` (plus jitter) on charger ``i % chargers``,
    so a charger's sessions are ``chargers * step`` apart and last less than
    that: ordinary traffic, which no rule should flag (vectorised, untimed).
    """
    rng = np.random.default_rng(seed)
    user = np.concatenate([np.arange(users), rng.integers(0, users, max(0, events - users))])[:events]
    rng.shuffle(user)
    step = days * 86400.0 / events
    spacing = chargers * step
    start = T0 + np.arange(events) * step + rng.uniform(0, step / 2, events)
    energy = np.round(rng.lognormal(np.log(20), 0.4, events), 3)
    duration = np.minimum(energy / 11 * 60 + 5, 0.8 * spacing / 60)
    price = rng.uniform(0.25, 0.6, chargers)
    charger = np.arange(events) % chargers
    frame = pd.DataFrame({
        "session_id": np.char.add("S", np.arange(events).astype(str)),
        "user_id": np.char.add("U", user.astype(str)),
        "charger_id": np.char.add("C", charger.astype(str)),
        "start_time": pd.to_datetime(start, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration": np.round(duration, 2),
        "energy": energy,
        "payment": np.round(energy * price[charger], 2),
        "ip_address": "10.0.0.1",
    })
    frame.to_csv(path, index=False)


#: An ordinary stored session's ``fields`` JSON (its measures and derived features), for the
#: events ``--kept`` stores before the import.
KEPT_FIELDS = ('{"duration":114.68,"energy":19.187,"payment":8.05,"ip_address":"10.0.0.1",'
               '"payment_per_kwh":0.4195549,"hour_of_day":13.0,"sessions_last_hour":1.0,'
               '"short_sessions_last_hour":0.0,"kwh_per_hour":10.038}')


def keep_events(db, kept: int, users: int) -> None:
    """``kept`` stored sessions over ``users`` users (one random user each) and 10,000 chargers,
    before the timed import: the tables and indexes a server holding its retention has."""
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) "
        "INSERT INTO scored_events (id, schema, event_id, timestamp, fields, risk, flagged, is_anomaly, "
        "entity_1, entity_2, origin, received_at) "
        "SELECT i, 'ev_charging', 'K' || i, ?2 + i, ?3, 0, 0, 0, 'U' || (abs(random()) % ?4), "
        "'C' || (i % 10000), 'kept', ?2 FROM n", [kept, T0 - kept, KEPT_FIELDS, users])
    db.conn.commit()


def written_bytes() -> int:
    """Bytes this process has caused to be written to storage (/proc/self/io)."""
    with open("/proc/self/io") as f:
        return int(dict(line.split(": ") for line in f.read().splitlines())["write_bytes"])


def store_end_to_end(path: Path, schema, chunk: int, db_path: Path, keep_bytes: int = KEEP_BYTES,
                     kept: int = 0, users: int = 1):
    """The server's upload path on a fresh database (holding ``kept`` events over ``users`` users
    first): returns wall s, cpu s, latencies, rows stored, the CPU seconds, then the wall seconds,
    of the store's two halves: rows built (on the scoring thread) and the writer thread's
    transactions (bind, insert, commit), and the bytes written to disk meanwhile."""
    db = open_writer(db_path, "FULL")
    migrate(db)
    if kept:
        keep_events(db, kept, users)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    hub = Hub(256)
    published: dict[int, float] = {}
    publish = hub.publish

    def timed_publish(events):
        publish(events)
        for event in events:
            if event.type == "events":
                published[len(published)] = time.perf_counter()

    writer = Writer(db_path, "FULL", 64, on_commit=timed_publish).start()
    store_cpu = {"build": 0.0, "write": 0.0}
    #: Wall seconds inside the same calls: beyond their CPU, the thread waited (for the GIL or
    #: the disk), which shows how little the writer overlaps the scoring.
    store_wall = {"build": 0.0, "write": 0.0}
    build_rows, commit = ScoredEventsJob._rows, writer._commit

    def timed(stage, call):
        def run(*args):
            started, wall = time.thread_time(), time.perf_counter()  # this thread's CPU only
            try:
                return call(*args)
            finally:
                store_cpu[stage] += time.thread_time() - started
                store_wall[stage] += time.perf_counter() - wall
        return run

    ScoredEventsJob._rows = timed("build", build_rows)
    writer._commit = timed("write", commit)  # runs on the writer's own OS thread
    apply, copy_sql = ScoredEventsJob.apply, event_writes._copy_sql
    store_cpu["staged"] = 0.0
    applied = [0.0]  # the writer thread's CPU clock when the job being written began

    def timed_apply(job, tx):
        applied[0] = time.thread_time()
        return apply(job, tx)

    def staged(*args):  # the job calls it once its rows are staged
        store_cpu["staged"] += time.thread_time() - applied[0]
        return copy_sql(*args)

    ScoredEventsJob.apply, event_writes._copy_sql = timed_apply, staged
    ingest = Ingest([schema.name], writer, write_timeout=120.0)
    started_scoring: list[float] = []
    scorer = ingest.scorers[schema.name]
    score = scorer.score

    def timed_score(frame):
        started_scoring.append(time.perf_counter())
        return score(frame)

    scorer.score = timed_score
    source = FileSource(path, schema, chunk_rows=chunk, keep_bytes=keep_bytes)
    wall, cpu, written = time.perf_counter(), time.process_time(), written_bytes()
    summary = ingest.import_source(source, "bench")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    writer.stop()
    written = written_bytes() - written
    ingest.close()
    ScoredEventsJob._rows, ScoredEventsJob.apply, event_writes._copy_sql = build_rows, apply, copy_sql
    latencies = [published[i] - started_scoring[i] for i in range(len(started_scoring))]
    return wall, cpu, latencies, summary.events, store_cpu, store_wall, written


def index_bytes_per_entity(ids: list[str]) -> float:
    """A dict entry (key pointer, value, hash) plus the id string and the row int, per entity."""
    index = {i: n for n, i in enumerate(ids)}
    per_entry = sys.getsizeof(index) / len(index)
    return per_entry + float(np.mean([sys.getsizeof(i) for i in ids])) + sys.getsizeof(len(ids) + 10**6)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=6.0, help="time the sessions span (default 6 days)")
    parser.add_argument("--chunk", type=int, default=CHUNK_ROWS,
                        help=f"rows per batch (default {CHUNK_ROWS:,}, the upload's)")
    parser.add_argument("--keep-mib", type=float, default=KEEP_BYTES / 2**20,
                        help=f"typed batches the check keeps for the read, MiB (default {KEEP_BYTES / 2**20:.0f}; "
                             "0 parses the file twice)")
    parser.add_argument("--kept", type=int, default=0,
                        help="events stored before the import, over the same users (default 0: an empty database)")
    parser.add_argument("--switch-interval", type=float, default=SERVER_SWITCH_INTERVAL,
                        help="Python's thread switch interval, s (default the server's, "
                             f"{SERVER_SWITCH_INTERVAL}; Python's own is 0.005)")
    args = parser.parse_args(argv)
    sys.setswitchinterval(args.switch_interval)
    keep_bytes = int(args.keep_mib * 2**20)

    schema = load_schema("ev_charging")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sessions.csv"
        write_sessions(path, args.events, args.users, args.chargers, args.days)
        size = os.path.getsize(path)
        print(f"{args.events:,} sessions, {args.users:,} users, {args.chargers:,} chargers, "
              f"{size / 2**20:.0f} MiB CSV, batches of {args.chunk:,}")

        source = FileSource(path, schema, chunk_rows=args.chunk, keep_bytes=keep_bytes)
        started, cpu_started = time.perf_counter(), time.process_time()
        source.start()
        checked, cpu_checked = time.perf_counter(), time.process_time()
        scorer = Scorer(schema)
        parse_s = score_s = parse_cpu = score_cpu = 0.0
        anomalies = 0
        mark, cpu_mark = time.perf_counter(), time.process_time()
        for batch in source.batches():
            parsed, cpu_parsed = time.perf_counter(), time.process_time()
            scored = scorer.score(batch.frame)
            anomalies += int(scored.is_anomaly.sum())
            anomalies_listed = scored.anomalies()  # what the server stores and pushes in detail
            del anomalies_listed
            done, cpu_done = time.perf_counter(), time.process_time()
            parse_s += parsed - mark
            score_s += done - parsed
            parse_cpu += cpu_parsed - cpu_mark
            score_cpu += cpu_done - cpu_parsed
            mark, cpu_mark = done, cpu_done
        total, total_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        batches = -(-args.events // args.chunk)
        kept = (f"{source.kept_batches} of {batches} batches kept by the check "
                f"({source.kept_bytes / 2**20:.0f} MiB estimated, budget {source.keep_bytes / 2**20:.0f} MiB)")

        stored = store_end_to_end(path, schema, args.chunk, Path(tmp) / "bench.db", keep_bytes,
                                  args.kept, args.users)

    n = args.events
    rows = [("check pass", checked - started, cpu_checked - cpu_started),
            ("read pass", parse_s, parse_cpu),
            ("score", score_s, score_cpu),
            ("end to end", total, total_cpu)]
    print(f"{'':12} {'wall s':>7} {'events/s':>10}   {'cpu s':>7} {'events/cpu-s':>12}")
    for label, wall, cpu in rows:
        print(f"{label:12} {wall:7.2f} {n / wall:>10,.0f}   {cpu:7.2f} {n / cpu:>12,.0f}")
    print(f"read pass: {kept}" + (", the rest parsed again" if source.kept_batches < batches else ""))
    print(f"flagged: {anomalies:,} of {n:,} sessions")
    wall, cpu, latencies, stored_count, store_cpu, store_wall, written = stored
    held = f", {args.kept:,} stored before" if args.kept else ""
    print(f"{'with store':12} {wall:7.2f} {n / wall:>10,.0f}   {cpu:7.2f} {n / cpu:>12,.0f}   "
          f"(check + read + score + SQLite FULL + push; {stored_count:,} rows stored{held})")
    print(f"written to disk while storing: {written / 2**20:,.0f} MiB, {written / n:,.0f} B per event "
          f"(the WAL, then the checkpoints' copies into the database)")
    print(f"batch scored -> pushed: p50 {np.percentile(latencies, 50):.2f} s, "
          f"p99 {np.percentile(latencies, 99):.2f} s over {len(latencies)} batches of {args.chunk:,}")
    print(f"store CPU per event: rows built {store_cpu['build'] / n * 1e6:.1f} us (scoring thread), "
          f"written {store_cpu['write'] / n * 1e6:.1f} us (writer thread: bind, insert, commit), of which "
          f"{store_cpu['staged'] / n * 1e6:.1f} us staging (the scoring thread waits; the rest runs "
          f"beside the next batch's scoring)")
    print(f"store wall per event: rows built {store_wall['build'] / n * 1e6:.1f} us, written "
          f"{store_wall['write'] / n * 1e6:.1f} us (wall beyond CPU: waiting for the GIL, the disk "
          f"or, on a busy machine, a core)")
    counts = scorer.entity_counts()
    entities = sum(counts.values())
    state = scorer.state_bytes() / entities
    sample = [f"U{i}" for i in range(min(args.users, 100_000))]
    index = index_bytes_per_entity(sample)
    print(f"entities held {counts}; numpy state {state:.0f} B/entity, id index ~{index:.0f} B/entity, "
          f"total ~{state + index:.0f} B/entity")
    print(f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on "
          f"{os.cpu_count()} cores: wall times suffer when other jobs run; cpu times much less)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
