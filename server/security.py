"""Who may do what, from where, how often: every request passes these checks before its view.

Registered once on the app by :func:`init_app`, as ``before_request`` rules that
look at the method and path only, so a route added later is covered without a
decorator:

1. **Host** must be one of the allowed hosts (loopback names, the bound HOST,
   ``ALLOWED_HOSTS``): a DNS-rebinding page cannot talk to a loopback server
   under its own name.  400.
2. **Rate limit** (Flask-Limiter, in memory): mutating requests per client
   address; 429 with ``Retry-After``.  Before the token check, so guessing the
   token is rate-limited too.
3. **Origin**: a mutating request, and every ``/ws`` handshake, that carries an
   ``Origin`` must come from the server's own origin or ``ALLOWED_ORIGINS``.
   Browsers always send it on cross-origin writes and WebSockets; a client
   without one (curl, scripts) is not a browser page.  403.
4. **Token**: with ``API_TOKEN`` set, mutating requests (and with
   ``READ_ACCESS=TOKEN`` every API read and push stream) need
   ``Authorization: Bearer <token>`` or a live session cookie of the dashboard
   (signed with the token, younger than ``SESSION_HOURS``, not ended by a logout:
   server/sessions.py), both compared in constant time.  401 with ``WWW-Authenticate``.
5. **Content type**: a mutating request with a body must say
   ``application/json``: a cross-site form or a no-cors ``fetch`` can only send
   ``text/plain`` and form types.  415.  File uploads (``/api/upload``) take
   ``text/csv`` or JSON lines (not safelisted either), or a multipart form only
   when the browser marks it same-origin (``Sec-Fetch-Site``); their size limit
   is ``MAX_UPLOAD_BYTES``.
6. **Slow bodies**: the body must arrive within ``BODY_TIMEOUT`` seconds.  408.
7. **Push streams per client**: at most ``MAX_STREAMS_PER_CLIENT`` SSE/WebSocket
   connections per address.  429.

Every response gets the security headers (CSP without inline script,
``nosniff``, frame denial, ``Referrer-Policy``).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import socket
import time
from typing import Any, Callable, Mapping

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from .concurrency import cooperative
from .errors import ApiError, error_response
from .sessions import Revocations, RevokeSessionJob, Session, SessionSigner
from .validation import parse_json

__all__ = ["COOKIE_NAME", "SAFE_METHODS", "Guard", "client_identity", "init_app"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COOKIE_NAME = "anomaly_session"
PUSH_PATHS = ("/api/stream/anomalies", "/ws")
#: Paths whose bodies are files (CSV, JSON lines), checked by the view rather than as JSON.
UPLOAD_PATHS = frozenset({"/api/upload"})
#: Readable without the token even when READ_ACCESS is TOKEN: the page must load to ask for it.
PUBLIC_PATHS = frozenset({"/", "/health", "/favicon.ico", "/vendor/chart.umd.js",
                          "/api/openapi.json", "/api/login", "/api/logout"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
EXTENSION = "anomaly_guard"

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'",
    "form-action 'self'", "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _split_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _host_name(host_header: str) -> str:
    """The host part of a Host header, lower-case, without port or IPv6 brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """The security decisions of one app, from its settings.

    ``revocations`` tells the sessions ended by a logout (needed with a token); ``clock`` is
    the time sessions are issued and judged by (tests move it).
    """

    def __init__(self, settings: Mapping[str, Any], bound_host: str | None = None,
                 revocations: Revocations | None = None, clock: Callable[[], float] = time.time):
        self.token: str = settings["API_TOKEN"]
        self.read_needs_token = settings["READ_ACCESS"] == "TOKEN"
        if self.read_needs_token and not self.token:
            from .settings import SettingsError
            raise SettingsError("ANOMALY_READ_ACCESS=TOKEN needs ANOMALY_API_TOKEN to be set")
        self.allowed_origins = {o.rstrip("/").lower() for o in _split_list(settings["ALLOWED_ORIGINS"])}
        extra_hosts = [_host_name(h) for h in _split_list(settings["ALLOWED_HOSTS"])]
        self.any_host = "*" in extra_hosts
        bound = _host_name(bound_host or os.environ.get("HOST", "127.0.0.1"))
        self.allowed_hosts = {*LOOPBACK_NAMES, *extra_hosts}
        if bound and bound not in {"0.0.0.0", "::"}:
            self.allowed_hosts.add(bound)
        self.body_timeout: float = settings["BODY_TIMEOUT"]
        self.max_streams: int = settings["MAX_STREAMS_PER_CLIENT"]
        # A cookie names a session of its own, signed with a key derived from the token.
        self.sessions = (SessionSigner(self.token, settings["SESSION_HOURS"] * 3600)
                         if self.token else None)
        self.revocations = revocations
        self.clock = clock

    # -- decisions ---------------------------------------------------------------------------
    def host_allowed(self, host_header: str) -> bool:
        return self.any_host or _host_name(host_header) in self.allowed_hosts

    def origin_allowed(self, origin: str, own_origin: str) -> bool:
        origin = origin.rstrip("/").lower()
        return origin == own_origin.lower() or origin in self.allowed_origins

    def token_matches(self, candidate: str) -> bool:
        return bool(self.token) and hmac.compare_digest(candidate.encode(), self.token.encode())

    def live_session(self, cookie: str) -> Session | None:
        """The session ``cookie`` names if it still authenticates: signed with this token,
        within its lifetime, not revoked.  Anything else (garbage included) is None."""
        if self.sessions is None:
            return None
        session = self.sessions.verify(cookie, self.clock())
        if session is None or self.revocations is None or self.revocations.is_revoked(session.id):
            return None
        return session

    def request_session(self) -> Session | None:
        """The live session this request's cookie names, checked once per request: the guard's check
        and the audit's name of the caller (:meth:`token_fingerprint`) both ask, and a check reads
        the database."""
        if "anomaly_session" not in g:
            g.anomaly_session = self.live_session(request.cookies.get(COOKIE_NAME, ""))
        return g.anomaly_session

    def new_session_cookie(self) -> str:
        """The cookie value of a session issued now (the token has been checked)."""
        return self.sessions.issue(self.clock())

    def authenticated(self) -> bool:
        """The request carries the token (Authorization header) or the dashboard's cookie."""
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
            return True
        return self.request_session() is not None

    def needs_token(self) -> bool:
        if not self.token or request.path in PUBLIC_PATHS or request.path.startswith("/static/"):
            return False
        if request.method not in SAFE_METHODS:
            return True
        return self.read_needs_token and (request.path.startswith("/api/")
                                          or request.path in ("/ws", "/metrics"))

    def token_fingerprint(self) -> str | None:
        """A short, stable, non-secret name of the token a request used (None without one)."""
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
            return "token:" + hashlib.sha256(self.token.encode()).hexdigest()[:12]
        if self.request_session() is not None:
            return "session:" + hashlib.sha256(self.token.encode()).hexdigest()[:12]
        return None


def guard() -> Guard:
    return current_app.extensions[EXTENSION]


def client_identity() -> dict[str, str | None]:
    """Who made this request: its address and, when it used one, the token's fingerprint."""
    return {"address": request.remote_addr, "token": guard().token_fingerprint()}


def _unauthorized(message: str) -> Response:
    return error_response(401, message, **{"WWW-Authenticate": 'Bearer realm="anomaly-server"'})


def _has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _read_body_within(seconds: float) -> None:
    """Read (and cache) the body, failing with 408 when it trickles in slower than allowed."""
    if not cooperative():
        request.get_data()  # a threaded test server: the socket's own timeout applies
        return
    import gevent

    try:
        with gevent.Timeout(seconds):
            request.get_data()
    except gevent.Timeout:
        response = error_response(408, f"the request body did not arrive within {seconds:g} s")
        # gunicorn ignores a Connection header from the app and would go on reading the rest of
        # the trickle as the next request: end the connection once the answer is written.
        conn = request.environ.get("gunicorn.socket")
        if conn is not None:
            response.call_on_close(lambda: _shut(conn))
        raise _Abort(response) from None
    except ClientDisconnected:
        raise ApiError(400, "the client closed the connection before sending the whole body") from None
    except HTTPException:
        raise
    except Exception as exc:  # the server's body reader: a malformed chunk, a broken connection
        raise ApiError(400, f"the request body could not be read: {exc or type(exc).__name__}") from None


def _shut(conn) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Abort(Exception):
    """Carries a ready response out of a before_request rule."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


def init_app(app: Flask, hub) -> Guard:
    """Install the checks, the rate limiter and the headers on ``app``; return its guard."""
    from .settings import resolve_path

    security = Guard(app.config, revocations=Revocations(resolve_path(app.config["DATABASE"])))
    app.extensions[EXTENSION] = security

    @app.errorhandler(_Abort)
    def _abort(exc: _Abort):
        return exc.response

    @app.before_request
    def check_host():
        if not security.host_allowed(request.host):
            raise ApiError(400, f"host {request.host[:100]!r} is not served here; allowed: "
                                f"{', '.join(sorted(security.allowed_hosts))} "
                                "(see ANOMALY_ALLOWED_HOSTS)")

    _init_rate_limit(app)

    @app.before_request
    def check_request():
        mutating = request.method not in SAFE_METHODS
        origin = request.headers.get("Origin")
        if origin is not None and (mutating or request.path == "/ws"):
            own = f"{request.scheme}://{request.host}"
            if not security.origin_allowed(origin, own):
                raise ApiError(403, f"origin {origin[:100]!r} may not call {request.method} "
                                    f"{request.path}; allowed: {own} (see ANOMALY_ALLOWED_ORIGINS)")
        if security.needs_token() and not security.authenticated():
            if "Authorization" in request.headers:
                return _unauthorized("the token is wrong")
            return _unauthorized("this request needs 'Authorization: Bearer <token>' "
                                 "(the server's ANOMALY_API_TOKEN)")
        if mutating and _has_body() and request.path in UPLOAD_PATHS:
            # A file, not JSON: text/csv and the JSON-lines types are not CORS-safelisted (a
            # cross-site page must pass a preflight); a multipart form is, so it must come from
            # this origin by the browser's own account.  The view reads the body to disk itself.
            request.max_content_length = app.config["MAX_UPLOAD_BYTES"]
            if request.mimetype == "multipart/form-data" and \
                    request.headers.get("Sec-Fetch-Site", "none") not in ("same-origin", "none"):
                raise ApiError(403, "a multipart upload must come from this site's own page")
        elif mutating and _has_body():
            if request.mimetype != "application/json":
                return error_response(415, "the body must be JSON sent with 'Content-Type: "
                                           f"application/json', not {request.mimetype or 'none'!r}")
            _read_body_within(security.body_timeout)
        if request.path in PUSH_PATHS and request.method == "GET":
            held = hub.clients_of(str(request.remote_addr))
            if held >= security.max_streams:
                return error_response(429, f"this address already holds {held} push connections "
                                           f"(the limit is {security.max_streams})",
                                      **{"Retry-After": "5"})
        return None

    @app.after_request
    def add_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.register_blueprint(_login_bp())
    return security


def _init_rate_limit(app: Flask) -> None:
    rate = app.config["RATE_LIMIT"].strip()
    if rate.lower() == "off":
        return
    from limits import parse_many

    from .settings import SettingsError
    try:
        parse_many(rate)
    except ValueError as exc:
        raise SettingsError(f"ANOMALY_RATE_LIMIT={rate!r}: {exc}") from None
    # One limiter per app (tests build many apps); in memory, so one worker process counts all.
    from flask_limiter import Limiter, RateLimitExceeded  # here: with RATE_LIMIT off it is never loaded

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(exc: RateLimitExceeded):
        # Flask-Limiter adds Retry-After (headers_enabled) to whatever response this is.
        return error_response(429, f"rate limit exceeded: {exc.description} mutating requests per "
                                   "client address (ANOMALY_RATE_LIMIT); retry after Retry-After "
                                   "seconds")

    Limiter(key_func=lambda: str(request.remote_addr), app=app, storage_uri="memory://",
            default_limits=[rate], headers_enabled=True,
            default_limits_exempt_when=lambda: request.method in SAFE_METHODS
            or not request.path.startswith("/api/"))


def _login_bp():
    from flask import Blueprint

    bp = Blueprint("login", __name__, url_prefix="/api")

    @bp.post("/login")
    def login():
        """Exchange the token for the dashboard's HttpOnly, SameSite=Strict session cookie."""
        security = guard()
        body = parse_json(request.get_data(cache=True))
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            raise ApiError(400, 'expected {"token": "..."}')
        if not security.token:
            raise ApiError(409, "this server has no token (ANOMALY_API_TOKEN is empty): "
                                "nothing to log in to")
        if not security.token_matches(body["token"]):
            return _unauthorized("the token is wrong")
        response = jsonify({"authenticated": True})
        response.set_cookie(COOKIE_NAME, security.new_session_cookie(),
                            max_age=int(security.sessions.lifetime_s), httponly=True,
                            samesite="Strict", secure=request.is_secure, path="/")
        return response

    @bp.post("/logout")
    def logout():
        """End the session the cookie names, on every worker and for good, and drop the cookie.

        Open to anyone (the page must be able to log out of a session that has already
        expired): only a live session's own cookie can revoke it."""
        session = guard().request_session()
        if session is not None:
            from .services import services

            services().writer.write(RevokeSessionJob(session), current_app.config["WRITE_TIMEOUT"])
        response = jsonify({"authenticated": False})
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict")
        return response

    @bp.get("/login")
    def session_state():
        """Whether a token guards this server and whether this request carries it."""
        security = guard()
        return jsonify({"token_required": bool(security.token),
                        "read_requires_token": security.read_needs_token,
                        "authenticated": bool(security.token) and security.authenticated()})

    return bp
