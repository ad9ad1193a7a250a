"""The detector contract: a bank of independent per-stream detectors scored in one step.

A detector here is not one model for one series: it holds the state of ``S``
streams with ``d`` numeric fields each, and scores one *tick* (one new point per
stream) with a handful of vectorised numpy operations.  Every detector is

* **causal and prequential** -- :meth:`Detector.step` scores each point from the
  state built by earlier points, then learns from it;
* **masked** -- a row of ``X`` holding any NaN means "no point for this stream
  on this tick": its score is 0 and its state does not change;
* **warmed up** -- a stream that has learned fewer than ``warmup`` points scores 0;
* **calibrated** -- scores lie in [0, 1] and read as ``1 - p``, where ``p`` is
  the tail probability of the point under the detector's model of normal
  behaviour, so one threshold means roughly the same false-alarm rate for
  every detector;
* **stateful about incidents** -- after each tick, :attr:`is_anomaly_` says
  which streams are in an anomalous episode and :attr:`alert_` which ones
  started one on this tick (one alert per incident).  By default a point is
  anomalous when its score reaches :attr:`threshold`, and an episode is a run
  of such points; the ensemble keeps episodes with hysteresis instead.

Subclasses implement :meth:`_allocate` (create state for ``S`` streams) and
:meth:`_score_and_learn` (score the present rows, then update them).
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

__all__ = ["Detector", "NotResetError"]


class NotResetError(RuntimeError):
    """Raised when a detector is stepped before :meth:`Detector.reset`."""


class Detector:
    """Base class of every detector bank.

    Parameters
    ----------
    warmup : int
        Points a stream must have learned before it may score above 0.
    threshold : float
        Default flag threshold on the calibrated score.

    Notes
    -----
    ``__init__`` only stores parameters (scikit-learn's convention); learned
    state lives in attributes ending in ``_`` and is created by :meth:`reset`.
    """

    name: ClassVar[str] = "base"
    #: Whether the detector models all fields jointly (True) or needs d == 1.
    multivariate: ClassVar[bool] = True

    def __init__(self, *, warmup: int = 30, threshold: float = 0.5):
        self.warmup = int(warmup)
        self.threshold = float(threshold)

    # -- public API -----------------------------------------------------
    def get_params(self) -> dict:
        """Return the constructor parameters (enough to build a twin)."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def clone(self) -> "Detector":
        """Return a fresh, un-reset detector with the same parameters."""
        return type(self)(**self.get_params())

    def reset(self, n_streams: int, n_features: int = 1) -> "Detector":
        """Forget everything and allocate state for ``n_streams`` streams of ``n_features`` fields."""
        if n_streams < 1 or n_features < 1:
            raise ValueError("n_streams and n_features must be at least 1")
        if n_features > 1 and not self.multivariate:
            raise ValueError(f"{self.name} scores univariate streams only")
        self.n_streams_ = int(n_streams)
        self.n_features_ = int(n_features)
        self.seen_ = np.zeros(n_streams, dtype=np.int64)
        self.ticks_ = 0
        self._cache_ = {}
        #: Per stream, after the last tick: in an anomalous episode, and whether the episode started then.
        self.is_anomaly_ = np.zeros(n_streams, dtype=bool)
        self.alert_ = np.zeros(n_streams, dtype=bool)
        #: Per stream, whether its last present point was anomalous (episodes persist across absent ticks).
        self.episode_open_ = np.zeros(n_streams, dtype=bool)
        self._allocate(self.n_streams_, self.n_features_)
        return self

    def step(self, X) -> np.ndarray:
        """Score one tick, then learn it; return an ``(S,)`` array of scores in [0, 1]."""
        X = self._check_tick(X)
        present = ~np.isnan(X).any(axis=1)
        scores = np.zeros(self.n_streams_)
        if present.any():
            raw = self._score_and_learn(X, present)
            ready = present & (self.seen_ >= self.warmup)
            scores[ready] = np.clip(np.nan_to_num(raw[ready], nan=0.0), 0.0, 1.0)
            self.seen_[present] += 1
        self._update_episodes(scores, present)
        self.ticks_ += 1
        return scores

    def state_bytes(self) -> int:
        """Return the bytes of every numpy array of learned state this detector holds (members included)."""
        return _array_bytes(self, set())

    def expected_range(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Return ``(lower, upper)``, each ``(S, d)``: the range the *next* point is expected in.

        Detectors without a natural per-field range return None.
        """
        return None

    def score_series(self, values) -> np.ndarray:
        """Score one series causally, point by point; ``values`` is ``(T,)`` or ``(T, d)``."""
        return self.score_many([values])[0]

    def label_series(self, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score one series causally; return ``(scores, is_anomaly, alert)``, each ``(T,)``."""
        scores, anomalous, alerts = self._run([values], with_episodes=True)
        return scores[0], anomalous[0], alerts[0]

    def score_many(self, series: list) -> list[np.ndarray]:
        """Score several independent series at once, each as its own stream.

        The series are stacked as streams of one bank and padded with NaN, so
        a short series simply stops learning when it ends.
        """
        return self._run(series)[0]

    def _run(self, series: list, with_episodes: bool = False):
        arrays = [np.asarray(s, dtype=float) for s in series]
        arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
        if not arrays:
            return [], [], []
        d = arrays[0].shape[1]
        if any(a.shape[1] != d for a in arrays):
            raise ValueError("all series must have the same number of fields")
        length = max(len(a) for a in arrays)
        padded = np.full((length, len(arrays), d), np.nan)
        for i, a in enumerate(arrays):
            padded[: len(a), i] = a
        self.reset(len(arrays), d)
        out = np.empty((length, len(arrays)))
        anomalous = np.zeros((length, len(arrays)), dtype=bool)
        alerts = np.zeros((length, len(arrays)), dtype=bool)
        for t in range(length):
            out[t] = self.step(padded[t])
            if with_episodes:
                anomalous[t], alerts[t] = self.is_anomaly_, self.alert_
        cut = [slice(0, len(a)) for a in arrays]
        return tuple([m[c, i].copy() for i, c in enumerate(cut)] for m in (out, anomalous, alerts))

    # -- for subclasses ---------------------------------------------------
    def _update_episodes(self, scores: np.ndarray, present: np.ndarray) -> None:
        """Set :attr:`is_anomaly_` and :attr:`alert_` for this tick: by default a run of scores at or over the threshold."""
        flagged = present & (scores >= self.threshold)
        self.alert_ = flagged & ~self.episode_open_
        self.is_anomaly_ = flagged
        self.episode_open_ = np.where(present, flagged, self.episode_open_)

    def _per_tick(self, key: str, compute):
        """Return ``compute()``, computed once per tick: statistics shared by expected_range() and step()."""
        hit = self._cache_.get(key)
        if hit is None or hit[0] != self.ticks_:
            hit = self._cache_[key] = (self.ticks_, compute())
        return hit[1]

    def _allocate(self, n_streams: int, n_features: int) -> None:
        raise NotImplementedError

    def _score_and_learn(self, X: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Return raw calibrated scores ``(S,)`` for present rows, then update their state."""
        raise NotImplementedError

    def _check_tick(self, X) -> np.ndarray:
        if not hasattr(self, "n_streams_"):
            raise NotResetError(f"{self.name}: call reset(n_streams, n_features) before step()")
        X = np.asarray(X, dtype=float)
        if X.ndim == 1 and self.n_features_ == 1:
            X = X[:, None]
        if X.shape != (self.n_streams_, self.n_features_):
            raise ValueError(
                f"{self.name}: expected a tick of shape {(self.n_streams_, self.n_features_)}, got {X.shape}"
            )
        return X

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def copy_stream_rows(dst, src, dst_rows, src_rows, dst_streams: int, src_streams: int) -> None:
    """Copy the per-stream state of ``src_rows`` of ``src`` into ``dst_rows`` of ``dst``.

    Works on any detector whose per-stream state lives in numpy arrays whose
    first axis holds ``k`` rows per stream (stream ``i`` owns rows
    ``i*k .. i*k+k-1``), possibly inside helper objects and lists: the bank
    grows, or a reused row starts afresh, without knowing the detector.
    """
    dst_rows, src_rows = np.asarray(dst_rows), np.asarray(src_rows)
    if isinstance(dst, np.ndarray):
        return
    items = dst.__dict__.items() if hasattr(dst, "__dict__") else enumerate(dst)
    for key, dst_value in list(items):
        src_value = src.__dict__[key] if hasattr(src, "__dict__") else src[key]
        if isinstance(dst_value, np.ndarray) and dst_value.ndim and isinstance(src_value, np.ndarray):
            k_dst, rem_dst = divmod(dst_value.shape[0], dst_streams)
            k_src, rem_src = divmod(src_value.shape[0], src_streams)
            if rem_dst or rem_src or k_dst != k_src or k_dst == 0 or dst_value.shape[1:] != src_value.shape[1:]:
                continue
            d_idx = (dst_rows[:, None] * k_dst + np.arange(k_dst)).ravel()
            s_idx = (src_rows[:, None] * k_src + np.arange(k_src)).ravel()
            dst_value[d_idx] = src_value[s_idx]
        elif isinstance(dst_value, (list, tuple)) or (hasattr(dst_value, "__dict__") and not isinstance(dst_value, type)):
            if type(dst_value) is type(src_value) and not callable(dst_value):
                copy_stream_rows(dst_value, src_value, dst_rows, src_rows, dst_streams, src_streams)


def _array_bytes(obj, seen: set) -> int:
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (list, tuple)):
        return sum(_array_bytes(item, seen) for item in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(_array_bytes(value, seen) for value in vars(obj).values())
    return 0
