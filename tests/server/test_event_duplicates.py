"""Each event is stored once: files uploaded again, overlapping files, repeats inside a file, retried
requests and the EV feed sending a session again (server/pipeline/duplicates.py)."""
from __future__ import annotations

import functools
import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

from pipeline_helpers import ev_schema  # noqa: E402,F401 -- a fixture
from server.event_storage import STORED_EVENT_IDS, stored_event_ids  # noqa: E402
from server.push import replay_events  # noqa: E402
from server_helpers import (build_app, migrated_database, run_ev_feed, services_of, shutdown_app,  # noqa: E402
                            stored_rows)

HEADER = "session_id,user_id,charger_id,start_time,duration,energy,payment"
#: Ordinary sessions of three users, a billing fraud of U1, and two short sessions of U7 within an
#: hour: a third would make the repeat rule's dos_attack, so a duplicate one must not count.
SESSIONS = [f"s{i},U{i % 3},C{i % 2},2026-01-01T0{i}:00:00Z,60,{20 + i},{8 + i * 0.4:.2f}" for i in range(6)] + [
    "fraud,U1,C1,2026-01-01T07:00:00Z,60,62,0.5",
    "short1,U7,C7,2026-01-01T09:00:00Z,2,0.3,0.12",
    "short2,U7,C7,2026-01-01T09:10:00Z,2,0.3,0.12",
]
THIRD_SHORT = "short3,U7,C7,2026-01-01T09:20:00Z,2,0.3,0.12"


def _csv(*rows) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def _upload(client, body: bytes, content_type="text/csv") -> dict:
    response = client.post("/api/upload?schema=ev_charging", data=body, content_type=content_type)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _view(client) -> dict:
    """What the view shows of the schema: its counts, and U1's and U7's sessions."""
    summary = client.get("/api/events/summary?schema=ev_charging").get_json()
    users = {u: client.get(f"/api/events?schema=ev_charging&user_id={u}").get_json()["events"] for u in ("U1", "U7")}
    return {"summary": {k: summary[k] for k in ("events", "anomalies", "severities", "types", "top")}, **users}


def _event_ids(app) -> list[str]:
    return [r[0] for r in stored_rows(app, "SELECT event_id FROM scored_events ORDER BY id")]


def _pushed_batches(app) -> int:
    reader = services_of(app).reader()
    try:
        return sum(e.type == "events" for e in replay_events(reader, 0, 10_000))
    finally:
        reader.close()


def _scored_alone(tmp_path, body: bytes) -> dict:
    """The stored events of ``body`` uploaded once, to a database of their own: what scoring
    each event once gives (by event id, less what differs by database: row id and times)."""
    app = build_app(tmp_path / "alone")
    try:
        client = app.test_client()
        _upload(client, body)
        events = client.get("/api/events?schema=ev_charging&limit=1000").get_json()["events"]
    finally:
        shutdown_app(app)
    return {e["event_id"]: _scoring(e) for e in events}


def _scoring(event: dict) -> dict:
    return {k: event[k] for k in ("fields", "risk", "severity", "is_anomaly", "types", "explanation")}


def test_the_same_file_twice_stores_nothing_new_and_says_so(app, client):
    first = _upload(client, _csv(*SESSIONS))
    assert first["events"] == len(SESSIONS) and first["duplicates"] == 0 and first["anomalies"] == 1
    before, pushes = _view(client), _pushed_batches(app)

    again = _upload(client, _csv(*SESSIONS))
    assert again["events"] == 0 and again["duplicates"] == len(SESSIONS)
    assert again["anomalies"] == 0 and again["types"] == {} and again["anomaly_list"] == []
    assert _view(client) == before  # counts, top entities and each user's sessions unchanged
    assert _event_ids(app) == [line.split(",")[0] for line in SESSIONS]
    assert _pushed_batches(app) == pushes  # nothing stored, nothing pushed


def test_an_overlapping_file_stores_only_its_new_events_scored_as_if_sent_once(app, client, tmp_path):
    """The overlap is dropped before scoring: U7's third short session is scored against two earlier
    ones (a dos_attack, as when the sessions come once), not four; every new event scores as it
    would have in a single file."""
    _upload(client, _csv(*SESSIONS[:7]))
    overlapping = _upload(client, _csv(*SESSIONS[4:], THIRD_SHORT))
    assert overlapping["events"] == 3 and overlapping["duplicates"] == 3
    assert overlapping["types"] == {"dos_attack": 3}
    assert _event_ids(app) == [line.split(",")[0] for line in SESSIONS + [THIRD_SHORT]]
    alone = _scored_alone(tmp_path, _csv(*SESSIONS, THIRD_SHORT))
    events = client.get("/api/events?schema=ev_charging&limit=1000").get_json()["events"]
    assert {e["event_id"]: _scoring(e) for e in events} == alone


def test_a_repeat_inside_a_file_is_dropped_and_the_first_wins(client):
    """First wins, as across files (the module's docstring says why: no 400)."""
    repeated = SESSIONS[1].replace(",60,21,8.40", ",60,62,0.5")  # the same id, now a billing fraud
    answer = _upload(client, _csv(SESSIONS[0], SESSIONS[1], repeated, SESSIONS[0]))
    assert answer["events"] == 2 and answer["duplicates"] == 2 and answer["anomalies"] == 0
    [stored] = [e for e in client.get("/api/events?schema=ev_charging&user_id=U1").get_json()["events"]]
    assert stored["event_id"] == "s1" and stored["fields"]["payment"] == 8.4


def test_repeats_across_the_batches_of_one_file_are_dropped(app, client, monkeypatch):
    """A file read two lines at a time: each repeat is in a later batch than its first, which
    may still be queued to the writer when the repeat is looked for."""
    import server.sources.upload

    monkeypatch.setattr(server.sources.upload, "FileSource",
                        functools.partial(server.sources.upload.FileSource, chunk_rows=2))
    rows = [SESSIONS[0], SESSIONS[1], SESSIONS[2], SESSIONS[0], SESSIONS[1], SESSIONS[3], SESSIONS[2]]
    answer = _upload(client, _csv(*rows))
    assert answer["events"] == 4 and answer["duplicates"] == 3
    assert _event_ids(app) == ["s0", "s1", "s2", "s3"]


def test_a_retried_request_stores_its_event_once(app, client):
    """A client that got no answer (a timeout) sends the same event again, as JSON lines or CSV."""
    line = json.dumps({"session_id": "r1", "user_id": "U9", "charger_id": "C9",
                       "start_time": "2026-01-01T10:00:00Z", "duration": 30, "energy": 55, "payment": 0})
    first = _upload(client, (line + "\n").encode(), content_type="application/x-ndjson")
    retried = _upload(client, (line + "\n").encode(), content_type="application/x-ndjson")
    assert (first["events"], first["duplicates"], first["anomalies"]) == (1, 0, 1)
    assert (retried["events"], retried["duplicates"], retried["anomalies"]) == (0, 1, 0)
    as_csv = _upload(client, _csv("r1,U9,C9,2026-01-01T10:00:00Z,30,55,0"))
    assert as_csv["events"] == 0 and as_csv["duplicates"] == 1
    events = client.get("/api/events?schema=ev_charging&user_id=U9").get_json()["events"]
    assert [e["event_id"] for e in events] == ["r1"]
    assert client.get("/api/anomalies?schema=ev_charging").get_json()["anomalies"][0]["event_id"] == "r1"
    assert len(client.get("/api/anomalies?schema=ev_charging").get_json()["anomalies"]) == 1


def test_the_ev_feed_sending_sessions_again_stores_none_of_them(app):
    """The feed's batches go through the same ingest: the same sessions again (a feed resumed from
    an older position) are dropped; its next ones are stored."""
    from server.sources.ev import EVSource
    from server.sources.replay import FakeClock

    svc = services_of(app)
    run_ev_feed(app, batches=2, seed=1)
    stored = _event_ids(app)
    again = EVSource(svc.ingest.schema("ev_charging"), seed=1, speed=3600.0, interval=1.0, clock=FakeClock())
    again.start()
    first = next(again.batches())
    assert 0 < len(first) and set(first.frame["session_id"]) <= set(stored)
    summary = svc.sources.store([first], again.name)  # the supervisor's call for a pulled batch
    assert summary.events == 0 and summary.duplicates == len(first)
    assert _event_ids(app) == stored


def test_an_event_no_longer_stored_is_stored_again(app, client):
    """Retention removed it: it is not stored, so it is not a duplicate (an undone import's
    events are not either: test_events_api's whole-or-nothing test uploads its file again)."""
    from server.event_writes import EventPruneJob

    _upload(client, _csv(*SESSIONS[:5]))
    assert services_of(app).writer.write(EventPruneJob(keep=2, max_age_s=0), 10) == 3
    answer = _upload(client, _csv(*SESSIONS[:5]))
    assert answer["events"] == 3 and answer["duplicates"] == 2
    assert sorted(_event_ids(app)) == ["s0", "s1", "s2", "s3", "s4"]


def test_a_batch_queued_but_not_yet_committed_is_looked_for(ev_schema, tmp_path, monkeypatch):
    """The writer holds the first batch's copy (uncommitted, unseen by readers) until the second
    batch, repeating part of it, has been looked up and scored: its repeats are dropped all the same."""
    import pandas as pd

    from server import event_writes
    from server.event_storage import EventReader
    from server.pipeline.event import EventBatch
    from server.pipeline.ingest import Ingest
    from server.storage import open_reader
    from server.writer import Writer

    path = migrated_database(tmp_path / "events.db")
    second_scored, seen_stored = threading.Event(), []
    copy_sql = event_writes._copy_sql

    def held_copy(*args):
        if not second_scored.is_set():
            second_scored.wait(10)
        return copy_sql(*args)

    monkeypatch.setattr(event_writes, "_copy_sql", held_copy)
    writer = Writer(path).start()
    ingest = Ingest([ev_schema.name], writer, write_timeout=20)
    scorer = ingest.scorers[ev_schema.name]
    score = scorer.score
    reader = EventReader(open_reader(path).conn)
    score_calls: list[int] = []

    def counted(frame):
        score_calls.append(len(frame))
        if len(score_calls) == 2:  # the second batch, its repeats dropped: what did readers see?
            seen_stored.append(reader.conn.execute("SELECT count(*) FROM scored_events").fetchone()[0])
            second_scored.set()
        return score(frame)

    scorer.score = counted

    def sessions(ids):
        return pd.DataFrame({"session_id": ids, "user_id": "U1", "charger_id": "C1",
                             "start_time": [1_767_225_600.0 + 3600 * int(i[1:]) for i in ids],
                             "duration": 60.0, "energy": 20.0, "payment": 8.0, "ip_address": "", "label": ""})

    try:
        batches = [EventBatch(ev_schema, sessions(["s0", "s1", "s2"])),
                   EventBatch(ev_schema, sessions(["s1", "s3", "s2", "s4"]))]
        summary = ingest.store(batches, "upload", whole=True)
        ids = [r[0] for r in reader.conn.execute("SELECT event_id FROM scored_events ORDER BY id")]
    finally:
        reader.close()
        ingest.close()
        writer.stop()
    assert seen_stored == [0] and score_calls == [3, 2]  # nothing committed when the repeats were looked for
    assert summary.events == 5 and summary.duplicates == 2 and ids == ["s0", "s1", "s2", "s3", "s4"]


def test_the_migration_indexes_the_ids_of_a_database_holding_repeats(tmp_path):
    """Stored before the fix, repeats stay (the index is not UNIQUE, so it builds); the look-up
    then goes through the index and finds each id of its own schema."""
    from server.storage import MIGRATIONS, migrate, open_writer

    db = open_writer(tmp_path / "old.db")
    migrate(db, [m for m in MIGRATIONS if m[0] < 14])
    rows = [("ev_charging", "s1"), ("ev_charging", "s1"), ("ev_charging", "s2"), ("meters", "s3")]
    db.conn.executemany("INSERT INTO scored_events (schema, event_id, timestamp, received_at) "
                        "VALUES (?, ?, 0, 0)", rows)
    db.conn.commit()
    assert 14 in migrate(db)
    plan = " ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {STORED_EVENT_IDS}", ["[]", "x"]))
    assert "USING INDEX idx_scored_events_event_id" in plan, plan
    assert stored_event_ids(db.conn, "ev_charging", ["s1", "s2", "s3", "s4"]) == {"s1", "s2"}
    assert db.execute("SELECT count(*) FROM scored_events").fetchone()[0] == 4
    db.close()

