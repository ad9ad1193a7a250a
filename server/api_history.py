"""``GET /api/history/<source>``: a stream's stored points over a time range, downsampled on the server.

The dashboard's charts hold the last 60 points; the history view asks for any
range of the stored ones (by the points' own timestamps).  The answer never
holds more than ``max_points`` entries:

* **raw** when the range has at most ``max_points`` points: the points themselves;
* **buckets** otherwise: the range cut into ``max_points`` equal spans, each with
  per field the min, max and mean of its points, its point count, its anomalies
  and its highest score.  Min and max keep a one-point spike visible in a week
  of data, which a plain mean (or taking every n-th point) would hide.

The aggregation is SQL (``GROUP BY`` a bucket number, ``json_each`` over the
stored values), so no Python loop runs over the points.  The anomalies in the
range come beside them (the most recent ``MAX_ANOMALIES``), for the view to mark.
"""
from __future__ import annotations

import time

from flask import Blueprint, jsonify, request

from .api import reader
from .errors import ApiError
from .services import services
from .storage import point_from_row
from .validation import InvalidRequest, check_name, parse_limit, parse_since

__all__ = ["DEFAULT_POINTS", "MAX_ANOMALIES", "MAX_POINTS", "MAX_RANGE_S", "bp"]

bp = Blueprint("history", __name__, url_prefix="/api")

DEFAULT_RANGE_S = 3600.0
MAX_RANGE_S = 400 * 86400.0
DEFAULT_POINTS = 600
MIN_POINTS = 10
MAX_POINTS = 5000
MAX_ANOMALIES = 1000

_IN_RANGE = "source = ? AND timestamp >= ? AND timestamp < ?"


def _range(args) -> tuple[float, float]:
    """``from`` and ``to`` (epoch seconds or ISO-8601); ``to`` defaults to now, ``from`` to an hour before."""
    to = parse_since(args.get("to"), "to")
    start = parse_since(args.get("from"), "from")
    if to is None:
        to = time.time()
    if start is None:
        start = to - DEFAULT_RANGE_S
    if not start < to:
        raise InvalidRequest(f"from ({start:g}) must be before to ({to:g})")
    if to - start > MAX_RANGE_S:
        raise InvalidRequest(f"the range is {(to - start) / 86400:.1f} days long; the limit is "
                             f"{MAX_RANGE_S / 86400:g} days")
    return start, to


def _raw(conn, source: str, start: float, to: float) -> list[dict]:
    rows = conn.execute(f"SELECT * FROM points WHERE {_IN_RANGE} ORDER BY timestamp, id",
                        [source, start, to]).fetchall()
    return [{k: p[k] for k in ("id", "timestamp", "values", "score", "is_anomaly", "alert",
                               "severity")} for p in map(point_from_row, rows)]


def _buckets(conn, source: str, start: float, to: float, count: int) -> tuple[float, list[dict]]:
    """The range cut into ``count`` spans: their counts, anomalies, top score, and per field
    min, max and mean; spans without points are left out."""
    width = (to - start) / count
    bucket = "min(CAST((timestamp - ?) / ? AS INTEGER), ?)"
    params = [start, width, count - 1, source, start, to]
    spans = conn.execute(
        f"SELECT {bucket} AS b, count(*), sum(is_anomaly), max(score), min(timestamp), max(timestamp) "
        f"FROM points WHERE {_IN_RANGE} GROUP BY b ORDER BY b", params).fetchall()
    fields = conn.execute(
        f"SELECT {bucket.replace('timestamp', 'p.timestamp')} AS b, j.key, min(j.value), max(j.value), "
        f"avg(j.value) FROM points AS p, json_each(p.field_values) AS j "
        f"WHERE p.source = ? AND p.timestamp >= ? AND p.timestamp < ? "
        f"AND j.type IN ('integer', 'real') GROUP BY b, j.key", params).fetchall()
    by_bucket: dict[int, dict] = {}
    for b, n, anomalies, top, first, last in spans:
        by_bucket[b] = {"start": start + b * width, "end": start + (b + 1) * width, "count": n,
                        "first": first, "last": last, "anomalies": anomalies or 0,
                        "max_score": top, "min": {}, "max": {}, "mean": {}}
    for b, key, low, high, mean in fields:
        entry = by_bucket.get(b)
        if entry is not None:
            entry["min"][key], entry["max"][key], entry["mean"][key] = low, high, mean
    return width, list(by_bucket.values())


def _anomalies(conn, source: str, start: float, to: float) -> tuple[list[dict], bool]:
    rows = conn.execute(f"SELECT * FROM points WHERE {_IN_RANGE} AND is_anomaly = 1 "
                        "ORDER BY timestamp DESC, id DESC LIMIT ?",
                        [source, start, to, MAX_ANOMALIES + 1]).fetchall()
    marks = [{k: p[k] for k in ("id", "timestamp", "values", "score", "severity", "alert",
                                "explanation")} for p in map(point_from_row, rows[:MAX_ANOMALIES])]
    return marks[::-1], len(rows) > MAX_ANOMALIES


@bp.get("/history/<path:source>")
def history(source: str):
    """Stored points of one stream between ``from`` and ``to``, raw or bucketed; its anomalies."""
    check_name(source, "source")
    svc = services()
    if source not in svc.monitor.streams:
        raise ApiError(404, f"unknown source {source!r}")
    start, to = _range(request.args)
    most = parse_limit(request.args.get("max_points"), DEFAULT_POINTS, MAX_POINTS, "max_points",
                       MIN_POINTS)
    conn = reader().conn
    total = conn.execute(f"SELECT count(*) FROM points WHERE {_IN_RANGE}",
                         [source, start, to]).fetchone()[0]
    answer = {"source": source, "fields": list(svc.monitor.streams[source]["fields"]),
              "from": start, "to": to, "total": total}
    if total <= most:
        answer.update(resolution="raw", bucket_seconds=None,
                      points=_raw(conn, source, start, to), buckets=None)
    else:
        width, buckets = _buckets(conn, source, start, to, most)
        answer.update(resolution="buckets", bucket_seconds=width, points=None, buckets=buckets)
    answer["anomalies"], answer["anomalies_truncated"] = _anomalies(conn, source, start, to)
    return jsonify(answer)
