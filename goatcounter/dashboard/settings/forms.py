"""What the settings pages share: their tabs (by access level), reading form fields,
showing errors beside the fields, and the 303 with a message after a change."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from flask import current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from goatcounter.accounts import users
from goatcounter.dashboard import access
from goatcounter.errors import ValidationError


class Tab(NamedTuple):
    """A tab of the settings pages, shown to users with at least `access`."""

    key: str
    label: str
    endpoint: str
    access: str


USER_TABS = (
    Tab("pref", "Preferences", "user_prefs.pref", "r"),
    Tab("widgets", "Dashboard", "user_prefs.widgets", "r"),
    Tab("auth", "Password & two-factor", "user_auth.auth", "r"),
    Tab("api", "API keys", "user_api.index", "a"),
)
SITE_TABS = (
    Tab("main", "Site", "settings.main", "s"),
    Tab("purge", "Pageviews", "settings_purge.purge", "s"),
    Tab("export", "Export & import", "settings_export.export", "s"),
    Tab("users", "Users", "settings_users.index", "a"),
    Tab("sites", "Sites", "settings_sites.index", "a"),
    Tab("share", "Share links", "sharing.share_page", "a"),
)


def tabs(user: dict[str, Any], which: Iterable[Tab]) -> list[dict[str, str]]:
    endpoints = current_app.view_functions
    return [{"key": t.key, "label": t.label, "url": url_for(t.endpoint)}
            for t in which if users.has_access(user, t.access) and t.endpoint in endpoints]


def page(template: str, tab: str, status: int = 200, **context: Any) -> Response:
    """A settings page with both rows of tabs; `tab` is the current one."""
    user = access.current_user()
    html = render_template(template, active="settings", tab=tab,
                           user_tabs=tabs(user, USER_TABS), site_tabs=tabs(user, SITE_TABS),
                           **context)
    return Response(html, status, content_type="text/html; charset=utf-8")


def origin() -> str:
    """This server's address as the browser reached it (https://stats.example.com)."""
    return request.host_url.rstrip("/")


def done(message: str, endpoint: str, **values: Any) -> Response:
    """After a change: the message on the next page, and a 303 to it."""
    flash(message, "i")
    return redirect(url_for(endpoint, **values), 303)


class Errors(dict[str, list[str]]):
    """Field errors by form field name, for showing beside each field."""

    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)

    def first(self, field: str) -> str:
        return "; ".join(self.get(field, []))


def from_validation(exc: ValidationError, names: dict[str, str] | None = None) -> Errors:
    """A ValidationError's fields as form fields; `names` maps the validation's keys
    (`settings.public`) to the form's where they differ."""
    out = Errors()
    for key, messages in exc.errors.items():
        name = (names or {}).get(key, key)
        for message in messages:
            out.add(name, message)
    return out


def text(name: str, limit: int = 1000) -> str:
    """A text field, stripped and cut to a sane length."""
    return request.form.get(name, "").strip()[:limit]


def secret(name: str, limit: int = 1025) -> str:
    """A password field, as typed (spaces are part of a password)."""
    return request.form.get(name, "")[:limit]


def checked(name: str) -> bool:
    """A checkbox: sent (with any value but "off") when ticked."""
    return request.form.get(name, "off") not in ("", "off", "false", "0")


def whole_number(name: str, errors: Errors, default: int = 0) -> int:
    """A number field; a field error when it is not a whole number."""
    raw = text(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        errors.add(name, "must be a whole number")
        return default


def numbers(name: str) -> list[int]:
    """The values of repeated fields (checkboxes) that are whole numbers."""
    out = []
    for value in request.form.getlist(name):
        try:
            out.append(int(value))
        except ValueError:
            continue
    return out
