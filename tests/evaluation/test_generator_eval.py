"""The default engine judged on the synthetic streams: counting flags and caught anomalies."""
import subprocess
import sys
from pathlib import Path

import pytest

from detectors.engine import Engine
from detectors.evaluation.generator_eval import evaluate_on_generators, format_report

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = ("zscore", "mad")


def test_counts_are_consistent_and_cover_every_generator():
    rows = evaluate_on_generators(points=700, engine=Engine(members=MEMBERS))
    assert len(rows) == 9
    for r in rows:
        assert r.points == 400
        assert 0 <= r.true_alerts <= r.alerts and 0 <= r.caught <= r.episodes
        assert 0 <= r.true_marked <= r.marked <= r.points and r.false_alarms == r.alerts - r.true_alerts
    report = format_report(rows)
    assert "alerts" in report and all(r.stream in report for r in rows)


def test_a_zero_threshold_alerts_and_marks_on_every_stream():
    # With episodes, a threshold of 0 opens one at once; it ends by hysteresis when the members'
    # evidence is back to normal, so not every point is marked, but every stream alerts.
    engine = Engine(members=MEMBERS, ensemble_params={"threshold": 0.0, "warmup": 1})
    rows = evaluate_on_generators(points=900, anomaly_rate=0.05, engine=engine)
    assert sum(r.episodes for r in rows) > 0
    for r in rows:
        assert r.alerts > 0 and r.marked > 0
        assert r.caught <= r.episodes


def test_clean_streams_have_nothing_to_catch():
    rows = evaluate_on_generators(points=500, anomaly_rate=0.0, engine=Engine(members=MEMBERS))
    assert all(r.episodes == 0 and r.true_alerts == 0 and r.true_marked == 0 for r in rows)


def test_too_few_points_is_refused():
    with pytest.raises(ValueError, match="points must exceed"):
        evaluate_on_generators(points=300)


def test_command_prints_the_report_and_refuses_bad_input():
    run = [sys.executable, "-m", "detectors", "generators"]
    ok = subprocess.run(run + ["--points", "400"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "injected anomalies caught" in ok.stdout and "iot_sensors" in ok.stdout
    bad = subprocess.run(run + ["--points", "10"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
