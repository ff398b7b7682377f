"""The session cookie of the pages: Flask's, signed with the app's secret key
(itsdangerous), HttpOnly, SameSite=Lax, and Secure whenever the request came over HTTPS
(directly, or through a trusted proxy that said so)."""
from __future__ import annotations

import datetime as dt
import hashlib

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin

from goatcounter.web import pages

NAME = "session"
# A session unused for this long ends; each page view starts the period again.
LIFETIME = dt.timedelta(days=30)


class SessionCookie(SecureCookieSessionInterface):
    """Flask's signed cookie with SHA-256 instead of SHA-1, Secure set per request, and
    never sent on API replies (the API knows nothing of sessions)."""

    salt = "goatcounter-session"
    digest_method = staticmethod(hashlib.sha256)

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure

    def should_set_cookie(self, app: Flask, session: SessionMixin) -> bool:
        return pages.is_page() and super().should_set_cookie(app, session)


def init_app(app: Flask) -> None:
    """Use the pages' session cookie."""
    app.config.update(SESSION_COOKIE_NAME=NAME, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=LIFETIME)
    app.session_interface = SessionCookie()
