"""Physical-world streams: building electricity load, machine condition, environmental sensors."""
from __future__ import annotations

import numpy as np

from .base import CyclicStream, SyntheticStream
from .patterns import ar1, business_hours, daily_wave, weekly_factor

__all__ = ["Electricity", "MachineHealth", "IotSensors"]


class Electricity(CyclicStream):
    """Electric load of an office building, in kW.

    Normal: 40 kW at night rising to about 65 kW in office hours (08:00-18:00
    UTC) on weekdays, about 57 kW at the weekend, AR(1) noise of 3 kW.
    Anomalies: equipment malfunction spikes (``spike``), a plant left running
    (``level_shift`` upwards), daytime load at night, e.g. HVAC left on
    (``contextual``), and a meter reading 0 (``dropout``).
    """

    name = "electricity"
    fields = ("kw",)
    units = {"kw": "kW"}
    description = "Office building load: daily and weekly curve; malfunction spikes, HVAC left on at night, meter dropouts"
    kinds = {"spike": 2, "level_shift": 1, "contextual": 2, "dropout": 1}
    signs = {"spike": 1, "level_shift": 1}
    magnitudes = {"spike": (8.0, 14.0)}
    bounds = {"kw": (0.0, np.inf)}
    # Late enough that the evening's decline has left a detector's recent window.
    quiet_hours = (2.0, 6.0)
    busy_hour = 13.0
    noise_sd = 3.0
    noise_phi = 0.7

    def _profile(self, times):
        office = business_hours(times, 8.0, 18.0, steepness=0.6) * weekly_factor(times, 0.7)
        return (40.0 + 25.0 * office)[:, None]


class MachineHealth(SyntheticStream):
    """Bearing temperature (deg C) and vibration velocity (mm/s) of a production machine.

    Normal: both follow the machine's duty, two shifts from 06:00 to 22:00 UTC
    with gentle ramps, and a shared slow load wander, so they are positively
    correlated; each has its own sensor noise (0.4 deg C, 0.05 mm/s).
    Anomalies: failures that drift before they break, both readings ramping up
    together (``drift``), mechanical shocks (``spike`` in vibration), a loose
    mounting (``variance`` of vibration) and a frozen sensor (``stuck``, one field).
    """

    name = "machine_health"
    fields = ("temperature", "vibration")
    units = {"temperature": "°C", "vibration": "mm/s"}
    description = "Machine bearing temperature and vibration, correlated: failures drift before they break, shocks, frozen sensors"
    kinds = {"drift": 3, "spike": 1, "variance": 1, "stuck": 1}
    signs = {"drift": 1, "spike": 1}
    kind_fields = {"spike": ("vibration",), "variance": ("vibration",), "stuck": "one"}
    magnitudes = {"drift": (10.0, 16.0)}
    bounds = {"temperature": (0.0, np.inf), "vibration": (0.0, np.inf)}
    noise_sd = np.array([0.4, 0.05])

    def _start_state(self, rng):
        self.load_ = rng.standard_normal(1)
        self.noise_ = rng.standard_normal(2)

    def _baseline(self, times, rng):
        n = len(times)
        duty = business_hours(times, 6.0, 22.0, steepness=0.7)[:, None]
        load, self.load_ = ar1(rng, self.load_, 0.995, n)
        noise, self.noise_ = ar1(rng, self.noise_, 0.5, n)
        temperature = 60.0 + 3.0 * duty + 0.6 * load
        vibration = 1.5 + 0.25 * duty + 0.05 * load
        values = np.hstack([temperature, vibration]) + self.noise_sd * noise
        return values, np.broadcast_to(self.noise_sd, (n, 2))


class IotSensors(SyntheticStream):
    """An indoor environment sensor: relative humidity (%), temperature (deg C), air pressure (hPa).

    Normal: temperature follows a daily cycle (21-22.5 deg C, warmest at 15:00
    UTC) and humidity moves against it (50-55 %); pressure wanders slowly
    around 1013 hPa like weather.  Sensor failures hit one field at a time:
    a frozen reading (``stuck``), a reading at the bottom of the sensor's
    range (``dropout``: 0 %, -40 deg C, 0 hPa), a glitch (``spike``) and
    calibration drift (``drift``).
    """

    name = "iot_sensors"
    fields = ("humidity", "temperature", "pressure")
    units = {"humidity": "%", "temperature": "°C", "pressure": "hPa"}
    description = "Environment sensor (humidity, temperature, pressure): frozen readings, dropouts, glitches, calibration drift"
    kinds = {"stuck": 1, "dropout": 2, "spike": 2, "drift": 2}
    kind_fields = {"stuck": "one", "dropout": "one", "spike": "one", "drift": "one"}
    lengths = {"drift": (10, 30)}
    magnitudes = {"drift": (15.0, 25.0)}
    bounds = {"humidity": (0.0, 100.0), "temperature": (-40.0, 85.0), "pressure": (0.0, np.inf)}
    noise_sd = np.array([0.7, 0.2, 0.1])

    def _start_state(self, rng):
        self.noise_ = rng.standard_normal(3)
        self.weather_ = rng.standard_normal(1)

    def _baseline(self, times, rng):
        n = len(times)
        warmth = daily_wave(times, 15.0)[:, None]
        noise, self.noise_ = ar1(rng, self.noise_, 0.7, n)
        # Weather moves pressure by a few hPa over days, a small fraction of the sensor noise per step.
        weather, self.weather_ = ar1(rng, self.weather_, 0.99998, n)
        humidity = 55.0 - 5.0 * warmth
        temperature = 21.0 + 1.5 * warmth
        pressure = 1013.0 + 5.0 * weather
        values = np.hstack([humidity, temperature, pressure]) + self.noise_sd * noise
        return values, np.broadcast_to(self.noise_sd, (n, 3))
