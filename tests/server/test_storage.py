"""Schema, migrations and connection settings of the database."""
from __future__ import annotations

import sqlite3

import pytest

from server.storage import MIGRATIONS, migrate, open_reader, open_writer, schema_version


@pytest.fixture
def db(tmp_path):
    db = open_writer(tmp_path / "s.db", "FULL")
    yield db
    db.close()


def test_migrations_apply_once(db):
    assert schema_version(db) == 0
    assert migrate(db) == [v for v, _, _ in MIGRATIONS]
    tables = set(db.table_names())
    assert {"streams", "points", "anomalies", "config", "events", "stream_stats",
            "detector_stats", "schema_migrations"} <= tables
    assert migrate(db) == []
    assert migrate(db) == []
    assert schema_version(db) == MIGRATIONS[-1][0]
    assert db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)


def test_a_new_migration_is_applied_to_an_existing_database_once(db):
    migrate(db)
    calls = []

    def add_note_column(database):
        calls.append(1)
        database["streams"].add_column("note", str)

    later = [*MIGRATIONS, (MIGRATIONS[-1][0] + 1, "stream notes", add_note_column)]
    assert migrate(db, later) == [later[-1][0]]
    assert migrate(db, later) == []
    assert calls == [1]
    assert "note" in db["streams"].columns_dict


def test_a_failing_migration_leaves_no_trace(db):
    migrate(db)

    def broken(database):
        database["streams"].add_column("half_done", str)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        migrate(db, [*MIGRATIONS, (99, "broken", broken)])
    assert schema_version(db) == MIGRATIONS[-1][0]
    assert "half_done" not in db["streams"].columns_dict


def test_migration_versions_must_increase(db):
    with pytest.raises(ValueError, match="increasing"):
        migrate(db, [MIGRATIONS[0], MIGRATIONS[0]])


@pytest.mark.parametrize("level, code", [("FULL", 2), ("NORMAL", 1)])
def test_writer_connection_uses_wal_and_the_chosen_synchronous_level(tmp_path, level, code):
    db = open_writer(tmp_path / "w.db", level)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == code
    finally:
        db.close()
    with pytest.raises(ValueError):
        open_writer(tmp_path / "w.db", "OFF")


def test_readers_are_read_only(db):
    migrate(db)
    reader = open_reader(db.conn.execute("PRAGMA database_list").fetchone()[2])
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    finally:
        reader.close()
