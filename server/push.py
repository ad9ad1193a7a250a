"""Push channels: Server-Sent Events at /api/stream/anomalies and a WebSocket at /ws.

Both register a :class:`~server.hub.Client` with the hub and serve it from the
request's own greenlet.  A client that resumes (SSE ``Last-Event-ID`` header or
``?last_event_id=``; the same query parameter on the WebSocket) first gets the
stored events after that id, then live ones: it registers before reading the
database, and the hub skips the replayed ids if they are published afterwards,
so nothing falls in the gap and nothing comes twice.

Under gunicorn's gevent worker, once the replay is written the client switches
to direct delivery: the hub writes each event's pre-encoded frame straight onto
the socket (see :mod:`server.hub`).  The SSE stream therefore writes its own
HTTP chunks after gunicorn has sent the response head; elsewhere (the Flask
test client, a threaded server) events travel through the WSGI body as usual.
"""
from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from typing import Iterator

from flask import Blueprint, Flask, Response, request
from flask_sock import ConnectionClosed, Sock

from .alerts.live import replay_alert_events
from .concurrency import cooperative
from .events import Event, anomaly_event, http_chunk, now_ms, plain_event, tick_event
from .hub import END, STORED_TYPES, WAKE, Client
from .services import Services, services
from .storage import Reader
from .validation import InvalidRequest, check_name, parse_event_id, parse_sources

__all__ = ["bp", "init_app", "replay_events"]

log = logging.getLogger(__name__)

bp = Blueprint("push", __name__)
sock = Sock()
_HEARTBEAT = b": ping\n\n"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    sock.init_app(app)

    @app.before_request
    def _no_deflate_on_ws():
        # simple-websocket accepts permessage-deflate whenever a browser offers it, which
        # deflates every event once per client on the event loop.  Hiding the offer keeps
        # frames plain (the setting turns it back on).
        if request.path == "/ws" and not app.config["WS_COMPRESSION"]:
            request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def replay_events(reader: Reader, last_id: int, limit: int) -> list[Event]:
    """Stored events with id > ``last_id`` (the newest ``limit``), rebuilt from the database.

    Events whose rows retention has pruned are skipped.
    """
    if limit <= 0:
        return []
    rows = reader.events_after(last_id, limit)
    ticks = [r for r in rows if r["type"] == "tick"]
    points_by_id: dict[int, dict] = {}
    if ticks:
        first = min(r["first_point_id"] for r in ticks)
        last = max(r["last_point_id"] for r in ticks)
        points_by_id = {p["id"]: p for p in reader.points_between(first, last)}
    anomalies = reader.anomalies_by_id([r["anomaly_id"] for r in rows if r["type"] == "anomaly"])
    alerts = replay_alert_events(reader.conn, [r for r in rows if r["type"] == "alert"], time.time())
    events = []
    for row in rows:
        if row["type"] == "tick":
            points = [points_by_id[i] for i in range(row["first_point_id"], row["last_point_id"] + 1)
                      if i in points_by_id]
            if points:
                origin = "submit" if row["tick"] is None else "scheduler"
                events.append(tick_event(row["id"], row["tick"], origin, points,
                                         published_ms=row["created_ms"]))
        elif row["type"] == "anomaly" and row["anomaly_id"] in anomalies:
            events.append(anomaly_event(row["id"], anomalies[row["anomaly_id"]],
                                        published_ms=row["created_ms"]))
        elif row["type"] == "events":
            from .event_writes import event_batch_push  # pandas: only once such an event exists
            rebuilt = event_batch_push(reader, row)
            if rebuilt is not None:
                events.append(rebuilt)
        elif row["type"] == "alert" and row["id"] in alerts:
            events.append(alerts[row["id"]])
    return events


def _stored_after(svc: Services, last_id: int) -> list[Event]:
    reader = svc.reader()
    try:
        return replay_events(reader, last_id, svc.settings["REPLAY_LIMIT"])
    finally:
        reader.close()


def _tune(conn: socket.socket | None, send_buffer: int) -> None:
    """Small frames must leave at once (no Nagle); an optional small buffer finds stalls sooner."""
    if conn is None:
        return
    try:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if send_buffer:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    except OSError:
        pass


def _pump(client: Client, svc: Services, wire_format: str, resume: int | None,
          poll: float, heartbeat: bytes | None, direct: bool) -> None:
    """Write replayed, then live, events to the client's socket until it is gone.

    Runs in the client's own greenlet; returns when the client is dropped, its
    connection fails, or it reaches END (a clean end, at shutdown: the caller ends the stream).
    """
    try:
        if resume is not None:
            client.replayed_through = resume
            for event in _stored_after(svc, resume):
                client.write_item(event, wire_format)
                # An event may be replayed (committed) and then published: the hub skips it.
                client.replayed_through = event.id
        # What arrived during the replay, then -- with the queue empty and no switch in
        # between -- let the hub write to this socket itself.
        while True:
            try:
                item = client.queue.get_nowait()
            except queue.Empty:
                break
            if item is END:
                return
            if item is not WAKE:
                client.write_item(item, wire_format)
        if direct:
            client.go_direct(wire_format)
        while not client.dropped:
            item = client.next_item(poll)
            if item is None:
                if heartbeat is not None:
                    client.write(heartbeat)
            elif item is END:
                return
            elif item is not WAKE:
                client.write_item(item, wire_format)
    except OSError:
        pass  # the peer went away, or the hub cut a stalled client


# -- Server-Sent Events ---------------------------------------------------------------------
@bp.get("/api/stream/anomalies")
def sse():
    """Server-Sent Events: tick, anomaly, events and alert events; ?source=a,b filters;
    Last-Event-ID resumes."""
    svc = services()
    sources = parse_sources(request.args.get("source"))  # InvalidRequest: a 400 before the stream
    header = request.headers.get("Last-Event-ID")
    resume = (parse_event_id(header) if header else
              parse_event_id(request.args.get("last_event_id"), "last_event_id"))
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if request.method == "HEAD":
        return Response(b"", mimetype="text/event-stream", headers=headers)
    conn = request.environ.get("gunicorn.socket")
    _tune(conn, svc.settings["STREAM_SEND_BUFFER"])
    client = svc.hub.connect("sse", sources, conn, peer=str(request.remote_addr))
    heartbeat = svc.settings["HEARTBEAT_INTERVAL"]
    # gunicorn frames a body of unknown length as HTTP/1.1 chunks (not for HTTP/1.0).
    chunked = request.environ.get("SERVER_PROTOCOL", "HTTP/1.0") != "HTTP/1.0"
    own_writes = conn is not None and cooperative()

    def stream() -> Iterator[bytes]:
        try:
            yield b"retry: 2000\n\n"  # gunicorn sends the response head with this first chunk
            if own_writes:
                wire_format = "sse-chunked" if chunked else "sse"
                _pump(client, svc, wire_format, resume, heartbeat,
                      http_chunk(_HEARTBEAT) if chunked else _HEARTBEAT, direct=True)
                return
            yield from _queued_frames(client, svc, resume, heartbeat)
        finally:
            client.close()
            svc.hub.disconnect(client)

    response = Response(stream(), mimetype="text/event-stream", headers=headers)
    if conn is not None:
        response.call_on_close(lambda: _hang_up_after_a_clean_end(client, conn))
    return response


def _hang_up_after_a_clean_end(client: Client, conn: socket.socket) -> None:
    """After an SSE stream ended for shutdown (its last chunk is written by now), close the
    connection: gunicorn would otherwise keep it for another request, and its worker with it."""
    if client.ending:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _queued_frames(client: Client, svc: Services, resume: int | None,
                   heartbeat: float) -> Iterator[bytes]:
    """SSE frames through the WSGI body, for servers without a socket to write to."""
    if resume is not None:
        client.replayed_through = resume
        for event in _stored_after(svc, resume):
            frame = event.sse_frame(client.sources)
            if frame is not None:
                yield frame
            client.replayed_through = event.id
    while not client.dropped:
        event = client.next_item(heartbeat)
        if event is None:
            yield _HEARTBEAT
        elif event is END:
            return
        elif event is not WAKE and not (event.id <= client.replayed_through
                                        and event.type in STORED_TYPES):
            frame = event.sse_frame(client.sources)
            if frame is not None:
                yield frame


# -- WebSocket ------------------------------------------------------------------------------
class _LockedSocket:
    """The WebSocket library's view of the socket: whole frames, under the client's write lock.

    simple-websocket writes frames (pings, pongs, close) with ``sock.send()``,
    which may write only part of a frame when the buffer is nearly full, and the
    hub writes to the same socket: ``sendall`` under the shared lock keeps every
    frame whole and unmixed.
    """

    def __init__(self, conn: socket.socket, lock):
        self._conn = conn
        self._lock = lock

    def send(self, data: bytes) -> int:
        with self._lock:
            self._conn.sendall(data)
        return len(data)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _handle_message(svc: Services, client: Client, message: str | bytes) -> None:
    """Apply one client message: a subscription or a ping."""
    try:
        data = json.loads(message)
        if not isinstance(data, dict):
            raise ValueError("a message must be a JSON object")
        if "subscribe" in data:
            wanted = data["subscribe"]
            if wanted in ("*", None) or wanted == [] or wanted == ["*"]:
                client.follow(None)
            elif isinstance(wanted, list):
                client.follow(check_name(s, "subscribe[]") for s in wanted)
            else:
                raise ValueError('subscribe takes a list of source names, or "*"')
        elif data.get("type") == "ping":
            client.offer(plain_event("pong", svc.hub.last_id, now_ms()))
        else:
            raise ValueError('expected {"subscribe": [...]} or {"type": "ping"}')
    except ValueError as exc:
        client.offer(plain_event("error", svc.hub.last_id, now_ms(), error=str(exc)))


@sock.route("/ws", bp=bp)
def ws(connection):
    """WebSocket: hello, then the same events as SSE; accepts subscribe and ping messages."""
    svc = services()
    try:
        sources = parse_sources(request.args.get("source"))
        resume = parse_event_id(request.args.get("last_event_id"), "last_event_id")
    except InvalidRequest as exc:
        # The handshake is done: the error goes out as a message, then the socket closes.
        connection.send(plain_event("error", svc.hub.last_id, now_ms(), error=str(exc)).text())
        return
    conn = connection.sock
    _tune(conn, svc.settings["STREAM_SEND_BUFFER"])
    client = svc.hub.connect("ws", sources, conn, peer=str(request.remote_addr))
    connection.sock = _LockedSocket(conn, client.write_lock)

    def read_messages() -> None:
        try:
            while not client.dropped:
                message = connection.receive(timeout=5.0)
                if message is not None:
                    _handle_message(svc, client, message)
        except (ConnectionClosed, OSError):
            pass
        client.dropped = True
        client.offer(WAKE)

    try:
        hello = plain_event("hello", svc.hub.last_id, now_ms(), sources=list(svc.monitor.streams),
                            subscribed=sorted(client.sources) if client.sources else "*")
        client.write(hello.wire("ws"))
        threading.Thread(target=read_messages, name="ws-reader", daemon=True).start()
        # A plain frame is valid even with permessage-deflate (RSV1 unset: not compressed).
        _pump(client, svc, "ws", resume, min(svc.settings["HEARTBEAT_INTERVAL"], 5.0),
              heartbeat=None, direct=cooperative())
        if client.ending:
            connection.close(reason=1001, message="server shutting down")  # "going away"
    except (ConnectionClosed, OSError):
        pass
    except Exception:
        # After the upgrade an HTTP error response would corrupt the WebSocket stream:
        # log, and let the socket close.
        log.exception("WebSocket client failed")
    finally:
        client.close()
        svc.hub.disconnect(client)
