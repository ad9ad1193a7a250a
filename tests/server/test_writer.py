"""The single writer: group commit, one transaction per batch, bounded queue, isolation of failures."""
from __future__ import annotations

import logging
import threading

import pytest

from server.errors import ApiError
from server.validation import Conflict, InvalidRequest, NotFound

from server.storage import open_reader
from server.writer import WriteJob, Writer, WriterBusy, WriterStopped
from server.writes import DeleteStreamJob, PointsJob, PruneJob
from server_helpers import migrated_database


class Note(WriteJob):
    """Writes one row into meta."""

    def __init__(self, key: str, fail: bool = False):
        super().__init__()
        self.key, self.fail = key, fail

    def apply(self, tx):
        tx.db.conn.execute("INSERT INTO meta (key, value) VALUES (?, 'v')", [self.key])
        tx.allocate("events", 3)
        if self.fail:
            raise ValueError(f"{self.key} refuses")
        return self.key


class Gate(WriteJob):
    """Holds the writer thread inside its batch until released."""

    def __init__(self):
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def apply(self, tx):
        self.entered.set()
        assert self.release.wait(10)


@pytest.fixture
def db_path(tmp_path):
    return migrated_database(tmp_path / "w.db")


@pytest.fixture
def writer(db_path):
    published = []
    writer = Writer(db_path, "NORMAL", queue_size=8, on_commit=published.extend).start()
    writer.published = published
    yield writer
    writer.stop()


def keys(db_path):
    reader = open_reader(db_path)
    try:
        return {r[0] for r in reader.conn.execute("SELECT key FROM meta")}
    finally:
        reader.close()


def test_jobs_waiting_together_commit_in_one_batch(writer, db_path):
    gate = writer.submit(Gate())
    assert gate.entered.wait(5)
    jobs = [writer.submit(Note(f"k{i}")) for i in range(5)]
    batches_before = writer.batches
    gate.release.set()
    assert [job.wait(5) for job in jobs] == [f"k{i}" for i in range(5)]
    assert writer.batches == batches_before + 2  # the gate's batch, then the five together
    assert writer.last_batch_size == 5
    assert keys(db_path) == {f"k{i}" for i in range(5)}


def test_a_failing_job_is_rolled_back_alone(writer, db_path):
    gate = writer.submit(Gate())
    assert gate.entered.wait(5)
    good, bad, other = (writer.submit(Note("good")), writer.submit(Note("bad", fail=True)),
                        writer.submit(Note("other")))
    gate.release.set()
    assert good.wait(5) == "good" and other.wait(5) == "other"
    with pytest.raises(ValueError, match="bad refuses"):
        bad.wait(5)
    assert keys(db_path) == {"good", "other"}
    # The failed job's reserved ids were given back: the ids stay consecutive.
    assert writer._next_ids["events"] == 1 + 3 + 3


class Refused(WriteJob):
    """Raises what it is given, as a job refusing a client's request (or failing) would."""

    def __init__(self, error: BaseException):
        super().__init__()
        self.error_to_raise = error

    def apply(self, tx):
        raise self.error_to_raise


@pytest.mark.parametrize("error", [NotFound("no silence with id 7"), Conflict("already expired"),
                                   InvalidRequest("bad note"), ApiError(404, "no such thing")])
def test_a_job_refusing_a_client_is_not_logged_as_a_warning(writer, caplog, error):
    caplog.set_level(logging.DEBUG, logger="server.writer")
    with pytest.raises(type(error)):
        writer.write(Refused(error), 5)
    records = [r for r in caplog.records if r.name == "server.writer"]
    assert records and all(r.levelno < logging.WARNING for r in records), records
    assert str(error) in records[-1].getMessage()


def test_a_job_that_fails_is_a_warning_with_its_traceback(writer, caplog):
    with pytest.raises(ZeroDivisionError):
        writer.write(Refused(ZeroDivisionError("a bug")), 5)
    [record] = [r for r in caplog.records if r.name == "server.writer"]
    assert record.levelno == logging.WARNING and "a bug" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


def test_a_tick_is_one_transaction(writer):
    statements = []
    writer._db.conn.set_trace_callback(statements.append)
    points = [{"source": f"s{i}", "timestamp": 1.0, "values": {"x": float(i)}, "score": 0.5,
               "is_anomaly": i == 3, "severity": "high" if i == 3 else None, "explanation": "",
               "detectors": {"zscore": 0.5}, "fired": [], "expected": {}, "truth": None,
               "warming_up": False} for i in range(9)]
    stored = writer.write(PointsJob(points, tick=1, origin="scheduler"), 5)
    writer._db.conn.set_trace_callback(None)
    assert [p["id"] for p in stored] == list(range(1, 10))
    assert sum(s.strip().upper() == "BEGIN" for s in statements) == 1
    assert sum(s.strip().upper() == "COMMIT" for s in statements) == 1
    # One tick event, then one anomaly event, published in id order after the commit.
    assert [(e.type, e.id) for e in writer.published] == [("tick", 1), ("anomaly", 2)]


def test_the_queue_is_bounded(db_path):
    writer = Writer(db_path, "NORMAL", queue_size=2).start()
    try:
        gate = writer.submit(Gate())
        assert gate.entered.wait(5)
        queued = [writer.submit(Note("a")), writer.submit(Note("b"))]
        with pytest.raises(WriterBusy, match="queue full"):
            writer.submit(Note("c"))
        gate.release.set()
        assert [job.wait(5) for job in queued] == ["a", "b"]
    finally:
        writer.stop()


def test_stop_commits_what_is_queued_then_refuses(db_path):
    writer = Writer(db_path, "NORMAL").start()
    gate = writer.submit(Gate())
    assert gate.entered.wait(5)
    late = writer.submit(Note("late"))
    stopper = threading.Thread(target=writer.stop)
    stopper.start()
    gate.release.set()
    stopper.join(10)
    assert late.wait(0) == "late" and "late" in keys(db_path)
    with pytest.raises(WriterStopped):
        writer.submit(Note("after"))


def test_prune_rejects_nonsense():
    with pytest.raises(ValueError):
        PruneJob(keep_points=0, keep_events=10, max_age_s=0)


def _points(n, anomalous_at=3):
    return [{"source": f"s{i}", "timestamp": 1.0, "values": {"x": float(i)}, "score": 0.5,
             "is_anomaly": i == anomalous_at, "severity": "high" if i == anomalous_at else None,
             "explanation": "", "detectors": {"zscore": 0.5}, "fired": [], "expected": {},
             "truth": None, "warming_up": False} for i in range(n)]


def _max_ids(db_path):
    reader = open_reader(db_path)
    try:
        return {t: reader.conn.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0]
                for t in ("points", "anomalies", "events")}
    finally:
        reader.close()


def test_ids_deleted_by_retention_are_not_handed_out_again_after_a_restart(db_path):
    """Retention after a long stop can empty every table; a restarted writer must not reuse
    the ids (a client resuming after Last-Event-ID, or an alert naming an anomaly, would
    otherwise point at other rows)."""
    writer = Writer(db_path, "NORMAL", queue_size=8).start()
    try:
        writer.write(PointsJob(_points(9), tick=1, origin="scheduler"), 5)
        before = _max_ids(db_path)
        assert before["points"] == 9 and before["anomalies"] >= 1 and before["events"] >= 1
        deleted = writer.write(PruneJob(10, 10, 1.0, now=1e12), 5)
        assert deleted["points"] == 9 and deleted["events"] == before["events"]
        assert _max_ids(db_path) == {"points": 0, "anomalies": 0, "events": 0}
    finally:
        writer.stop()
    restarted = Writer(db_path, "NORMAL", queue_size=8).start()
    try:
        stored = restarted.write(PointsJob(_points(9), tick=2, origin="scheduler"), 5)
        assert [p["id"] for p in stored] == list(range(before["points"] + 1, before["points"] + 10))
        after = _max_ids(db_path)
        assert after["anomalies"] > before["anomalies"] and after["events"] > before["events"]
    finally:
        restarted.stop()


def test_a_deleted_streams_last_ids_are_not_handed_out_again_after_a_restart(db_path):
    writer = Writer(db_path, "NORMAL", queue_size=8).start()
    try:
        writer.write(PointsJob(_points(2, anomalous_at=1), tick=1, origin="scheduler"), 5)
        writer.write(DeleteStreamJob("s1"), 5)  # the newest point and the only anomaly
        assert _max_ids(db_path)["points"] == 1 and _max_ids(db_path)["anomalies"] == 0
    finally:
        writer.stop()
    restarted = Writer(db_path, "NORMAL", queue_size=8).start()
    try:
        stored = restarted.write(PointsJob(_points(2, anomalous_at=1), tick=2, origin="scheduler"), 5)
        assert [p["id"] for p in stored] == [3, 4]
        assert _max_ids(db_path)["anomalies"] == 2
    finally:
        restarted.stop()


def test_expiring_a_missing_silence_or_acknowledging_a_missing_event_logs_no_warning(client, caplog):
    assert client.delete("/api/silences/12345").status_code == 404
    assert client.post("/api/anomalies/999/acknowledge", json={"by": "x"}).status_code == 404
    noisy = [r for r in caplog.records if r.name == "server.writer" and r.levelno >= logging.WARNING]
    assert noisy == []
