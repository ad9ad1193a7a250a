"""NAB loading and scoring against hand-computed expectations, brute force and the real corpus."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detectors.base import Detector
from detectors.evaluation.nab import (
    PROFILES,
    NabFile,
    evaluate_detector,
    load_corpus,
    normalise,
    probation_length,
    row_weights,
    run_detector,
    score_corpus,
    score_file,
    score_profiles,
    threshold_curve,
    write_file_scores,
    write_results,
)

REPO = Path(__file__).resolve().parents[2]
NAB_DIR = REPO.parent / "shared" / "nab"
needs_corpus = pytest.mark.skipif(
    not (NAB_DIR / "labels" / "combined_windows.json").is_file(),
    reason=f"the NAB corpus is not at {NAB_DIR} (expected <repo>/../shared/nab)",
)

STANDARD, LOW_FP, LOW_FN = (PROFILES[n] for n in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"))


# -- hand formulas, written independently of the module --------------------------
def f(y: float) -> float:
    """NAB's scaled sigmoid via the identity 2*sigmoid(x) - 1 == tanh(x / 2)."""
    return -1.0 if y > 3 else math.tanh(-2.5 * y)


def tp_weight(row: int, start: int, end: int, a_tp: float = 1.0) -> float:
    width = end - start + 1
    return a_tp * f(-(end - row + 1) / width) / f(-1.0)


def fp_weight_after(row: int, start: int, end: int, a_fp: float) -> float:
    return a_fp * f((row - end) / (end - start))


def toy_file(n_rows, windows, probation=0, path="toy/file.csv") -> NabFile:
    return NabFile(path, path.split("/")[0], Path(path).stem, np.arange(n_rows), np.zeros(n_rows), windows, probation)


def alarms_at(n_rows, rows, level=1.0) -> np.ndarray:
    scores = np.zeros(n_rows)
    scores[list(rows)] = level
    return scores


# One 40-row file with one window on rows 5..9 (width 5) and no probation.
N, START, END = 40, 5, 9
ONE_WINDOW = toy_file(N, [(START, END)])


# -- section 2: per-row weights ------------------------------------------------
def test_scaled_sigmoid_constants_from_the_readme():
    # f(-1) = 0.986614 and a window's first row is worth exactly A_TP.
    assert tp_weight(START, START, END) == pytest.approx(1.0)
    assert f(-1.0) == pytest.approx(0.986614, abs=1e-6)
    assert row_weights(N, [(START, END)])[START] == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("profile", [STANDARD, LOW_FP, LOW_FN], ids=lambda p: p.name)
def test_row_weights_match_the_hand_formulas(profile):
    weights = row_weights(N, [(START, END)], profile)
    for row in range(N):
        if row < START:
            expected = -profile.fp_weight
        elif row <= END:
            expected = tp_weight(row, START, END, profile.tp_weight)
        else:
            expected = fp_weight_after(row, START, END, profile.fp_weight)
        assert weights[row] == pytest.approx(expected, rel=1e-12, abs=1e-15), row


def test_false_alarm_weight_is_exactly_minus_a_fp_beyond_three_window_spans():
    weights = row_weights(N, [(START, END)], STANDARD)
    # Row 21 is 12/4 = 3 spans past the window: still on the sigmoid, just short of -A_FP.
    assert weights[21] == pytest.approx(0.11 * math.tanh(-7.5), rel=1e-12)
    assert weights[21] != -0.11
    # Row 22 is 13/4 = 3.25 spans past: exactly -A_FP.
    assert weights[22] == -0.11
    assert weights[10] == pytest.approx(-0.11 * math.tanh(0.625), rel=1e-12)  # right after: cheap, -0.061


def test_only_the_preceding_window_sets_a_false_alarm_weight():
    two = [(5, 9), (20, 24)]
    weights = row_weights(40, two, STANDARD)
    assert weights[15] == pytest.approx(fp_weight_after(15, 5, 9, 0.11))  # nearer the next window, still uses the first
    assert weights[26] == pytest.approx(fp_weight_after(26, 20, 24, 0.11))


# -- section 3: one file at a threshold -----------------------------------------
def test_only_the_earliest_alarm_in_a_window_counts():
    assert score_file(ONE_WINDOW, alarms_at(N, [7, 8]), 0.5).raw == pytest.approx(tp_weight(7, START, END))
    assert score_file(ONE_WINDOW, alarms_at(N, [8, 6]), 0.5).raw == pytest.approx(tp_weight(6, START, END))
    everywhere = score_file(ONE_WINDOW, alarms_at(N, range(START, END + 1)), 0.5)
    assert everywhere.raw == pytest.approx(1.0)
    assert (everywhere.detected, everywhere.missed, everywhere.false_alarms) == (1, 0, 0)


def test_hand_values_of_window_rewards():
    # tanh(1.5) / tanh(2.5) and tanh(2) / tanh(2.5), worked out by hand.
    assert score_file(ONE_WINDOW, alarms_at(N, [7]), 0.5).raw == pytest.approx(0.917429, abs=1e-6)
    assert score_file(ONE_WINDOW, alarms_at(N, [6]), 0.5).raw == pytest.approx(0.977107, abs=1e-6)


@pytest.mark.parametrize("profile, cost", [(STANDARD, -1.0), (LOW_FP, -1.0), (LOW_FN, -2.0)], ids=lambda v: getattr(v, "name", v))
def test_a_missed_window_costs_a_fn(profile, cost):
    result = score_file(ONE_WINDOW, np.zeros(N), 0.5, profile)
    assert result.raw == cost
    assert (result.detected, result.missed) == (0, 1)


@pytest.mark.parametrize("profile", [STANDARD, LOW_FP], ids=lambda p: p.name)
def test_false_alarm_before_the_window_costs_a_fp(profile):
    result = score_file(ONE_WINDOW, alarms_at(N, [2, 5]), 0.5, profile)
    assert result.raw == pytest.approx(1.0 - profile.fp_weight)
    assert result.false_alarms == 1


def test_every_false_alarm_after_the_window_is_charged():
    result = score_file(ONE_WINDOW, alarms_at(N, [5, 10, 11, 22, 30]), 0.5)
    expected = 1.0 + 0.11 * (math.tanh(-0.625) + math.tanh(-1.25)) - 0.11 - 0.11
    assert result.raw == pytest.approx(expected, rel=1e-12)
    assert result.false_alarms == 4


def test_a_file_without_windows_charges_a_fp_everywhere():
    quiet = toy_file(20, [])
    assert score_file(quiet, alarms_at(20, [0, 7, 19]), 0.5).raw == pytest.approx(-0.33)


def test_probationary_rows_count_for_nothing():
    on_probation = toy_file(N, [(START, END)], probation=6)
    # Row 2 (a false alarm) and row 5 (the window's first row) are in probation.
    result = score_file(on_probation, alarms_at(N, [2, 5, 7]), 0.5)
    assert result.raw == pytest.approx(tp_weight(7, START, END))
    assert result.false_alarms == 0


def test_alarm_means_score_at_or_above_the_threshold():
    scores = alarms_at(N, [5], level=0.7)
    assert score_file(ONE_WINDOW, scores, 0.7).raw == pytest.approx(1.0)
    assert score_file(ONE_WINDOW, scores, np.nextafter(0.7, 1)).raw == -1.0


def test_wrong_number_of_scores_is_refused():
    with pytest.raises(ValueError, match="expected 40 scores"):
        score_file(ONE_WINDOW, np.zeros(39), 0.5)


# -- section 5: threshold optimisation -------------------------------------------
def test_sweep_follows_the_earliest_alarm_as_the_threshold_falls():
    # Row 7 is seen first (0.95), then the earlier row 5 (0.9) raises the reward
    # to 1; row 8 (0.8) changes nothing; row 30 (0.7) is a far false alarm.
    scores = np.full(N, 0.1)
    scores[[7, 5, 8, 30]] = [0.95, 0.9, 0.8, 0.7]
    curve = threshold_curve([ONE_WINDOW], [scores])
    np.testing.assert_array_equal(curve.thresholds, [1.1, 0.95, 0.9, 0.8, 0.7, 0.1])
    everything = 1.0 - 0.11 * 5 + 0.11 * sum(math.tanh(-2.5 * (r - END) / 4) if (r - END) / 4 <= 3 else -1
                                             for r in range(END + 1, N))
    expected = [-1.0, tp_weight(7, START, END), 1.0, 1.0, 0.89, everything]
    np.testing.assert_allclose(curve.totals(STANDARD), expected, rtol=1e-12)


def test_optimiser_breaks_ties_towards_the_highest_threshold():
    scores = np.zeros(N)
    scores[[7, 5, 8]] = [0.95, 0.9, 0.8]  # 0.9 and 0.8 both give exactly 1.0
    result = score_corpus([ONE_WINDOW], [scores], "standard")
    assert result.threshold == 0.9
    assert result.raw == pytest.approx(1.0)
    assert result.normalised == pytest.approx(100.0)


def test_optimiser_accepts_a_false_alarm_when_the_detection_is_worth_it():
    scores = np.zeros(N)
    scores[[30, 5]] = [0.7, 0.6]
    result = score_corpus([ONE_WINDOW], [scores], "standard")
    assert (result.threshold, result.raw) == (0.6, pytest.approx(0.89))
    assert result.normalised == pytest.approx(100 * (0.89 + 1) / 2)


def test_optimiser_stays_silent_when_alarms_cost_more_than_they_earn():
    # The window's only alarm comes at its last row, and at the same score
    # come 20 far false alarms: worth it only when a miss costs 2.
    scores = np.zeros(N)
    scores[[END, *range(20, 40)]] = 0.8
    late_reward = tp_weight(END, START, END)  # tanh(0.5) / tanh(2.5) = 0.468
    far_costs = sum(f((r - END) / 4) for r in range(20, 40))  # about -20
    results = score_profiles([ONE_WINDOW], [scores])
    for name in ("standard", "reward_low_FP_rate"):
        assert (results[name].threshold, results[name].raw, results[name].normalised) == (1.1, -1.0, 0.0)
    low_fn = results["reward_low_FN_rate"]
    assert low_fn.threshold == 0.8
    assert low_fn.raw == pytest.approx(late_reward + 0.11 * far_costs, rel=1e-12)
    assert -2.0 < low_fn.raw < -1.0


def test_score_at_a_given_threshold():
    result = score_corpus([ONE_WINDOW], [alarms_at(N, [6])], "reward_low_FN_rate", threshold=2.0)
    assert (result.threshold, result.raw, result.normalised) == (2.0, -2.0, 0.0)


# -- section 7: normalisation ----------------------------------------------------
def small_corpus():
    return [
        toy_file(40, [(5, 9)], probation=3, path="a/one.csv"),
        toy_file(60, [(10, 14), (30, 39)], probation=9, path="a/two.csv"),
        toy_file(25, [], probation=3, path="b/none.csv"),
    ]


def perfect_scores(files):
    return [alarms_at(f.n_rows, [start for start, _ in f.windows]) for f in files]


@pytest.mark.parametrize("profile", list(PROFILES))
def test_a_perfect_detector_scores_100_and_a_silent_one_0(profile):
    files = small_corpus()
    perfect = score_corpus(files, perfect_scores(files), profile)
    assert (perfect.raw, perfect.normalised) == (pytest.approx(3.0), pytest.approx(100.0))
    silent = score_corpus(files, [np.zeros(f.n_rows) for f in files], profile)
    assert silent.threshold == 1.1
    assert silent.raw == -3.0 * PROFILES[profile].fn_weight
    assert silent.normalised == 0.0


def test_normalise_formula():
    assert normalise(46.6345, 116, "standard") == pytest.approx(70.10, abs=0.005)  # NAB's numenta example
    assert normalise(-232.0, 116, "reward_low_FN_rate") == 0.0
    assert normalise(116.0, 116, "reward_low_FN_rate") == 100.0
    assert math.isnan(normalise(0.0, 0, "standard"))


def test_scores_may_be_given_by_path():
    files = small_corpus()
    by_path = {f.path: s for f, s in zip(files, perfect_scores(files))}
    assert score_corpus(files, by_path).normalised == pytest.approx(100.0)


# -- incremental sweep against brute force ----------------------------------------
def naive_file_score(file, scores, threshold, profile) -> float:
    """Section 3 with plain loops, straight from the README."""
    total = 0.0
    for start, end in file.windows:
        alarms = [r for r in range(max(start, file.probation), end + 1) if scores[r] >= threshold]
        total += tp_weight(alarms[0], start, end, profile.tp_weight) if alarms else -profile.fn_weight
    for row in range(file.probation, file.n_rows):
        if scores[row] < threshold or any(s <= row <= e for s, e in file.windows):
            continue
        before = [(s, e) for s, e in file.windows if e < row]
        if not before:
            total -= profile.fp_weight
        else:
            s, e = before[-1]
            total += profile.fp_weight * (f((row - e) / (e - s)) if e > s else -1.0)
    return total


def random_corpus(rng, n_files=6):
    """Small files with 0-3 windows (one-row and back-to-back windows included) and many tied scores."""
    files, scores = [], []
    for i in range(n_files):
        n_rows = int(rng.integers(8, 60))
        windows, next_free = [], int(rng.integers(0, 4))
        for _ in range(int(rng.integers(0, 4))):
            start = next_free + int(rng.integers(0, 10))
            end = start + int(rng.integers(0, 6))
            if end >= n_rows:
                break
            windows.append((start, end))
            next_free = end + 1 + int(rng.integers(0, 3))
        files.append(toy_file(n_rows, windows, probation=int(rng.integers(0, 5)), path=f"r/f{i}.csv"))
        scores.append(rng.integers(0, 8, n_rows) / 7.0)
    return files, scores


@pytest.mark.parametrize("seed", range(6))
def test_incremental_sweep_equals_brute_force_rescoring(seed):
    rng = np.random.default_rng(seed)
    files, scores = random_corpus(rng)
    curve = threshold_curve(files, scores)
    pooled = np.concatenate([s[f.probation :] for f, s in zip(files, scores)])
    np.testing.assert_array_equal(curve.thresholds, np.unique(np.r_[pooled, 1.1])[::-1])
    for profile in PROFILES.values():
        brute = np.array([sum(naive_file_score(f, s, t, profile) for f, s in zip(files, scores))
                          for t in curve.thresholds])
        np.testing.assert_allclose(curve.totals(profile), brute, rtol=0, atol=1e-12)
        best = brute.max()
        highest_best = curve.thresholds[np.flatnonzero(brute >= best - 1e-9)[0]]
        result = score_corpus(files, scores, profile)
        assert result.threshold == highest_best
        assert result.raw == pytest.approx(best, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_file_score_equals_naive_loops(seed):
    rng = np.random.default_rng(100 + seed)
    files, scores = random_corpus(rng)
    for file, file_scores in zip(files, scores):
        for threshold in (0.0, 3 / 7, 1.0):
            for profile in PROFILES.values():
                assert score_file(file, file_scores, threshold, profile).raw == pytest.approx(
                    naive_file_score(file, file_scores, threshold, profile), abs=1e-12)


# -- loading ------------------------------------------------------------------
def write_nab(root: Path, files: dict, windows: dict) -> Path:
    for relative, frame in files.items():
        (root / "data" / relative).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(root / "data" / relative, index=False)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root


def five_minute_frame(n_rows):
    stamps = pd.date_range("2020-01-01", periods=n_rows, freq="5min").strftime("%Y-%m-%d %H:%M:%S")
    return pd.DataFrame({"timestamp": stamps, "value": np.arange(n_rows) % 7})


def test_load_corpus_maps_windows_to_inclusive_rows(tmp_path):
    frame = five_minute_frame(40)
    window = [frame.timestamp[10] + ".000000", frame.timestamp[14] + ".000000"]
    write_nab(tmp_path, {"catB/b.csv": frame, "catA/a.csv": frame}, {"catB/b.csv": [window], "catA/a.csv": []})
    files = load_corpus(tmp_path)
    assert [f.path for f in files] == ["catA/a.csv", "catB/b.csv"]
    b = files[1]
    assert (b.category, b.name, b.windows, b.probation, b.n_rows) == ("catB", "b", ((10, 14),), 6, 40)
    assert b.labels.sum() == 5 and b.labels[10] == 1 and b.labels[15] == 0
    np.testing.assert_array_equal(b.values, np.arange(40) % 7)


def test_load_corpus_refuses_a_window_off_the_rows(tmp_path):
    frame = five_minute_frame(40)
    write_nab(tmp_path, {"c/x.csv": frame}, {"c/x.csv": [["2020-01-01 00:51:00.000000", "2020-01-01 01:10:00.000000"]]})
    with pytest.raises(ValueError, match="does not start and end on row timestamps"):
        load_corpus(tmp_path)


def test_load_corpus_refuses_a_label_without_data(tmp_path):
    write_nab(tmp_path, {"c/x.csv": five_minute_frame(10)}, {"c/x.csv": [], "c/gone.csv": []})
    with pytest.raises(ValueError, match="gone.csv"):
        load_corpus(tmp_path)


def test_probation_length():
    assert [probation_length(n) for n in (0, 6, 7, 4032, 5000, 5006, 22695)] == [0, 0, 1, 604, 750, 750, 750]


# -- running detectors ----------------------------------------------------------
class CountingMean(Detector):
    """Scores by distance from the running mean, shrunk by the number of points seen.

    Its scores depend on every earlier point of its stream, so any state
    shared between files, or any padding leaking in, would change them.
    """

    name = "countingmean"
    multivariate = False

    def __init__(self, *, warmup: int = 2, threshold: float = 0.9):
        super().__init__(warmup=warmup, threshold=threshold)

    def _allocate(self, n_streams, n_features):
        self.total_ = np.zeros(n_streams)
        self.count_ = np.zeros(n_streams)

    def _score_and_learn(self, X, present):
        x = X[:, 0]
        mean = self.total_ / np.maximum(self.count_, 1)
        score = 1.0 - np.exp(-np.abs(x - mean) / (1.0 + self.count_))
        self.total_[present] += x[present]
        self.count_[present] += 1
        return score


def test_run_detector_treats_each_file_as_a_fresh_stream():
    rng = np.random.default_rng(7)
    files = [
        NabFile(f"t/f{i}.csv", "t", f"f{i}", np.arange(n), rng.normal(size=n) * (i + 1), (), 0)
        for i, n in enumerate([30, 55, 12, 55, 41])
    ]
    alone = [CountingMean().score_series(f.values) for f in files]
    for batch in (1, 2, 16):
        finished = []
        together = run_detector(CountingMean(), files, batch=batch, progress=finished.append)
        for one, other in zip(alone, together):
            np.testing.assert_array_equal(one, other)
        assert sum(finished) == len(files)


def test_evaluate_detector_reports_every_profile():
    values = np.r_[np.zeros(40), np.full(20, 50.0)]
    file = NabFile("t/step.csv", "t", "step", np.arange(60), values, [(40, 45)], 6)
    evaluation = evaluate_detector(CountingMean(), [file])
    assert set(evaluation.normalised) == set(PROFILES)
    assert evaluation.detector == "countingmean"
    assert len(evaluation.scores) == 1 and evaluation.scores[0].shape == (60,)
    # The jump at the window's first row is the highest score: a perfect detection.
    assert evaluation.normalised["standard"] == pytest.approx(100.0)


def test_write_results_uses_nab_layout(tmp_path):
    stamps = np.array(["2020-01-01T00:00:00", "2020-01-01T00:05:00", "2020-01-01T00:10:00"], dtype="datetime64[ns]")
    file = NabFile("catA/my_file.csv", "catA", "my_file", stamps, [3.0, 4.5, 5.0], [(1, 1)], 0)
    (path,) = write_results(tmp_path, "toy", [file], [np.array([0.0, 0.25, 1.0])])
    assert path == tmp_path / "toy" / "catA" / "toy_my_file.csv"
    written = pd.read_csv(path, dtype=str)
    assert list(written.columns) == ["timestamp", "value", "anomaly_score", "label"]
    assert written.timestamp.tolist() == ["2020-01-01 00:00:00", "2020-01-01 00:05:00", "2020-01-01 00:10:00"]
    assert written.label.tolist() == ["0", "1", "0"]
    assert written.anomaly_score.astype(float).tolist() == [0.0, 0.25, 1.0]



def test_file_scores_say_where_each_profiles_score_came_from(tmp_path):
    hit = NabFile("catA/hit.csv", "catA", "hit", np.arange(60), np.zeros(60), [(40, 45)], 6)
    miss = NabFile("catA/miss.csv", "catA", "miss", np.arange(60), np.zeros(60), [(20, 25)], 6)
    scores = [np.where(np.arange(60) == 40, 1.0, 0.0), np.where(np.arange(60) == 50, 0.9, 0.0)]
    results = score_profiles([hit, miss], scores)
    written = pd.read_csv(write_file_scores(tmp_path / "toy_files.csv", results))
    assert list(written.profile.unique()) == list(results)
    for name, result in results.items():
        rows = written[written.profile == name]
        assert rows.path.tolist() == ["catA/hit.csv", "catA/miss.csv"]
        assert rows.raw.sum() == pytest.approx(result.raw)
        assert (rows.threshold == result.threshold).all()
        assert rows.detected.sum() == result.detected and rows.false_alarms.sum() == result.false_alarms

# -- the real corpus ------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus():
    return load_corpus(NAB_DIR)


@needs_corpus
def test_real_corpus_matches_the_readme_summary(corpus):
    assert len(corpus) == 58
    assert sum(f.n_rows for f in corpus) == 365_558
    assert sum(f.probation for f in corpus) == 32_716
    assert sum(len(f.windows) for f in corpus) == 116
    assert sum(int(f.labels.sum()) for f in corpus) == 33_495
    taxi = next(f for f in corpus if f.path == "realKnownCause/nyc_taxi.csv")
    start, end = taxi.windows[0]
    assert str(taxi.timestamps[start])[:19] == "2014-10-30T15:30:00"
    assert str(taxi.timestamps[end])[:19] == "2014-11-03T22:30:00"


@needs_corpus
@pytest.mark.parametrize("profile", list(PROFILES))
def test_real_corpus_perfect_oracle_scores_100_and_null_0(corpus, profile):
    perfect = score_corpus(corpus, perfect_scores(corpus), profile)
    assert perfect.raw == pytest.approx(116.0, abs=1e-9)
    assert perfect.normalised == pytest.approx(100.0, abs=1e-9)
    assert perfect.false_alarms == 0 and perfect.detected == 116
    null = score_corpus(corpus, [np.zeros(f.n_rows) for f in corpus], profile)
    assert null.raw == -116.0 * PROFILES[profile].fn_weight
    assert null.normalised == 0.0
