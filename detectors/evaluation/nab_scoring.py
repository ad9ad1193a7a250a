"""NAB's scoring rules: per-row weights, per-file scores, the threshold sweep and normalisation.

This follows the description in ``shared/nab/README.md`` ("Scoring", sections
1-7), which matches NAB's ``sweeper.py``/``optimizer.py``/``scorer.py``:

* a row is an alarm at threshold ``theta`` when its score is ``>= theta``;
  probationary rows never count;
* each window earns ``A_TP * f(y) / f(-1)`` for its *earliest* alarm (``y`` is
  the alarm's relative position in the window) or costs ``A_FN`` if it has none;
* every alarm outside the windows costs ``A_FP`` (before the first window) or
  ``-A_FP * f(y)`` with ``y`` its distance past the preceding window;
* one threshold per detector and profile is chosen for the whole corpus by
  sweeping every distinct score (and 1.1, "no alarms"); ties go to the highest
  threshold;
* ``NAB score = 100 * (raw - raw_null) / (raw_perfect - raw_null)``.

The sweep is incremental: scores are sorted once and each row contributes a
*change* of the corpus score at its own score value, so all thresholds cost
one sort plus a few cumulative sums.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

__all__ = [
    "Profile",
    "PROFILES",
    "NO_ALARM_THRESHOLD",
    "scaled_sigmoid",
    "MAX_TP",
    "row_weights",
    "FileScore",
    "score_file",
    "ThresholdCurve",
    "threshold_curve",
    "CorpusScore",
    "score_corpus",
    "score_profiles",
    "normalise",
    "get_profile",
]

#: The threshold the sweep starts from: above every score in [0, 1], so no alarm.
NO_ALARM_THRESHOLD = 1.1
#: Corpus scores closer than this count as a tie (then the higher threshold wins);
#: it only absorbs float rounding of the cumulative sums.
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Profile:
    """An application profile: the weights of true positives, false positives and misses."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("standard", 1.0, 0.11, 1.0),
        Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
        Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
    )
}


def get_profile(profile) -> Profile:
    """Return ``profile`` itself or the built-in profile of that name; ValueError if unknown."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except (KeyError, TypeError):
        raise ValueError(f"unknown NAB profile {profile!r}; choose one of {sorted(PROFILES)}") from None


def scaled_sigmoid(y) -> np.ndarray:
    """NAB's ``f(y) = 2 * sigmoid(-5 y) - 1`` for ``y <= 3`` and exactly ``-1`` beyond.

    >>> [round(float(v), 5) for v in scaled_sigmoid([-1.0, 0.0, 1.0, 3.5])]
    [0.98661, 0.0, -0.98661, -1.0]
    """
    y = np.asarray(y, dtype=float)
    # Clip before exp: beyond 3 the value is replaced by -1 anyway, and exp would overflow.
    curve = 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0
    return np.where(y > 3.0, -1.0, curve)


#: The weight of an alarm at a window's first row, before scaling to 1.
MAX_TP = float(scaled_sigmoid(-1.0))


def _window_reward(end, width, row) -> np.ndarray:
    """Unit reward ``f(y) / f(-1)`` of an alarm at ``row`` in the window ending at ``end``."""
    return scaled_sigmoid(-(end - row + 1) / width) / MAX_TP


@lru_cache(maxsize=512)
def _unit_weights(n_rows: int, windows: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Profile-free weights of every row: ``(window_index, tp_unit, fp_unit)``.

    ``window_index`` is the window holding the row or -1; ``tp_unit`` is the
    reward of an alarm there (0 outside windows); ``fp_unit`` is the (negative)
    cost of a false alarm there before scaling by ``A_FP`` (0 inside windows).
    """
    rows = np.arange(n_rows)
    window_index = np.full(n_rows, -1, dtype=np.int64)
    tp_unit = np.zeros(n_rows)
    fp_unit = np.full(n_rows, -1.0)
    if windows:
        starts, ends = (np.array(column, dtype=np.int64) for column in zip(*windows))
        widths = ends - starts + 1
        latest = np.searchsorted(starts, rows, side="right") - 1  # last window starting at or before the row
        has_window = latest >= 0
        latest_ends = ends[np.maximum(latest, 0)]
        inside = has_window & (rows <= latest_ends)
        window_index[inside] = latest[inside]
        k = latest[inside]
        tp_unit[inside] = _window_reward(ends[k], widths[k], rows[inside])
        fp_unit[inside] = 0.0
        after = has_window & ~inside
        k = latest[after]
        distance = (rows[after] - ends[k]).astype(float)
        span = (widths[k] - 1).astype(float)
        # A one-row window has no span: every row after it is "far" past it.
        position = np.divide(distance, span, out=np.full(len(k), np.inf), where=span > 0)
        fp_unit[after] = scaled_sigmoid(position)
    for array in (window_index, tp_unit, fp_unit):
        array.flags.writeable = False
    return window_index, tp_unit, fp_unit


def row_weights(n_rows: int, windows, profile="standard") -> np.ndarray:
    """Return the weight each row would contribute as an alarm (NAB's ``S(t)`` column).

    Rows inside a window get ``A_TP * f(y) / f(-1)``, rows before the first
    window ``-A_FP``, rows after a window ``A_FP * f(y)``.

    >>> w = row_weights(12, [(2, 5)])
    >>> float(w[0]), float(w[2]), round(float(w[5]), 4), round(float(w[6]), 4)
    (-0.11, 1.0, 0.5621, -0.075)
    """
    profile = get_profile(profile)
    _, tp_unit, fp_unit = _unit_weights(int(n_rows), tuple((int(s), int(e)) for s, e in windows))
    return profile.tp_weight * tp_unit + profile.fp_weight * fp_unit


def _check_scores(file, scores) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (file.n_rows,):
        raise ValueError(f"{file.path}: expected {file.n_rows} scores, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"{file.path}: scores contain NaN")
    return scores


def _align_scores(files, scores_per_file) -> list[np.ndarray]:
    """Pair scores with files: a sequence in file order, or a mapping by relative path."""
    if isinstance(scores_per_file, Mapping):
        missing = [f.path for f in files if f.path not in scores_per_file]
        if missing:
            raise ValueError(f"no scores for {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        scores_per_file = [scores_per_file[f.path] for f in files]
    scores_per_file = list(scores_per_file)
    if len(scores_per_file) != len(files):
        raise ValueError(f"got scores for {len(scores_per_file)} files, expected {len(files)}")
    return [_check_scores(f, s) for f, s in zip(files, scores_per_file)]


@dataclass(frozen=True)
class FileScore:
    """The score of one file at one threshold, and where it came from."""

    path: str
    raw: float
    detected: int  # windows with at least one alarm
    missed: int  # windows without alarm
    false_alarms: int  # alarm rows outside every window
    reward: float  # sum of the earliest-alarm rewards (positive)
    miss_cost: float  # -A_FN per missed window
    false_alarm_cost: float  # sum of false-alarm weights (negative)


def score_file(file, scores, threshold: float, profile="standard") -> FileScore:
    """Score one file at ``threshold`` (NAB section 3).

    Parameters
    ----------
    file : NabFile
        Anything with ``path``, ``n_rows``, ``windows`` and ``probation``.
    scores : array-like, shape (n_rows,)
        The detector's anomaly score of every row, probation included.
    threshold : float
        Rows with ``score >= threshold`` are alarms.
    profile : str or Profile
    """
    profile = get_profile(profile)
    scores = _check_scores(file, scores)
    window_index, tp_unit, fp_unit = _unit_weights(file.n_rows, tuple(file.windows))
    alarms = scores >= threshold
    alarms[: file.probation] = False
    in_window = np.flatnonzero(alarms & (window_index >= 0))
    # Rows come in order, so the first row seen of each window is its earliest alarm.
    detected_windows, first = np.unique(window_index[in_window], return_index=True)
    reward = profile.tp_weight * float(tp_unit[in_window[first]].sum())
    missed = len(file.windows) - len(detected_windows)
    miss_cost = -profile.fn_weight * missed
    false_alarm_rows = alarms & (window_index < 0)
    false_alarm_cost = profile.fp_weight * float(fp_unit[false_alarm_rows].sum())
    return FileScore(
        path=file.path,
        raw=reward + miss_cost + false_alarm_cost,
        detected=len(detected_windows),
        missed=missed,
        false_alarms=int(false_alarm_rows.sum()),
        reward=reward,
        miss_cost=miss_cost,
        false_alarm_cost=false_alarm_cost,
    )


@dataclass(frozen=True)
class ThresholdCurve:
    """Profile-free parts of the corpus score at every candidate threshold.

    At ``thresholds[k]`` (descending), the corpus score under a profile is
    ``A_TP * reward[k] - A_FN * (n_windows - detected[k]) + A_FP * false_alarm[k]``.
    """

    thresholds: np.ndarray
    reward: np.ndarray  # sum of unit rewards of each window's earliest alarm
    detected: np.ndarray  # windows holding at least one alarm
    false_alarm: np.ndarray  # sum of unit false-alarm weights (<= 0)
    n_windows: int

    def totals(self, profile="standard") -> np.ndarray:
        """Corpus raw score at each threshold under ``profile``."""
        p = get_profile(profile)
        return p.tp_weight * self.reward - p.fn_weight * (self.n_windows - self.detected) + p.fp_weight * self.false_alarm

    def best(self, profile="standard") -> tuple[float, float]:
        """Return ``(threshold, raw)`` maximising the corpus score; ties go to the highest threshold."""
        totals = self.totals(profile)
        best = int(np.flatnonzero(totals >= totals.max() - TIE_TOLERANCE)[0])
        return float(self.thresholds[best]), float(totals[best])


def threshold_curve(files, scores_per_file) -> ThresholdCurve:
    """Sweep every distinct score (plus 1.1) over the pooled non-probationary rows of ``files``.

    Each row is given the change it makes to the corpus score when the
    threshold falls to its score.  A false alarm changes it by its own weight.
    Inside a window only the earliest alarm counts, so, taking a window's rows
    in order of falling score and tracking the earliest row seen so far, a row
    changes the window's reward only when it is earlier than every row before
    it; the first row of a window also turns a miss into a detection.  The
    corpus score at a threshold is then the sum of the changes of every row at
    or above it: one sort and cumulative sums.
    """
    aligned = _align_scores(files, scores_per_file)
    pooled_scores, pooled_window, pooled_row, pooled_fp = [], [], [], []
    window_ends, window_widths = [], []
    for file, scores in zip(files, aligned):
        window_index, _, fp_unit = _unit_weights(file.n_rows, tuple(file.windows))
        scored = slice(file.probation, file.n_rows)
        offset = len(window_ends)
        pooled_scores.append(scores[scored])
        pooled_window.append(np.where(window_index[scored] >= 0, window_index[scored] + offset, -1))
        pooled_row.append(np.arange(file.probation, file.n_rows))
        pooled_fp.append(fp_unit[scored])
        window_ends += [end for _, end in file.windows]
        window_widths += [end - start + 1 for start, end in file.windows]
    scores = np.concatenate(pooled_scores) if pooled_scores else np.zeros(0)
    window = np.concatenate(pooled_window) if pooled_window else np.zeros(0, dtype=np.int64)
    row = np.concatenate(pooled_row) if pooled_row else np.zeros(0, dtype=np.int64)
    window_ends = np.array(window_ends, dtype=np.int64)
    window_widths = np.array(window_widths, dtype=np.int64)

    reward_change = np.zeros(len(scores))
    detection_change = np.zeros(len(scores))
    false_alarm_change = np.where(window < 0, np.concatenate(pooled_fp) if pooled_fp else 0.0, 0.0)

    in_window = np.flatnonzero(window >= 0)
    if len(in_window):
        # Group rows by window, each group in order of falling score.
        order = in_window[np.lexsort((-scores[in_window], window[in_window]))]
        group, group_row = window[order], row[order]
        # Running minimum of the row index inside each group: shifting group g
        # down by g * stride puts every later group below every earlier one, so
        # one global running minimum never carries across groups.
        stride = int(group_row.max()) + 1
        earliest = np.minimum.accumulate(group_row - group * stride) + group * stride
        reward_now = _window_reward(window_ends[group], window_widths[group], earliest)
        opens_group = np.r_[True, group[1:] != group[:-1]]
        reward_before = np.r_[0.0, reward_now[:-1]]
        reward_before[opens_group] = 0.0
        reward_change[order] = reward_now - reward_before
        detection_change[order] = opens_group

    by_score = np.argsort(-scores, kind="stable")
    sorted_scores = scores[by_score]
    running = [np.cumsum(change[by_score]) for change in (reward_change, detection_change, false_alarm_change)]
    # The corpus score is read after the last row of each run of equal scores.
    run_ends = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True]) if len(scores) else np.zeros(0, int)
    thresholds = sorted_scores[run_ends]
    parts = [total[run_ends] for total in running]

    if not np.any(thresholds == NO_ALARM_THRESHOLD):
        at_or_above = int(np.count_nonzero(sorted_scores >= NO_ALARM_THRESHOLD))
        position = int(np.count_nonzero(thresholds > NO_ALARM_THRESHOLD))
        thresholds = np.insert(thresholds, position, NO_ALARM_THRESHOLD)
        parts = [np.insert(part, position, total[at_or_above - 1] if at_or_above else 0.0)
                 for part, total in zip(parts, running)]
    return ThresholdCurve(thresholds, parts[0], parts[1], parts[2], int(len(window_ends)))


def normalise(raw: float, n_windows: int, profile="standard") -> float:
    """``100 * (raw - raw_null) / (raw_perfect - raw_null)``; NaN for a corpus without windows."""
    profile = get_profile(profile)
    raw_perfect = profile.tp_weight * n_windows
    raw_null = -profile.fn_weight * n_windows
    if raw_perfect == raw_null:
        return float("nan")
    return 100.0 * (raw - raw_null) / (raw_perfect - raw_null)


@dataclass(frozen=True)
class CorpusScore:
    """A detector's NAB result for one profile."""

    profile: str
    threshold: float
    raw: float
    normalised: float
    n_windows: int
    files: list = field(default_factory=list, repr=False)  # FileScore per file

    @property
    def detected(self) -> int:
        return sum(f.detected for f in self.files)

    @property
    def false_alarms(self) -> int:
        return sum(f.false_alarms for f in self.files)


def _score_at(files, aligned, profile: Profile, threshold: float) -> CorpusScore:
    per_file = [score_file(f, s, threshold, profile) for f, s in zip(files, aligned)]
    # Like NAB's scorer, the raw score is the sum of the per-file scores.
    raw = float(sum(f.raw for f in per_file))
    n_windows = sum(len(f.windows) for f in files)
    return CorpusScore(profile.name, float(threshold), raw, normalise(raw, n_windows, profile), n_windows, per_file)


def score_profiles(files, scores_per_file, profiles=None, threshold=None) -> dict[str, CorpusScore]:
    """Score ``files`` under several profiles (default: all three), sharing one sweep.

    Each profile gets its own optimal threshold unless ``threshold`` is given.
    """
    profiles = [get_profile(p) for p in (profiles if profiles is not None else PROFILES)]
    aligned = _align_scores(files, scores_per_file)
    curve = threshold_curve(files, aligned) if threshold is None else None
    results = {}
    for profile in profiles:
        chosen = curve.best(profile)[0] if curve is not None else float(threshold)
        results[profile.name] = _score_at(files, aligned, profile, chosen)
    return results


def score_corpus(files, scores_per_file, profile="standard", threshold=None) -> CorpusScore:
    """Score ``files`` under one profile at the optimal (or the given) threshold.

    Parameters
    ----------
    files : list of NabFile
    scores_per_file : sequence of arrays in file order, or mapping path -> array
    profile : str or Profile
    threshold : float, optional
        Score at this threshold instead of optimising it.

    Returns
    -------
    CorpusScore
        The threshold, raw and normalised score, and the per-file breakdown.
    """
    profile = get_profile(profile)
    return score_profiles(files, scores_per_file, [profile], threshold)[profile.name]
