"""Base of the detectors that refit a per-stream model on a sliding window, on a staggered schedule."""
from __future__ import annotations

import numpy as np

from .base import Detector
from .shared_windows import embedded
from .stats import score_from_logp
from .streaming import compiled_steps

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
        compiled = compiled_steps()
        if rows.size:
            raw = (self._block_raw_scores if compiled else self.raw_scores)(rows, features[rows])
            if compiled:
                scores[rows] = calibrate_and_learn(self.calibrator_, rows, raw)
            else:
                scores[rows] = self.calibrator_.transform(rows, raw)
                self.calibrator_.update(rows, raw)
        self.window_.push(self._winsorised(features), present)
        due = self.schedule_.advance(present)
        chunk = self._refit_chunk()
        for start in range(0, due.size, chunk):
            self._refit(due[start : start + chunk], compiled=compiled)
        return scores

    def _independent_streams(self, n_active: int) -> bool:
        # More streams than one tick's refit budget may be due together, and then refit in the bank's order.
        return n_active <= self.schedule_.budget_

    def _can_block(self, row: int) -> bool:
        # Streams waiting for their refit (many due at once) would refit in the bank's order: take the steps.
        return not self.schedule_.pending_.any()

    def _score_block(self, row, points, with_range):
        """Between two refits of the model a block is scored at once.

        The embedding's recursion runs first over the whole block (it does not
        depend on the model); then the block is cut where the step would
        refit the stream's model (its countdown reaches 0), and each piece is
        scored against the fixed model in a few array operations, calibrated
        point by point (the calibration refits every ``every`` scores; a
        compiled kernel, :meth:`TailCalibrator.update_points`), and learned.
        """
        features = embedded(self.embedding_, row, points)  # shared with a member embedding alike
        n = len(points)
        scores = np.zeros(n)
        rows = np.array([row])
        start = 0
        while start < n:
            stop = min(n, start + max(int(self.schedule_.countdown_[row]), 1))
            piece = features[start:stop]
            owner = owner_rows(row, len(piece))
            if self.fitted_[row]:
                scores[start:stop] = self.calibrator_.update_points(row, self._block_raw_scores(owner, piece))
            self.window_.extend(row, self._winsorised_block(row, piece))
            self.schedule_.countdown_[row] -= len(piece)
            if self.schedule_.countdown_[row] <= 0:
                self.schedule_.countdown_[row] = self.schedule_.every
                self.schedule_.fits_[row] += 1
                self._refit_block(row)
            start = stop
        return scores, None

    def _winsorised_block(self, row: int, features: np.ndarray) -> np.ndarray:
        """:meth:`_winsorised` for successive features of one stream (its last fit's centre and spread broadcast)."""
        if not hasattr(self, "center_") or not self.fitted_[row]:
            return features
        reach = LEARN_CLIP * self.scale_[row]
        with np.errstate(invalid="ignore", over="ignore"):
            return np.clip(features, self.center_[row] - reach, self.center_[row] + reach)

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

    def _block_raw_scores(self, rows: np.ndarray, features: np.ndarray) -> np.ndarray:
        """:meth:`raw_scores` by compiled code where a subclass has it (same values): a block's points, or a tick's rows."""
        return self.raw_scores(rows, features)

    def _refit_block(self, row: int) -> None:
        """Refit stream ``row`` inside a block (a subclass may have a quicker way to the same model)."""
        self._refit(np.array([row]), compiled=True)

    def _refit(self, rows: np.ndarray, compiled: bool = False) -> None:
        """Refit the models of ``rows``; ``compiled``: a block's or a compiled tick's refit, which may use compiled kernels (same models)."""
        raise NotImplementedError

    def _refit_chunk(self) -> int:
        raise NotImplementedError


def calibrate_and_learn(calibrator, rows: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """``calibrator.transform(rows, raw)`` then ``calibrator.update(rows, raw)``, one compiled loop over the rows."""
    from .bank_kernels import calibrated_rows

    logp = np.empty(len(rows))
    calibrated_rows(np.ascontiguousarray(rows, dtype=np.int64), np.ascontiguousarray(raw, dtype=np.float64),
                    calibrator.history_, calibrator.count_, calibrator.knots_, calibrator.beta_, calibrator.fitted_,
                    calibrator.levels_, float(calibrator.tail), int(calibrator.min_scores), int(calibrator.every),
                    logp)
    return score_from_logp(logp)


def owner_rows(row: int, n: int) -> np.ndarray:
    """``n`` copies of one stream's row index: the owner of each point of a block."""
    return np.full(n, row)
