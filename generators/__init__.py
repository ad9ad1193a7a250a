"""Seeded synthetic streams with realistic structure and labelled, injected anomalies.

``STREAMS`` maps the nine stream names to their classes; ``make_stream(name,
seed=..., anomaly_rate=...)`` builds one.  Each ``next()`` returns a
:class:`Point` one ``step_seconds`` later in simulated time, with its ground
truth: whether it lies inside an injected anomaly episode, and which of
``ANOMALY_KINDS`` it is.

``anomaly_rate`` is the expected long-run fraction of *labelled points* (not
of episode starts): 0.02 means about 2 % of points lie inside an episode.
Patterns follow the simulated UTC clock (5 minutes per point by default).

==================  ====================================  ================================================
stream              fields                                anomaly kinds
==================  ====================================  ================================================
cpu_usage           cpu (%)                               spike, level_shift, variance, contextual
financial           price (USD)                           spike, level_shift (crash), variance
network_traffic     mbps (Mbit/s)                         spike, level_shift (DDoS), variance, dropout
transactions        amount (INR)                          spike (large transfer), level_shift
electricity         kw (kW)                               spike, level_shift, contextual, dropout
machine_health      temperature (°C), vibration (mm/s)    drift, spike, variance, stuck
server_traffic      requests_per_min (req/min)            spike, level_shift, dropout, contextual
stock_risk          return (bp per step)                  spike, variance (volatility regime), level_shift
iot_sensors         humidity, temperature, pressure       stuck, dropout, spike, drift
==================  ====================================  ================================================
"""
from .base import SyntheticStream
from .episodes import ANOMALY_KINDS
from .point import Point
from .registry import STREAMS, make_stream

__all__ = ["ANOMALY_KINDS", "Point", "STREAMS", "SyntheticStream", "make_stream"]
