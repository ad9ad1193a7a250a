"""Runners: a fresh model per series, the engine's own flags for the default, banks by field count and length."""
from __future__ import annotations

import numpy as np
import pytest

from detectors.engine import Engine
from detectors.evaluation.corpora import LabelledSeries
from detectors.evaluation.report import judge_dataset
from detectors.evaluation.runners import DetectorRunner, EngineRunner, EveryRowRunner, HotellingT2Runner, make_runner
from detectors.registry import make

MEMBERS = ("zscore", "mad")


def labelled(name: str, rows: int, fields: int = 1, seed: int = 0, spike_at: int | None = None) -> LabelledSeries:
    rng = np.random.default_rng(seed)
    values = rng.normal(10.0, 1.0, size=(rows, fields))
    labels = np.zeros(rows, dtype=int)
    if spike_at is not None:
        values[spike_at] += 15.0
        labels[spike_at] = 1
    return LabelledSeries("toy", name, values, labels, warmup=rows // 4)


def test_engine_runner_gives_each_series_the_engine_verdicts_of_a_fresh_stream():
    series = [labelled("a", 300, spike_at=250), labelled("b", 120, seed=1, spike_at=100),
              labelled("c", 260, seed=2), labelled("d", 90, fields=2, seed=3, spike_at=80)]
    outputs = EngineRunner(members=MEMBERS).run(series)
    for s, out in zip(series, outputs):
        # The same series alone in a new engine, point by point, as the server scores it.
        engine = Engine(members=MEMBERS)
        fields = [f"f{j}" for j in range(s.n_features)]
        engine.add_stream("alone", fields)
        verdicts = [engine.step({"alone": dict(zip(fields, row))})["alone"] for row in s.values]
        assert np.allclose(out.scores, [v.score for v in verdicts], rtol=0, atol=1e-12)
        assert out.flags.tolist() == [v.is_anomaly for v in verdicts]
    assert outputs[0].flags[250] and outputs[1].flags[100] and outputs[3].flags[80]
    assert outputs[0].threshold == make("ensemble").threshold


def test_detector_runner_flags_at_the_detectors_own_threshold():
    series = [labelled("a", 200, spike_at=150), labelled("b", 150, seed=4)]
    detector = make("zscore")
    outputs = DetectorRunner(detector).run(series)
    for s, out in zip(series, outputs):
        assert np.array_equal(out.scores, make("zscore").score_series(s.values))
        assert np.array_equal(out.flags, out.scores >= detector.threshold)
    univariate = type("Univariate", (type(make("zscore")),), {"name": "univariate", "multivariate": False})
    with pytest.raises(ValueError, match="univariate"):
        DetectorRunner(univariate()).run([labelled("m", 50, fields=3)])


def test_banks_cost_about_the_longest_series_not_the_sum():
    series = [labelled(str(n), n) for n in (1000, 900, 800, 400, 300)] + [labelled("two", 50, fields=2)]
    assert HotellingT2Runner().ticks(series) == 1000 + 50
    assert make_runner("hst").ticks(series) == sum(s.n_rows for s in series)  # River: one point at a time


def test_t2_runner_flags_past_its_own_warmup_quantile():
    series = [labelled("a", 800, fields=3, spike_at=700)]
    out = HotellingT2Runner(alpha=0.01).run(series)[0]
    warmup_scores = out.scores[30 : series[0].warmup]  # past T²'s own history of max(30, 2 d) rows
    assert out.threshold == pytest.approx(np.quantile(warmup_scores, 0.99))
    assert out.flags[700] and np.array_equal(out.flags, out.scores > out.threshold)


def test_make_runner_names():
    assert isinstance(make_runner("ensemble"), EngineRunner)
    assert make_runner("t2").name == "t2" and make_runner("hst").name == "hst"
    assert make_runner("mad").name == "mad"
    assert isinstance(make_runner("every_row"), EveryRowRunner)
    with pytest.raises(ValueError, match="unknown detector"):
        make_runner("nosuch")


def test_the_floor_flags_every_row_and_earns_what_knowing_nothing_earns():
    series = [labelled("a", 400, spike_at=300), labelled("b", 200, seed=1, spike_at=150)]
    outputs = EveryRowRunner().run(series)
    assert all(out.flags.all() and np.ptp(out.scores) == 0 for out in outputs)
    pooled, _ = judge_dataset("toy", "every_row", series, outputs)
    share = 2 / sum(s.n_rows - s.warmup for s in series)
    assert pooled.event.prf()[2] == 1.0  # the event F1's blind spot
    assert pooled.point.f1 == pytest.approx(2 * share / (1 + share))
    assert pooled.row()["composite_f1"] == pytest.approx(pooled.point.f1)
    assert pooled.roc_auc == 0.5
