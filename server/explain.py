"""One-line, human-readable explanations of a scored point."""
from __future__ import annotations

__all__ = ["explain"]


def _num(value: float) -> str:
    return f"{value:.4g}"


def explain(point: dict) -> str:
    """Say why ``point`` was (or was not) flagged, from its values, expected ranges and detectors.

    >>> explain({"values": {"cpu": 97.0}, "expected": {"cpu": [30.0, 55.0]}, "score": 0.9993,
    ...          "is_anomaly": True, "severity": "high", "fired": ["zscore", "mad"],
    ...          "warming_up": False})
    'cpu 97 above expected 30-55; flagged by zscore, mad (score 0.9993, high)'
    >>> explain({"values": {"cpu": 41.0}, "expected": {"cpu": [30.0, 55.0]}, "score": 0.2,
    ...          "is_anomaly": False, "severity": None, "fired": [], "warming_up": False})
    'normal (score 0.2)'
    """
    if point.get("warming_up"):
        return "warming up: the detectors are still learning this stream"
    score = point.get("score") or 0.0
    if not point.get("is_anomaly"):
        return f"normal (score {_num(score)})"
    outside = []
    for field, value in point["values"].items():
        bounds = point.get("expected", {}).get(field)
        if not bounds or value is None:
            continue
        low, high = bounds
        if value > high:
            outside.append(f"{field} {_num(value)} above expected {_num(low)}-{_num(high)}")
        elif value < low:
            outside.append(f"{field} {_num(value)} below expected {_num(low)}-{_num(high)}")
    what = "; ".join(outside) if outside else "unusual pattern, each value within its expected range"
    fired = point.get("fired") or []
    by = f"flagged by {', '.join(fired)}" if fired else "flagged by the ensemble"
    return f"{what}; {by} (score {_num(score)}, {point.get('severity')})"
