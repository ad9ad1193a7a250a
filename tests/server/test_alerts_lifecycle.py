"""The alert lifecycle on a real SQLite database: pending -> firing -> resolved, grouping, restore."""
from __future__ import annotations

import sqlite3

import pytest

from server.alerts.lifecycle import AlertBook, Policy
from server.storage import migrate, open_writer
from server.writer import Transaction
from server_helpers import services_of


@pytest.fixture
def db(tmp_path):
    database = open_writer(tmp_path / "alerts.db", "NORMAL")
    migrate(database)
    yield database
    database.close()


class Clock:
    """Runs book calls in real transactions at chosen times."""

    def __init__(self, db, book):
        self.db, self.book, self.next_id = db, book, 1

    def points(self, at: float, *specs):
        points = []
        for source, anomalous, severity, *rest in specs:
            point = {"id": self.next_id, "source": source, "is_anomaly": anomalous,
                     "severity": severity, "score": 0.9 if anomalous else 0.1,
                     "explanation": f"{source} at {at}"}
            if rest:
                point.update(rest[0])
            points.append(point)
            self.next_id += 1
        with self.db.atomic():
            self.book.points_stored(Transaction(self.db, {}, at), points)

    def sweep(self, at: float):
        with self.db.atomic():
            return self.book.sweep(Transaction(self.db, {}, at))


def rows(db):
    return [dict(r) for r in db.conn.execute("SELECT * FROM alerts ORDER BY id")]


def notices(book_notices, status=None):
    return [(a.id, s) for a, s in book_notices if status is None or s == status]


def make_book(policy):
    sent = []

    def notify(tx, alert, status):
        sent.append((alert, status))
        return 1
    return AlertBook(policy, notify=notify), sent


def test_one_alert_per_incident_with_count_and_peak_severity(db):
    book, sent = make_book(Policy(for_s=0, keep_firing_for_s=10))
    clock = Clock(db, book)
    clock.points(100, ("cpu", True, "medium"))
    clock.points(101, ("cpu", False, None))
    clock.points(103, ("cpu", True, "critical"))  # within keep_firing_for: the same incident
    clock.points(104, ("cpu", True, "low"))
    clock.points(105, ("cpu", False, None))
    [alert] = rows(db)
    assert alert["state"] == "firing" and alert["points"] == 3 and alert["severity"] == "critical"
    assert alert["first_point_id"] == 1 and alert["last_point_id"] == 4
    clock.points(114, ("cpu", False, None))  # 10 s after the last anomalous point at 104
    [alert] = rows(db)
    assert alert["state"] == "resolved" and alert["resolved_by"] == "auto" and alert["resolved_at"] == 114
    assert [s for _, s in sent] == ["firing", "resolved"]
    clock.points(120, ("cpu", True, "high"))  # a new incident, a new alert
    assert [r["state"] for r in rows(db)] == ["resolved", "firing"]
    assert rows(db)[1]["points"] == 1


def test_keep_firing_for_is_applied_by_the_clock_without_new_points(db):
    book, sent = make_book(Policy(for_s=0, keep_firing_for_s=5))
    clock = Clock(db, book)
    clock.points(10, ("cpu", True, "high"))
    clock.points(11, ("cpu", False, None))
    assert clock.sweep(14) == 0
    assert clock.sweep(16) == 1
    assert rows(db)[0]["state"] == "resolved"
    assert [s for _, s in sent] == ["firing", "resolved"]


def test_pending_fires_after_for_and_a_short_episode_is_dropped_unnotified(db):
    book, sent = make_book(Policy(for_s=30, keep_firing_for_s=0))
    clock = Clock(db, book)
    clock.points(0, ("a", True, "high"), ("b", True, "high"))
    assert {r["state"] for r in rows(db)} == {"pending"}
    clock.points(10, ("a", False, None), ("b", True, "high"))  # a's episode ends before 'for'
    clock.points(31, ("b", True, "high"))
    a, b = rows(db)
    assert a["state"] == "resolved" and a["fired_at"] is None and a["resolved_by"] is None
    assert b["state"] == "firing" and b["fired_at"] == 31 and b["points"] == 3
    assert [(alert.stream, s) for alert, s in sent] == [("b", "firing")]
    # A still-anomalous pending alert also fires on the clock alone.
    clock.points(40, ("c", True, "low"))
    clock.sweep(71)
    assert rows(db)[2]["state"] == "firing"


def test_entities_and_anomaly_types_get_alerts_of_their_own(db):
    book, _ = make_book(Policy(for_s=0, keep_firing_for_s=0))
    clock = Clock(db, book)
    clock.points(1, ("ev", True, "high", {"entity": "user:1", "anomaly_types": ["billing_fraud", "dos_attack"]}),
                 ("ev", True, "low", {"entity": "user:2", "anomaly_types": ["billing_fraud"]}),
                 ("ev", False, None, {"entity": "user:3"}))
    keys = sorted((r["entity"], r["type"]) for r in rows(db))
    assert keys == [("user:1", "billing_fraud"), ("user:1", "dos_attack"), ("user:2", "billing_fraud")]
    # An entity's normal event resolves that entity's alerts only (keep_firing_for 0).
    clock.points(2, ("ev", False, None, {"entity": "user:1"}))
    states = {(r["entity"], r["type"]): r["state"] for r in rows(db)}
    assert states[("user:1", "dos_attack")] == "resolved" and states[("user:2", "billing_fraud")] == "firing"


def test_the_alert_field_of_an_episode_opens_an_alert_too(db):
    """detect's verdicts carry ``alert`` on an episode's first point and is_anomaly throughout."""
    book, _ = make_book(Policy(for_s=0, keep_firing_for_s=0))
    clock = Clock(db, book)
    clock.points(1, ("s", False, "high", {"alert": True}))
    assert rows(db)[0]["state"] == "firing"


def test_open_alerts_are_restored_by_a_new_book(db):
    book, _ = make_book(Policy(for_s=0, keep_firing_for_s=100))
    Clock(db, book).points(1, ("cpu", True, "high"))
    restarted, sent = make_book(Policy(for_s=0, keep_firing_for_s=100))
    clock = Clock(db, restarted)
    clock.next_id = 10
    clock.points(2, ("cpu", True, "critical"))
    [alert] = rows(db)
    assert alert["points"] == 2 and alert["severity"] == "critical"
    assert sent == []  # it was notified before the restart (notified_at is stored)


def test_alert_changes_commit_with_their_points_or_not_at_all(app, client):
    """A batch whose job fails is rolled back, alert included; the book reloads from the database."""
    from server.writes import PointsJob

    svc = services_of(app)

    class FailingPoints(PointsJob):
        def apply(self, tx):
            super().apply(tx)
            raise RuntimeError("disk full, say")

    point = {"source": "cpu_usage", "timestamp": 1.0, "values": {"value": 1.0}, "score": 0.9,
             "is_anomaly": True, "severity": "high", "detectors": {}, "fired": [], "expected": {},
             "truth": None, "warming_up": False, "explanation": "x"}
    with pytest.raises(RuntimeError):
        svc.writer.write(FailingPoints([point], tick=None, origin="submit"))
    assert client.get("/api/incidents").get_json()["alerts"] == []
    svc.writer.write(PointsJob([point], tick=None, origin="submit"))
    [alert] = client.get("/api/incidents").get_json()["alerts"]
    assert alert["points"] == 1 and alert["stream"] == "cpu_usage"


def test_alerts_survive_a_rebuild_of_the_app(make_app):
    from server.writes import PointsJob

    point = {"source": "cpu_usage", "timestamp": 1.0, "values": {"value": 1.0}, "score": 0.9,
             "is_anomaly": True, "severity": "high", "detectors": {}, "fired": [], "expected": {},
             "truth": None, "warming_up": False, "explanation": "x"}
    first = make_app(ALERT_KEEP_FIRING_FOR=3600)
    services_of(first).writer.write(PointsJob([point], tick=None, origin="submit"))
    services_of(first).shutdown()
    second = make_app(ALERT_KEEP_FIRING_FOR=3600)
    services_of(second).writer.write(PointsJob([dict(point, severity="critical")], tick=None,
                                               origin="submit"))
    [alert] = second.test_client().get("/api/incidents").get_json()["alerts"]
    assert alert["points"] == 2 and alert["severity"] == "critical" and alert["state"] == "firing"


def test_points_of_one_batch_are_applied_in_order(db):
    """A spike and the normal point after it, stored together, fire and then resolve."""
    book, sent = make_book(Policy(for_s=0, keep_firing_for_s=0))
    clock = Clock(db, book)
    clock.points(1, ("s", True, "high"), ("s", False, None), ("s", True, "low"))
    assert [(r["state"], r["points"]) for r in rows(db)] == [("resolved", 1), ("firing", 1)]
    assert [s for _, s in sent] == ["firing", "resolved", "firing"]


def test_a_failing_alert_observer_never_costs_the_points(app, client):
    svc = services_of(app)

    class Broken:
        rolled_back = 0

        def points_stored(self, tx, points):
            tx.db.conn.execute("INSERT INTO alert_audit (at, action) VALUES (1, 'half-done')")
            raise RuntimeError("a bug in the alert code")

        def rollback(self):
            Broken.rolled_back += 1

    svc.writer.observers.insert(0, Broken())
    from alert_helpers import store_point
    stored = store_point(app, "cpu_usage", severity="high")
    assert client.get("/api/data/cpu_usage").get_json()["points"][-1]["id"] == stored["id"]
    assert Broken.rolled_back == 1
    assert client.get("/api/audit").get_json()["audit"] == []  # its half-done write was undone
    assert len(client.get("/api/incidents").get_json()["alerts"]) == 1  # the others still ran
