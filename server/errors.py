"""One error shape for every failure: ``{"error": "what is wrong"}`` with a 4xx or 5xx status."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import WebsocketMismatch

from .validation import Conflict, InvalidRequest
from .writer import WriterBusy, WriterError, WriterUnavailable, WriteTimeout

__all__ = ["ApiError", "error_response", "register_error_handlers"]

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API reports as-is: a status code and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, **headers: str):
    response = jsonify({"error": message})
    response.status_code = status
    response.headers.update(headers)
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.message)

    @app.errorhandler(InvalidRequest)
    def invalid_request(exc: InvalidRequest):
        return error_response(409 if isinstance(exc, Conflict) else 400, str(exc))

    @app.errorhandler(WriterBusy)
    def writer_busy(exc: WriterBusy):
        return error_response(503, f"server busy: {exc}; retry later", **{"Retry-After": "1"})

    @app.errorhandler(WriterUnavailable)
    def writer_unavailable(exc: WriterUnavailable):
        return error_response(503, str(exc), **{"Retry-After": "5"})

    @app.errorhandler(WriteTimeout)
    def write_timeout(exc: WriteTimeout):
        return error_response(503, f"the database did not confirm the write in time: {exc}")

    @app.errorhandler(WriterError)
    def writer_error(exc: WriterError):
        log.error("write failed for %s %s: %s", request.method, request.path, exc)
        return error_response(503, str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if isinstance(exc, NotFound):
            message = f"not found: {request.path}"
        elif isinstance(exc, MethodNotAllowed):
            allowed = ", ".join(sorted(exc.valid_methods or []))
            message = f"method {request.method} not allowed on {request.path}; allowed: {allowed}"
        elif isinstance(exc, WebsocketMismatch):
            message = f"{request.path} takes WebSocket connections only (send Upgrade: websocket)"
        elif isinstance(exc, RequestEntityTooLarge):
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"payload too large: the limit is {limit} bytes"
        else:
            message = exc.description or exc.name
        response = error_response(exc.code or 500, message)
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, f"internal server error: {type(exc).__name__}")
