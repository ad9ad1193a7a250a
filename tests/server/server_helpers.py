"""Helpers shared by the server tests (imported by name: tests/server is on sys.path)."""
from __future__ import annotations

import time

from server import create_app
from server.services import EXTENSION


def build_app(tmp_path, **overrides):
    """An app on ``tmp_path/test.db`` with the scheduler off; call ``shutdown_app`` when done."""
    config = {
        "DATABASE": str(tmp_path / "test.db"),
        "LOG_DIR": str(tmp_path / "logs"),
        "SCHEDULER": False,
        # The durability tests use FULL; NORMAL keeps the many small commits here quick.
        "SYNCHRONOUS": "NORMAL",
        # Tests send requests faster than any client should; tests/server/test_security.py
        # turns the limit on.
        "RATE_LIMIT": "off",
    }
    config.update(overrides)
    return create_app(config)


def services_of(app):
    return app.extensions[EXTENSION]


def stored_rows(app, sql: str, params=()) -> list[tuple]:
    """The rows ``sql`` reads from ``app``'s database, on a reader of its own (closed again)."""
    reader = services_of(app).reader()
    try:
        return [tuple(row) for row in reader.conn.execute(sql, params).fetchall()]
    finally:
        reader.close()


def shutdown_app(app) -> None:
    services_of(app).shutdown()


def run_ticks(app, count: int) -> list[dict]:
    """Drive ``count`` scheduler ticks by hand; return the points of the last one."""
    monitor = services_of(app).monitor
    points = []
    for _ in range(count):
        points = monitor.tick()
    return points


def wait_for(condition, timeout: float = 10.0, interval: float = 0.02):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def fail_third_event_write(monkeypatch) -> list:
    """Uploads read in batches of two lines, and the third batch's write fails (a full disk, simulated).

    Returns the list of write attempts so far (one entry per attempt); ``monkeypatch.undo()``
    or a new ``setattr`` restores the real write.
    """
    import functools

    import server.event_writes
    import server.sources.upload

    monkeypatch.setattr(server.sources.upload, "FileSource",
                        functools.partial(server.sources.upload.FileSource, chunk_rows=2))
    real_apply = server.event_writes.ScoredEventsJob.apply
    calls: list = []

    def failing_third(self, tx):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return real_apply(self, tx)

    monkeypatch.setattr(server.event_writes.ScoredEventsJob, "apply", failing_third)
    return calls


def migrated_database(path):
    """A new SQLite file at ``path`` with every migration applied (WAL, as the server opens it); returns ``path``."""
    from server.storage import migrate, open_writer

    db = open_writer(path)
    migrate(db)
    db.close()
    return path


def run_ev_feed(app, batches: int = 3, seed: int = 1):
    """Run a built-in EV feed (an hour of sessions a batch, on a fake clock) through the app's
    supervisor until ``batches`` batches are stored, then stop it; returns the source."""
    from server.sources.ev import EVSource
    from server.sources.replay import FakeClock

    svc = services_of(app)
    source = EVSource(svc.ingest.schema("ev_charging"), seed=seed, speed=3600.0, interval=1.0, clock=FakeClock())
    svc.sources.add(source)
    svc.sources.start()
    wait_for(lambda: svc.sources.batches >= batches, timeout=60)
    svc.sources.stop()
    return source
