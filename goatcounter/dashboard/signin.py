"""Signing in and out: GET /user/new, POST /user/requestlogin, POST /user/logout
(upstream's paths)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request
from werkzeug.wrappers import Response

from goatcounter.accounts import logins
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
    key = db.write(lambda conn: logins.start(conn, user["id"]))
    access.sign_in(user, key)
    csrf.rotate()
    return redirect("/", 303)


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
