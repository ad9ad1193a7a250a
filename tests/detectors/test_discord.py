"""The discord member against a brute-force causal left matrix profile."""
import numpy as np
import pytest

import detectors.discord as discord
from detectors.discord import DiscordDetector


def brute_left_profile(x, m, exclusion, lags):
    """Smallest z-normalised distance (divided by sqrt(2m)) of each stretch ending at t to earlier ones."""
    out = np.full(len(x), np.nan)
    z = lambda s: (s - s.mean()) / s.std()
    for t in range(m - 1, len(x)):
        newest = z(x[t - m + 1:t + 1])
        best = np.inf
        for lag in range(exclusion, lags + 1):
            if t - lag - m + 1 < 0:
                break
            best = min(best, np.sum((newest - z(x[t - lag - m + 1:t - lag + 1])) ** 2))
        if np.isfinite(best):
            out[t] = np.sqrt(best / (2 * m))
    return out


def test_one_point_blocks_give_the_exact_left_matrix_profile(monkeypatch):
    monkeypatch.setattr(discord, "FLAT_SHARE", 0.0)  # no spread floor: plain z-normalisation
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=300))
    det = DiscordDetector(windows=(8,), lags=40).reset(1, 1)
    got = np.full(300, np.nan)
    for t, v in enumerate(x):
        det.step(np.array([[v]]))
        got[t] = det.windows_[0].distance[0]
    expected = brute_left_profile(x, 8, discord.EXCLUSION, 40)
    known = ~np.isnan(expected)
    np.testing.assert_allclose(got[known][10:], expected[known][10:], rtol=1e-6, atol=1e-9)


def test_more_than_one_field_is_refused_by_name():
    with pytest.raises(ValueError, match="univariate"):
        DiscordDetector().reset(3, 2)


def test_streams_of_a_bank_are_scored_as_if_alone():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=900), np.sin(np.arange(900) / 7.0)
    alone = DiscordDetector().score_series(a)
    together = DiscordDetector().score_many([b, a])[1]
    # Staggered block phases depend on the row, so compare the row-1 stream with itself in row 1.
    again = DiscordDetector().score_many([np.zeros(900), a])[1]
    np.testing.assert_allclose(together, again, rtol=1e-9, atol=1e-12)
    assert alone.shape == together.shape
