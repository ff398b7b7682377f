"""GET|POST /settings/share: the site's share links (read-only ways into the dashboard
without an account): make one (its address shown once), see when each was last used,
revoke one. Admins only."""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from werkzeug.wrappers import Response

from goatcounter import clock
from goatcounter.accounts import share_links
from goatcounter.dashboard.access import ACCESS_PARAM, current_site, current_user, login_required
from goatcounter.dashboard.settings import forms
from goatcounter.errors import NotFound
from goatcounter.storage import db

bp = Blueprint("sharing", __name__)

# How long a new link may live, as the form offers it.
LIFETIMES = {"": None, "1d": 1, "7d": 7, "30d": 30, "365d": 365}


def _page(errors: dict[str, str] | None = None, form: dict[str, str] | None = None,
          made: dict[str, Any] | None = None, status: int = 200) -> Response:
    site = current_site()
    links = share_links.list_for(db.get_db(), site["id"])
    return forms.page("settings/share.html", "share", status, links=links, made=made,
                      errors=errors or {}, form=form or {})


def share_url(secret: str) -> str:
    """The address that opens the dashboard with a link's secret."""
    return url_for("dashboard.home", _external=True, **{ACCESS_PARAM: secret})


@bp.route("/settings/share", methods=["GET"])
@login_required(access="a")
def share_page() -> Response:
    """GET /settings/share: the site's share links."""
    return _page()


@bp.route("/settings/share", methods=["POST"])
@login_required(access="a")
def create_link() -> Response:
    """POST /settings/share: a new link, named `name`, living `lifetime`; its address is
    shown on the reply only."""
    name = request.form.get("name", "").strip()
    lifetime = request.form.get("lifetime", "")
    errors = {}
    if not name:
        errors["name"] = "give the link a name, so that you know later whom you gave it to"
    elif len(name) > share_links.MAX_NAME:
        errors["name"] = f"at most {share_links.MAX_NAME} characters"
    if lifetime not in LIFETIMES:
        errors["lifetime"] = "choose one of the offered lifetimes"
    if errors:
        return _page(errors, {"name": name, "lifetime": lifetime}, status=400)
    days = LIFETIMES[lifetime]
    expires = None if days is None else clock.rfc3339(
        dt.datetime.fromtimestamp(int(clock.now()), dt.UTC) + dt.timedelta(days=days))
    site, user = current_site(), current_user()
    secret, row = db.write(lambda conn: share_links.create(conn, site["id"], name, user["id"],
                                                           expires))
    # Shown on this reply only (no redirect): the secret is never stored.
    return _page(made={**row, "url": share_url(secret)})


@bp.route("/settings/share/<int:link_id>/revoke", methods=["POST"])
@login_required(access="a")
def revoke_link(link_id: int) -> Response:
    """POST /settings/share/ID/revoke: the link opens nothing any more, at once."""
    site = current_site()
    if not db.write(lambda conn: share_links.revoke(conn, site["id"], link_id)):
        raise NotFound("no live share link with that id on this site")
    flash("The link is revoked: it opens nothing any more.")
    return redirect(url_for("sharing.share_page"), 303)
