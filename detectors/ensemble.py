"""The ensemble: every member detector scores the tick, their scores are fused, and novelty decides the flags.

The fused score has two ranges:

* **Point-wise evidence**, the members' fused score scaled into
  ``[0, POINTWISE_CAP)`` (``POINTWISE_CAP`` is the score of ``p = 1e-3``,
  about 0.5): anomalous points rank above ordinary ones, but a single
  surprising point cannot reach the flag threshold on its own, since any
  long stream produces a few of those every day.
* **Novelty**: a field leaves the range of its last :data:`VALUE_WINDOW`
  points, or the pattern member's distance to the stream's own history beats
  its record of the last :data:`PATTERN_WINDOW` points (see
  :mod:`detectors.novelty`).  A record against ``n`` recent points that
  beats it by ``strength`` (in units of the channel's range) gets
  ``p = exp(-strength / NOVELTY_SCALE) / n``; only novelty reaches the flag
  threshold.  After a flag the stream's novelty is held off for ``holdoff``
  points unless it escalates (scores above the flag), so one event raises
  one alarm.

The output is the larger of the two, so anomalous points keep their rank
(the peak of an injected episode still outranks normal points) while flags
stay rare.  This is what scores well on the Numenta Anomaly Benchmark (NAB):
point-wise detectors alone flag the tails of every busy stream, while NAB's
anomalies are the events a stream has not shown before.  The default
threshold (0.69) is the corpus-wide threshold NAB's optimiser picks for the
default ensemble under the standard profile.
"""
from __future__ import annotations

import numpy as np

from .base import Detector
from .novelty import HoldOff, RecordTracker
from .registry import REGISTRY, register
from .stats import score_from_logp

#: Members of the default ensemble, in the order explanations list them.
DEFAULT_MEMBERS = ("zscore", "iqr", "mad", "moving_average", "isolation_forest", "lof", "pattern")
#: Members whose expected range explains an anomaly, most trusted first.
RANGE_SOURCES = ("iqr", "mad", "zscore", "moving_average")
#: Smallest tail probability a member may claim, so one saturated member cannot decide alone.
P_FLOOR = 1e-12

#: Points whose extremes a new value is compared with, and points learned before a record counts in full.
VALUE_WINDOW, VALUE_MATURE = 4000, 400
#: Points whose pattern distances a new distance is compared with, and points skipped first
#: (the first distances are measured against a still short history, so they run high).
PATTERN_WINDOW, PATTERN_WARMUP = 1000, 300
#: Record strength (in units of the channel's range) that makes a value record ``e`` times rarer.
NOVELTY_SCALE = 0.01
#: Pattern records count this much against value records.
PATTERN_WEIGHT = 0.5
#: Point-wise evidence is scaled below this score (that of p = 1e-3), so it never flags alone.
POINTWISE_CAP = float(score_from_logp(np.log(1e-3)))


@register
class EnsembleDetector(Detector):
    """Fuse the calibrated scores of several detectors, and flag what is novel for each stream.

    Each member's score reads as ``1 - p``. ``fusion="logp"`` averages the
    members' ``log p`` with their weights (a weighted geometric mean of tail
    probabilities): a point scores high when most members find it
    improbable, and one over-eager member moves the fused score only by its
    share. ``fusion="vote"`` gives the weighted fraction of members whose
    score reaches their own threshold. ``fusion="max"`` takes the highest
    member score.

    With ``novelty=True`` (the default) the fused score is scaled below
    :data:`POINTWISE_CAP` and only novelty lifts a point above it (see the
    module docstring); with ``novelty=False`` the fused score is the output.

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
    novelty : bool
        Whether flags need novelty (values beyond their recent range, or new
        patterns) rather than point-wise evidence.
    holdoff : int
        Points a stream's novelty is ignored after a flag, unless it
        escalates (``novelty`` only).
    warmup, threshold
        As for every detector.

    Examples
    --------
    >>> rng = np.random.default_rng(4)
    >>> x = rng.normal(0, 1, 300); x[220] = 9
    >>> e = EnsembleDetector(members=("zscore", "mad"))
    >>> s = e.score_series(x)
    >>> int(np.argmax(s)), e.member_scores_.shape
    (220, (1, 2))
    >>> bool(s[220] >= e.threshold), bool(s[:220].max() < e.threshold)
    (True, True)
    """

    name = "ensemble"

    def __init__(self, *, members=DEFAULT_MEMBERS, weights=None, fusion: str = "logp",
                 member_params=None, novelty: bool = True, holdoff: int = 20,
                 warmup: int = 30, threshold: float = 0.69):
        super().__init__(warmup=warmup, threshold=threshold)
        self.members = tuple(members)
        self.weights = dict(weights or {})
        self.fusion = fusion
        self.member_params = {k: dict(v) for k, v in (member_params or {}).items()}
        self.novelty = bool(novelty)
        self.holdoff = int(holdoff)
        if fusion not in ("logp", "vote", "max"):
            raise ValueError(f"fusion must be 'logp', 'vote' or 'max', not {fusion!r}")
        if self.holdoff < 0:
            raise ValueError("holdoff must be non-negative")
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
        # Both signs of every field: a value may leave its range either way.
        self.value_records_ = RecordTracker(VALUE_WINDOW, NOVELTY_SCALE, mature=VALUE_MATURE)
        self.value_records_.reset(n_streams, 2 * n_features)
        self.pattern_records_ = RecordTracker(PATTERN_WINDOW, NOVELTY_SCALE / PATTERN_WEIGHT,
                                              PATTERN_WARMUP).reset(n_streams, 1)
        self.holdoff_ = HoldOff(self.holdoff).reset(n_streams)
        #: Each stream's novelty score on the last tick (0 when none or held off).
        self.novelty_ = np.zeros(n_streams)

    def member_thresholds(self) -> np.ndarray:
        """Return each member's flag threshold, in member order."""
        return np.array([d.threshold for d in self.detectors_])

    def _score_and_learn(self, X, present):
        scores = np.stack([d.step(X) for d in self.detectors_], axis=1)
        self.member_scores_ = scores
        fused = self._fuse(scores)
        if not self.novelty:
            return fused
        novel = score_from_logp(self._novelty_logp(X, present))
        held = self.holdoff_.update(novel, present, self.threshold)
        self.novelty_ = np.where(held, 0.0, novel)
        return np.maximum(self.novelty_, POINTWISE_CAP * fused)

    def _fuse(self, scores):
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

    def _novelty_logp(self, X, present):
        """Return each stream's novelty as a log tail probability: its rarest record over the channels."""
        logp = self.value_records_.update(np.concatenate([X, -X], axis=1), present).min(axis=1)
        if "pattern" in self.members:
            i = self.members.index("pattern")
            on = self.stream_weights_[:, i] > 0
            distance = self.detectors_[i].distance_[:, None]
            logp = np.minimum(logp, self.pattern_records_.update(distance, present & on)[:, 0])
        return logp

    def expected_range(self):
        for name in RANGE_SOURCES:
            if name in self.members:
                return self.detectors_[self.members.index(name)].expected_range()
        return None
