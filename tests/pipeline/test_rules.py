"""Each kind of rule, over batches and across them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline_helpers import ev_schema  # noqa: F401 -- a fixture
from server.pipeline.scoring import Scorer

HOUR = 3600.0
T0 = 1_767_225_600.0


def _sessions(rows):
    """rows: (session_id, user, charger, start offset s, duration min, energy, payment)."""
    frame = pd.DataFrame(rows, columns=["session_id", "user_id", "charger_id", "start_time",
                                        "duration", "energy", "payment"])
    frame["start_time"] = T0 + frame["start_time"].astype(float)
    frame["ip_address"] = ""
    frame["label"] = ""
    return frame


def _types(scorer, rows):
    batch = scorer.score(_sessions(rows))
    return [batch.types_of(i) for i in range(len(batch))]


def _rule_types(scorer, rows):
    """Each event's types found by a rule (a learned baseline may name the same type)."""
    return [sorted({s.type for s in event.signals if s.origin == "rule"})
            for event in scorer.score(_sessions(rows)).events()]


@pytest.fixture
def scorer(ev_schema):
    return Scorer(ev_schema)


def test_big_energy_paid_nothing_is_billing_fraud(scorer):
    types = _types(scorer, [("a", "u1", "c1", 0, 90, 62.0, 0.4), ("b", "u2", "c2", 0, 90, 62.0, 25.0),
                            ("c", "u3", "c3", 0, 90, 40.0, 0.4)])
    assert "billing_fraud" in types[0]
    assert "billing_fraud" not in types[1] and "billing_fraud" not in types[2]


def test_three_short_sessions_in_an_hour_mark_all_three_as_dos(scorer):
    rows = [(f"s{i}", "u1", "c1", i * 900, 2.0, 0.1, 0.05) for i in range(3)]
    rows.append(("other", "u2", "c2", 0, 2.0, 0.1, 0.05))  # one short session: ordinary
    types = _types(scorer, rows)
    assert all("dos_attack" in t for t in types[:3]) and "dos_attack" not in types[3]


def test_short_sessions_spread_over_more_than_an_hour_are_not_dos(scorer):
    rows = [(f"s{i}", "u1", "c1", i * 2 * HOUR, 2.0, 0.1, 0.05) for i in range(4)]
    assert not any("dos_attack" in t for t in _types(scorer, rows))


def test_dos_counts_short_sessions_of_earlier_batches(scorer):
    assert _types(scorer, [("s0", "u1", "c1", 0, 2.0, 0.1, 0.05)]) == [()]
    assert "dos_attack" not in _types(scorer, [("s1", "u1", "c1", 600, 2.0, 0.1, 0.05)])[0]
    assert "dos_attack" in _types(scorer, [("s2", "u1", "c1", 1200, 2.0, 0.1, 0.05)])[0]


def test_a_dos_window_completed_later_names_its_sessions_of_earlier_batches(scorer):
    first = scorer.score(_sessions([("s0", "u1", "c1", 0, 2.0, 0.1, 0.05), ("x", "u2", "c2", 0, 2.0, 0.1, 0.05)]))
    second = scorer.score(_sessions([("s1", "u1", "c1", 600, 2.0, 0.1, 0.05),
                                     ("long", "u1", "c1", 700, 90.0, 20.0, 8.0)]))
    assert first.earlier == [] and second.earlier == []
    third = scorer.score(_sessions([("s2", "u1", "c1", 1200, 2.0, 0.1, 0.05)]))
    [marks] = third.earlier
    assert marks.rule.type == "dos_attack" and marks.entity == "user_id"
    assert marks.ids.tolist() == ["u1", "u1"] and sorted(marks.times - T0) == [0.0, 600.0]
    assert marks.counts.tolist() == [3, 3] and marks.risk == third.risk[0]
    # A fourth within the hour of the second and third names them again (the store amends once).
    fourth = scorer.score(_sessions([("s3", "u1", "c1", 1500, 2.0, 0.1, 0.05)]))
    assert sorted(fourth.earlier[0].times - T0) == [0.0, 600.0, 1200.0]


def test_a_second_user_during_a_session_is_a_conflict_even_a_batch_later(scorer):
    assert _types(scorer, [("a", "u1", "c1", 0, 120, 20.0, 8.0)]) == [()]
    types = _types(scorer, [("b", "u2", "c1", HOUR, 30, 5.0, 2.0),     # c1 busy until 2 h
                            ("c", "u1", "c1", 1.5 * HOUR, 10, 2.0, 1.0),  # the same user: no conflict
                            ("d", "u3", "c2", HOUR, 30, 5.0, 2.0),        # another charger
                            ("e", "u4", "c1", 3 * HOUR, 30, 5.0, 2.0)])   # after it ended
    assert ["multi_user_conflict" in t for t in types] == [True, False, False, False]


def test_conflict_reason_names_the_other_user_and_until_when(scorer):
    scorer.score(_sessions([("a", "u1", "c1", 0, 120, 20.0, 8.0)]))
    event = scorer.score(_sessions([("b", "u2", "c1", HOUR, 30, 5.0, 2.0)])).anomalies()[0]
    assert "c1 still in use by user u1 until 2026-01-01T02:00:00Z" in event.explanation


def test_rules_agree_however_the_sessions_are_batched(ev_schema):
    rng = np.random.default_rng(3)
    rows = [(f"s{i}", f"u{rng.integers(5)}", f"c{rng.integers(3)}", float(i * 400),
             float(rng.choice([2.0, 30.0, 200.0])), float(rng.uniform(0, 70)), float(rng.uniform(0, 5)))
            for i in range(200)]
    whole = _rule_types(Scorer(ev_schema), rows)
    scorer = Scorer(ev_schema)
    pieces = [t for k in range(0, 200, 7) for t in _rule_types(scorer, rows[k:k + 7])]
    rule_types = ("billing_fraud", "multi_user_conflict")
    # Condition and overlap rules see the same evidence in any batching.
    assert any(whole)
    for a, b in zip(whole, pieces):
        assert [t for t in a if t in rule_types] == [t for t in b if t in rule_types]
