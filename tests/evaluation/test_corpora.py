"""Loading labelled series: corpora written by the test, cutting rows, and one series of each real corpus."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detectors.evaluation.corpora import DATASETS, LabelledSeries, cut_rows, load_corpus_file, load_dataset
from detectors.evaluation.metrics import events_of
from detectors.evaluation.nab_corpus import NabFile

from evaluation_helpers import write_series

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CORPORA = SHARED / "corpora"


def test_every_dataset_of_the_tiny_corpora_loads_in_table_order(tiny_corpora, tiny_nab):
    smd = load_dataset("smd", tiny_corpora)
    assert [s.name for s in smd] == ["machine-a", "machine-b"]
    assert [s.n_rows for s in smd] == [400, 363] and {s.n_features for s in smd} == {3}
    assert all(s.warmup == 200 and s.labels[:200].sum() == 0 and s.labels.sum() == 15 for s in smd)
    smap, msl = load_dataset("smap", tiny_corpora), load_dataset("msl", tiny_corpora)
    assert [s.name for s in smap] == ["A-1", "A-2"] and [s.name for s in msl] == ["M-1"]
    assert (smap[0].dataset, msl[0].dataset, msl[0].n_features) == ("smap", "msl", 4)
    assert load_dataset("mgab", tiny_corpora)[0].values.shape == (400, 1)
    assert len(load_dataset("smd", tiny_corpora, max_series=1)) == 1
    nab = load_dataset("nab", tiny_nab)
    jump = next(s for s in nab if s.name == "catA/jump.csv")
    assert jump.warmup == 45 and jump.labels.sum() == 10 and jump.labels[250] == 1  # probation 15 % of 300
    assert isinstance(jump.nab_file, NabFile)


def test_cut_rows_keeps_the_warmup_end_and_the_judged_start(tiny_corpora, tiny_nab):
    cut = load_dataset("smd", tiny_corpora, max_rows=120)
    assert all(s.n_rows == 120 and s.warmup == 60 for s in cut)
    full = load_dataset("smd", tiny_corpora)[0]
    assert np.array_equal(cut[0].values, full.values[140:260])
    assert cut[0].labels.sum() == 10  # the first event (judged rows 50-59) stays in
    nab = [s for s in load_dataset("nab", tiny_nab, max_rows=100) if s.name == "catA/jump.csv"][0]
    assert nab.nab_file.n_rows == 100 and nab.nab_file.probation == 45 and nab.nab_file.windows == ()
    short = LabelledSeries("toy", "short", np.arange(5.0), [0] * 5, warmup=2)
    assert cut_rows(short, 10) is short


def test_refuses_train_rows_after_test_rows_and_unknown_datasets(tmp_path):
    path = tmp_path / "bad.csv.gz"
    write_series(path, np.zeros(6), np.zeros(6, int), train_rows=3)
    frame = pd.read_csv(path)
    frame.loc[4, "split"] = "train"
    frame.to_csv(path, index=False, compression="gzip")
    with pytest.raises(ValueError, match="before every 'test' row"):
        load_corpus_file(path, "toy", "bad")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("yahoo", tmp_path)
    with pytest.raises(ValueError, match="no series table"):
        load_dataset("smd", tmp_path)


@pytest.mark.skipif(not CORPORA.is_dir(), reason=f"the shared corpora are not at {CORPORA} (expected <repo>/../shared/corpora)")
@pytest.mark.parametrize("dataset, folder, fields", [("smd", "smd", 38), ("smap", "smap_msl", 25),
                                                     ("msl", "smap_msl", 55), ("mgab", "mgab", 1)])
def test_one_series_of_each_real_corpus_matches_its_table(dataset, folder, fields):
    series = load_dataset(dataset, CORPORA, max_series=1)[0]
    table = pd.read_csv(CORPORA / folder / "series.csv")
    row = table[table.series == series.name].iloc[0]
    assert series.values.shape == (row.rows, fields) and np.isfinite(series.values).all()
    assert series.warmup == row.train_rows and series.n_rows - series.warmup == row.test_rows
    assert series.labels[: series.warmup].sum() == 0
    assert series.labels.sum() == row.anomaly_rows
    assert len(events_of(series.labels)) == row.events


@pytest.mark.skipif(not (SHARED / "nab").is_dir(), reason=f"the NAB corpus is not at {SHARED / 'nab'}")
def test_a_nab_series_has_its_probation_as_warmup_and_its_windows_as_events():
    series = next(s for s in load_dataset("nab", SHARED / "nab") if s.name == "realKnownCause/nyc_taxi.csv")
    assert series.values.shape == (10320, 1)
    assert series.warmup == series.nab_file.probation == 750
    assert len(events_of(series.labels)) == len(series.nab_file.windows) == 5


def test_every_dataset_has_a_loader():
    assert set(DATASETS) == {"nab", "smd", "smap", "msl", "mgab"}
