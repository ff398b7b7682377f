"""The account's users: GET /settings/users, GET|POST /settings/users/add,
GET|POST /settings/users/{id} and POST /settings/users/remove/{id}, at upstream's paths
(access a).

A new user gets the password the admin typed, or one made here and shown once. The last
admin of an account can be neither removed nor made less than an admin, and only a
superuser can make superusers. Users of another account are 404s.
"""
from __future__ import annotations

import sqlite3
from typing import Any

from flask import Blueprint
from werkzeug.wrappers import Response

from goatcounter.accounts import passwords, sites, users
from goatcounter.dashboard import access
from goatcounter.dashboard.settings import forms
from goatcounter.errors import BadRequest, NotFound
from goatcounter.storage import db

bp = Blueprint("settings_users", __name__)

EMAIL_TAKEN = "there is a user with this email already"
NOT_SUPERUSER = "only a superuser can make superusers"


def _account() -> int:
    return sites.account_id(access.current_site())


def _find(user_id: int) -> dict[str, Any]:
    """A user of this account, or 404."""
    found = users.get(db.get_db(), user_id)
    if found is None or found["site_id"] != _account():
        raise NotFound()
    return found


def _levels() -> list[tuple[str, str]]:
    """The access levels the signed-in user may hand out."""
    me = access.current_user()
    return [(level, label) for level, label in users.ACCESS_LABELS.items()
            if level != "*" or users.has_access(me, "*")]


def _check_level(level: str, errors: forms.Errors) -> None:
    if level not in users.ACCESS_LEVELS:
        errors.add("access", "choose one of the levels listed")
    elif level == "*" and not users.has_access(access.current_user(), "*"):
        errors.add("access", NOT_SUPERUSER)


@bp.route("/settings/users", methods=["GET"])
@access.login_required(access="a")
def index() -> Response:
    """GET /settings/users: the account's users and their access."""
    rows = users.list_account(db.get_db(), _account())
    return forms.page("settings/users.html", "users", rows=rows, labels=users.ACCESS_LABELS,
                      me=access.current_user()["id"])


def _form(values: dict[str, Any], errors: forms.Errors, editing: dict[str, Any] | None,
          status: int = 200) -> Response:
    return forms.page("settings/user_form.html", "users", status, values=values,
                      errors=errors, editing=editing, levels=_levels())


@bp.route("/settings/users/add", methods=["GET"])
@access.login_required(access="a")
def add_form() -> Response:
    """GET /settings/users/add: the form for a new user (access s by default)."""
    return _form({"email": "", "access": "s"}, forms.Errors(), None)


@bp.route("/settings/users/add", methods=["POST"])
@access.login_required(access="a")
def add() -> Response:
    """POST /settings/users/add: `email`, `access` and `password` (empty: one is made and
    shown once). Made: a page with the password (200). Invalid: the form again (400)."""
    email, level = forms.text("email", 254), forms.text("access", 2)
    password = forms.secret("password")
    errors = forms.Errors()
    if "@" not in email.strip("@"):
        errors.add("email", "must be an email address")
    _check_level(level, errors)
    made = not password
    if made:
        password = passwords.generate()
    problem = passwords.password_error(password)
    if problem:
        errors.add("password", problem)
    values = {"email": email, "access": level}
    if errors:
        return _form(values, errors, None, 400)
    hashed = passwords.hash_password(password)

    def run(conn: sqlite3.Connection) -> dict[str, Any]:
        user = users.create(conn, site_id=_account(), email=email, access=level)
        users.set_password(conn, user["id"], hashed)
        return user

    try:
        user = db.write(run)
    except db.integrity_errors():
        errors.add("email", EMAIL_TAKEN)
        return _form(values, errors, None, 400)
    return forms.page("settings/user_added.html", "users", new_user=user,
                      password=password if made else None,
                      signin_url=f"{forms.origin()}/user/new")


@bp.route("/settings/users/<int:user_id>", methods=["GET"])
@access.login_required(access="a")
def edit_form(user_id: int) -> Response:
    """GET /settings/users/{id}: change a user's email, access or password."""
    user = _find(user_id)
    return _form({"email": user["email"], "access": user["access"].get("all")},
                 forms.Errors(), user)


@bp.route("/settings/users/<int:user_id>", methods=["POST"])
@access.login_required(access="a")
def edit(user_id: int) -> Response:
    """POST /settings/users/{id}: `email`, `access` and `password` (empty: unchanged).
    The last admin keeps admin access (400 otherwise)."""
    user = _find(user_id)
    email, level = forms.text("email", 254), forms.text("access", 2)
    password = forms.secret("password")
    errors = forms.Errors()
    if "@" not in email.strip("@"):
        errors.add("email", "must be an email address")
    _check_level(level, errors)
    if user["access"].get("all") == "*" and level != "*" and \
            not users.has_access(access.current_user(), "*"):
        errors.add("access", "only a superuser can change a superuser's access")
    if password:
        problem = passwords.password_error(password)
        if problem:
            errors.add("password", problem)
    values = {"email": email, "access": level}
    if errors:
        return _form(values, errors, user, 400)
    hashed = passwords.hash_password(password) if password else None

    def run(conn: sqlite3.Connection) -> None:
        users.set_access(conn, user, level)
        users.set_email(conn, user["id"], email)
        if hashed:
            users.set_password(conn, user["id"], hashed)

    try:
        db.write(run)
    except BadRequest as exc:
        errors.add("access", exc.message)
        return _form(values, errors, user, 400)
    except db.integrity_errors():
        errors.add("email", EMAIL_TAKEN)
        return _form(values, errors, user, 400)
    if user["id"] == access.current_user()["id"] and hashed:
        # A new password ends the user's sessions, this one too: sign in again.
        return forms.done("Saved; sign in again with the new password.", "signin.new")
    if user["id"] == access.current_user()["id"] and level not in ("a", "*"):
        # No longer an admin: this list is not theirs to see any more.
        return forms.done("Saved; you are no longer an admin of this account.",
                          "user_prefs.pref")
    return forms.done(f"User {email} saved.", "settings_users.index")


@bp.route("/settings/users/remove/<int:user_id>", methods=["POST"])
@access.login_required(access="a")
def remove(user_id: int) -> Response:
    """POST /settings/users/remove/{id}: remove a user and the user's API keys; not the
    account's last admin (400, with the list of users)."""
    user = _find(user_id)
    try:
        db.write(lambda conn: users.delete(conn, user))
    except BadRequest as exc:
        rows = users.list_account(db.get_db(), _account())
        return forms.page("settings/users.html", "users", 400, rows=rows,
                          labels=users.ACCESS_LABELS, me=access.current_user()["id"],
                          problem=f"{user['email']} was not removed: {exc.message}.")
    return forms.done(f"User {user['email']} removed.", "settings_users.index")
