"""IT infrastructure streams: CPU utilisation, network throughput, web server requests."""
from __future__ import annotations

import numpy as np

from .base import CyclicStream
from .patterns import business_hours, daily_wave, weekly_factor

__all__ = ["CpuUsage", "NetworkTraffic", "ServerTraffic"]


class CpuUsage(CyclicStream):
    """CPU utilisation of a server, in percent.

    Normal: about 20 % at night, peaking near 48 % at 14:00 UTC, plus AR(1)
    noise of 4 points.  Anomalies: runaway processes (``spike``), a stuck job
    holding cores (``level_shift`` upwards), thrashing (``variance``) and a
    batch job running at daytime load in the small hours (``contextual``).
    """

    name = "cpu_usage"
    fields = ("cpu",)
    units = {"cpu": "%"}
    description = "Server CPU utilisation: daily busy cycle; runaway processes, stuck jobs, batch load at night"
    kinds = {"spike": 2, "level_shift": 2, "variance": 1, "contextual": 2}
    signs = {"spike": 1, "level_shift": 1}
    bounds = {"cpu": (0.0, 100.0)}
    busy_hour = 14.0
    noise_sd = 4.0
    noise_phi = 0.6

    def _profile(self, times):
        return (20.0 + 28.0 * daily_wave(times, 14.0) ** 1.5)[:, None]


class NetworkTraffic(CyclicStream):
    """Throughput of an ISP edge link, in Mbit/s.

    Normal: 300 Mbit/s in the small hours rising to 400 at the 20:00 UTC
    evening peak, 15 % lower at the weekend, AR(1) noise of 15 Mbit/s.
    Anomalies: DDoS-like bursts (``spike`` and sustained ``level_shift``
    upwards), a flapping link (``variance``) and the link going down
    (``dropout`` to 0).
    """

    name = "network_traffic"
    fields = ("mbps",)
    units = {"mbps": "Mbit/s"}
    description = "ISP link throughput: daily and weekly cycle; DDoS-like bursts, flapping link, outages"
    kinds = {"spike": 2, "level_shift": 2, "variance": 1, "dropout": 1}
    signs = {"spike": 1, "level_shift": 1}
    magnitudes = {"spike": (10.0, 20.0), "level_shift": (8.0, 14.0)}
    bounds = {"mbps": (0.0, np.inf)}
    busy_hour = 20.0
    noise_sd = 15.0
    noise_phi = 0.5

    def _profile(self, times):
        return (400.0 * weekly_factor(times, 0.85) * (0.75 + 0.25 * daily_wave(times, 20.0)))[:, None]


class ServerTraffic(CyclicStream):
    """Requests per minute reaching a web service.

    Normal: about 840 requests/min at night and 1,200 in working hours
    (08:00-20:00 UTC), 15 % less at the weekend, AR(1) noise of 50
    requests/min.  Anomalies: sudden surges (``spike``, ``level_shift``
    upwards), an outage (``dropout`` to 0) and a bot crawling at daytime rates
    in the small hours (``contextual``).
    """

    name = "server_traffic"
    fields = ("requests_per_min",)
    units = {"requests_per_min": "req/min"}
    description = "Web requests per minute: daily and weekly cycle; sudden surges, outages, bots at night"
    kinds = {"spike": 2, "level_shift": 2, "dropout": 1, "contextual": 1}
    signs = {"spike": 1, "level_shift": 1}
    bounds = {"requests_per_min": (0.0, np.inf)}
    # Late enough that the evening's decline has left a detector's recent window.
    quiet_hours = (3.0, 6.0)
    busy_hour = 14.0
    noise_sd = 50.0
    noise_phi = 0.4

    def _profile(self, times):
        daily = 0.7 + 0.3 * business_hours(times, 8.0, 20.0, steepness=0.8)
        return (1200.0 * weekly_factor(times, 0.85) * daily)[:, None]
