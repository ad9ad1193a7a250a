"""``python -m detectors score``, run as a real subprocess (``evaluate``: tests/evaluation/)."""
from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detectors import REGISTRY

REPO = Path(__file__).resolve().parents[2]

# A detector outside the registry, loaded by the command line as ``toydetector:RunningZ``.
TOY_SOURCE = '''
import numpy as np
from detectors.base import Detector

class RunningZ(Detector):
    """Largest |z| of a field against its running mean and variance, squashed to [0, 1)."""
    name = "runningz"

    def __init__(self, *, warmup=5, threshold=0.9):
        super().__init__(warmup=warmup, threshold=threshold)

    def _allocate(self, n_streams, n_features):
        self.count_ = np.zeros(n_streams)
        self.mean_ = np.zeros((n_streams, n_features))
        self.sum_sq_ = np.zeros((n_streams, n_features))

    def _score_and_learn(self, X, present):
        variance = self.sum_sq_ / np.maximum(self.count_ - 1, 1)[:, None]
        z = np.abs(X - self.mean_) / np.sqrt(variance + 1e-9)
        score = 1.0 - np.exp(-np.nanmax(z, axis=1) / 4.0)
        self.count_[present] += 1
        delta = X[present] - self.mean_[present]
        self.mean_[present] += delta / self.count_[present][:, None]
        self.sum_sq_[present] += delta * (X[present] - self.mean_[present])
        return score

class Univariate(RunningZ):
    name = "univariate"
    multivariate = False
'''


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    (folder / "toydetector.py").write_text(TOY_SOURCE)
    return folder


@pytest.fixture(scope="module")
def toy(toy_dir):
    spec = importlib.util.spec_from_file_location("toydetector", toy_dir / "toydetector.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(toy_dir, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(toy_dir), str(REPO)]))
    return subprocess.run([sys.executable, "-m", "detectors", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(result):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def nab_style_csv(path, n_rows=80, spike_at=60):
    stamps = pd.date_range("2021-03-01", periods=n_rows, freq="5min").strftime("%Y-%m-%d %H:%M:%S")
    values = np.round(np.random.default_rng(3).normal(10, 1, n_rows), 3)
    values[spike_at] = 40.0
    pd.DataFrame({"timestamp": stamps, "value": values}).to_csv(path, index=False)
    return values


# -- score: good input ------------------------------------------------------------
def test_score_nab_style_file(tmp_path, toy_dir, toy):
    source = tmp_path / "nab.csv"
    values = nab_style_csv(source)
    result = run_cli(toy_dir, "score", source, "--detector", "toydetector:RunningZ")
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(io.StringIO(result.stdout), dtype=str)
    original = pd.read_csv(source, dtype=str)
    assert list(out.columns) == ["timestamp", "value", "anomaly_score", "is_anomaly", "alert"]
    pd.testing.assert_frame_equal(out[["timestamp", "value"]], original)  # echoed verbatim
    scores = out.anomaly_score.astype(float).to_numpy()
    np.testing.assert_array_equal(scores, toy.RunningZ().score_series(values))  # causal, row by row
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_array_equal(out.is_anomaly.astype(int), (scores >= 0.9).astype(int))
    assert out.is_anomaly.iloc[60] == "1" and out.alert.iloc[60] == "1"
    assert scores.argmax() == 60
    # An alert starts each run of anomalous rows, and only that.
    anomalous = out.is_anomaly.astype(int).to_numpy()
    np.testing.assert_array_equal(out.alert.astype(int), anomalous & ~np.r_[0, anomalous[:-1]])


def test_score_multivariate_file(tmp_path, toy_dir, toy):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({
        "time": np.arange(50),
        "cpu": np.round(rng.normal(0, 1, 50), 4),
        "memory": np.round(rng.normal(5, 1, 50), 4),
        "host": "web-1",
    })
    frame.loc[40, "memory"] = 30.0
    frame.to_csv(tmp_path / "multi.csv", index=False)
    result = run_cli(toy_dir, "score", tmp_path / "multi.csv", "--detector", "toydetector:RunningZ",
                     "--time-col", "time", "--value-col", "cpu", "--value-col", "memory")
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(io.StringIO(result.stdout))
    assert list(out.columns) == ["time", "cpu", "memory", "host", "anomaly_score", "is_anomaly", "alert"]
    expected = toy.RunningZ().score_series(frame[["cpu", "memory"]].to_numpy())
    np.testing.assert_array_equal(out.anomaly_score.to_numpy(), expected)
    assert out.is_anomaly[40] == 1


def test_score_treats_an_empty_cell_as_no_point(tmp_path, toy_dir, toy):
    source = tmp_path / "gap.csv"
    values = nab_style_csv(source)
    frame = pd.read_csv(source, dtype=str)
    frame.loc[30, "value"] = ""
    frame.to_csv(source, index=False)
    result = run_cli(toy_dir, "score", source, "--detector", "toydetector:RunningZ")
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(io.StringIO(result.stdout))
    values[30] = np.nan
    np.testing.assert_array_equal(out.anomaly_score.to_numpy(), toy.RunningZ().score_series(values))
    assert out.anomaly_score[30] == 0.0 and len(out) == 80


@pytest.mark.skipif("ensemble" not in REGISTRY, reason="the default detector 'ensemble' is not registered yet")
def test_score_uses_the_default_detector(tmp_path, toy_dir):
    nab_style_csv(tmp_path / "nab.csv")
    result = run_cli(toy_dir, "score", tmp_path / "nab.csv")
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(io.StringIO(result.stdout)).anomaly_score.between(0, 1).all()


@pytest.mark.parametrize("taken", [["is_anomaly"], ["alert"], ["anomaly_score", "is_anomaly", "alert"]])
def test_score_keeps_input_columns_named_like_its_output(tmp_path, toy_dir, toy, taken):
    """Issue 7 defect 9: a labelled file's own is_anomaly column is never overwritten."""
    source = tmp_path / "labelled.csv"
    values = nab_style_csv(source)
    frame = pd.read_csv(source, dtype=str)
    for column in taken:
        frame[column] = "label-" + frame.index.astype(str)
    frame.to_csv(source, index=False)
    result = run_cli(toy_dir, "score", source, "--detector", "toydetector:RunningZ")
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(io.StringIO(result.stdout), dtype=str)
    assert list(out.columns) == list(frame.columns) + ["scored_anomaly_score", "scored_is_anomaly", "scored_alert"]
    pd.testing.assert_frame_equal(out[list(frame.columns)], frame)  # the input's columns, untouched
    np.testing.assert_array_equal(out.scored_anomaly_score.astype(float), toy.RunningZ().score_series(values))
    note = result.stderr.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("note: ") and "scored_is_anomaly" in note[0]


@pytest.mark.skipif("ensemble" not in REGISTRY, reason="the default detector 'ensemble' is not registered yet")
@pytest.mark.parametrize("n_fields", [9, 19])
def test_many_value_columns_score_or_fail_in_one_line(tmp_path, toy_dir, n_fields):
    """Issue 7 defect 9: many --value-col never end in a traceback (a one-line error while a member caps fields)."""
    rng = np.random.default_rng(n_fields)
    columns = [f"f{i}" for i in range(n_fields)]
    frame = pd.DataFrame(np.round(rng.normal(0, 1, (120, n_fields)), 4), columns=columns)
    frame.insert(0, "timestamp", np.arange(120))
    frame.to_csv(tmp_path / "wide.csv", index=False)
    args = ["score", tmp_path / "wide.csv"] + [a for c in columns for a in ("--value-col", c)]
    result = run_cli(toy_dir, *args)
    if result.returncode == 0:
        out = pd.read_csv(io.StringIO(result.stdout))
        assert len(out) == 120 and out.anomaly_score.between(0, 1).all()
    else:
        assert "features" in assert_one_line_error(result)


# -- score: bad input -------------------------------------------------------------
def test_missing_file(tmp_path, toy_dir):
    line = assert_one_line_error(run_cli(toy_dir, "score", tmp_path / "absent.csv", "--detector", "toydetector:RunningZ"))
    assert "no such file" in line


def test_missing_column(tmp_path, toy_dir):
    nab_style_csv(tmp_path / "nab.csv")
    line = assert_one_line_error(run_cli(toy_dir, "score", tmp_path / "nab.csv", "--detector", "toydetector:RunningZ",
                                         "--value-col", "cpu"))
    assert "'cpu'" in line


def test_missing_time_column(tmp_path, toy_dir):
    pd.DataFrame({"value": [1.0, 2.0]}).to_csv(tmp_path / "no_time.csv", index=False)
    line = assert_one_line_error(run_cli(toy_dir, "score", tmp_path / "no_time.csv", "--detector", "toydetector:RunningZ"))
    assert "'timestamp'" in line


def test_non_numeric_value(tmp_path, toy_dir):
    nab_style_csv(tmp_path / "nab.csv")
    frame = pd.read_csv(tmp_path / "nab.csv", dtype=str)
    frame.loc[7, "value"] = "twelve"
    frame.to_csv(tmp_path / "nab.csv", index=False)
    line = assert_one_line_error(run_cli(toy_dir, "score", tmp_path / "nab.csv", "--detector", "toydetector:RunningZ"))
    assert "line 9" in line and "'twelve'" in line


@pytest.mark.parametrize("content", ["", "timestamp,value\n"], ids=["no bytes", "header only"])
def test_empty_file(tmp_path, toy_dir, content):
    (tmp_path / "empty.csv").write_text(content)
    line = assert_one_line_error(run_cli(toy_dir, "score", tmp_path / "empty.csv", "--detector", "toydetector:RunningZ"))
    assert "empty" in line or "no data rows" in line


@pytest.mark.parametrize("name", ["no-such-detector", "toydetector:Missing", "no_such_module:Thing"])
def test_unknown_detector(tmp_path, toy_dir, name):
    nab_style_csv(tmp_path / "nab.csv")
    line = assert_one_line_error(run_cli(toy_dir, "score", tmp_path / "nab.csv", "--detector", name))
    assert "detector" in line


def test_univariate_detector_refuses_several_columns(tmp_path, toy_dir):
    pd.DataFrame({"timestamp": [1, 2], "a": [1.0, 2.0], "b": [3.0, 4.0]}).to_csv(tmp_path / "two.csv", index=False)
    line = assert_one_line_error(run_cli(toy_dir, "score", tmp_path / "two.csv", "--detector", "toydetector:Univariate",
                                         "--value-col", "a", "--value-col", "b"))
    assert "one value column" in line


def test_usage_error_is_one_line(toy_dir):
    assert "arguments are required" in assert_one_line_error(run_cli(toy_dir, "score"))
