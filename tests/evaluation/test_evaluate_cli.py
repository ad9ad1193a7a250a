"""``python -m detectors evaluate``, run as a real subprocess on corpora written by the test."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]

# A univariate-only detector outside the registry: it must fail cleanly on multivariate datasets.
TOY_SOURCE = '''
import numpy as np
from detectors.base import Detector

class LastJump(Detector):
    """|x - previous x|, squashed to [0, 1)."""
    name = "lastjump"
    multivariate = False

    def __init__(self, *, warmup=5, threshold=0.9):
        super().__init__(warmup=warmup, threshold=threshold)

    def _allocate(self, n_streams, n_features):
        self.last_ = np.full((n_streams, n_features), np.nan)

    def _score_and_learn(self, X, present):
        score = 1.0 - np.exp(-np.nan_to_num(np.abs(X - self.last_).max(axis=1)) / 4.0)
        self.last_[present] = X[present]
        return score
'''


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    (folder / "toyjump.py").write_text(TOY_SOURCE)
    return folder


def run_cli(toy_dir, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(toy_dir), str(REPO)]))
    return subprocess.run([sys.executable, "-m", "detectors", "evaluate", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_evaluate_scores_every_dataset_with_references_and_writes_results(tmp_path, toy_dir, tiny_corpora, tiny_nab):
    out = tmp_path / "out"
    result = run_cli(toy_dir, "--nab", tiny_nab, "--corpora", tiny_corpora, "--out", out,
                     "--detector", "toyjump:LastJump,t2", "--detector", "hst")
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(set(summary.dataset)) == ["mgab", "msl", "nab", "smap", "smd"]
    assert list(summary.detector.drop_duplicates()) == ["lastjump", "t2", "hst"]
    # The univariate toy fails on multivariate data: reported per dataset, and the run went on.
    failures = summary[summary.error.notna()]
    assert sorted(failures.dataset) == ["msl", "smap", "smd"] and set(failures.detector) == {"lastjump"}
    assert "univariate" in failures.error.iloc[0]
    assert "failed" in result.stdout and "univariate" in result.stdout
    # Every metric has a column; the inflating and oracle ones say so in their names.
    for column in ("point_precision", "point_recall", "point_f1", "event_precision", "event_recall", "event_f1",
                   "composite_f1", "point_adjusted_f1_inflating", "roc_auc", "pr_auc", "oracle_best_f1", "seconds",
                   "flag_rule"):
        assert column in summary.columns
    ok = summary[summary.error.isna()]
    assert ok.roc_auc.between(0, 1).all() and ok.oracle_best_f1.between(0, 1).all()
    # The planted shifts are 12 sigma: T² finds every event in smd.
    t2 = summary[(summary.dataset == "smd") & (summary.detector == "t2")].iloc[0]
    assert t2.event_recall == 1.0 and t2.roc_auc > 0.9 and t2.events == 4
    nab = summary[(summary.dataset == "nab") & (summary.detector == "lastjump")].iloc[0]
    assert 0 <= nab.nab_standard <= 100
    series = pd.read_csv(out / "series.csv")
    assert set(series.series) >= {"machine-a", "machine-b", "A-1", "A-2", "M-1", "mgab_1", "catA/jump.csv"}
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert settings["alpha"] == 0.001
    for dataset in ("nab", "smd", "smap", "msl", "mgab"):
        assert (out / f"{dataset}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "nab" / "t2" / "catA" / "t2_jump.csv").is_file()
    # Where each profile's NAB score came from, file by file.
    files = pd.read_csv(out / "nab" / "lastjump_files.csv")
    assert sorted(files.profile.unique()) == ["reward_low_FN_rate", "reward_low_FP_rate", "standard"]
    assert {"path", "raw", "detected", "missed", "false_alarms", "threshold"} <= set(files.columns)
    standard = files[files.profile == "standard"]
    assert standard.path.is_unique and (standard.detected + standard.missed).sum() > 0
    # The printed table: one row per dataset x detector, the notes and alpha.
    assert "ORACLE" in result.stdout and "INFLATES" in result.stdout and "alpha = 0.001" in result.stdout
    table = result.stdout.split("dataset detector", 1)[1]
    assert sum(line.startswith(("nab ", "smd ", "smap ", "msl ", "mgab ")) for line in table.splitlines()) == 15


def test_evaluate_cuts_series_and_rows_and_skips_plots(tmp_path, toy_dir, tiny_corpora):
    out = tmp_path / "out"
    result = run_cli(toy_dir, "--corpora", tiny_corpora, "--dataset", "smd", "--detector", "t2",
                     "--max-series", "1", "--max-rows", "300", "--no-plots", "--alpha", "0.01", "--out", out)
    assert result.returncode == 0, result.stderr
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert (row.n_series, row.rows_judged) == (1, 150)  # 300 rows, half of them warm-up
    assert "not comparable" in result.stdout and "alpha = 0.01" in result.stdout
    assert not list(out.glob("*.png"))


def test_evaluate_bad_input_is_one_line_error(tmp_path, toy_dir, tiny_corpora):
    assert "unknown dataset 'smx'" in one_line_error(run_cli(toy_dir, "--dataset", "smd,smx", "--out", tmp_path))
    assert "unknown detector" in one_line_error(
        run_cli(toy_dir, "--corpora", tiny_corpora, "--dataset", "smd", "--detector", "nosuch", "--out", tmp_path))
    line = one_line_error(run_cli(toy_dir, "--nab", tmp_path / "nowhere", "--dataset", "nab", "--out", tmp_path))
    assert "no folder" in line and "--nab" in line
    assert "alpha" in one_line_error(run_cli(toy_dir, "--alpha", "1.5", "--out", tmp_path))
    one_line_error(run_cli(toy_dir, "--profile", "lenient", "--out", tmp_path))
