"""Labelled series for evaluation: the shared corpora (SMD, SMAP, MSL, MGAB) and NAB in one shape.

Every series becomes a :class:`LabelledSeries`: its values in time order,
one label per row, and how many leading rows are warm-up.  The protocol is
the same for every dataset: a fresh model streams over the whole series in
time order; the warm-up rows are scored (the model learns from them) but not
judged; the remaining rows are judged against the labels.

* The shared corpora (``../shared/corpora``, see its README) store one
  gzip-compressed CSV per series with columns ``timestamp, f0..fN, label,
  split``; warm-up rows are those with ``split == "train"`` (always first).
* NAB (``../shared/nab``) stores ``timestamp, value`` files and label windows;
  warm-up rows are NAB's probationary period, which NAB does not score either.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .nab_corpus import NabFile, load_corpus

__all__ = ["LabelledSeries", "DATASETS", "CORPUS_OF", "load_dataset", "load_corpus_file", "cut_rows"]


@dataclass(eq=False)
class LabelledSeries:
    """One labelled series.

    Parameters
    ----------
    dataset : str
        Short dataset name (``"smd"``, ``"smap"``, ``"msl"``, ``"mgab"``, ``"nab"``).
    name : str
        The series' name inside its dataset.
    values : ndarray, shape (T, d)
        Feature values in time order.
    labels : ndarray, shape (T,)
        1 inside a labelled anomaly, else 0 (always 0 on warm-up rows of the corpora).
    warmup : int
        Leading rows that are scored but not judged.
    nab_file : NabFile, optional
        The NAB file the series came from, for NAB's own scorer.
    """

    dataset: str
    name: str
    values: np.ndarray
    labels: np.ndarray
    warmup: int
    nab_file: NabFile | None = field(default=None, repr=False)

    def __post_init__(self):
        self.values = np.asarray(self.values, dtype=float)
        if self.values.ndim == 1:
            self.values = self.values[:, None]
        self.labels = np.asarray(self.labels, dtype=np.int8)
        if self.values.ndim != 2 or self.labels.shape != (len(self.values),):
            raise ValueError(f"{self.dataset}/{self.name}: need values (T, d) and one label per row")
        if not np.isin(self.labels, (0, 1)).all():
            raise ValueError(f"{self.dataset}/{self.name}: labels must be 0 or 1")
        if not 0 <= self.warmup <= len(self.values):
            raise ValueError(f"{self.dataset}/{self.name}: warm-up {self.warmup} outside 0..{len(self.values)}")
        self.warmup = int(self.warmup)

    @property
    def n_rows(self) -> int:
        return len(self.values)

    @property
    def n_features(self) -> int:
        return self.values.shape[1]

    @property
    def judged(self) -> slice:
        """The rows judged against the labels."""
        return slice(self.warmup, self.n_rows)

    def __repr__(self) -> str:
        return (f"LabelledSeries({self.dataset}/{self.name}, rows={self.n_rows}, features={self.n_features}, "
                f"warmup={self.warmup}, labelled={int(self.labels.sum())})")


def load_corpus_file(path, dataset: str, name: str) -> LabelledSeries:
    """Read one series of the shared corpora (``timestamp, f0..fN, label, split``, gzip CSV).

    The rows must be in time order (``timestamp`` 0..N-1) with every
    ``train`` row before every ``test`` row, as the corpora's README promises;
    anything else is refused rather than reordered.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such series file: {path}")
    frame = pd.read_csv(path)
    features = [c for c in frame.columns if c.startswith("f") and c[1:].isdigit()]
    missing = {"timestamp", "label", "split"} - set(frame.columns)
    if missing or not features:
        raise ValueError(f"{path}: expected columns timestamp, f0..fN, label, split; got {list(frame.columns)}")
    if not np.array_equal(frame["timestamp"].to_numpy(), np.arange(len(frame))):
        raise ValueError(f"{path}: timestamps are not 0..{len(frame) - 1} in order")
    train = (frame["split"] == "train").to_numpy()
    warmup = int(train.sum())
    if train[warmup:].any() or not (frame["split"].isin(("train", "test"))).all():
        raise ValueError(f"{path}: every 'train' row must come before every 'test' row")
    return LabelledSeries(dataset, name, frame[features].to_numpy(dtype=float), frame["label"].to_numpy(), warmup)


def _series_table(folder: Path) -> pd.DataFrame:
    table = folder / "series.csv"
    if not table.is_file():
        raise ValueError(f"no series table at {table} (is --corpora the shared corpora folder?)")
    return pd.read_csv(table)


def _corpus_loader(folder: str, spacecraft: str | None = None) -> Callable:
    def load(root: Path, max_series: int | None = None) -> list[LabelledSeries]:
        base = Path(root) / folder
        table = _series_table(base)
        if spacecraft is not None:
            table = table[table["spacecraft"] == spacecraft]
        dataset = spacecraft.lower() if spacecraft else folder
        rows = table.head(max_series) if max_series else table
        return [load_corpus_file(base / row.file, dataset, row.series) for row in rows.itertuples()]
    return load


def _load_nab(root: Path, max_series: int | None = None) -> list[LabelledSeries]:
    files = load_corpus(root)
    if max_series:
        files = files[:max_series]
    return [LabelledSeries("nab", f.path, f.values, f.labels, f.probation, nab_file=f) for f in files]


#: Dataset name -> loader(root, max_series); root is the corpora folder, or the NAB folder for ``nab``.
DATASETS: dict[str, Callable] = {
    "nab": _load_nab,
    "smd": _corpus_loader("smd"),
    "smap": _corpus_loader("smap_msl", "SMAP"),
    "msl": _corpus_loader("smap_msl", "MSL"),
    "mgab": _corpus_loader("mgab"),
}
#: The folder (corpus) each dataset comes from.
CORPUS_OF = {"nab": "nab", "smd": "smd", "smap": "smap_msl", "msl": "smap_msl", "mgab": "mgab"}


def load_dataset(name: str, root, max_series: int | None = None, max_rows: int | None = None) -> list[LabelledSeries]:
    """Load a dataset's series (the first ``max_series`` of its table), each cut to ``max_rows`` rows."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    series = DATASETS[name](Path(root), max_series)
    return [cut_rows(s, max_rows) for s in series] if max_rows else series


def cut_rows(series: LabelledSeries, max_rows: int) -> LabelledSeries:
    """Keep at most ``max_rows`` rows: up to half of them the last warm-up rows, the rest the first judged rows.

    For quick runs while developing; the judged part keeps its start, so the
    first labelled events stay in.

    >>> s = LabelledSeries("toy", "a", np.arange(10.0), [0] * 6 + [1, 0, 0, 0], warmup=5)
    >>> c = cut_rows(s, 4)
    >>> c.values[:, 0].tolist(), c.labels.tolist(), c.warmup
    ([3.0, 4.0, 5.0, 6.0], [0, 0, 0, 1], 2)
    """
    if max_rows < 2:
        raise ValueError("max_rows must be at least 2")
    if series.n_rows <= max_rows:
        return series
    kept_warmup = min(series.warmup, max_rows // 2)
    start = series.warmup - kept_warmup
    stop = min(series.n_rows, start + max_rows)
    nab_file = series.nab_file
    if nab_file is not None:
        windows = [(max(a, start) - start, min(b, stop - 1) - start) for a, b in nab_file.windows
                   if b >= start and a < stop]
        nab_file = NabFile(nab_file.path, nab_file.category, nab_file.name, nab_file.timestamps[start:stop],
                           nab_file.values[start:stop], windows, kept_warmup)
    return LabelledSeries(series.dataset, series.name, series.values[start:stop], series.labels[start:stop],
                          kept_warmup, nab_file)
