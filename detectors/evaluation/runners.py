"""Run one detector over a dataset: a fresh model per series, series of one field count as streams of one bank.

Each runner turns a list of :class:`~detectors.evaluation.corpora.LabelledSeries`
into one :class:`Output` per series: a score for every row and the
detector's *own* flags, made without labels:

* ``ensemble`` (the default) runs through the :class:`~detectors.engine.Engine`,
  exactly as the server scores streams; its flags are the engine's
  ``is_anomaly``.
* Any other registry name or ``module:Class`` runs through
  :meth:`Detector.score_many`; its flags are ``score >= detector.threshold``,
  as ``python -m detectors score`` writes them.
* ``t2`` and ``hst`` are the reference lines of :mod:`.references`; they flag
  past the ``1 - alpha`` quantile of their own scores on the warm-up rows.
* ``every_row`` is the floor: every row flagged, one score for all.  What a
  detector that knows nothing earns: point F1 ``2r / (1 + r)`` at a labelled
  share ``r``, event F1 1.0, ROC-AUC 0.5.  An F1 means something beside it.

Series of one field count run as the streams of one bank (see
:func:`_banks`), so a dataset costs as many ticks as its longest series, not
the sum.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..engine import Engine
from ..registry import make
from .references import DEFAULT_ALPHA, T2_RIDGE, T2_WINDOW, half_space_trees, rolling_t2, train_quantile_flags

__all__ = ["Output", "Runner", "EngineRunner", "DetectorRunner", "HotellingT2Runner", "HalfSpaceTreesRunner",
           "EveryRowRunner", "make_runner", "DEFAULT_DETECTOR", "REFERENCES"]

DEFAULT_DETECTOR = "ensemble"
#: The reference lines, by the name the command line takes.
REFERENCES = ("t2", "hst", "every_row")


@dataclass
class Output:
    """One detector's result on one series."""

    scores: np.ndarray  # (T,) higher is more anomalous
    flags: np.ndarray  # (T,) bool, the detector's own flags
    threshold: float | None = None  # the score the flags start at, where there is one


def _banks(series) -> list[list[int]]:
    """Indices of the series grouped into banks, one per field count, longest series first.

    A bank costs about the same per tick whatever its number of streams (the
    default ensemble, measured: 5.3 ms of CPU per tick with 1 stream, 6.9 ms
    with 58), so one bank per field count makes a dataset cost as many ticks
    as its longest series, not the sum of its series.

    >>> from types import SimpleNamespace as S
    >>> _banks([S(n_features=1, n_rows=n) for n in (100, 4000, 30)] + [S(n_features=2, n_rows=5)])
    [[1, 0, 2], [3]]
    """
    by_fields: dict[int, list[int]] = {}
    for i, s in enumerate(series):
        by_fields.setdefault(s.n_features, []).append(i)
    return [sorted(members, key=lambda i: -series[i].n_rows) for members in by_fields.values()]


def _padded(series, group) -> np.ndarray:
    """Stack a group's values as ``(T, S, d)`` ticks, NaN where a series has ended."""
    length = max(series[i].n_rows for i in group)
    ticks = np.full((length, len(group), series[group[0]].n_features), np.nan)
    for column, i in enumerate(group):
        ticks[: series[i].n_rows, column] = series[i].values
    return ticks


class Runner:
    """Scores and flags a dataset's series; subclasses implement :meth:`_run_group`."""

    name = "runner"
    #: How the flags are made, printed beside the results.
    flag_rule = ""
    #: Whether the run scores rows, so its time is a speed worth printing.
    timed = True

    def run(self, series, progress: Callable[[int], None] | None = None) -> list[Output]:
        """Return one :class:`Output` per series, in order; ``progress(n)`` is told of ticks done."""
        outputs: list = [None] * len(series)
        for group in _banks(series):
            for i, output in zip(group, self._run_group([series[i] for i in group], progress)):
                outputs[i] = output
        return outputs

    def ticks(self, series) -> int:
        """Ticks :meth:`run` takes: the longest series of each bank."""
        return sum(series[bank[0]].n_rows for bank in _banks(series))

    def _run_group(self, group, progress) -> list[Output]:
        raise NotImplementedError


class EngineRunner(Runner):
    """The default engine, as the server runs it: one stream per series, flags are ``is_anomaly``."""

    name = DEFAULT_DETECTOR
    flag_rule = "engine is_anomaly"

    def __init__(self, **engine_params):
        self.engine_params = engine_params

    def _run_group(self, group, progress):
        engine = Engine(**self.engine_params)
        names = [f"series{i}" for i in range(len(group))]
        engine.add_streams(names, tuple(f"f{j}" for j in range(group[0].n_features)))
        ticks = _padded(group, range(len(group)))
        # All ticks at once: the same scores and flags as one Engine.step per tick (tested), with the
        # members that have a vectorised block path scored stream by stream ahead of the ticks.
        scores, flags, _ = engine.group(names).step_many(ticks, progress=progress)
        threshold = engine.config(names[0])["threshold"]
        return [Output(scores[: s.n_rows, i].copy(), flags[: s.n_rows, i].copy(), threshold)
                for i, s in enumerate(group)]


class DetectorRunner(Runner):
    """A registered (or ``module:Class``) detector through ``score_many``; flags at its own threshold."""

    flag_rule = "score >= detector threshold"

    def __init__(self, detector):
        self.detector = detector
        self.name = detector.name

    def _run_group(self, group, progress):
        if group[0].n_features > 1 and not self.detector.multivariate:
            raise ValueError(f"{self.detector.name} scores univariate series only, these have "
                             f"{group[0].n_features} fields")
        scores = self.detector.score_many([s.values for s in group])
        if progress is not None:
            progress(max(s.n_rows for s in group))
        threshold = self.detector.threshold
        return [Output(np.asarray(sc, dtype=float), np.asarray(sc) >= threshold, threshold) for sc in scores]


class HotellingT2Runner(Runner):
    """Reference: a causal rolling Hotelling T² (:func:`.references.rolling_t2`), batched over the series."""

    name = "t2"

    def __init__(self, alpha: float = DEFAULT_ALPHA, window: int = T2_WINDOW, ridge: float = T2_RIDGE):
        self.alpha, self.window, self.ridge = alpha, window, ridge
        self.flag_rule = f"score > train quantile 1-{alpha:g}"

    def _run_group(self, group, progress):
        scores = rolling_t2([s.values for s in group], self.window, self.ridge, progress)
        skip = min(self.window, max(30, 2 * group[0].n_features))
        return [Output(sc, *train_quantile_flags(sc, s.warmup, self.alpha, skip)) for sc, s in zip(scores, group)]


class HalfSpaceTreesRunner(Runner):
    """Reference: River's HalfSpaceTrees, one model per series, inputs scaled by the warm-up rows' min/max."""

    name = "hst"
    #: River's default window; the model scores 0 until it has seen this many points.
    WINDOW = 250

    def __init__(self, alpha: float = DEFAULT_ALPHA, seed: int = 42):
        self.alpha, self.seed = alpha, seed
        self.flag_rule = f"score > train quantile 1-{alpha:g}"

    def ticks(self, series) -> int:
        return sum(s.n_rows for s in series)  # River learns one point of one series at a time

    def _run_group(self, group, progress):
        outputs = []
        for s in group:
            scores = half_space_trees(s.values, s.warmup, seed=self.seed, window_size=self.WINDOW)
            outputs.append(Output(scores, *train_quantile_flags(scores, s.warmup, self.alpha, self.WINDOW)))
            if progress is not None:
                progress(s.n_rows)
        return outputs


class EveryRowRunner(Runner):
    """The floor: every row flagged with one constant score, so the metrics show what knowing nothing earns.

    >>> from detectors.evaluation.corpora import LabelledSeries
    >>> out = EveryRowRunner().run([LabelledSeries("x", "s", np.zeros(4), np.array([0, 1, 0, 0]), 1)])[0]
    >>> out.flags.tolist(), out.scores.tolist()
    ([True, True, True, True], [0.0, 0.0, 0.0, 0.0])
    """

    name = "every_row"
    flag_rule = "every row (the floor)"
    timed = False

    def ticks(self, series) -> int:
        return 0  # nothing is scored

    def _run_group(self, group, progress):
        return [Output(np.zeros(s.n_rows), np.ones(s.n_rows, dtype=bool)) for s in group]


def make_runner(spec: str, alpha: float = DEFAULT_ALPHA, load_detector=make) -> Runner:
    """Build the runner for ``spec``: ``ensemble``, ``t2``, ``hst``, a registry name or ``module:Class``."""
    if spec == DEFAULT_DETECTOR:
        return EngineRunner()
    if spec == "t2":
        return HotellingT2Runner(alpha)
    if spec == "hst":
        return HalfSpaceTreesRunner(alpha)
    if spec == EveryRowRunner.name:
        return EveryRowRunner()
    return DetectorRunner(load_detector(spec))
