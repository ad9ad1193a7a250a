"""Run detectors over the NAB corpus and score them by NAB's rules.

The pieces live in :mod:`detectors.evaluation.nab_corpus` (loading) and
:mod:`detectors.evaluation.nab_scoring` (the scoring rules); this module runs a detector
over the corpus and writes results in NAB's layout.  Typical use::

    files = load_corpus("../shared/nab")
    evaluation = evaluate_detector("zscore", files)
    evaluation.normalised          # {"standard": 41.2, "reward_low_FP_rate": ..., ...}
    evaluation.results["standard"].threshold

Every file is an independent stream: files are scored as the streams of one
detector bank (:meth:`Detector.score_many`), so each starts from a fresh state
and the bank advances all of them in one vectorised step per row.  The detector
is told nothing about a file in advance -- not its length, range or labels.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..base import Detector
from .nab_corpus import NabFile, load_corpus, probation_length
from .nab_scoring import (
    PROFILES,
    CorpusScore,
    FileScore,
    Profile,
    normalise,
    row_weights,
    score_corpus,
    score_file,
    score_profiles,
    threshold_curve,
)
from ..registry import make

__all__ = [
    "NabFile",
    "load_corpus",
    "probation_length",
    "PROFILES",
    "Profile",
    "CorpusScore",
    "FileScore",
    "row_weights",
    "score_file",
    "score_corpus",
    "score_profiles",
    "threshold_curve",
    "normalise",
    "Evaluation",
    "resolve_detector",
    "run_detector",
    "evaluate_detector",
    "write_results",
    "write_file_scores",
    "DEFAULT_BATCH",
]

#: Files per detector bank.  Files are grouped by length, longest first, so a
#: bank pads little; bigger banks mean fewer Python-level steps.
DEFAULT_BATCH = 16


def resolve_detector(detector) -> Detector:
    """Return a detector instance from a registry name, a Detector subclass or an instance."""
    if isinstance(detector, str):
        return make(detector)
    if isinstance(detector, type) and issubclass(detector, Detector):
        return detector()
    if isinstance(detector, Detector):
        return detector
    raise ValueError(f"expected a detector name, class or instance, got {detector!r}")


def run_detector(detector, files, batch: int = DEFAULT_BATCH, progress=None) -> list[np.ndarray]:
    """Score every row of every file; return one ``(n_rows,)`` array per file, in file order.

    Parameters
    ----------
    detector : str, Detector subclass or Detector
        ``score_many`` resets it, so every file starts from a fresh state.
    files : list of NabFile
    batch : int
        Most files per bank.
    progress : callable, optional
        Called with the number of files finished after each bank.
    """
    detector = resolve_detector(detector)
    if batch < 1:
        raise ValueError("batch must be at least 1")
    longest_first = sorted(range(len(files)), key=lambda i: -files[i].n_rows)
    scores: list = [None] * len(files)
    for begin in range(0, len(longest_first), batch):
        bank = longest_first[begin : begin + batch]
        for i, file_scores in zip(bank, detector.score_many([files[i].values for i in bank])):
            file_scores = np.asarray(file_scores, dtype=float)
            if file_scores.shape != (files[i].n_rows,) or not np.all((file_scores >= 0) & (file_scores <= 1)):
                raise ValueError(f"{detector.name} gave scores outside [0, 1] or of the wrong length on {files[i].path}")
            scores[i] = file_scores
        if progress is not None:
            progress(len(bank))
    return scores


@dataclass
class Evaluation:
    """One detector's NAB run: per-row scores of every file and the result of each profile."""

    detector: str
    scores: list  # one array per file, in the order of the files evaluated
    results: dict  # profile name -> CorpusScore
    seconds: float = 0.0  # time spent running the detector (not scoring)
    files: list = field(default_factory=list, repr=False)

    @property
    def normalised(self) -> dict[str, float]:
        """NAB score (perfect 100, silent 0) per profile."""
        return {name: result.normalised for name, result in self.results.items()}

    @property
    def thresholds(self) -> dict[str, float]:
        """The optimal threshold chosen per profile."""
        return {name: result.threshold for name, result in self.results.items()}


def evaluate_detector(detector, files, batch: int = DEFAULT_BATCH, profiles=None, progress=None) -> Evaluation:
    """Run ``detector`` over ``files`` and score it under each profile (default: all three).

    >>> import numpy as np
    >>> from detectors.base import Detector
    >>> class Jump(Detector):  # flags a value that differs from the previous one
    ...     name = "jump"
    ...     def _allocate(self, S, d):
    ...         self.last_ = np.full((S, d), np.nan)
    ...     def _score_and_learn(self, X, present):
    ...         score = (np.abs(X - self.last_).max(axis=1) > 0).astype(float)
    ...         self.last_[present] = X[present]
    ...         return score
    >>> values = np.r_[np.zeros(30), np.ones(10)]
    >>> file = NabFile("toy/step.csv", "toy", "step", np.arange(40), values, windows=[(30, 34)], probation=5)
    >>> evaluation = evaluate_detector(Jump(warmup=1), [file])
    >>> evaluation.normalised["standard"], evaluation.thresholds["standard"]
    (100.0, 1.0)
    """
    detector = resolve_detector(detector)
    started = time.perf_counter()
    scores = run_detector(detector, files, batch=batch, progress=progress)
    seconds = time.perf_counter() - started
    results = score_profiles(files, scores, profiles)
    return Evaluation(detector.name, scores, results, seconds, list(files))


def _format_timestamps(timestamps: np.ndarray) -> np.ndarray:
    if np.issubdtype(timestamps.dtype, np.datetime64):
        return np.char.replace(np.datetime_as_string(timestamps, unit="s"), "T", " ")
    return np.asarray(timestamps).astype(str)


def _plain_values(values: np.ndarray) -> np.ndarray:
    """Integers stay integers on the way out ("10844", not "10844.0"), as in the data files."""
    if np.all(np.isfinite(values)) and np.all(values == np.round(values)) and np.all(np.abs(values) < 2**53):
        return values.astype(np.int64)
    return values


def write_results(out_dir, detector_name: str, files, scores) -> list[Path]:
    """Write NAB-style results: ``out_dir/<detector>/<category>/<detector>_<file>.csv``.

    Columns ``timestamp,value,anomaly_score,label`` (label 1 inside a window),
    one row per data row, in file order.  Returns the paths written.
    """
    if len(scores) != len(files):
        raise ValueError(f"got scores for {len(scores)} files, expected {len(files)}")
    written = []
    for file, file_scores in zip(files, scores):
        target = Path(out_dir) / detector_name / file.category / f"{detector_name}_{file.name}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "timestamp": _format_timestamps(file.timestamps),
                "value": _plain_values(file.values),
                "anomaly_score": np.asarray(file_scores, dtype=float),
                "label": file.labels,
            }
        ).to_csv(target, index=False)
        written.append(target)
    return written


def write_file_scores(path, results: dict) -> Path:
    """Write each profile's per-file breakdown (:class:`FileScore`) of :func:`score_profiles`' ``results`` as CSV.

    One row per profile and file, in corpus order: the raw score and where it
    came from (windows found and missed, false alarms, their rewards and
    costs) at the profile's corpus-wide threshold.  The raw scores of a
    profile's rows sum to its corpus raw score.
    """
    rows = [{"profile": name, "threshold": result.threshold, **asdict(file)}
            for name, result in results.items() for file in result.files]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(target, index=False)
    return target
