"""The gunicorn worker class: gevent's, with the API's error shape on gunicorn's own answers.

gunicorn answers a request it cannot parse (a bad request line, a URI over
``limit_request_line``: 414, too many or too large headers: 431, a broken chunk:
400) itself, before the app sees it, with an HTML page written by
``gunicorn.util.write_error``.  :class:`JsonErrorGeventWorker` makes those answers
``{"error": "..."}`` in JSON like every other error of the API.

gunicorn's ``Worker.handle_error`` picks the status and message, then calls
``util.write_error`` through the module; replacing that one function in the
worker process (after the fork, before any request) changes the body and
keeps gunicorn's choice of status and its logging.  Named in
``server/gunicorn_conf.py`` as ``worker_class``.

This module is imported by gunicorn's master to find the class: it imports
nothing from the app (gevent patches the worker before Flask is imported).
"""
from __future__ import annotations

import contextlib
import json
import socket

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

__all__ = ["JsonErrorGeventWorker", "write_json_error"]


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error``, with a JSON ``{"error": ...}`` body."""
    message = f"{reason}: {mesg}" if mesg else reason
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\n"
            "Connection: close\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


class JsonErrorGeventWorker(GeventWorker):
    """gunicorn's gevent worker; its own error answers are JSON (see the module's doc).

    On SIGTERM it also lets go at once of the connections that would hold it until the
    graceful timeout (5 s), after which the master kills it before the app's final snapshot:
    the app's push streams (ended cleanly by the app) and idle keep-alive connections
    (gunicorn waits up to ``keepalive`` seconds for another request on each).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: Open connections by the greenlet serving them, and those in the middle of a request.
        self._connections: dict = {}
        self._serving: set = set()

    def init_process(self) -> None:
        util.write_error = write_json_error
        super().init_process()

    def patch(self) -> None:
        with _entry_points_scanned_once():
            super().patch()

    def handle(self, listener, client, addr):
        import gevent

        me = gevent.getcurrent()
        self._connections[me] = client
        try:
            super().handle(listener, client, addr)
        finally:
            self._connections.pop(me, None)

    def handle_request(self, listener_name, req, sock, addr):
        import gevent

        me = gevent.getcurrent()
        self._serving.add(me)
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            self._serving.discard(me)

    def timeout_ctx(self):
        """How long a kept-alive connection waits for its next request: not at all once stopping."""
        import gevent

        return gevent.Timeout(self.cfg.keepalive if self.alive else 0.01, False)

    def handle_exit(self, sig, frame) -> None:
        """SIGTERM: stop as gunicorn does, and let go of what would hold the worker (not in the
        signal handler: ending push streams switches greenlets)."""
        super().handle_exit(sig, frame)
        import gevent

        gevent.spawn(self._let_go)

    def _let_go(self) -> None:
        for greenlet, client in list(self._connections.items()):
            if greenlet not in self._serving:  # idle between requests: end its wait with an EOF
                _end_reading(client)
        _end_push_clients(getattr(self, "wsgi", None))


def _end_reading(client) -> None:
    """Shut the reading side of a connection so that the greenlet waiting on it reads an EOF.

    Through the operating system's socket, not gevent's: gevent's ``shutdown`` also cancels the
    waiting read with an error ("File descriptor was closed in another greenlet", EBADF), which
    gunicorn logs with a traceback for every idle connection of a graceful stop.  An EOF ends the
    keep-alive wait as the client closing would, quietly.
    """
    from gevent.monkey import get_original

    plain = get_original("socket", "socket")(fileno=client.fileno())
    try:
        plain.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    finally:
        plain.detach()  # the descriptor stays the connection's, closed by gunicorn as usual


def _end_push_clients(app) -> None:
    """Ask the app to end its push streams, which would otherwise hold the worker until the
    graceful timeout (see ``Services.end_push_clients``).  Found by its extension's name: this
    module imports nothing from the app."""
    services = getattr(app, "extensions", {}).get("anomaly_server")
    if services is not None:
        services.end_push_clients()


@contextlib.contextmanager
def _entry_points_scanned_once():
    """While gevent patches the standard library, scan the installed distributions' entry points once.

    gevent looks for plugins (in 8 entry-point groups) after each module it patches,
    and each look reads the metadata of every installed distribution: about 25 scans,
    0.1 s of every start.  Nothing is installed while it patches, so one scan of all
    groups answers every look.
    """
    from importlib import metadata

    scan = metadata.entry_points
    everything = scan()

    def entry_points(**selection):
        return everything.select(**selection) if selection else everything

    metadata.entry_points = entry_points
    try:
        yield
    finally:
        metadata.entry_points = scan
