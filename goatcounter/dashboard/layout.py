"""The frame every page shares: templates, the stylesheet and script (served from this
package, cacheable for a year under a URL that changes with their content), and what
the base layout shows (the site's name, the navigation, the signed-in user)."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any, NamedTuple

from flask import Blueprint, Flask, current_app, request, url_for

from goatcounter.accounts import users
from goatcounter.dashboard import access
from goatcounter.web import pages

STATIC = Path(__file__).parent / "static"
YEAR = 365 * 24 * 60 * 60


class Assets(Blueprint):
    """A blueprint whose static files are kept a year when asked for by versioned URL."""

    def get_send_file_max_age(self, filename: str | None) -> int | None:
        return YEAR if request.args.get("v") else None


bp = Assets("pages", __name__, template_folder="templates", static_folder="static",
            static_url_path="/static")


class NavItem(NamedTuple):
    """An entry of the header's navigation; shown once its endpoint exists, to users
    with at least `access`. Of entries with the same key, the first allowed is shown."""

    key: str
    label: str
    endpoint: str
    access: str = "r"


NAV = (
    NavItem("dashboard", "Dashboard", "dashboard.home"),
    NavItem("live", "Live", "live.page"),
    NavItem("settings", "Settings", "settings.main", "s"),
    # A read-only user's settings are their own preferences.
    NavItem("settings", "Settings", "user_prefs.pref"),
)


@functools.lru_cache(maxsize=16)
def _version(name: str, mtime_ns: int) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def asset(name: str) -> str:
    """The URL of a static file, with a version that changes with its content."""
    version = _version(name, (STATIC / name).stat().st_mtime_ns)
    return url_for("pages.static", filename=name, v=version)


def site_name(site: dict[str, Any] | None) -> str:
    """How a site is named on its pages: its domain, else its code."""
    if site is None:
        return "GoatCounter"
    return site["cname"] or site["code"]


def page_url(endpoint: str) -> str:
    """The URL of a page, or "" while no blueprint serves it (pages land one by one)."""
    return url_for(endpoint) if endpoint in current_app.view_functions else ""


def navigation(user: dict[str, Any]) -> list[dict[str, str]]:
    """The navigation entries whose pages exist and that the user may open."""
    endpoints = current_app.view_functions
    out: dict[str, dict[str, str]] = {}
    for item in NAV:
        if item.key not in out and item.endpoint in endpoints \
                and users.has_access(user, item.access):
            out[item.key] = {"key": item.key, "label": item.label, "url": url_for(item.endpoint)}
    return list(out.values())


def _layout_context() -> dict[str, Any]:
    # Other templates (the visitor counter's) need none of this, nor its lookups.
    if not pages.is_page():
        return {}
    site = access.site_or_none()
    user = access.signed_in_user() if site is not None else None
    # A user of another site may sign out here, but gets no way into this one.
    ours = user is not None and site is not None and access.belongs(user, site)
    theme = user["settings"].get("theme", "") if ours and user is not None else ""
    return {"site": site, "site_name": site_name(site), "user": user,
            "navigation": navigation(user) if ours and user is not None else [],
            "theme": theme if theme in ("light", "dark") else ""}


def init_app(app: Flask) -> None:
    """Serve the static files and give every template the layout's values."""
    app.register_blueprint(bp)
    app.context_processor(_layout_context)
    app.jinja_env.globals["asset"] = asset
