"""Small labelled corpora written by the tests in the shared corpora's and NAB's formats."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def write_series(path: Path, values: np.ndarray, labels: np.ndarray, train_rows: int) -> None:
    """One series in the corpora's format: gzip CSV ``timestamp, f0..fN, label, split``."""
    values = values.reshape(len(values), -1)
    frame = pd.DataFrame(values, columns=[f"f{j}" for j in range(values.shape[1])])
    frame.insert(0, "timestamp", np.arange(len(values)))
    frame["label"] = labels
    frame["split"] = np.where(np.arange(len(values)) < train_rows, "train", "test")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, compression="gzip")


def spiky(rng, rows: int, fields: int, train_rows: int, events) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian noise with a large shift on every row of each ``(start, stop)`` event."""
    values = rng.normal(size=(rows, fields))
    labels = np.zeros(rows, dtype=int)
    for start, stop in events:
        assert start >= train_rows
        values[start:stop] += 12.0
        labels[start:stop] = 1
    return values, labels


def write_corpora(root: Path, rows: int = 400, train_rows: int = 200) -> Path:
    """Datasets smd (3 fields, 2 series), smap/msl (2 and 4 fields), mgab (1 field), in the shared layout."""
    rng = np.random.default_rng(21)
    layout = {"smd": [("machine-a", 3), ("machine-b", 3)],
              "smap_msl": [("SMAP", "A-1", 2), ("SMAP", "A-2", 2), ("MSL", "M-1", 4)],
              "mgab": [("mgab_1", 1)]}
    for folder, entries in layout.items():
        records = []
        for entry in entries:
            spacecraft, name, fields = entry if len(entry) == 3 else (None, *entry)
            n = rows - 37 * len(records)  # series of one dataset differ in length
            values, labels = spiky(rng, n, fields, train_rows, [(train_rows + 50, train_rows + 60), (n - 40, n - 35)])
            file = f"data/{spacecraft + '/' if spacecraft else ''}{name}.csv.gz"
            write_series(root / folder / file, values, labels, train_rows)
            record = {"series": name, "file": file, "rows": n, "train_rows": train_rows, "features": fields}
            records.append({"spacecraft": spacecraft, **record} if spacecraft else record)
        pd.DataFrame(records).to_csv(root / folder / "series.csv", index=False)
    return root


def write_nab(root: Path, rows: int = 300) -> Path:
    """Two NAB-style files: one with a jump inside its window, one without windows."""
    rng = np.random.default_rng(11)
    stamps = pd.date_range("2022-01-01", periods=rows, freq="5min").strftime("%Y-%m-%d %H:%M:%S")
    jump = np.round(rng.normal(0, 1, rows), 3)
    jump[250:] += 25
    flat = np.round(rng.normal(0, 1, rows), 3)
    for relative, values in (("catA/jump.csv", jump), ("catB/flat.csv", flat)):
        (root / "data" / relative).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": stamps, "value": values}).to_csv(root / "data" / relative, index=False)
    (root / "labels").mkdir(parents=True)
    windows = {"catA/jump.csv": [[stamps[250] + ".000000", stamps[259] + ".000000"]], "catB/flat.csv": []}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root


@pytest.fixture(scope="session")
def tiny_corpora(tmp_path_factory) -> Path:
    return write_corpora(tmp_path_factory.mktemp("corpora"))


@pytest.fixture(scope="session")
def tiny_nab(tmp_path_factory) -> Path:
    return write_nab(tmp_path_factory.mktemp("nab"))
