"""Who is looking at a page: the site chosen by the Host header and the signed-in user,
`login_required` for the views that need one, and `viewer_required` for the dashboard,
which a site may also show to anyone (public), or to whoever has its secret or a share
link (secret)."""
from __future__ import annotations

import functools
import hmac
import urllib.parse
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, overload

from flask import current_app, g, redirect, request, session, url_for

from goatcounter.accounts import logins, share_links, sites, tokens, users
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


# The dashboard without an account --------------------------------------------------------

# Upstream's names: `?access-token=` opens a secret dashboard and is kept in this cookie,
# so that the secret leaves the address bar (and the links people copy) at once.
ACCESS_PARAM = "access-token"
ACCESS_COOKIE = "access-token"


class Viewer(NamedTuple):
    """Who sees the dashboard: a signed-in `user`, anyone (`public`), the holder of the
    site's `secret`, or of a share `link`."""

    kind: str
    user: dict[str, Any] | None = None
    link: dict[str, Any] | None = None


def _by_secret(site: dict[str, Any], secret: str) -> Viewer | None:
    settings = site["settings"]
    own = settings.get("secret") or ""
    if settings.get("public") == "secret" and own and hmac.compare_digest(
            own.encode("utf-8", "replace"), secret.encode("utf-8", "replace")):
        return Viewer("secret")
    link = share_links.find_live(db.get_db(), site["id"], secret)
    if link is None:
        return None
    if share_links.needs_touch(link):
        db.write(lambda conn: share_links.touch(conn, link["id"]))
    return Viewer("link", link=link)


def viewer() -> Viewer | None:
    """Who may see the Host site's dashboard on this request, or None."""
    if "viewer" not in g:
        site = current_site()
        user = signed_in_user()
        found = None
        if user is not None and belongs(user, site):
            found = Viewer("user", user=user)
        elif site["settings"].get("public") == "public":
            found = Viewer("public")
        elif request.cookies.get(ACCESS_COOKIE):
            found = _by_secret(site, request.cookies[ACCESS_COOKIE])
        g.viewer = found
    return g.viewer


def is_read_only_view() -> bool:
    """Whether the page is shown to somebody without an account (nothing but the
    numbers: no settings, no live log, no exports)."""
    seen = viewer()
    return seen is None or seen.kind != "user"


def view_settings() -> dict[str, Any]:
    """The UserSettings the dashboard is drawn with: the user's own, or for a viewer
    without an account the site's defaults for new users, as upstream."""
    seen = viewer()
    if seen is not None and seen.user is not None:
        return seen.user["settings"]
    return current_site()["user_defaults"]


def _keep_secret() -> Any:
    """`?access-token=...`: keep the secret in a cookie and send the browser to the same
    page without it in the address."""
    secret = request.args.get(ACCESS_PARAM, "")
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != ACCESS_PARAM]
    response = redirect(request.path + ("?" + urllib.parse.urlencode(rest) if rest else ""),
                        303)
    response.set_cookie(ACCESS_COOKIE, secret, httponly=True, samesite="Lax",
                        secure=request.is_secure, path="/")
    return response


def viewer_required(fn: F) -> F:
    """The dashboard's views: a signed-in user of the site (as `login_required`), or
    anyone the site's `public` setting lets in (read-only); else the sign-in form."""
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if ACCESS_PARAM in request.args:
            return _keep_secret()
        seen = viewer()
        if seen is None or seen.kind == "user":
            return _check("r") or fn(*args, **kwargs)
        return fn(*args, **kwargs)
    return wrapped  # type: ignore[return-value]
