"""The event scorers' state across restarts: baselines and repeat-rule windows survive, bad files are refused."""
from __future__ import annotations

import logging
import sqlite3

import numpy as np
import pandas as pd
import pytest

import server.pipeline.scoring
from generators.ev_charging import EVChargingGenerator
from server.pipeline.event import EventBatch
from server.pipeline.schema import load_schema
from server.pipeline.scoring import Scorer
from server_helpers import services_of

EVENTS_FILE = "test.db.snapshot.events.npz"


def sessions(days: int, seed: int = 3) -> list[pd.DataFrame]:
    """Generated EV sessions cut into batches of two simulated hours (as a live feed brings them)."""
    frame = EVChargingGenerator(seed=seed, n_users=60, n_chargers=8).days(days)
    hours = np.floor(frame["start_time"].to_numpy() / 7200.0)
    return [part.reset_index(drop=True) for _, part in frame.groupby(hours, sort=True)]


def store(app, frames) -> None:
    ingest = services_of(app).ingest
    schema = ingest.schema("ev_charging")
    ingest.store([EventBatch(schema, f) for f in frames], "test")


def stored_risks(db_path, first_session: str) -> list[int]:
    with sqlite3.connect(db_path) as conn:
        first = conn.execute("SELECT id FROM scored_events WHERE event_id = ?", [first_session]).fetchone()[0]
        return [r[0] for r in conn.execute("SELECT risk FROM scored_events WHERE id >= ? ORDER BY id", [first])]


def reference(frames) -> Scorer:
    """A scorer that scored every batch and never stopped."""
    scorer = Scorer(load_schema("ev_charging"))
    for f in frames:
        scorer.score(f)
    return scorer


def probe_frame(frames) -> pd.DataFrame:
    """A batch after the others: each of their users and chargers once more, some values unusual."""
    last = pd.concat(frames[-6:], ignore_index=True).drop_duplicates("user_id").reset_index(drop=True)
    probe = last.copy()
    probe["session_id"] = [f"probe-{i}" for i in range(len(probe))]
    # Hours apart, so no rule over a window or an overlap speaks: the baselines do.
    probe["start_time"] = float(pd.concat(frames)["start_time"].max()) + 14400.0 * (1 + np.arange(len(probe)))
    probe.loc[::3, "energy"] *= 6.0  # far above these users' habits
    return probe


def test_baselines_learned_before_a_graceful_restart_score_the_same_after_it(make_app, tmp_path):
    frames = sessions(8)
    first = make_app()
    store(first, frames)
    services_of(first).shutdown()
    assert (tmp_path / EVENTS_FILE).exists()

    second = make_app()
    scorer = services_of(second).ingest.scorers["ev_charging"]
    expected = reference(frames)
    assert scorer.entity_counts() == expected.entity_counts() and scorer.events_scored == expected.events_scored
    probe = probe_frame(frames)
    store(second, [probe])
    wanted = expected.score(probe)
    assert stored_risks(tmp_path / "test.db", "probe-0") == wanted.risk.tolist()
    # The learned state is what makes these risks: a cold scorer gives others.
    assert Scorer(expected.schema).score(probe).risk.tolist() != wanted.risk.tolist()


def test_after_a_crash_the_batches_stored_since_the_snapshot_are_replayed(make_app, tmp_path):
    frames = sessions(8)
    first = make_app()
    store(first, frames[:20])
    services_of(first).snapshots.save()
    store(first, frames[20:])  # stored after the snapshot: a crash now loses them from it
    services_of(first).snapshots = None  # a crash: no snapshot at shutdown
    services_of(first).writer.stop()  # and a dead process holds no writer lock

    second = make_app()
    scorer = services_of(second).ingest.scorers["ev_charging"]
    expected = reference(frames)
    assert scorer.events_scored == expected.events_scored
    probe = probe_frame(frames)
    got, wanted = scorer.score(probe), expected.score(probe)
    # The replay reads numbers back from the stored JSON (15 digits): equal but for the last digits.
    assert np.abs(got.risk - wanted.risk).max() <= 1
    assert got.is_anomaly.tolist() == wanted.is_anomaly.tolist()


def short_session(i: int, start: float) -> pd.DataFrame:
    return pd.DataFrame({"session_id": [f"dos-{i}"], "user_id": ["U-dos"], "charger_id": [f"C{i}"],
                         "start_time": [start], "duration": [2.0], "energy": [0.5], "payment": [0.2],
                         "ip_address": [""], "label": [""]})


@pytest.mark.parametrize("snapshots", ["auto", "off"])
def test_a_dos_burst_spanning_a_graceful_restart_is_found(make_app, tmp_path, snapshots):
    first = make_app(SNAPSHOT_PATH=snapshots)
    t0 = 1_767_254_400.0
    store(first, [short_session(0, t0), short_session(1, t0 + 600)])
    services_of(first).shutdown()

    second = make_app(SNAPSHOT_PATH=snapshots)
    store(second, [short_session(2, t0 + 1200)])
    with sqlite3.connect(tmp_path / "test.db") as conn:
        types = dict(conn.execute("SELECT event_id, coalesce(types, '[]') FROM scored_events"))
    if snapshots == "auto":  # the third is found, and the first two, stored before the restart, amended
        assert all("dos_attack" in types[f"dos-{i}"] for i in range(3))
    else:  # without the saved window the third session alone is no burst
        assert not any("dos_attack" in t for t in types.values())


def test_a_damaged_event_snapshot_is_refused_and_the_server_starts_cold(make_app, tmp_path, caplog):
    (tmp_path / EVENTS_FILE).write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING, logger="server.event_snapshots"):
        app = make_app()
    assert "refused, scorers start cold" in caplog.text
    assert services_of(app).ingest.scorers["ev_charging"].events_scored == 0
    store(app, sessions(1)[:2])


def test_a_snapshot_of_other_code_is_refused_and_that_scorer_starts_cold(make_app, tmp_path, caplog, monkeypatch):
    first = make_app()
    store(first, sessions(1))
    services_of(first).shutdown()
    monkeypatch.setattr(server.pipeline.scoring, "STATE_VERSION", server.pipeline.scoring.STATE_VERSION + 1)
    with caplog.at_level(logging.WARNING, logger="server.event_snapshots"):
        second = make_app()
    assert "saved with another state_version" in caplog.text
    assert services_of(second).ingest.scorers["ev_charging"].entity_counts() == {"user_id": 0, "charger_id": 0}


def test_a_snapshot_of_another_database_is_refused(make_app, tmp_path, caplog):
    first = make_app()
    store(first, sessions(1))
    services_of(first).shutdown()
    other = tmp_path / "other"
    other.mkdir()
    (other / EVENTS_FILE).write_bytes((tmp_path / EVENTS_FILE).read_bytes())
    with caplog.at_level(logging.WARNING, logger="server.event_snapshots"):
        second = make_app(DATABASE=str(other / "test.db"))
    assert "another database?" in caplog.text
    assert services_of(second).ingest.scorers["ev_charging"].events_scored == 0
