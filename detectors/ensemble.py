"""The ensemble: every member detector scores the tick, and their calibrated scores are fused."""
from __future__ import annotations

import numpy as np

from .base import Detector
from .registry import REGISTRY, register

#: Members of the default ensemble, in the order explanations list them.
DEFAULT_MEMBERS = ("zscore", "iqr", "mad", "moving_average", "isolation_forest", "lof")
#: Members whose expected range explains an anomaly, most trusted first.
RANGE_SOURCES = ("iqr", "mad", "zscore", "moving_average")
#: Smallest tail probability a member may claim, so one saturated member cannot decide alone.
P_FLOOR = 1e-12


@register
class EnsembleDetector(Detector):
    """Fuse the calibrated scores of several detectors into one.

    Each member's score reads as ``1 - p``. ``fusion="logp"`` averages the
    members' ``log p`` with their weights (a weighted geometric mean of tail
    probabilities): a point scores high when most members find it
    improbable, and one over-eager member moves the fused score only by its
    share. ``fusion="vote"`` gives the weighted fraction of members whose
    score reaches their own threshold. ``fusion="max"`` takes the highest
    member score.

    Parameters
    ----------
    members : tuple of str
        Registry names of the member detectors.
    weights : dict, optional
        Weight per member name (default 1 each); 0 silences a member.
    fusion : {"logp", "vote", "max"}
        How member scores are combined.
    member_params : dict, optional
        Constructor parameters per member name.
    warmup, threshold
        As for every detector.

    Examples
    --------
    >>> rng = np.random.default_rng(4)
    >>> x = rng.normal(0, 1, 300); x[220] = 9
    >>> e = EnsembleDetector(members=("zscore", "mad"))
    >>> s = e.score_series(x)
    >>> int(np.argmax(s)), sorted(e.member_scores_.keys()) if isinstance(e.member_scores_, dict) else e.member_scores_.shape
    (220, (1, 2))
    """

    name = "ensemble"

    def __init__(self, *, members=DEFAULT_MEMBERS, weights=None, fusion: str = "logp",
                 member_params=None, warmup: int = 30, threshold: float = 0.5):
        super().__init__(warmup=warmup, threshold=threshold)
        self.members = tuple(members)
        self.weights = dict(weights or {})
        self.fusion = fusion
        self.member_params = {k: dict(v) for k, v in (member_params or {}).items()}
        if fusion not in ("logp", "vote", "max"):
            raise ValueError(f"fusion must be 'logp', 'vote' or 'max', not {fusion!r}")
        unknown = [m for m in self.members if m not in REGISTRY or m == self.name]
        if unknown:
            raise ValueError(f"unknown ensemble members {unknown}; choose from {sorted(set(REGISTRY) - {self.name})}")

    def _allocate(self, n_streams, n_features):
        self.detectors_ = [REGISTRY[m](**self.member_params.get(m, {})).reset(n_streams, n_features)
                           for m in self.members]
        base = np.array([float(self.weights.get(m, 1.0)) for m in self.members])
        if (base < 0).any():
            raise ValueError("ensemble weights must be non-negative")
        #: Per-stream weights, so one stream's tuning leaves the others alone.
        self.stream_weights_ = np.tile(base, (n_streams, 1))
        self.member_scores_ = np.zeros((n_streams, len(self.members)))

    def member_thresholds(self) -> np.ndarray:
        """Return each member's flag threshold, in member order."""
        return np.array([d.threshold for d in self.detectors_])

    def _score_and_learn(self, X, present):
        scores = np.stack([d.step(X) for d in self.detectors_], axis=1)
        self.member_scores_ = scores
        w = self.stream_weights_
        total = w.sum(axis=1)
        with np.errstate(all="ignore"):
            if self.fusion == "logp":
                logp = np.log(np.clip(1.0 - scores, P_FLOOR, 1.0))
                fused = 1.0 - np.exp((w * logp).sum(axis=1) / total)
            elif self.fusion == "vote":
                fused = (w * (scores >= self.member_thresholds())).sum(axis=1) / total
            else:
                fused = np.where(w > 0, scores, 0.0).max(axis=1)
        return np.where(total > 0, fused, 0.0)

    def expected_range(self):
        for name in RANGE_SOURCES:
            if name in self.members:
                return self.detectors_[self.members.index(name)].expected_range()
        return None
