"""The EV charging generator: seeded, realistic queues, labelled injections."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from generators.ev_charging import COLUMNS, KINDS, EVChargingGenerator


def test_same_seed_same_sessions_different_seed_different():
    a = EVChargingGenerator(seed=4).days(3)
    pd.testing.assert_frame_equal(a, EVChargingGenerator(seed=4).days(3))
    assert not a["energy"].equals(EVChargingGenerator(seed=5).days(3)["energy"])
    assert list(a.columns) == list(COLUMNS) and a["session_id"].is_unique


def test_scale_and_every_kind_is_injected():
    sessions = EVChargingGenerator(seed=0).days(10)
    assert sessions["charger_id"].nunique() == 100 and sessions["user_id"].nunique() > 800
    counts = sessions["label"].value_counts()
    assert all(counts.get(kind, 0) > 5 for kind in KINDS)
    assert counts[""] > 0.95 * len(sessions)


def test_normal_sessions_never_overlap_on_a_charger():
    s = EVChargingGenerator(seed=2).days(7)
    normal = s[s["label"] != "multi_user_conflict"].sort_values(["charger_id", "start_time"])
    end = normal["start_time"] + normal["duration"] * 60
    same = normal["charger_id"].to_numpy()[1:] == normal["charger_id"].to_numpy()[:-1]
    assert (normal["start_time"].to_numpy()[1:][same] >= end.to_numpy()[:-1][same]).all()


def test_injections_look_like_their_kind():
    s = EVChargingGenerator(seed=1).days(10)
    dos = s[s["label"] == "dos_attack"]
    assert (dos["duration"] < 5).all() and (dos.groupby("user_id").size() >= 3).all()
    fraud = s[s["label"] == "billing_fraud"]
    normal = s[(s["label"] == "") & (s["energy"] > 2)]
    assert (fraud["payment"] / fraud["energy"]).median() < 0.3 * (normal["payment"] / normal["energy"]).median()


def test_a_restored_state_continues_with_the_same_sessions():
    """A feed restarted from a saved state makes exactly the sessions the first run would have."""
    first = EVChargingGenerator(seed=5)
    first.days(3)
    saved = json.loads(json.dumps(first.state()))  # what a restart reads back
    expected = first.days(2)
    resumed = EVChargingGenerator(seed=5).restore(saved)
    pd.testing.assert_frame_equal(resumed.days(2), expected)
    assert resumed.day_ == first.day_ and resumed.sessions_made_ == first.sessions_made_


def test_a_state_of_another_generator_is_refused():
    state = EVChargingGenerator(seed=5).state()
    with pytest.raises(ValueError, match="cannot continue"):
        EVChargingGenerator(seed=6).restore(state)
    with pytest.raises(ValueError, match="malformed"):
        EVChargingGenerator(seed=5).restore({**state, "free_at": [0.0]})
