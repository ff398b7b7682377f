"""Cross-site request forgery: every form that changes something carries a token that
only pages of this site can know.

The token is random, kept in the (signed) session cookie and repeated in each form as the
hidden field `csrf`. A POST (PUT, PATCH, DELETE) to a page whose field doesn't match the
session's token is refused with 400 before its view runs, so it changes nothing. The API
is not covered: it is authenticated by tokens in a header, never by cookies.
"""
from __future__ import annotations

import hmac
import secrets

from flask import Flask, request, session

from goatcounter.errors import BadRequest
from goatcounter.web import pages

FIELD = "csrf"
# For scripts that send a form's worth without a form.
HEADER = "X-CSRF-Token"
_KEY = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

MESSAGE = ("this form has expired or didn't come from this site; go back, reload the page "
           "and send it again")


def token() -> str:
    """The session's token (made now for a session that has none), for a form's field."""
    value = session.get(_KEY)
    if not isinstance(value, str) or not value:
        value = secrets.token_urlsafe(32)
        session[_KEY] = value
    return value


def rotate() -> None:
    """A new token, after a sign-in: a token learnt before it is worth nothing after."""
    session[_KEY] = secrets.token_urlsafe(32)


def valid(given: str | None) -> bool:
    """Whether `given` is the session's token (compared in constant time)."""
    expected = session.get(_KEY)
    if not isinstance(expected, str) or not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def protect() -> None:
    """Refuse a state-changing request to a page without the session's token."""
    if request.method in SAFE_METHODS or not pages.is_page():
        return
    given = request.form.get(FIELD) or request.headers.get(HEADER)
    if not valid(given):
        raise BadRequest(MESSAGE)


def init_app(app: Flask) -> None:
    """Check every state-changing page request; templates get `csrf_token()`."""
    app.before_request(protect)
    app.jinja_env.globals["csrf_token"] = token
