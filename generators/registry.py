"""The nine built-in streams, by name, and :func:`make_stream` to build one."""
from __future__ import annotations

from .base import SyntheticStream
from .finance import Financial, StockRisk, Transactions
from .infrastructure import CpuUsage, NetworkTraffic, ServerTraffic
from .physical import Electricity, IotSensors, MachineHealth

__all__ = ["STREAMS", "make_stream"]

#: Stream classes by name, in the order the dashboard lists them.
STREAMS: dict[str, type[SyntheticStream]] = {
    cls.name: cls
    for cls in (
        CpuUsage,
        Financial,
        NetworkTraffic,
        Transactions,
        Electricity,
        MachineHealth,
        ServerTraffic,
        StockRisk,
        IotSensors,
    )
}


def make_stream(
    name: str,
    seed: int = 0,
    anomaly_rate: float = 0.02,
    step_seconds: float = 300.0,
    start: float | None = None,
    warmup_points: int = 100,
) -> SyntheticStream:
    """Build the built-in stream ``name``.

    Parameters
    ----------
    name : str
        One of ``STREAMS``.
    seed : int
        Seed of ``numpy.random.default_rng``: the same arguments give the same points.
    anomaly_rate : float
        Expected fraction of points inside an anomaly episode, in [0, 0.5]; 0 gives a clean stream.
    step_seconds : float
        Simulated seconds between points (default 5 minutes).
    start : float or None
        Epoch seconds of the first point; None means 2026-01-01T00:00:00Z.
    warmup_points : int
        No episode starts before this point.

    Returns
    -------
    SyntheticStream

    Raises
    ------
    ValueError
        For an unknown name or an out-of-range argument.

    Examples
    --------
    >>> gen = make_stream("machine_health", seed=7)
    >>> gen.fields
    ('temperature', 'vibration')
    >>> p = gen.next()
    >>> p.timestamp, p.is_anomaly, p.kind
    (1767225600.0, False, None)
    >>> {field: round(value, 2) for field, value in p.values.items()}
    {'temperature': 59.49, 'vibration': 1.52}
    >>> gen.next().timestamp - p.timestamp
    300.0
    >>> df = make_stream("cpu_usage", seed=7, anomaly_rate=0.05).frame(2000)
    >>> list(df.columns)
    ['timestamp', 'cpu', 'is_anomaly', 'kind']
    >>> sorted(df.kind.dropna().unique())
    ['contextual', 'level_shift', 'spike', 'variance']
    >>> make_stream("weather")
    Traceback (most recent call last):
    ...
    ValueError: unknown stream 'weather'; choose one of cpu_usage, financial, network_traffic, transactions, electricity, machine_health, server_traffic, stock_risk, iot_sensors
    """
    try:
        cls = STREAMS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown stream {name!r}; choose one of {', '.join(STREAMS)}") from None
    return cls(seed=seed, anomaly_rate=anomaly_rate, step_seconds=step_seconds, start=start, warmup_points=warmup_points)
