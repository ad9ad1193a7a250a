"""Push events, encoded once and shared by every client (SSE frames and WebSocket texts).

An event's JSON is mostly built before it is published (on the writer thread):
only ``published_at`` is stamped when the hub hands it out, by string splicing,
so publishing to a thousand clients encodes nothing a thousand times.  A client
with a source filter gets a tick event re-assembled from the pre-encoded points
it wants; the result is cached per filter on the event.
"""
from __future__ import annotations

import json
import math
import time
from typing import Any, Iterable

import numpy as np

__all__ = ["Event", "anomaly_event", "dumps", "http_chunk", "jsonable", "now_ms", "tick_event",
           "ws_frame"]

#: Wire formats an event can be encoded in: an SSE frame as is, the same frame as one HTTP/1.1
#: chunk (what a chunked response body needs), or one unmasked WebSocket text frame.
WIRE_FORMATS = ("sse", "sse-chunked", "ws")


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return int(time.time() * 1000)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays made plain, and NaN/inf turned into None.

    Browsers' JSON.parse rejects NaN, so none may leave the server.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def http_chunk(data: bytes) -> bytes:
    """``data`` as one chunk of an HTTP/1.1 chunked body."""
    return b"%X\r\n%s\r\n" % (len(data), data)


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final, unmasked WebSocket frame (server to client) carrying ``payload``."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, size))
    elif size < 65536:
        header = bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")
    return header + payload


def dumps(value: Any) -> str:
    """Compact JSON, refusing NaN (pass values through :func:`jsonable` first)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class Event:
    """One push event: its id, type, the sources it concerns, and its encoded body.

    Parameters
    ----------
    event_id : int
        Position in the one event sequence shared by all types.
    event_type : str
        ``"tick"``, ``"anomaly"`` or ``"hello"``.
    head : str
        Encoded members before the list of points (or all members, without braces).
    parts : list of (source, encoded point), optional
        The points of a tick event, pre-encoded, so a filtered copy is cheap.
    published_ms : int, optional
        Known for replayed events; stamped by the hub for live ones.
    """

    __slots__ = ("id", "type", "head", "parts", "sources", "published_ms", "_texts", "_wire")

    def __init__(self, event_id: int, event_type: str, head: str,
                 parts: list[tuple[str, str]] | None = None, sources: Iterable[str] = (),
                 published_ms: int | None = None):
        self.id = event_id
        self.type = event_type
        self.head = head
        self.parts = parts
        self.sources = frozenset(sources) if parts is None else frozenset(s for s, _ in parts)
        self.published_ms = published_ms
        self._texts: dict[frozenset | None, str | None] = {}
        self._wire: dict[tuple[str, frozenset | None], bytes | None] = {}

    def matches(self, sources: frozenset | None) -> bool:
        """Whether a client following ``sources`` (None: all) gets this event."""
        return sources is None or not self.sources or not self.sources.isdisjoint(sources)

    def text(self, sources: frozenset | None = None) -> str | None:
        """The JSON object for a client following ``sources``; None if nothing is left for it."""
        if sources in self._texts:
            return self._texts[sources]
        if not self.matches(sources):
            text = None
        else:
            body = self.head
            if self.parts is not None:
                points = ",".join(p for s, p in self.parts if sources is None or s in sources)
                body = f'{body},"points":[{points}]'
            text = f'{{"published_at":{self.published_ms},{body}}}'
        self._texts[sources] = text
        return text

    def sse_frame(self, sources: frozenset | None = None) -> bytes | None:
        """The Server-Sent Events frame (id, event, data) for a client following ``sources``."""
        return self.wire("sse", sources)

    def wire(self, wire_format: str, sources: frozenset | None = None) -> bytes | None:
        """The bytes to write for a client following ``sources``, in one of ``WIRE_FORMATS``.

        None when the event has nothing for that client.  Cached: a thousand
        clients with the same filter share one encoding.
        """
        key = (wire_format, sources)
        if key in self._wire:
            return self._wire[key]
        text = self.text(sources)
        if text is None:
            data = None
        elif wire_format == "ws":
            data = ws_frame(text.encode())
        elif wire_format in ("sse", "sse-chunked"):
            data = f"id: {self.id}\nevent: {self.type}\ndata: {text}\n\n".encode()
            if wire_format == "sse-chunked":
                data = http_chunk(data)
        else:
            raise ValueError(f"unknown wire format {wire_format!r}; use one of {WIRE_FORMATS}")
        self._wire[key] = data
        return data


def tick_event(event_id: int, tick: int | None, origin: str, points: list[dict],
               point_texts: list[str] | None = None, published_ms: int | None = None) -> Event:
    """A tick event carrying ``points`` (already jsonable); ``point_texts`` if already encoded."""
    texts = point_texts if point_texts is not None else [dumps(p) for p in points]
    head = f'"type":"tick","id":{event_id},"tick":{dumps(tick)},"origin":{dumps(origin)}'
    return Event(event_id, "tick", head, parts=[(p["source"], t) for p, t in zip(points, texts)],
                 published_ms=published_ms)


def anomaly_event(event_id: int, anomaly: dict, published_ms: int | None = None) -> Event:
    """An anomaly event for one anomaly object (already jsonable)."""
    head = f'"type":"anomaly","id":{event_id},"anomaly":{dumps(anomaly)}'
    return Event(event_id, "anomaly", head, sources=[anomaly["source"]], published_ms=published_ms)


def plain_event(event_type: str, event_id: int, published_ms: int, **members: Any) -> Event:
    """A small event built on the spot (hello, pong), never stored nor replayed."""
    fields = "".join(f",{dumps(k)}:{dumps(jsonable(v))}" for k, v in members.items())
    return Event(event_id, event_type, f'"type":{dumps(event_type)},"id":{event_id}{fields}',
                 published_ms=published_ms)
