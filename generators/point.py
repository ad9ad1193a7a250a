"""One point of a synthetic stream, with its ground truth."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Point"]


@dataclass(frozen=True)
class Point:
    """A timestamped reading of one or more named fields, and whether it is an injected anomaly.

    Parameters
    ----------
    timestamp : float
        Simulated time, epoch seconds (UTC).
    values : dict of str to float
        One value per field of the stream.
    is_anomaly : bool
        True when the point lies inside an injected anomaly episode.
    kind : str or None
        The episode's kind (one of ``ANOMALY_KINDS``), None for a normal point.
    """

    timestamp: float
    values: dict
    is_anomaly: bool = False
    kind: str | None = None

    def to_dict(self) -> dict:
        """Return a JSON-ready dict: ``timestamp``, ``values`` (a copy), ``is_anomaly``, ``kind``."""
        return {
            "timestamp": self.timestamp,
            "values": dict(self.values),
            "is_anomaly": self.is_anomaly,
            "kind": self.kind,
        }
