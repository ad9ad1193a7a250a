"""Large batches' rows bound by the staging child process (server/event_staging.py): the rows stored
are the writer's own, a child that dies or hangs fails its batch (and its import) with a clear error
and never hangs it, the next batch starts a new child, and the child ends with the server.

Real SQLite files, real child processes, killed with real signals.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

from pipeline_helpers import ev_schema  # noqa: E402,F401 -- a fixture
from server.event_staging import OUTSTANDING, STAGED_ROWS_AT_LEAST, Stager, StagingFailed  # noqa: E402
from server.event_writes import ScoredEventsJob  # noqa: E402
from server.pipeline.event import EventBatch  # noqa: E402
from server.pipeline.ingest import Ingest  # noqa: E402
from server.pipeline.scoring import Scorer  # noqa: E402
from server.sources.upload import FileSource  # noqa: E402
from server.writer import Writer  # noqa: E402
from server_helpers import migrated_database, wait_for  # noqa: E402

T0 = 1_767_225_600.0
REPO = Path(__file__).resolve().parents[2]


def _sessions(n: int, seed: int, start: float = T0) -> pd.DataFrame:
    """Sessions on 50 chargers, some payments cut (billing fraud), ids that need escaping."""
    rng = np.random.default_rng(seed)
    energy = rng.uniform(10, 40, n)
    price = np.where(rng.random(n) < 0.02, 0.02, 0.40)
    return pd.DataFrame({
        "session_id": [f"s{seed}-{i}" for i in range(n)],
        "user_id": [f'u"{i % 300}\\é' for i in range(n)],
        "charger_id": [f"c{i % 50}" for i in range(n)],
        "start_time": start + np.arange(n) * 60.0,
        "duration": energy / 11 * 60 + 5, "energy": energy, "payment": np.round(energy * price, 2),
        "ip_address": "", "label": np.where(price < 0.1, "billing_fraud", "")})


def _rows(path: Path) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM scored_events ORDER BY id").fetchall()


@pytest.fixture
def stager():
    stager = Stager(timeout=20)
    yield stager
    stager.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_staged_batch_is_stored_exactly_as_the_writer_inserts_it(ev_schema, stager, tmp_path):
    n = STAGED_ROWS_AT_LEAST + 500
    frames = [_sessions(n, seed=0), _sessions(n, seed=1, start=T0 + 1e6)]
    stored = {}
    for staged in (False, True):
        path = migrated_database(tmp_path / f"staged-{staged}.db")
        writer = Writer(path).start()
        scorer = Scorer(ev_schema)
        try:
            for frame in frames:
                batch = scorer.score(frame)
                batch.mark_flagged({"charger_id": {"c3"}})
                job = ScoredEventsJob(batch, "o", stager if staged else None)
                assert job.staged is staged
                writer.write(job, 30)
        finally:
            writer.stop()
        stored[staged] = _rows(path)
    assert stager.staged == 2
    assert len(stored[True]) == 2 * n and any(row for row in stored[True] if row[-1] is None)
    # Every column but the commit time (received_at), row by row.
    import sqlite3

    with sqlite3.connect(tmp_path / "staged-True.db") as conn:
        names = [r[1] for r in conn.execute("PRAGMA table_info(scored_events)")]
    received_at = names.index("received_at")
    strip = [tuple(v for k, v in enumerate(row) if k != received_at) for row in stored[True]]
    assert strip == [tuple(v for k, v in enumerate(row) if k != received_at) for row in stored[False]]
    assert sum(row[names.index("is_anomaly")] for row in stored[True]) > 0


def test_a_child_killed_mid_batch_fails_that_write_clearly_and_the_next_batch_starts_a_new_one(
        ev_schema, stager, tmp_path):
    path = migrated_database(tmp_path / "events.db")
    writer = Writer(path).start()
    scorer = Scorer(ev_schema)
    try:
        rows = ScoredEventsJob(scorer.score(_sessions(STAGED_ROWS_AT_LEAST, seed=0)), "o").rows
        first_pid = None
        stager.stage(rows[:1])  # starts the child
        first_pid = stager.pid
        job = ScoredEventsJob(scorer.score(_sessions(STAGED_ROWS_AT_LEAST, seed=1, start=T0 + 1e6)), "dead",
                              _KillingStager(stager))
        started = time.monotonic()
        with pytest.raises(StagingFailed, match=r"exited \(killed by signal 9\)|stopped taking batches"):
            writer.write(job, 30)
        assert time.monotonic() - started < 10
        assert not _alive(first_pid)
        assert _rows(path) == []  # nothing of the failed batch
        job = ScoredEventsJob(scorer.score(_sessions(STAGED_ROWS_AT_LEAST, seed=2, start=T0 + 2e6)), "next", stager)
        first, _ = writer.write(job, 30)
        assert job.staged and stager.pid not in (None, first_pid) and stager.started == 2
        assert first == 1 and len(_rows(path)) == STAGED_ROWS_AT_LEAST
    finally:
        writer.stop()


class _KillingStager:
    """A stager whose child is killed (SIGKILL) right after it is handed a batch."""

    def __init__(self, stager: Stager):
        self._stager = stager

    def stage(self, rows, **more):
        ticket = self._stager.stage(rows, **more)
        os.kill(self._stager.pid, signal.SIGKILL)
        return ticket

    def __getattr__(self, name):
        return getattr(self._stager, name)


def test_a_child_that_hangs_fails_its_batch_within_the_timeout_and_is_stopped(ev_schema, tmp_path):
    stager = Stager(timeout=1.5)
    path = migrated_database(tmp_path / "events.db")
    writer = Writer(path).start()
    try:
        rows = ScoredEventsJob(Scorer(ev_schema).score(_sessions(STAGED_ROWS_AT_LEAST, seed=0)), "o").rows
        stager.stage(rows[:1])
        pid = stager.pid
        os.kill(pid, signal.SIGSTOP)
        ticket = stager.stage(rows)
        started = time.monotonic()
        with pytest.raises(StagingFailed, match="did not answer within"):
            stager.wait(ticket)
        assert 1.0 < time.monotonic() - started < 8
        wait_for(lambda: not _alive(pid), timeout=5)
        # The next batch gets a new child.
        ticket = stager.stage(rows)
        stager.wait(ticket)
        assert stager.pid != pid and stager.started == 2
    finally:
        writer.stop()
        stager.close()


def test_a_batch_the_child_cannot_stage_fails_alone(stager):
    with pytest.raises(StagingFailed, match="could not stage a batch: ValueError"):
        stager.wait(stager.stage([(1, 2), (1, 2, 3)]))  # rows of different widths
    pid = stager.pid
    ticket = stager.stage([(1, "a"), (2, "b")])
    stager.wait(ticket)
    assert stager.pid == pid  # the child goes on
    assert ticket.database.exists()
    stager.release(ticket, waited=True)
    assert not ticket.database.exists()


def test_at_most_so_many_batches_are_staged_at_once(stager):
    tickets = [stager.stage([(i, "x")]) for i in range(OUTSTANDING)]
    assert None not in tickets
    assert stager.stage([(0, "y")]) is None  # the writer inserts it itself
    stager.release(tickets[0])  # never waited for: its file goes once staged
    later = stager.stage([(1, "z")])
    assert later is not None
    stager.wait(later)
    wait_for(lambda: not tickets[0].database.exists(), timeout=5)


def test_an_import_whose_child_dies_fails_whole_and_the_next_import_lands(ev_schema, tmp_path):
    """Through the server's import path: the child killed while it stages the second of three
    batches; the import fails with the staging error and none of its rows stay."""
    path = migrated_database(tmp_path / "events.db")
    writer = Writer(path).start()
    ingest = Ingest([ev_schema.name], writer, write_timeout=20)
    frame = pd.concat([_sessions(STAGED_ROWS_AT_LEAST, seed=s, start=T0 + s * 1e6) for s in range(3)])
    csv = tmp_path / "sessions.csv"
    frame.drop(columns=["label"]).to_csv(csv, index=False)
    real_stage, staged = ingest.stager.stage, []

    def stage_then_kill_on_the_second(rows, **more):
        ticket = real_stage(rows, **more)
        staged.append(ticket)
        if len(staged) == 2:
            os.kill(ingest.stager.pid, signal.SIGKILL)
        return ticket

    try:
        ingest.stager.stage = stage_then_kill_on_the_second
        with pytest.raises(StagingFailed):
            ingest.import_source(FileSource(csv, ev_schema, chunk_rows=STAGED_ROWS_AT_LEAST), "upload")
        assert len(staged) >= 2
        assert _rows(path) == []  # the first batch, committed, was removed again
        ingest.stager.stage = real_stage
        summary = ingest.import_source(FileSource(csv, ev_schema, chunk_rows=STAGED_ROWS_AT_LEAST), "upload")
        assert summary.events == len(frame) == len(_rows(path))
        assert ingest.stager.started == 2
    finally:
        writer.stop()
        ingest.close()
    assert ingest.stager.pid is None


def test_small_batches_are_inserted_by_the_writer_itself(ev_schema, tmp_path):
    path = migrated_database(tmp_path / "events.db")
    writer = Writer(path).start()
    ingest = Ingest([ev_schema.name], writer, write_timeout=20)
    try:
        ingest.store([EventBatch(ev_schema, _sessions(STAGED_ROWS_AT_LEAST - 1, seed=0))], "live")
        assert ingest.stager.staged == 0 and ingest.stager.pid is None
        assert len(_rows(path)) == STAGED_ROWS_AT_LEAST - 1
    finally:
        writer.stop()
        ingest.close()


_SERVER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[1])
    from server.event_staging import Stager
    stager = Stager()
    stager.wait(stager.stage([(1, "a")]))
    print(stager.pid, stager._child.scratch, flush=True)
    sys.stdin.read()  # until the test kills this process
""")


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_the_child_ends_with_the_server_process(how):
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(REPO)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        pid, scratch = server.stdout.readline().split()
        pid = int(pid)
        assert _alive(pid) and Path(scratch).is_dir()
        server.send_signal(getattr(signal, how))
        server.wait(10)
        wait_for(lambda: not _alive(pid), timeout=10)
        wait_for(lambda: not Path(scratch).exists(), timeout=5)
    finally:
        if server.poll() is None:
            server.kill()
