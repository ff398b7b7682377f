"""Signing in and out: GET /user/new, POST /user/requestlogin, POST /user/totplogin
(the second step for users with two-factor sign-in), POST /user/logout (upstream's
paths)."""
from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from goatcounter.accounts import logins, totp, users
from goatcounter.dashboard import access
from goatcounter.storage import db
from goatcounter.web import csrf, pages, ratelimit

bp = Blueprint("signin", __name__)


def _form(email: str = "", error: str | None = None, status: int = 200) -> Response:
    html = render_template("signin.html", email=email, error=error)
    return Response(html, status, content_type="text/html; charset=utf-8")


@bp.route("/user/new", methods=["GET"])
def new() -> Response:
    """GET /user/new: the sign-in form; `?email=` fills in the email.

    A user already signed in to this site is sent to the dashboard (303).
    """
    site = access.current_site()
    user = access.signed_in_user()
    if user is not None and access.belongs(user, site):
        return redirect("/", 303)
    return _form(email=request.args.get("email", "")[:500])


@bp.route("/user/requestlogin", methods=["GET"])
def request_login_form() -> Response:
    """GET /user/requestlogin: nothing to see here; 303 to the form, as upstream."""
    return redirect("/user/new", 303)


@bp.route("/user/requestlogin", methods=["POST"])
def request_login() -> Response:
    """POST /user/requestlogin: sign in with the form's `email` and `password`.

    Right: a new session for the user and a 303 to the dashboard. Wrong email or wrong
    password alike: the form again (400) with one message for both, the email kept.
    Rate limited per IP and per email (`login` in GOATCOUNTER_RATELIMIT): 429.
    """
    site = access.current_site()
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    if not email or not password:
        return _form(email, "Enter your email address and password.", 400)
    verdict = ratelimit.check_login_email(email)
    if verdict is not None and not verdict.allowed:
        return pages.error_page(429, verdict.message, verdict.headers)
    user = logins.check(db.get_db(), site, email, password)
    if user is None:
        return _form(email, logins.WRONG_LOGIN, 400)
    if user["totp_enabled"]:
        return _code_form(_ticket(user))
    return _signed_in(user)


def _signed_in(user: dict[str, Any]) -> Response:
    key = db.write(lambda conn: logins.start(conn, user["id"]))
    access.sign_in(user, key)
    csrf.rotate()
    return redirect("/", 303)


# The second step ------------------------------------------------------------------------

# A right password is good for a code this long.
TICKET_SECONDS = 600


def _signer() -> URLSafeTimedSerializer:
    key = current_app.secret_key
    assert key is not None
    return URLSafeTimedSerializer(key, salt="goatcounter-totp-signin")


def _password_mark(user_id: int) -> str:
    """A short mark of the stored password hash: a new password voids earlier tickets."""
    row = db.get_db().execute("SELECT password FROM users WHERE id = :id",
                              {"id": user_id}).fetchone()
    stored = (row["password"] if row else "") or ""
    return hashlib.sha256(stored.encode()).hexdigest()[:16]


def _ticket(user: dict[str, Any]) -> str:
    """Proof, for the form of the second step, that this user gave the right password."""
    return _signer().dumps({"uid": user["id"], "pw": _password_mark(user["id"])})


def _ticket_user(ticket: str) -> dict[str, Any] | None:
    try:
        data = _signer().loads(ticket, max_age=TICKET_SECONDS)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("uid"), int):
        return None
    user = users.get(db.get_db(), data["uid"])
    if user is None or data.get("pw") != _password_mark(user["id"]):
        return None
    return user


def _code_form(ticket: str, error: str | None = None, status: int = 200) -> Response:
    html = render_template("signin_code.html", ticket=ticket, error=error)
    return Response(html, status, content_type="text/html; charset=utf-8")


@bp.route("/user/totplogin", methods=["POST"])
def totp_login() -> Response:
    """POST /user/totplogin: the second step for a user with two-factor sign-in: the
    `ticket` the first step gave and a `totp_token` from the authenticator app.

    Right: signed in, 303 to the dashboard. A wrong code: the form again (400); a ticket
    that expired (10 minutes) or is not this site's: back to the sign-in form. Rate
    limited with the sign-in (`login`).
    """
    site = access.current_site()
    user = _ticket_user(request.form.get("ticket", ""))
    if user is None or not access.belongs(user, site) or not user["totp_enabled"]:
        flash("The sign-in took too long or was not finished; sign in again.", "e")
        return redirect("/user/new", 303)
    code = request.form.get("totp_token", "")
    if not db.write(lambda conn: totp.accept(conn, user["id"], code)):
        return _code_form(request.form.get("ticket", ""), totp.WRONG_CODE, 400)
    return _signed_in(user)


@bp.route("/user/logout", methods=["POST"])
def logout() -> Response:
    """POST /user/logout: sign out, which ends every session of the user (on every
    device, as upstream); 303 to the sign-in form."""
    user = access.signed_in_user()
    if user is not None:
        db.write(lambda conn: logins.end_all(conn, user["id"]))
    access.sign_out()
    flash("You are signed out.", "i")
    return redirect("/user/new", 303)
