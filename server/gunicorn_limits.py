"""A gevent worker that caps simultaneous connections per client address.

gunicorn's gevent worker takes up to ``worker_connections`` connections from
anyone: one client that opens thousands of Server-Sent Events streams (or
thousands of idle sockets) takes every slot, and ``/health`` stops answering.
This worker counts the open connections of each client address; past
``ANOMALY_MAX_CONNECTIONS_PER_CLIENT`` it answers at once with a JSON 429 and
closes, which costs a few hundred microseconds instead of a slot held for as
long as the client likes.  (The app's own per-client cap on push streams,
``MAX_STREAMS_PER_CLIENT``, is lower, so a client at its stream limit can still
reach ``/health``; slow request bodies are timed out by the app, see
server/security.py.)

Kept in its own module, apart from any other worker subclass, so the two can be
combined by inheritance.  Imports nothing from the app: gunicorn's master loads
this class before the worker patches the standard library.
"""
from __future__ import annotations

import json
import os
import socket
from collections import Counter

import gevent
from .gunicorn_worker import JsonErrorGeventWorker

__all__ = ["ClientCapGeventWorker", "refusal"]

DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 100
#: How long a refused client gets to take its answer before the socket is closed.
_LINGER_S = 1.0


def refusal(held: int, limit: int) -> bytes:
    """The complete HTTP answer to a connection over the per-client cap."""
    body = json.dumps({"error": f"too many connections from this address ({held}; the limit is "
                                f"{limit}, ANOMALY_MAX_CONNECTIONS_PER_CLIENT)"}).encode()
    head = ("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 5\r\nConnection: close\r\n"
            "X-Content-Type-Options: nosniff\r\n\r\n")
    return head.encode() + body


class ClientCapGeventWorker(JsonErrorGeventWorker):
    """gunicorn's gevent worker with JSON error answers and a cap on open connections per client address."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        raw = os.environ.get("ANOMALY_MAX_CONNECTIONS_PER_CLIENT", str(DEFAULT_MAX_CONNECTIONS_PER_CLIENT))
        try:
            self.max_per_client = int(raw)
        except ValueError:
            raise SystemExit(f"ANOMALY_MAX_CONNECTIONS_PER_CLIENT={raw!r}: expected an integer") from None
        if self.max_per_client < 1:
            raise SystemExit("ANOMALY_MAX_CONNECTIONS_PER_CLIENT must be >= 1")
        # Only touched from the event loop's greenlets: no lock needed.
        self.open_per_client: Counter = Counter()

    def handle(self, listener, client, addr):
        peer = addr[0] if isinstance(addr, tuple) and addr else str(addr)
        held = self.open_per_client[peer]
        if held >= self.max_per_client:
            self._refuse(client, held)
            return
        self.open_per_client[peer] = held + 1
        try:
            super().handle(listener, client, addr)
        finally:
            left = self.open_per_client[peer] - 1
            if left > 0:
                self.open_per_client[peer] = left
            else:
                del self.open_per_client[peer]

    def _refuse(self, client, held: int) -> None:
        try:
            client.settimeout(_LINGER_S)
            client.sendall(refusal(held, self.max_per_client))
            # Half-close and read what the client sent, so the kernel does not answer its unread
            # request with a reset that would destroy our answer before the client reads it.
            client.shutdown(socket.SHUT_WR)
            with gevent.Timeout(_LINGER_S, False):  # a deadline, however the client trickles
                while client.recv(65536):
                    pass
        except OSError:
            pass
        finally:
            client.close()
