"""Answers in JSON, CSV or JSON lines (``?format=``): anomalies and alerts for export.

An unknown format is a 400, never a silent JSON answer.  CSV flattens nested
values (detector scores, labels, field values) into JSON text in their cell;
JSON lines carries one object per line exactly as the JSON answer's list does.
:func:`stream` sends an export as it is read (one row in memory at a time), for
exports larger than a JSON page.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable, Iterable, Iterator

from flask import Response, jsonify

from .validation import InvalidRequest

__all__ = ["FORMATS", "parse_format", "respond", "stream"]

FORMATS = ("json", "csv", "jsonl")
_MIMETYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


def parse_format(raw: str | None) -> str:
    if raw is None or raw == "":
        return "json"
    if raw not in FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}, got {raw[:40]!r}")
    return raw


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else value


def respond(items: list[dict], key: str, fmt: str, columns: Iterable[str],
            filename: str, extra: Callable[[], dict] | None = None) -> Response:
    """``items`` as ``{key: items}`` (json), CSV with ``columns``, or JSON lines."""
    if fmt == "json":
        return jsonify({key: items, **(extra() if extra else {})})
    if fmt == "jsonl":
        body = "".join(json.dumps(item, separators=(",", ":"), allow_nan=False) + "\n"
                       for item in items)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        columns = list(columns)
        writer.writerow(columns)
        writer.writerows([_cell(item.get(c)) for c in columns] for item in items)
        body = buffer.getvalue()
    response = Response(body, mimetype=_MIMETYPES[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response


def stream(items: Iterable[dict], fmt: str, columns: Iterable[str], filename: str,
           close: Callable[[], None] | None = None) -> Response:
    """``items`` as CSV with ``columns`` or as JSON lines, sent while they are read.

    ``close`` (e.g. of the read connection the items come from) runs when the
    answer ends, sent whole or cut off by the client.
    """
    if fmt not in _MIMETYPES:
        raise ValueError(f"stream() sends csv or jsonl, not {fmt!r}")
    columns = list(columns)

    def lines() -> Iterator[str]:
        try:
            if fmt == "csv":
                yield _csv_line(columns)
                for item in items:
                    yield _csv_line([_cell(item.get(c)) for c in columns])
            else:
                for item in items:
                    yield json.dumps(item, separators=(",", ":"), allow_nan=False) + "\n"
        finally:
            if close is not None:
                close()

    response = Response(lines(), mimetype=_MIMETYPES[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response


def _csv_line(cells: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()
