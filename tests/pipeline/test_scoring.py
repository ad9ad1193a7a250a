"""The scorer: learned per-entity baselines beside rules, one risk scale, typed events out."""
from __future__ import annotations

import numpy as np
import pytest
import pandas as pd

from pipeline_helpers import ev_schema  # noqa: F401 -- a fixture
from server.pipeline.event import ScoredEvent, from_row, json_schema, sqlite_columns, to_json, to_row
from server.pipeline.scoring import Scorer

T0 = 1_767_225_600.0


def _charger_history(n=60, price=0.40, seed=0):
    rng = np.random.default_rng(seed)
    energy = rng.uniform(10, 40, n)
    return pd.DataFrame({
        "session_id": [f"s{i}" for i in range(n)], "user_id": [f"u{i % 20}" for i in range(n)],
        "charger_id": "c1", "start_time": T0 + np.arange(n) * 18000.0,
        "duration": energy / 11 * 60 + 5, "energy": energy, "payment": np.round(energy * price, 2),
        "ip_address": "", "label": ""})


def test_a_payment_far_below_the_chargers_tariff_is_learned_billing_fraud(ev_schema):
    scorer = Scorer(ev_schema)
    scorer.score(_charger_history())
    odd = _charger_history(1).assign(session_id="x", start_time=T0 + 1.2e6, energy=20.0,
                                     duration=115.0, payment=1.6)  # 0.08 per kWh, usual 0.40
    event = scorer.score(odd).events()[0]
    assert event.types[0] == "billing_fraud" and event.signals[0].origin == "baseline"
    assert "payment_per_kwh 0.08 is" in event.explanation and "below the usual of charger_id c1" in event.explanation
    assert 25 <= event.risk <= 100 and event.severity is not None


def test_ordinary_sessions_are_not_flagged_and_have_low_risk(ev_schema):
    scorer = Scorer(ev_schema)
    scorer.score(_charger_history(seed=1))
    batch = scorer.score(_charger_history(seed=2).assign(start_time=lambda f: f["start_time"] + 1.2e6))
    assert not batch.is_anomaly.any() and batch.risk.max() < 25


def test_a_flagged_event_does_not_teach_its_baseline(ev_schema):
    scorer = Scorer(ev_schema)
    scorer.score(_charger_history())
    fraud = _charger_history(30, price=0.03, seed=5).assign(start_time=lambda f: f["start_time"] + 1e6)
    batch = scorer.score(fraud)
    assert batch.is_anomaly.all()
    again = scorer.score(fraud.assign(start_time=lambda f: f["start_time"] + 1.2e6))
    assert again.is_anomaly.all()  # still fraud: the cut payments were not learned as the tariff


def test_a_baseline_watching_one_side_ignores_the_other(ev_schema):
    """The EV schema watches a user's energy and a charger's power only above the usual: a session
    cut short after two minutes (0.1 kWh where its user takes 10-40) is no anomaly and no risk, and
    it is not learned either, so the user's next big session still stands out."""
    assert {f.feature: f.sides for f in ev_schema.baseline.features}["energy"] == "high"
    scorer = Scorer(ev_schema)
    scorer.score(_charger_history())
    short = _charger_history(1).assign(session_id="cut", start_time=T0 + 1.2e6, energy=0.1,
                                       duration=2.0, payment=0.04)
    batch = scorer.score(short)
    assert not batch.is_anomaly.any() and batch.risk.max() < 25
    users = scorer.baselines["user_id"][1]
    row = scorer.tables["user_id"].rows(np.array(["u0"], dtype=object), np.array([T0 + 1.3e6]))
    assert users.score(row, np.array([[0.1, 1.0]]))[0, 0] <= -4.5  # still far below: not learned
    big = _charger_history(1).assign(session_id="big", start_time=T0 + 1.3e6, energy=400.0,
                                     duration=2200.0, payment=160.0)
    event = scorer.score(big).events()[0]
    assert "unusual_energy" in event.types and "above the usual of user_id u0" in event.explanation


def test_the_built_in_feed_meets_its_precision_and_recall(ev_schema):
    """``python -m server.pipeline.evaluate`` on five simulated days: every injected type found
    with precision and recall of at least 0.9, and (almost) no normal session flagged with any type."""
    from server.pipeline.evaluate import evaluate
    result = evaluate(days=5, seed=1)
    for kind, figures in result["types"].items():
        assert figures["labelled"] > 0, kind
        assert figures["precision"] >= 0.9 and figures["recall"] >= 0.9, (kind, figures)
    assert result["normal_flagged"] <= 0.005 * result["normal"], result


def test_scored_events_round_trip_through_rows_and_json(ev_schema):
    scorer = Scorer(ev_schema)
    event = scorer.score(_charger_history(3)).events()[0]
    assert from_row(ScoredEvent, to_row(event)) == event
    body = to_json(event)
    assert set(json_schema(ScoredEvent)["required"]) == set(body)
    assert set(sqlite_columns(ScoredEvent)) == set(to_row(event))
    assert body["fields"]["session_id"] == "s0" and body["entities"] == {"user_id": "u0", "charger_id": "c1"}
    assert "payment_per_kwh" in body["fields"] and body["truth"] is None


def test_entities_beyond_the_idle_time_are_forgotten(ev_schema):
    scorer = Scorer(ev_schema)
    scorer.score(_charger_history(5))
    assert scorer.entity_counts() == {"user_id": 5, "charger_id": 1}
    later = _charger_history(1).assign(user_id="new", charger_id="c9", start_time=T0 + 30 * 86400)
    scorer.score(later)
    assert scorer.entity_counts() == {"user_id": 1, "charger_id": 1}


def test_a_restored_scorer_scores_as_the_one_it_was_saved_from(ev_schema):
    from detectors.snapshot import SnapshotMismatch
    from generators.ev_charging import EVChargingGenerator

    frame = EVChargingGenerator(seed=5, n_users=40, n_chargers=6).days(6)
    half = len(frame) // 2
    scorer = Scorer(ev_schema)
    scorer.score(frame.iloc[:half].reset_index(drop=True))
    meta, arrays = scorer.export_state()
    twin = Scorer.restored(ev_schema, meta, arrays)
    rest = frame.iloc[half:].reset_index(drop=True)
    got, expected = twin.score(rest), scorer.score(rest)
    assert got.risk.tolist() == expected.risk.tolist() and expected.is_anomaly.any()
    assert [e.explanation for e in got.anomalies()] == [e.explanation for e in expected.anomalies()]
    meta["signature"]["declaration"] = "another"
    with pytest.raises(SnapshotMismatch, match="another declaration"):
        Scorer.restored(ev_schema, meta, arrays)


def test_a_files_own_history_counts_within_one_batch(ev_schema):
    """A batch is scored event by event in each entity's order: an upload whose first sessions set a
    charger's tariff finds a later session paid a fifth of it, in the same file (before, the whole
    batch was judged by what came before it, and a first upload found no learned anomaly)."""
    history = _charger_history()
    odd = _charger_history(1).assign(session_id="x", start_time=T0 + 1.2e6, energy=20.0,
                                     duration=115.0, payment=1.6)  # 0.08 per kWh, usual 0.40
    batch = Scorer(ev_schema).score(pd.concat([history, odd], ignore_index=True))
    assert batch.is_anomaly.tolist() == [False] * 60 + [True]
    assert batch.events()[-1].types == ("billing_fraud",) and batch.events()[-1].signals[0].origin == "baseline"


def test_an_event_a_rule_flags_teaches_no_baseline(ev_schema):
    """Gross billing fraud (a rule's) at a new charger is not learned as its tariff, so the charger's
    ordinary sessions that follow are not 'far above the usual'."""
    frauds = _charger_history(10, seed=7).assign(energy=60.0, duration=250.0, payment=0.3)
    ordinary = _charger_history(20, seed=8).assign(start_time=lambda f: f["start_time"] + 1e6,
                                                   session_id=lambda f: "o" + f["session_id"])
    for batches in ([pd.concat([frauds, ordinary], ignore_index=True)], [frauds, ordinary]):
        scorer = Scorer(ev_schema)
        flags = [flag for batch in batches for flag in scorer.score(batch).is_anomaly.tolist()]
        assert flags == [True] * 10 + [False] * 20
