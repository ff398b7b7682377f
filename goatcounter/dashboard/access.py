"""Who is looking at a page: the site chosen by the Host header and the signed-in user,
and `login_required` for the views that need one."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from flask import current_app, g, redirect, session, url_for

from goatcounter.accounts import logins, sites, tokens, users
from goatcounter.errors import APIError, Forbidden
from goatcounter.storage import db

F = TypeVar("F", bound=Callable[..., Any])

# What the session cookie holds besides the form token (web/csrf.py).
USER_KEY = "uid"
PROOF_KEY = "auth"


def current_site() -> dict[str, Any]:
    """The site of the request's Host; a 400 page when there is none."""
    return tokens.current_site()


def site_or_none() -> dict[str, Any] | None:
    """The site of the request's Host, or None (for the layout of error pages)."""
    try:
        return current_site()
    except APIError:
        return None


def signed_in_user() -> dict[str, Any] | None:
    """The user the session cookie names, while its proof is current; else None (and a
    stale session is forgotten)."""
    if "user" not in g:
        g.user = None
        if USER_KEY in session:
            g.user = logins.session_user(db.get_db(), _secret(),
                                         session.get(USER_KEY), session.get(PROOF_KEY))
            if g.user is None:
                session.pop(USER_KEY, None)
                session.pop(PROOF_KEY, None)
    return g.user


def current_user() -> dict[str, Any]:
    """The signed-in user, in a view behind `login_required`."""
    user = signed_in_user()
    assert user is not None, "current_user() outside a login_required view"
    return user


def belongs(user: dict[str, Any], site: dict[str, Any]) -> bool:
    """Whether the user is of the site's account (a parent and its child sites share
    their users)."""
    return user["site_id"] == sites.account_id(site)


def _secret() -> str | bytes:
    """The key sessions are signed with (create_app always sets one)."""
    key = current_app.secret_key
    assert key is not None
    return key


def sign_in(user: dict[str, Any], login_key: str) -> None:
    """Make the session the user's: a fresh session, so nothing from before (a planted
    cookie's values) carries over."""
    session.clear()
    session[USER_KEY] = user["id"]
    session[PROOF_KEY] = logins.proof(_secret(), user["id"], login_key)
    session.permanent = True
    g.user = user


def sign_out() -> None:
    """Forget the session's user."""
    session.clear()
    g.user = None


def _check(access: str) -> Any:
    site = current_site()
    user = signed_in_user()
    if user is None:
        return redirect(url_for("signin.new"), 303)
    if not belongs(user, site):
        raise Forbidden("you are signed in to another site; sign out and sign in with an "
                        "account of this one")
    if not users.has_access(user, access):
        raise Forbidden("your account may not view this page")
    if not logins.opened_today(user):
        db.write(lambda conn: logins.record_open(conn, user["id"]))
    return None


@overload
def login_required(view: F) -> F: ...
@overload
def login_required(*, access: str = "r") -> Callable[[F], F]: ...


def login_required(view: F | None = None, *, access: str = "r") -> Any:
    """A view for signed-in users of the Host's site with at least `access` (r, s, a or
    *): `@login_required` or `@login_required(access="a")`. Signed out, the browser is
    sent to the sign-in form; a user of another site, or with less access, gets 403.
    Inside the view, `current_site()` and `current_user()` are the two."""
    if access not in users.ACCESS_LEVELS:
        raise ValueError(f"unknown access level {access!r}")

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            return _check(access) or fn(*args, **kwargs)
        return wrapped  # type: ignore[return-value]

    return decorate(view) if view is not None else decorate
