"""Base of the detectors that refit a per-stream model on a sliding window, on a staggered schedule."""
from __future__ import annotations

import numpy as np

from .base import Detector

#: Robust learning: a fitted stream learns each feature at most this many robust spreads (of its
#: last fit) from the fit's centre, so one absurd point cannot poison the next fits' window.
LEARN_CLIP = 10.0


class RefittedModelDetector(Detector):
    """Score each point with its stream's current model, calibrate, learn it, then refit the streams due.

    Subclasses allocate ``embedding_`` (a :class:`~detectors.features.CausalEmbedding`),
    ``window_`` (a ring buffer of embedded points), ``schedule_`` (a
    :class:`~detectors.features.RefitSchedule`), ``calibrator_`` (a
    :class:`~detectors.calibration.TailCalibrator`) and ``fitted_``, and
    implement ``raw_scores(rows, features)``, ``_refit(rows)`` and
    ``_refit_chunk()`` (streams refitted together, bounding temporary arrays).
    """

    def _score_and_learn(self, X: np.ndarray, present: np.ndarray) -> np.ndarray:
        features = self.embedding_.transform(X, present)
        scores = np.zeros(self.n_streams_)
        rows = np.flatnonzero(present & self.fitted_)
        if rows.size:
            raw = self.raw_scores(rows, features[rows])
            scores[rows] = self.calibrator_.transform(rows, raw)
            self.calibrator_.update(rows, raw)
        self.window_.push(self._winsorised(features), present)
        due = self.schedule_.advance(present)
        chunk = self._refit_chunk()
        for start in range(0, due.size, chunk):
            self._refit(due[start : start + chunk])
        return scores

    def _winsorised(self, features: np.ndarray) -> np.ndarray:
        """Features clipped to ``LEARN_CLIP`` robust spreads around the last fit's centre (fitted rows only)."""
        if not hasattr(self, "center_"):
            return features
        reach = LEARN_CLIP * self.scale_
        with np.errstate(invalid="ignore", over="ignore"):
            clipped = np.clip(features, self.center_ - reach, self.center_ + reach)
        return np.where(self.fitted_[:, None], clipped, features)

    def raw_scores(self, rows: np.ndarray, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _refit(self, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _refit_chunk(self) -> int:
        raise NotImplementedError
