"""The one place that turns errors into replies. On the API (and the other paths that
answer like it) they are JSON, `{"error": "..."}` or `{"errors": {...}}`, never both;
on the pages they are HTML pages (web/pages.py)."""
from __future__ import annotations

import hashlib
import logging
import traceback

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from goatcounter import encoding
from goatcounter.errors import APIError
from goatcounter.responses import json_response
from goatcounter.storage import db
from goatcounter.web import pages

log = logging.getLogger(__name__)


def error_code(text: str) -> str:
    """A short base36 code for an internal error, stable for the same error."""
    return encoding.base36(int.from_bytes(hashlib.sha256(text.encode()).digest()[:5], "big"))


def unexpected_error(exc: BaseException) -> Response:
    """500 with upstream's wording; the traceback goes to the log, not to the client."""
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    code = error_code(f"{type(exc).__name__}: {exc}")
    log.error("unexpected error %s on %s %s\n%s", code, request.method, request.path, detail)
    if pages.is_page():
        return pages.error_page(500, f"something went wrong on our side (error code ‘{code}’); "
                                "it has been logged for investigation")
    return json_response(
        {"error": f"unexpected error code ‘{code}’; this has been reported for investigation"},
        500)


# What a client is told when every retry of a write found the database locked (see
# db.write). A 503 with Retry-After invites a retry, where a 500 would report a bug.
BUSY_MESSAGE = "database is busy; try again"
BUSY_RETRY_AFTER = "5"


def busy_body() -> tuple[dict[str, str], dict[str, str]]:
    """Body and headers of the 503 for a database that stayed busy."""
    return {"error": BUSY_MESSAGE}, {"Retry-After": BUSY_RETRY_AFTER}


def database_error(exc: Exception) -> Response:
    """503 for a database that stayed locked through every retry, or whose server could
    not be reached (the transaction did not commit); anything else is a bug, and a 500."""
    if not db.is_busy(exc) and not db.is_disconnect(exc):
        return unexpected_error(exc)
    log.warning("database busy on %s %s: %s", request.method, request.path, exc)
    body, headers = busy_body()
    if pages.is_page():
        return pages.error_page(503, "the database is busy; try again in a few seconds", headers)
    return json_response(body, 503, headers)


def render(exc: APIError) -> Response:
    """The reply for an APIError."""
    if pages.is_page():
        return pages.error_page(exc.status, exc.message, exc.headers)
    return json_response(exc.body(), exc.status, exc.headers)


_HTTP_MESSAGES = {
    400: "bad request",
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
    415: "unsupported media type",
}


# What a page says for these; others say what werkzeug's exception says.
_PAGE_MESSAGES = {
    400: "the request could not be understood",
    404: "there is no page at this address",
    405: "this page can't be used that way",
    413: "what was sent is too large",
}


def _http_error(exc: HTTPException) -> BaseResponse:
    status = exc.code or 500
    if 300 <= status < 400:
        return exc.get_response()
    messages = _PAGE_MESSAGES if pages.is_page() else _HTTP_MESSAGES
    message = messages.get(status) or (exc.description or exc.name).rstrip(".")
    if status == 413:
        message = f"request body is larger than {current_app.config['MAX_BODY']} bytes"
    # Keep what the exception says in headers (a 405's Allow), but not its HTML type.
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    if pages.is_page():
        return pages.error_page(status, message, headers)
    return json_response({"error": message}, status, headers)


def init_app(app: Flask) -> None:
    """Register the handlers that shape every error reply."""
    app.register_error_handler(APIError, render)
    app.register_error_handler(HTTPException, _http_error)
    for error in db.database_errors():
        app.register_error_handler(error, database_error)
    app.register_error_handler(Exception, unexpected_error)
