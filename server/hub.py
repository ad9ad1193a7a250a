"""The hub: one fan-out point for every push client, SSE and WebSocket alike.

:meth:`Hub.publish` stamps ``published_at`` on a batch of events and hands each
to every client without ever waiting:

* **direct** -- a client whose connection is idle (nothing queued, nobody
  writing) gets the pre-encoded frame written straight onto its socket with a
  non-blocking send.  Under gevent this costs one system call per client and
  no greenlet switch, which is what keeps a thousand clients within tens of
  milliseconds of the tick.
* **queued** -- otherwise (a write in progress, a backlog, or a send that the
  socket took only in part) the event, or the unsent rest of the frame, goes
  into the client's bounded queue, and the client's own greenlet writes it with
  ordinary blocking writes.

A client whose queue is full is dropped on the spot: marked, its socket shut
down (which also fails any write blocked on it) and removed.  So a stalled
client costs the publisher one failed ``put_nowait`` and never delays the
scheduler or the other clients.

At shutdown :meth:`Hub.end_all` ends every stream cleanly instead (the SSE
response finishes, a WebSocket gets a close frame 1001 "going away"): push
clients never end by themselves, and a worker that waited for them would be
killed by gunicorn's graceful timeout before its final snapshot.

Every write to a client's socket -- the publisher's direct send, the client's
greenlet, the WebSocket library's pings -- happens under the client's
``write_lock``, so frames never interleave.  A partial direct send leaves the
lock held and hands it, with the rest of the frame, to the client's greenlet.
"""
from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from typing import Iterable

from .events import Event, now_ms

__all__ = ["END", "Client", "Hub", "Remainder", "STORED_TYPES", "WAKE"]

log = logging.getLogger(__name__)


#: Event types that live in the database, so may reach a resuming client twice.
STORED_TYPES = ("tick", "anomaly", "events", "alert")
#: Queued to wake a client's greenlet so that it notices it was dropped or closed.
WAKE = object()
#: Queued to end a client's stream cleanly, after everything queued before it is written.
END = object()


class Remainder:
    """The unsent end of a frame; whoever dequeues it already holds the write lock."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data


class Client:
    """One push connection: its queue, its source filter, its socket and how to cut it off.

    Parameters
    ----------
    kind : {"sse", "ws"}
    queue_size : int
        Items it may have waiting before it is dropped.
    sources : iterable of str, optional
        Sources it follows (None or empty: all).
    sock : socket.socket, optional
        The underlying connection (shut down when the client is dropped).
    peer : str
        For log messages.
    """

    def __init__(self, kind: str, queue_size: int, sources: Iterable[str] | None = None,
                 sock: socket.socket | None = None, peer: str = "?"):
        self.kind = kind
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.sources = frozenset(sources) if sources else None
        self.sock = sock
        self.peer = peer
        self.write_lock = threading.Lock()
        #: Set (to an Event wire format) once the publisher may write to ``sock`` itself,
        #: which needs a gevent socket (its OS socket is non-blocking).
        self.direct_format: str | None = None
        self._raw_send = getattr(getattr(sock, "_sock", None), "send", None)
        #: Stored events up to this id were replayed from the database: skip them if they are
        #: published later (an event is visible to readers a moment before it is published).
        self.replayed_through = 0
        self.dropped = False
        self.drop_reason: str | None = None
        #: Asked to end cleanly (:meth:`end`); ``closed`` once its greenlet has finished with it.
        self.ending = False
        self.closed = False

    def go_direct(self, wire_format: str) -> bool:
        """Let the publisher write ``wire_format`` frames to the socket itself, if it can.

        Call with an empty queue, from the client's greenlet, with no switch since
        it last found the queue empty.
        """
        if self._raw_send is None or self.dropped:
            return False
        self.direct_format = wire_format
        return True

    def follow(self, sources: Iterable[str] | None) -> None:
        """Change the sources this client follows (None or empty: all)."""
        self.sources = frozenset(sources) if sources else None

    def offer(self, item) -> bool:
        """Queue ``item`` without waiting; False when the queue is full."""
        try:
            self.queue.put_nowait(item)
            return True
        except queue.Full:
            return False

    def deliver(self, events: list[Event]) -> bool:
        """Hand over the events this client wants, without waiting.

        False when they had to be queued and the queue is full.  Several events
        published together go out in one send.
        """
        wanted = [e for e in events if e.matches(self.sources)
                  and not (e.id <= self.replayed_through and e.type in STORED_TYPES)]
        if not wanted:
            return True
        wire_format = self.direct_format
        if wire_format is None or not self.queue.empty() or not self.write_lock.acquire(False):
            return all(self.offer(event) for event in wanted)
        parts = [d for d in (e.wire(wire_format, self.sources) for e in wanted) if d is not None]
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        try:
            # The OS socket under a gevent socket is non-blocking: this never waits.
            sent = self._raw_send(data) if data else 0
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.write_lock.release()
            self.cut(f"send failed: {exc}")
            return True
        if sent == len(data):
            self.write_lock.release()
            return True
        # The lock stays held: the client's greenlet finishes this write before anything else.
        return self.offer(Remainder(data[sent:]))

    def next_item(self, timeout: float | None):
        """The next queued event, Remainder or WAKE; None after ``timeout`` seconds of silence."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def write(self, data: bytes, locked: bool = False) -> None:
        """Write ``data`` to the socket with blocking writes, under the write lock.

        ``locked=True`` when the caller already holds the lock (a Remainder); it is released.
        """
        if not locked:
            self.write_lock.acquire()
        try:
            self.sock.sendall(data)
        finally:
            self.write_lock.release()

    def write_item(self, item, wire_format: str) -> bool:
        """Write a dequeued event or Remainder; False if the event had nothing for this client."""
        if isinstance(item, Remainder):
            self.write(item.data, locked=True)
            return True
        if item.id <= self.replayed_through and item.type in STORED_TYPES:
            return False
        data = item.wire(wire_format, self.sources)
        if data is None:
            return False
        self.write(data)
        return True

    def end(self) -> bool:
        """Ask the client's greenlet to write what is queued, then end the stream cleanly.

        Direct delivery stops at once (a frame the publisher sent in part is queued, so
        it is finished first).  False when the queue is full: a stalled client, to cut.
        """
        self.direct_format = None
        self.ending = True
        return self.offer(END)

    def close(self) -> None:
        """Stop direct delivery and forget what is queued (releasing a Remainder's lock)."""
        self.dropped = True
        self.closed = True
        self.direct_format = None
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Remainder):
                self.write_lock.release()

    def cut(self, reason: str) -> None:
        """Mark the client dropped, shut its socket so a blocked write fails at once, and wake
        its greenlet if it is waiting for events."""
        self.dropped = True
        self.drop_reason = reason
        self.direct_format = None
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.offer(WAKE)


class Hub:
    """Registry of push clients and the fan-out of events to them.

    Parameters
    ----------
    queue_size : int
        Capacity of each client's queue.
    last_id : int
        Id of the last event already stored (new clients' "hello" names it).
    """

    def __init__(self, queue_size: int = 256, last_id: int = 0):
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.queue_size = queue_size
        self.last_id = last_id
        self.published = 0
        self.dropped = 0
        self._clients: set[Client] = set()
        self._lock = threading.Lock()

    def connect(self, kind: str, sources: Iterable[str] | None = None,
                sock: socket.socket | None = None, peer: str = "?") -> Client:
        """Register a new client; it receives every event published from now on."""
        client = Client(kind, self.queue_size, sources, sock, peer)
        with self._lock:
            self._clients.add(client)
            total = len(self._clients)
        log.info("%s client %s connected (%d clients)", kind, peer, total)
        return client

    def disconnect(self, client: Client) -> None:
        with self._lock:
            present = client in self._clients
            self._clients.discard(client)
        if present:
            log.info("%s client %s disconnected%s", client.kind, client.peer,
                     f" ({client.drop_reason})" if client.drop_reason else "")

    def clients_of(self, peer: str) -> int:
        """Connected clients whose address is ``peer`` (for the per-client cap)."""
        with self._lock:
            return sum(1 for c in self._clients if c.peer == peer)

    def counts(self) -> dict[str, int]:
        """Connected clients per kind: {"sse": n, "ws": n}."""
        with self._lock:
            clients = list(self._clients)
        return {"sse": sum(c.kind == "sse" for c in clients),
                "ws": sum(c.kind == "ws" for c in clients)}

    def queued(self) -> int:
        """Events waiting in all clients' queues (for /metrics)."""
        with self._lock:
            clients = list(self._clients)
        return sum(c.queue.qsize() for c in clients)

    def publish(self, events: list[Event]) -> None:
        """Stamp ``published_at`` on ``events`` and hand them to every client; never waits."""
        if not events:
            return
        stamp = now_ms()
        for event in events:
            event.published_ms = stamp
        with self._lock:
            clients = list(self._clients)
        stalled, failed = [], []
        for client in clients:
            if client.dropped:
                continue
            if not client.deliver(events):
                stalled.append(client)
                client.cut(f"queue full ({self.queue_size} events): client too slow")
            elif client.dropped:  # a direct send found the connection gone
                failed.append(client)
        self.last_id = max(self.last_id, events[-1].id)
        self.published += len(events)
        for client in stalled:
            self.dropped += 1
            log.warning("dropping %s client %s: %s", client.kind, client.peer, client.drop_reason)
            self.disconnect(client)
        for client in failed:
            self.disconnect(client)

    def end_all(self, reason: str = "server shutting down", grace: float = 1.0) -> int:
        """End every client's stream cleanly (at shutdown); cut those not done within ``grace`` s.

        Each client's greenlet writes what it has queued, then ends its stream (see
        server/push.py); one whose queue is full, or that is still writing after
        ``grace`` seconds, is cut like a stalled client.  Returns how many were cut.
        """
        with self._lock:
            clients = list(self._clients)
            self._clients.clear()  # publish no more to them
        ending = {c for c in clients if c.end()}
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(not c.closed for c in ending):
            time.sleep(0.01)  # a greenlet switch under gevent
        cut = [c for c in clients if c not in ending or not c.closed]
        for client in cut:
            client.cut(reason)
        if clients:
            log.info("ended %d push clients (%s); %d cut", len(clients), reason, len(cut))
        return len(cut)

    def close_all(self, reason: str = "server shutting down") -> None:
        """Cut every client (at shutdown)."""
        with self._lock:
            clients = list(self._clients)
            self._clients.clear()
        for client in clients:
            client.cut(reason)
