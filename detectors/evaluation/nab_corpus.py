"""Load the Numenta Anomaly Benchmark (NAB) corpus: data files, anomaly windows, probation.

The corpus is a folder ``<nab>/data/<category>/<file>.csv`` (columns
``timestamp,value``) plus ``<nab>/labels/combined_windows.json``, which maps each
relative data path to its anomaly windows ``[start, end]`` (timestamps, both
inclusive).  The scorer pairs detector output with data rows **by position**, so
rows are kept exactly in file order: never sorted, de-duplicated or resampled.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["NabFile", "load_corpus", "probation_length", "LABELS_FILE", "PROBATION_FRACTION", "PROBATION_CAP"]

LABELS_FILE = Path("labels") / "combined_windows.json"
PROBATION_FRACTION = 0.15
#: NAB caps the probationary period at 15% of 5,000 rows.
PROBATION_CAP = 750


def probation_length(n_rows: int) -> int:
    """Return NAB's probationary length ``min(floor(0.15 * n_rows), 750)``.

    Integer arithmetic gives the same floor as NAB's float expression for every
    length up to 200,000 rows (checked), without depending on rounding.

    >>> probation_length(4032), probation_length(22695), probation_length(19)
    (604, 750, 2)
    """
    if n_rows < 0:
        raise ValueError("n_rows must be non-negative")
    return min(15 * int(n_rows) // 100, PROBATION_CAP)


@dataclass(eq=False)
class NabFile:
    """One NAB data file, with its ground truth expressed as row indices.

    Parameters
    ----------
    path : str
        Path relative to ``<nab>/data``, e.g. ``"realKnownCause/nyc_taxi.csv"``
        (the key used in the label files).
    category : str
        The folder the file sits in, e.g. ``"realKnownCause"``.
    name : str
        The file name without ``.csv``, e.g. ``"nyc_taxi"``.
    timestamps : ndarray of datetime64
        One per row, in file order.
    values : ndarray of float
        One per row, in file order.
    windows : sequence of (int, int)
        Anomaly windows as inclusive ``(first_row, last_row)`` pairs, in order
        and not overlapping.
    probation : int
        Rows at the start that the scorer ignores.
    """

    path: str
    category: str
    name: str
    timestamps: np.ndarray
    values: np.ndarray
    windows: tuple = field(default=())
    probation: int = 0

    def __post_init__(self):
        self.values = np.asarray(self.values, dtype=float)
        self.timestamps = np.asarray(self.timestamps)
        if self.values.ndim != 1 or len(self.timestamps) != len(self.values):
            raise ValueError(f"{self.path}: need one timestamp and one value per row")
        self.windows = tuple((int(s), int(e)) for s, e in self.windows)
        previous_end = -1
        for start, end in self.windows:
            if not (previous_end < start <= end < self.n_rows):
                raise ValueError(
                    f"{self.path}: windows must be in order, non-overlapping and inside "
                    f"rows 0..{self.n_rows - 1}; got {list(self.windows)}"
                )
            previous_end = end
        self.probation = int(self.probation)
        if not 0 <= self.probation <= self.n_rows:
            raise ValueError(f"{self.path}: probation {self.probation} outside 0..{self.n_rows}")

    @property
    def n_rows(self) -> int:
        """Number of data rows."""
        return len(self.values)

    @property
    def labels(self) -> np.ndarray:
        """``(n_rows,)`` int array: 1 for rows inside a window, 0 elsewhere."""
        labels = np.zeros(self.n_rows, dtype=np.int64)
        for start, end in self.windows:
            labels[start : end + 1] = 1
        return labels

    def __repr__(self) -> str:
        return f"NabFile({self.path!r}, rows={self.n_rows}, windows={list(self.windows)}, probation={self.probation})"


def _window_rows(path: str, timestamps: np.ndarray, window) -> tuple[int, int]:
    """Map one ``[start, end]`` timestamp pair to the inclusive row range it covers (NAB's way)."""
    start, end = (np.datetime64(pd.Timestamp(t).to_datetime64(), "ns") for t in window)
    rows = np.flatnonzero((timestamps >= start) & (timestamps <= end))
    if len(rows) == 0:
        raise ValueError(f"{path}: window {window} covers no row")
    first, last = int(rows[0]), int(rows[-1])
    # A clock that jumps back inside a window would make "rows within [start, end]"
    # non-contiguous; NAB's data never does, so refuse rather than guess.
    if last - first + 1 != len(rows):
        raise ValueError(f"{path}: window {window} covers rows that are not contiguous")
    if timestamps[first] != start or timestamps[last] != end:
        raise ValueError(f"{path}: window {window} does not start and end on row timestamps")
    return first, last


def _read_data_file(nab_dir: Path, relative_path: str, windows: list) -> NabFile:
    csv_path = nab_dir / "data" / relative_path
    if not csv_path.is_file():
        raise ValueError(f"label file names {relative_path}, but {csv_path} does not exist")
    frame = pd.read_csv(csv_path)
    missing = {"timestamp", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"{csv_path}: missing column(s) {sorted(missing)}")
    timestamps = pd.to_datetime(frame["timestamp"], format="%Y-%m-%d %H:%M:%S").to_numpy("datetime64[ns]")
    values = pd.to_numeric(frame["value"]).to_numpy(dtype=float)
    row_windows = [_window_rows(relative_path, timestamps, w) for w in windows]
    category, file_name = relative_path.split("/", 1)
    return NabFile(
        path=relative_path,
        category=category,
        name=Path(file_name).stem,
        timestamps=timestamps,
        values=values,
        windows=tuple(row_windows),
        probation=probation_length(len(values)),
    )


def load_corpus(nab_dir, labels_file=None) -> list[NabFile]:
    """Load every data file named in the label file, sorted by relative path.

    Parameters
    ----------
    nab_dir : str or Path
        The NAB folder holding ``data/`` and ``labels/``.
    labels_file : str or Path, optional
        Window file; default ``<nab_dir>/labels/combined_windows.json``.  The
        label file defines the corpus: each of its keys must name a data file.

    Returns
    -------
    list of NabFile
    """
    nab_dir = Path(nab_dir)
    labels_path = Path(labels_file) if labels_file is not None else nab_dir / LABELS_FILE
    if not labels_path.is_file():
        raise ValueError(f"no NAB label file at {labels_path}")
    with open(labels_path, encoding="utf-8") as handle:
        windows_by_path = json.load(handle)
    if not isinstance(windows_by_path, dict) or not windows_by_path:
        raise ValueError(f"{labels_path}: expected a non-empty JSON object of windows per file")
    return [_read_data_file(nab_dir, path, windows_by_path[path]) for path in sorted(windows_by_path)]
