"""Storing scored events: what the batched insert writes reads back as the typed event would have it."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

from pipeline_helpers import ev_schema  # noqa: E402,F401 -- a fixture
from server.event_storage import ENTITY_BUCKET_BITS, EventReader, entity_equals  # noqa: E402
from server.event_writes import ScoredEventsJob  # noqa: E402
from server.pipeline.event import to_json  # noqa: E402
from server.pipeline.scoring import Scorer  # noqa: E402
from server.storage import MIGRATIONS, migrate, open_reader, open_writer  # noqa: E402
from server.writer import Writer  # noqa: E402
from server_helpers import migrated_database  # noqa: E402

T0 = 1_767_225_600.0


def _sessions(n: int, seed: int, start: float = T0) -> pd.DataFrame:
    """Ordinary sessions on 5 chargers, with a few cut payments (billing fraud) and odd ids."""
    rng = np.random.default_rng(seed)
    energy = rng.uniform(10, 40, n)
    price = np.where(rng.random(n) < 0.05, 0.02, 0.40)
    return pd.DataFrame({
        "session_id": [f"s{seed}-{i}" for i in range(n)],
        # quotes, a backslash and a non-ASCII letter: the JSON built by SQLite must escape them
        "user_id": [f'u"{i % 7}\\é' for i in range(n)],
        "charger_id": [f"c{i % 5}" for i in range(n)],
        "start_time": start + np.arange(n) * 3600.0,
        "duration": energy / 11 * 60 + 5, "energy": energy, "payment": np.round(energy * price, 2),
        "ip_address": "", "label": np.where(price < 0.1, "billing_fraud", "")})


@pytest.fixture
def store(tmp_path):
    path = migrated_database(tmp_path / "events.db")
    writer = Writer(path).start()
    reader = EventReader(open_reader(path).conn)
    yield writer, reader
    reader.close()
    writer.stop()


def test_every_stored_event_reads_back_as_its_typed_event(ev_schema, store):
    writer, reader = store
    scorer = Scorer(ev_schema)
    scorer.score(_sessions(200, seed=0))  # a history, so the cut payments stand out
    batch = scorer.score(_sessions(300, seed=1, start=T0 + 1e6))
    batch.mark_flagged({"charger_id": {"c3"}})
    assert 0 < batch.is_anomaly.sum() < len(batch) and batch.flagged.any()
    job = writer.submit(ScoredEventsJob(batch, "test-origin"))
    first, anomalies = job.wait(10)
    expected = batch.events()
    for i, event in enumerate(expected):
        stored = reader.event(first + i)
        want = {**to_json(event), "flagged": bool(batch.flagged[i])}
        assert stored["origin"] == "test-origin" and stored["id"] == first + i
        assert stored["received_at"] == anomalies[0]["received_at"]  # the commit's time, for all
        for key, value in want.items():
            if key == "fields":  # every value exact (shortest float repr), in the typed event's order
                assert list(stored[key].items()) == list(value.items()), (i, stored[key], value)
            else:
                assert stored[key] == value, (i, key)
    assert [a["id"] for a in anomalies] == [first + int(i) for i in batch.anomaly_indices()]
    # The fields that are columns (id, entity ids, timestamp) are not stored twice.
    stored_keys = {k for (text,) in reader.conn.execute("SELECT fields FROM scored_events")
                   for k in json.loads(text)}
    assert stored_keys and not stored_keys & {"session_id", "user_id", "charger_id", "start_time", "label"}
    assert {a["event_id"] for a in anomalies} == {e.event_id for e in expected if e.is_anomaly}


def test_batches_get_consecutive_row_ids_and_one_push_event_each(ev_schema, store):
    writer, reader = store
    scorer = Scorer(ev_schema)
    jobs = [writer.submit(ScoredEventsJob(scorer.score(_sessions(n, seed=s, start=T0 + s * 1e6)), "o"))
            for s, n in enumerate((50, 1, 120))]
    firsts = [job.wait(10)[0] for job in jobs]
    assert firsts == [1, 51, 52]
    rows = reader.conn.execute("SELECT first_point_id, last_point_id FROM events WHERE type = 'events' "
                               "ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [(1, 50), (51, 51), (52, 171)]
    assert tuple(reader.conn.execute("SELECT count(*), min(id), max(id) FROM scored_events").fetchone()) == (171, 1, 171)


def test_migrations_10_and_12_keep_stored_events_and_their_user_lookups(ev_schema, tmp_path):
    path = tmp_path / "old.db"
    db = open_writer(path)
    migrate(db, [m for m in MIGRATIONS if m[0] < 10])
    db.close()
    writer = Writer(path).start()
    first, _ = writer.write(ScoredEventsJob(Scorer(ev_schema).score(_sessions(40, seed=3)), "before"))
    writer.stop()
    db = open_writer(path)
    assert migrate(db) == [v for v, _, _ in MIGRATIONS if v >= 10]
    index = db.execute("SELECT sql FROM sqlite_master WHERE name = 'idx_scored_events_entity_1'").fetchone()[0]
    assert f"(id >> {ENTITY_BUCKET_BITS}, entity_1)" in index and "schema" not in index
    plan = [r[3] for r in db.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM scored_events e WHERE e.schema = 'ev_charging' AND "
        f"{entity_equals('entity_1', 'e')} ORDER BY e.id DESC LIMIT 5", ["u"])]
    assert any(p.startswith("SEARCH e USING INDEX idx_scored_events_entity_1 (<expr>=? AND entity_1=?)") for p in plan)
    assert not any(p.startswith("SCAN e") and not p.startswith("SCAN entity_buckets") for p in plan)
    db.close()
    reader = EventReader(open_reader(path).conn)
    try:
        user = 'u"2\\é'
        found = reader.events("ev_charging", ev_schema.entities, entity={"user_id": user}, limit=100)
        assert [e["event_id"] for e in found] == [f"s3-{i}" for i in range(39, -1, -1) if i % 7 == 2]
        assert all(e["entities"]["user_id"] == user for e in found)
    finally:
        reader.close()


def test_a_users_events_are_found_in_every_bucket_of_row_ids_kept(tmp_path):
    """The first entity's index is bucketed by row id: a lookup probes every bucket from the oldest
    row kept to the newest, an empty one and a gap left by pruning included."""
    db = open_writer(migrated_database(tmp_path / "buckets.db"))
    size = 1 << ENTITY_BUCKET_BITS
    ids = [3, size - 1, size, 5 * size + 7, 9 * size]  # buckets 0, 0, 1, 5, 9 (none between 1 and 5)
    rows = [{"id": i, "schema": "s", "event_id": f"e{i}", "timestamp": float(i), "received_at": 0.0,
             "entity_1": "alice" if i != size else "bob"} for i in ids]
    db["scored_events"].insert_all(rows)
    query = f"SELECT id FROM scored_events WHERE {entity_equals('entity_1')} ORDER BY id"
    assert [r[0] for r in db.execute(query, ["alice"])] == [3, size - 1, 5 * size + 7, 9 * size]
    assert [r[0] for r in db.execute(query, ["bob"])] == [size]
    db.execute("DELETE FROM scored_events WHERE id < ?", [5 * size])  # retention: the oldest buckets go
    assert [r[0] for r in db.execute(query, ["alice"])] == [5 * size + 7, 9 * size]
    db.execute("DELETE FROM scored_events")
    assert db.execute(query, ["alice"]).fetchall() == []
    reader = EventReader(db.conn)
    assert reader.events("s", ("user_id",), entity={"user_id": "alice"}) == []


def _push_rows(reader) -> list[tuple]:
    return [tuple(r) for r in reader.conn.execute(
        "SELECT id, first_point_id, last_point_id FROM events WHERE type = 'events' ORDER BY id")]


def test_row_ids_of_an_undone_import_are_never_given_again_even_after_a_restart(ev_schema, tmp_path):
    from server.event_writes import DeleteImportJob, EventPruneJob, event_batch_push

    path = migrated_database(tmp_path / "events.db")
    scorer = Scorer(ev_schema)
    writer = Writer(path).start()
    try:
        assert writer.write(ScoredEventsJob(scorer.score(_sessions(30, seed=0)), "kept"))[0] == 1
        assert writer.write(ScoredEventsJob(scorer.score(_sessions(20, seed=1, start=T0 + 1e6)), "undone"))[0] == 31
        assert writer.write(DeleteImportJob("undone")) == 20
        # The newest rows are gone; SQLite alone would give their ids (31..50) to the next ones.
        assert writer.write(ScoredEventsJob(scorer.score(_sessions(5, seed=2, start=T0 + 2e6)), "next"))[0] == 51
        assert writer.write(DeleteImportJob("next")) == 5
    finally:
        writer.stop()
    writer = Writer(path).start()  # the counter is read again from the file
    try:
        first, _ = writer.write(ScoredEventsJob(scorer.score(_sessions(10, seed=3, start=T0 + 3e6)), "later"))
        assert first == 56
        # Retention that empties the table keeps the ids going too.
        assert writer.write(EventPruneJob(keep=1, max_age_s=1, now=1e12)) == 40
        assert writer.write(ScoredEventsJob(scorer.score(_sessions(3, seed=4, start=T0 + 4e6)), "after"))[0] == 66
    finally:
        writer.stop()
    reader = EventReader(open_reader(path).conn)
    try:
        pushes = _push_rows(reader)
        assert [p[1:] for p in pushes] == [(1, 30), (31, 50), (51, 55), (56, 65), (66, 68)]
        # A client resuming from before the undo finds the undone batch gone, not other rows.
        rows = {r["id"]: r for r in reader.conn.execute("SELECT * FROM events WHERE type = 'events'")}
        assert event_batch_push(reader, rows[pushes[1][0]]) is None
        assert event_batch_push(reader, rows[pushes[4][0]]) is not None
        assert [r[0] for r in reader.conn.execute("SELECT id FROM scored_events ORDER BY id")] == [66, 67, 68]
    finally:
        reader.close()


def test_an_event_stored_with_its_column_fields_in_the_json_reads_the_same(ev_schema, store):
    """Events stored before the id, entities and timestamp left the fields JSON (and before
    ``entities`` was left NULL) read as before."""
    writer, reader = store
    batch = Scorer(ev_schema).score(_sessions(20, seed=5))
    first, _ = writer.write(ScoredEventsJob(batch, "o"))
    now = [reader.event(first + i) for i in range(20)]
    path = Path(reader.conn.execute("PRAGMA database_list").fetchone()[2])
    db = open_writer(path)
    assert {r[0] for r in db.execute("SELECT entities FROM scored_events")} == {None}
    for event in now:  # as the older code wrote them: every field in the JSON, the entities too
        db.execute("UPDATE scored_events SET fields = ?, entities = ? WHERE id = ?",
                   [json.dumps(event["fields"]), json.dumps(event["entities"]), event["id"]])
    db.conn.commit()
    db.close()
    assert [reader.event(first + i) for i in range(20)] == now


def test_fields_json_is_what_orjson_writes_for_each_row_as_a_dict():
    """Columns encoded whole and put into a template give, row by row, the text of the row's dict."""
    import orjson

    from server.event_writes import _json_objects

    rng = np.random.default_rng(3)
    n = 400
    columns = {
        "tiny%and huge": rng.normal(size=n) * 10.0 ** rng.integers(-40, 40, n),
        "missing": np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
        "infinite": np.where(rng.random(n) < 0.5, np.inf, -np.inf),
        "count": rng.integers(-10**15, 10**15, n),
        "unsigned": np.arange(n, dtype=np.uint64),
        "single": rng.random(n).astype(np.float32),
        "yes": rng.random(n) < 0.5,
        # commas, quotes, braces, a template's "%s", a newline and a non-ASCII letter
        'text "x"': np.array([f'a,"{i}"\n{{}}%s é' for i in range(n)], dtype=object),
        "mixed": np.array([None, 1, 2.5, "t"] * (n // 4), dtype=object),
        # A column of strings is encoded whole and split at '","': values that hold it, end in a
        # backslash, are empty, or hold escaped characters split only where a value ends.
        "strings": np.array(['","', "a\\", "", '\\","\\', '"', "\t\x00\u2028", ",", '""'] * (n // 8),
                            dtype=object),
        "fixed width": np.array(["x", "", "y\\"] * (n // 3) + ["z"] * (n % 3)),
    }
    keys = list(columns)
    expected = [orjson.dumps(dict(zip(keys, row)), default=str).decode()
                for row in zip(*(c.tolist() for c in columns.values()))]
    assert _json_objects(columns) == expected
    assert [json.loads(t)["missing"] for t in expected[:20]] == [
        None if np.isnan(v) else v for v in columns["missing"][:20].tolist()]
    assert _json_objects({"x": np.array([])}) == []
    assert _json_objects({"x": np.array(["only"], dtype=object)}) == ['{"x":"only"}']


def test_an_import_cut_short_stays_marked_and_is_removed_at_the_next_start(ev_schema, store, monkeypatch):
    """An import marks itself in progress with its first batch and unmarks once its last has
    committed; one whose process died between (no undo ran) is removed by undo_unfinished_imports."""
    from server.event_writes import ImportFinishedJob, undo_unfinished_imports, unfinished_imports
    from server.pipeline.event import EventBatch
    from server.pipeline.ingest import Ingest

    writer, reader = store
    ingest = Ingest([ev_schema.name], writer, write_timeout=10)
    try:
        done = ingest.store([EventBatch(ev_schema, _sessions(30, seed=0))], "upload", whole=True)
        assert unfinished_imports(reader.conn) == []

        class Killed(BaseException):
            """Stands for the process's death: nothing after it runs in a real crash."""

        def batches():
            yield EventBatch(ev_schema, _sessions(20, seed=1, start=T0 + 1e6))
            yield EventBatch(ev_schema, _sessions(20, seed=2, start=T0 + 2e6))
            raise Killed

        monkeypatch.setattr(Ingest, "_undo", lambda self, origin: None)  # a dead process undoes nothing
        with pytest.raises(Killed):
            ingest.store(batches(), "upload", whole=True)
        writer.write(ImportFinishedJob("none"), 10)  # the second batch, queued, commits before this
        [cut] = unfinished_imports(reader.conn)
        assert cut.startswith("upload:") and cut != done.origin
        count = "SELECT count(*) FROM scored_events WHERE origin = ?"
        assert reader.conn.execute(count, [cut]).fetchone()[0] == 40
        assert undo_unfinished_imports(writer, reader.conn, 10) == 40
        assert reader.conn.execute(count, [cut]).fetchone()[0] == 0 and unfinished_imports(reader.conn) == []
        assert reader.conn.execute(count, [done.origin]).fetchone()[0] == 30  # a finished import stays
        assert undo_unfinished_imports(writer, reader.conn, 10) == 0
    finally:
        ingest.close()


def test_the_next_batch_is_scored_while_the_writer_copies_and_commits_the_one_before(ev_schema, tmp_path):
    """Once a batch's rows are staged, the writer's copy and commit overlap the next batch's scoring:
    the first batch's commit (its publish holds it) sees the second batch's scoring begin."""
    import threading

    from server.pipeline.event import EventBatch
    from server.pipeline.ingest import Ingest

    path = migrated_database(tmp_path / "events.db")
    second_scoring = threading.Event()
    seen: list[bool] = []

    def on_commit(events):
        if any(e.type == "events" for e in events) and not seen:
            seen.append(second_scoring.wait(5))  # written one after the other, this waits in vain

    writer = Writer(path, on_commit=on_commit).start()
    ingest = Ingest([ev_schema.name], writer, write_timeout=10)
    scorer = ingest.scorers[ev_schema.name]
    score, scored = scorer.score, []

    def counted(frame):
        scored.append(len(frame))
        if len(scored) == 2:
            second_scoring.set()
        return score(frame)

    scorer.score = counted
    try:
        batches = [EventBatch(ev_schema, _sessions(n, seed=s, start=T0 + s * 1e6)) for s, n in enumerate((20, 30, 1))]
        summary = ingest.store(batches, "upload", whole=True)
    finally:
        ingest.close()
        writer.stop()
    assert seen == [True] and scored == [20, 30, 1] and summary.events == 51
    reader = EventReader(open_reader(path).conn)
    try:
        assert _push_rows(reader) == [(1, 1, 20), (2, 21, 50), (3, 51, 51)]
        ids = [r[0] for r in reader.conn.execute("SELECT event_id FROM scored_events ORDER BY id")]
        assert ids == [f"s{s}-{i}" for s, n in enumerate((20, 30, 1)) for i in range(n)]
    finally:
        reader.close()


def test_a_batch_failing_after_it_was_staged_undoes_its_import_with_the_batch_queued_behind(
        ev_schema, store, monkeypatch):
    """The copy of the second batch fails (its rows staged, the third batch scored and queued
    meanwhile): the import is removed whole, and the next import's rows start clean."""
    from server import event_writes
    from server.event_writes import unfinished_imports
    from server.pipeline.event import EventBatch
    from server.pipeline.ingest import Ingest

    writer, reader = store
    ingest = Ingest([ev_schema.name], writer, write_timeout=10)
    copy_sql, copies = event_writes._copy_sql, []

    def failing_second(*args):
        copies.append(args)
        return "INSERT INTO no_such_table SELECT ?1" if len(copies) == 2 else copy_sql(*args)

    monkeypatch.setattr(event_writes, "_copy_sql", failing_second)
    try:
        batches = [EventBatch(ev_schema, _sessions(n, seed=s, start=T0 + s * 1e6)) for s, n in enumerate((20, 30, 10))]
        with pytest.raises(Exception, match="no_such_table"):
            ingest.store(batches, "upload", whole=True)
        assert reader.conn.execute("SELECT count(*) FROM scored_events").fetchone()[0] == 0
        assert unfinished_imports(reader.conn) == []
        done = ingest.store([EventBatch(ev_schema, _sessions(5, seed=7, start=T0 + 7e6))], "upload", whole=True)
        rows = reader.conn.execute("SELECT event_id, origin FROM scored_events ORDER BY id").fetchall()
        assert [tuple(r) for r in rows] == [(f"s7-{i}", done.origin) for i in range(5)]
    finally:
        ingest.close()
