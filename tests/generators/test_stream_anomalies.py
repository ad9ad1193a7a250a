"""Injected anomalies: labels, kinds, episode shapes, rates, and the normal part around them."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from generators import ANOMALY_KINDS, STREAMS, make_stream
from generators.base import CyclicStream
from generators.episodes import LENGTHS, MAGNITUDES
from generators.patterns import hour_of_day

#: Points per stream that most tests look at.
N_POINTS = 5000


@pytest.fixture(scope="module")
def default_frames() -> dict[str, pd.DataFrame]:
    """5,000 points of every stream at the default anomaly rate, seed 0."""
    return {name: make_stream(name, seed=0).frame(N_POINTS) for name in STREAMS}


def episodes(df: pd.DataFrame) -> list[tuple[int, int, str]]:
    """``(start, stop, kind)`` of every episode (run of one kind) in a frame."""
    kinds = df["kind"].to_numpy()
    labelled = np.append(df["is_anomaly"].to_numpy(), False)
    starts = np.flatnonzero(labelled & ~np.roll(labelled, 1))
    stops = np.flatnonzero(~labelled & np.roll(labelled, 1))
    return [(int(a), int(b), kinds[a]) for a, b in zip(starts, stops)]


def field_values(df: pd.DataFrame, name: str) -> np.ndarray:
    """The ``(n, d)`` values of a frame, in the stream's field order."""
    return df[list(STREAMS[name].fields)].to_numpy()


def test_every_kind_appears_across_the_nine_streams(default_frames):
    seen = set()
    for df in default_frames.values():
        seen |= set(df["kind"].dropna())
    assert seen == set(ANOMALY_KINDS)


def test_every_kind_is_declared_by_some_stream():
    declared = set().union(*(cls.kinds for cls in STREAMS.values()))
    assert declared == set(ANOMALY_KINDS)


@pytest.mark.parametrize("name", STREAMS)
def test_each_stream_shows_all_its_kinds(name):
    df = make_stream(name, seed=0, anomaly_rate=0.05).frame(N_POINTS)
    assert set(df["kind"].dropna()) == set(STREAMS[name].kinds)


@pytest.mark.parametrize("name", STREAMS)
def test_labels_agree_with_kinds(name, default_frames):
    df = default_frames[name]
    assert (df["is_anomaly"] == df["kind"].notna()).all()
    assert set(df["kind"].dropna()) <= set(STREAMS[name].kinds)


@pytest.mark.parametrize("name", STREAMS)
def test_episodes_have_their_kinds_length_and_are_separated(name):
    df = make_stream(name, seed=1, anomaly_rate=0.1).frame(N_POINTS)
    runs = episodes(df)
    assert runs
    lengths = {**LENGTHS, **STREAMS[name].lengths}
    for start, stop, kind in runs:
        low, high = lengths[kind]
        if kind == "contextual":  # cut short where the quiet hours end
            low = 1
        assert low <= stop - start <= high, (kind, start, stop)
    # A normal point always separates two episodes, so runs never touch.
    assert all(nxt[0] > prev[1] for prev, nxt in zip(runs, runs[1:]))


@pytest.mark.parametrize("name", STREAMS)
def test_no_episode_starts_during_warmup(name):
    df = make_stream(name, seed=2, anomaly_rate=0.5, warmup_points=300).frame(600)
    assert not df["is_anomaly"].iloc[:300].any()
    assert df["is_anomaly"].iloc[300:].any()


@pytest.mark.parametrize("name", STREAMS)
def test_zero_rate_gives_a_clean_stream(name):
    df = make_stream(name, seed=3, anomaly_rate=0.0).frame(N_POINTS)
    assert not df["is_anomaly"].any()
    assert df["kind"].isna().all()


@pytest.mark.parametrize("name", STREAMS)
@pytest.mark.parametrize("rate", [0.02, 0.1])
def test_anomaly_rate_is_the_fraction_of_labelled_points(name, rate):
    n = 60_000 if rate == 0.02 else 20_000
    fraction = make_stream(name, seed=4, anomaly_rate=rate).frame(n)["is_anomaly"].mean()
    assert 0.7 * rate <= fraction <= 1.3 * rate


@pytest.mark.parametrize("name", STREAMS)
def test_higher_rate_labels_more_points(name):
    low, high = (make_stream(name, seed=6, anomaly_rate=r).frame(10_000)["is_anomaly"].sum() for r in (0.02, 0.2))
    assert high > 3 * low > 0


@pytest.mark.parametrize("name", STREAMS)
def test_values_are_finite_and_within_bounds(name):
    gen = make_stream(name, seed=7, anomaly_rate=0.2)
    values = field_values(gen.frame(N_POINTS), name)
    assert np.isfinite(values).all()
    for j, field in enumerate(gen.fields):
        low, high = gen.bounds.get(field, (-np.inf, np.inf))
        assert (values[:, j] >= low).all() and (values[:, j] <= high).all()


def _clean_and_dirty(name, seed=8, rate=0.2, n=N_POINTS):
    clean = field_values(make_stream(name, seed=seed, anomaly_rate=0.0).frame(n), name)
    dirty = make_stream(name, seed=seed, anomaly_rate=rate).frame(n)
    return clean, dirty, field_values(dirty, name)


@pytest.mark.parametrize("name", [n for n, cls in STREAMS.items() if "stuck" in cls.kinds])
def test_stuck_repeats_the_last_normal_value_exactly(name):
    clean, dirty, values = _clean_and_dirty(name)
    runs = [r for r in episodes(dirty) if r[2] == "stuck"]
    assert runs
    for start, stop, _ in runs:
        frozen = values[start - 1]
        same = values[start:stop] == frozen
        # Every point repeats the last reading on the frozen field(s); some field is frozen.
        stuck_fields = same.all(axis=0)
        assert stuck_fields.any()
        assert (values[start:stop, ~stuck_fields] == clean[start:stop, ~stuck_fields]).all()


@pytest.mark.parametrize("name", [n for n, cls in STREAMS.items() if "dropout" in cls.kinds])
def test_dropout_reads_the_floor(name):
    gen = make_stream(name)
    floors = np.array([gen.bounds[f][0] for f in gen.fields])
    _, dirty, values = _clean_and_dirty(name)
    rows = (dirty["kind"] == "dropout").to_numpy()
    assert rows.any()
    assert ((values[rows] == floors) .any(axis=1)).all()


@pytest.mark.parametrize("name", [n for n, cls in STREAMS.items() if "drift" in cls.kinds])
def test_drift_moves_steadily_away_from_normal(name):
    clean, dirty, values = _clean_and_dirty(name)
    runs = [r for r in episodes(dirty) if r[2] == "drift"]
    assert runs
    for start, stop, _ in runs:
        offset = np.abs(values[start:stop] - clean[start:stop]).max(axis=1)
        assert np.all(np.diff(offset) > 0)
        assert offset[-1] >= 5 * offset[0]


@pytest.mark.parametrize("name", [n for n, cls in STREAMS.items() if issubclass(cls, CyclicStream)])
def test_offsets_are_several_noise_deviations(name):
    cls = STREAMS[name]
    clean, dirty, values = _clean_and_dirty(name)
    kinds = dirty["kind"].to_numpy()
    deviation = np.abs(values - clean).max(axis=1) / cls.noise_sd
    for kind in ("spike", "level_shift"):
        rows = kinds == kind
        if rows.any():
            low = {**MAGNITUDES, **cls.magnitudes}[kind][0]
            assert (deviation[rows] >= low - 1e-9).all(), kind


@pytest.mark.parametrize("name", [n for n, cls in STREAMS.items() if "contextual" in cls.kinds])
def test_contextual_points_take_busy_hour_levels_in_quiet_hours(name):
    cls = STREAMS[name]
    clean, dirty, values = _clean_and_dirty(name)
    rows = (dirty["kind"] == "contextual").to_numpy()
    assert rows.any()
    hours = hour_of_day(dirty["timestamp"].to_numpy()[rows])
    first, last = cls.quiet_hours
    assert ((hours >= first) & (hours < last)).all()
    # Normal at the busy hour, abnormal now: well above the night's usual level.
    assert ((values[rows] - clean[rows]).min(axis=1) >= 4 * cls.noise_sd).all()


def test_machine_failures_drift_both_readings_together():
    clean, dirty, values = _clean_and_dirty("machine_health")
    rows = (dirty["kind"] == "drift").to_numpy()
    assert ((values[rows] - clean[rows]) > 0).all()


def test_iot_failures_hit_one_sensor_at_a_time():
    clean, dirty, values = _clean_and_dirty("iot_sensors")
    rows = dirty["is_anomaly"].to_numpy() & (dirty["kind"] != "stuck").to_numpy()
    changed = (values[rows] != clean[rows]).sum(axis=1)
    assert (changed == 1).all()


def test_daily_pattern_follows_simulated_time():
    # One point an hour for 30 days: the afternoon is busier than the small hours.
    df = make_stream("cpu_usage", anomaly_rate=0.0, step_seconds=3600).frame(24 * 30)
    hours = hour_of_day(df["timestamp"].to_numpy())
    assert df["cpu"][hours == 14].mean() > df["cpu"][hours == 3].mean() + 20


def test_machine_readings_are_positively_correlated():
    df = make_stream("machine_health", anomaly_rate=0.0).frame(N_POINTS)
    assert np.corrcoef(df["temperature"], df["vibration"])[0, 1] > 0.5


def test_kind_counts_at_the_default_rate(default_frames, capsys):
    """Print the labelled fraction and count per kind of every stream (the figures in the report)."""
    with capsys.disabled():
        print()
        for name, df in default_frames.items():
            counts = Counter(df["kind"].dropna())
            print(f"{name:16s} labelled {df['is_anomaly'].mean():.4f} {dict(sorted(counts.items()))}")
    assert all(df["is_anomaly"].mean() < 0.1 for df in default_frames.values())
