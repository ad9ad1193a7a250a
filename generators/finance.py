"""Financial streams: an asset price, payment amounts, and an asset's returns."""
from __future__ import annotations

import numpy as np

from .base import SyntheticStream
from .patterns import daily_wave

__all__ = ["Financial", "Transactions", "StockRisk"]


class Financial(SyntheticStream):
    """Price of a traded asset, in USD.

    Normal: geometric Brownian motion from 100 USD with 0.12 % volatility per
    step and no drift.  The noise scale that sizes anomalies is four steps'
    volatility (roughly the price's wander over the last quarter-hour), so a
    crash is a move the random walk would not make on its own.  Anomalies:
    flash spikes up or down (``spike``), crashes that recover (``level_shift``
    downwards) and bursts of volatility (``variance``).
    """

    name = "financial"
    fields = ("price",)
    units = {"price": "USD"}
    description = "Asset price: geometric random walk; flash spikes, crashes, volatility bursts"
    kinds = {"spike": 2, "level_shift": 2, "variance": 1}
    signs = {"level_shift": -1}
    bounds = {"price": (0.0, np.inf)}
    step_volatility = 0.0012
    scale_steps = 4.0

    def _start_state(self, rng):
        self.log_price_ = np.log(100.0)

    def _baseline(self, times, rng):
        sigma = self.step_volatility
        log_price = self.log_price_ + np.cumsum(sigma * rng.standard_normal(len(times)) - 0.5 * sigma * sigma)
        self.log_price_ = log_price[-1]
        price = np.exp(log_price)[:, None]
        return price, self.scale_steps * sigma * price


class Transactions(SyntheticStream):
    """Amount of one bank/UPI payment per step, in INR.

    Normal: lognormal amounts (log-sd 0.35) around a median of 900 INR by day
    and 630 INR at night.  Anomalies: sudden large transfers (``spike``, 7-16
    times the median) and bursts of high-value payments, as from a mule
    account (``level_shift`` upwards).
    """

    name = "transactions"
    fields = ("amount",)
    units = {"amount": "INR"}
    description = "Bank/UPI payment amounts: lognormal, daily rhythm; sudden large transfers, high-value bursts"
    kinds = {"spike": 3, "level_shift": 2}
    signs = {"spike": 1, "level_shift": 1}
    magnitudes = {"spike": (16.0, 40.0), "level_shift": (6.0, 10.0)}
    bounds = {"amount": (0.0, np.inf)}
    log_sd = 0.35

    def _start_state(self, rng):
        pass  # amounts are independent draws: no state to carry

    def _baseline(self, times, rng):
        median = (900.0 * (0.7 + 0.3 * daily_wave(times, 13.0)))[:, None]
        amount = median * np.exp(self.log_sd * rng.standard_normal((len(times), 1)))
        variance = self.log_sd**2
        sd = median * np.sqrt((np.exp(variance) - 1.0) * np.exp(variance))
        return amount, sd


class StockRisk(SyntheticStream):
    """Return of an equity index over each step, in basis points.

    We model the *return* rather than a volatility estimate: a volatility
    regime is then a ``variance`` change of the returns, and an extreme move a
    single large return.  Normal: Gaussian returns with an 8 bp standard
    deviation, up to 20 % higher around the 15:00 UTC session.  Anomalies:
    extreme moves (``spike``), high-volatility regimes (``variance``) and
    crashes, a run of large negative returns (``level_shift`` downwards).
    """

    name = "stock_risk"
    fields = ("return",)
    units = {"return": "bp"}
    description = "Equity index returns per step: volatility regimes, extreme moves, crashes"
    kinds = {"spike": 2, "variance": 2, "level_shift": 1}
    signs = {"level_shift": -1}
    magnitudes = {"spike": (8.0, 12.0), "level_shift": (4.0, 6.0)}
    base_sd = 8.0

    def _start_state(self, rng):
        pass  # returns are independent draws: no state to carry

    def _baseline(self, times, rng):
        sd = (self.base_sd * (0.9 + 0.2 * daily_wave(times, 15.0)))[:, None]
        return sd * rng.standard_normal((len(times), 1)), sd
