"""What sets the HTML pages apart from the API: which paths are pages, the headers every
page carries (a strict Content-Security-Policy), and error pages.

The pages' templates live in goatcounter/dashboard/; an error page is rendered from its
`error.html` by name, with a plain fallback should rendering itself fail.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, render_template, request
from markupsafe import escape

log = logging.getLogger(__name__)

# Paths outside /api/ that answer like the API: with JSON errors, never a page. The
# visitor counter (/counter/...) is embedded in other sites' pages and sets its own
# headers and errors.
API_LIKE = frozenset({"/api", "/api.json", "/count", "/count.js"})
API_LIKE_PREFIXES = ("/api/", "/counter/")

# Scripts and styles come only from our own files, never from the page's text: whatever
# a visitor managed to get into a page can't run.
CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Page not found",
    405: "Method not allowed",
    413: "Too large",
    429: "Too many attempts",
    500: "Server error",
    503: "Busy",
}


def is_page(path: str | None = None) -> bool:
    """Whether a path (the request's by default) is a page rather than the API."""
    path = request.path if path is None else path
    return not path.startswith(API_LIKE_PREFIXES) and path not in API_LIKE


def page_headers(response: Response) -> Response:
    """Headers of every page reply, its errors and static files included."""
    if not is_page():
        return response
    # A page that needs another policy sets its own.
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if response.mimetype == "text/html":
        # Pages show a signed-in user's numbers: nothing on the way may keep a copy.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def error_page(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An HTML error page with `message` (plain text, escaped when shown)."""
    title = TITLES.get(status, "Error")
    # API messages are upstream's lower-case phrases; a page shows them as sentences.
    message = message[:1].upper() + message[1:]
    if message and message[-1] not in ".!?":
        message += "."
    try:
        body = render_template("error.html", status=status, title=title, message=message)
    except Exception:
        # The page layout itself failed (say, the database is gone): still answer clearly.
        log.exception("rendering the error page for %s failed", status)
        body = (f"<!DOCTYPE html><html lang=en><meta charset=utf-8><title>{escape(title)}"
                f"</title><h1>{escape(title)}</h1><p>{escape(message)}</p></html>")
    # A page must not ask the browser for a password, as a 401's header would.
    kept = {k: v for k, v in (headers or {}).items() if k.lower() != "www-authenticate"}
    return Response(body, status, kept, content_type="text/html; charset=utf-8")


def init_app(app: Flask) -> None:
    """Add the pages' headers to every page reply."""
    app.after_request(page_headers)
