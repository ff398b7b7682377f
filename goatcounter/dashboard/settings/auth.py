"""Password and two-factor sign-in: GET /user/auth, POST /user/change-password,
POST /user/enable-totp and POST /user/disable-totp, at upstream's paths.

A new password ends every other session of the user (the per-user login key is
replaced) and keeps this one. Two-factor sign-in is turned on with a code made from the
secret the page shows (as text and as a QR code drawn here, inline SVG, so the pages'
Content-Security-Policy needs no exception), and turned off with the password.
"""
from __future__ import annotations

import sqlite3

import segno
from flask import Blueprint
from markupsafe import Markup
from werkzeug.wrappers import Response

from goatcounter.accounts import logins, passwords, totp, users
from goatcounter.dashboard import access
from goatcounter.dashboard.settings import forms
from goatcounter.storage import db

bp = Blueprint("user_auth", __name__)

WRONG_PASSWORD = "this is not your current password"


def qr_svg(text: str) -> Markup:
    """`text` as a QR code, an <svg> element without styles (dark on light whatever the
    theme, which is what cameras read best)."""
    code = segno.make(text, error="m")
    # Markup made by segno from the otpauth address: the address becomes black and white
    # squares, never text, so nothing typed by anyone ends up in the page's markup.
    return Markup(code.svg_inline(scale=5, dark="#000", light="#fff", border=3,
                                  svgclass="qr", lineclass=None))


def _page(errors: forms.Errors | None = None, status: int = 200) -> Response:
    user = access.current_user()
    context: dict[str, object] = {"errors": errors or forms.Errors(),
                                  "enabled": bool(user["totp_enabled"])}
    if not user["totp_enabled"]:
        secret = db.write(lambda conn: totp.pending_secret(conn, user))
        uri = totp.uri(secret, user["email"])
        context.update(secret=" ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
                       qr=qr_svg(uri), uri=uri)
    return forms.page("settings/auth.html", "auth", status, **context)


@bp.route("/user/auth", methods=["GET"])
@access.login_required
def auth() -> Response:
    """GET /user/auth: change the password; turn two-factor sign-in on or off."""
    return _page()


@bp.route("/user/change-password", methods=["POST"])
@access.login_required
def change_password() -> Response:
    """POST /user/change-password: `c_password` (the current one), `password` and
    `password2`. Right: stored, every other session of the user ends, 303 to /user/auth.
    Wrong: the page again (400) with the errors beside the fields; nothing changes."""
    user = access.current_user()
    errors = forms.Errors()
    current = forms.secret("c_password")
    new = forms.secret("password")
    row = db.get_db().execute("SELECT password FROM users WHERE id = :id",
                              {"id": user["id"]}).fetchone()
    if not passwords.check_password(row["password"] if row else None, current):
        errors.add("c_password", WRONG_PASSWORD)
    problem = passwords.password_error(new)
    if problem:
        errors.add("password", problem)
    if new != forms.secret("password2"):
        errors.add("password2", "the two new passwords are not the same")
    if errors:
        return _page(errors, 400)
    hashed = passwords.hash_password(new)

    def run(conn: sqlite3.Connection) -> str:
        users.set_password(conn, user["id"], hashed)
        return logins.start(conn, user["id"])

    # The old key went with the old password; this session goes on under the new one.
    access.sign_in(user, db.write(run))
    return forms.done("Your password is changed; every other session of yours has ended.",
                      "user_auth.auth")


@bp.route("/user/enable-totp", methods=["POST"])
@access.login_required
def enable_totp() -> Response:
    """POST /user/enable-totp: `totp_token`, a code made from the secret on the page.
    Right: two-factor sign-in is on from the next sign-in. Wrong: the page again (400)."""
    user = access.current_user()
    code = forms.text("totp_token", 20)
    if user["totp_enabled"]:
        return forms.done("Two-factor sign-in is on already.", "user_auth.auth")
    if not db.write(lambda conn: totp.enable(conn, user["id"], code)):
        errors = forms.Errors()
        errors.add("totp_token", totp.WRONG_CODE)
        return _page(errors, 400)
    return forms.done("Two-factor sign-in is on: signing in asks for a code from now on.",
                      "user_auth.auth")


@bp.route("/user/disable-totp", methods=["POST"])
@access.login_required
def disable_totp() -> Response:
    """POST /user/disable-totp: `d_password`, the current password. Right: two-factor sign-in is
    off and its secret forgotten. Wrong: the page again (400); it stays on."""
    user = access.current_user()
    row = db.get_db().execute("SELECT password FROM users WHERE id = :id",
                              {"id": user["id"]}).fetchone()
    if not passwords.check_password(row["password"] if row else None,
                                    forms.secret("d_password")):
        errors = forms.Errors()
        errors.add("d_password", WRONG_PASSWORD)
        return _page(errors, 400)
    db.write(lambda conn: totp.disable(conn, user["id"]))
    return forms.done("Two-factor sign-in is off.", "user_auth.auth")
