"""The account's sites: GET /settings/sites, POST /settings/sites/add,
GET|POST /settings/sites/remove/{id} and POST /settings/sites/copy-settings, at upstream's
paths (access a).

A new site starts with the current site's settings and is created by the same code as
PUT /api/v0/sites (so the same domain checks apply). Removing one asks first, on a page
of its own. Sites of another account are 404s.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint
from werkzeug.wrappers import Response

from goatcounter.accounts import sites, tokens
from goatcounter.dashboard import access
from goatcounter.dashboard.settings import forms
from goatcounter.errors import BadRequest, NotFound, ValidationError
from goatcounter.storage import db

bp = Blueprint("settings_sites", __name__)


def _find(site_id: int) -> dict[str, Any]:
    found = sites.of_account(db.get_db(), access.current_site(), site_id)
    if found is None:
        raise NotFound()
    return found


def _page(errors: forms.Errors | None = None, typed: str = "", status: int = 200) -> Response:
    current = access.current_site()
    return forms.page("settings/sites.html", "sites", status, errors=errors or forms.Errors(),
                      rows=sites.account_sites(db.get_db(), current), current=current,
                      typed=typed)


@bp.route("/settings/sites", methods=["GET"])
@access.login_required(access="a")
def index() -> Response:
    """GET /settings/sites: the sites of this account, and the forms to add one and to
    copy settings."""
    return _page()


@bp.route("/settings/sites/add", methods=["POST"])
@access.login_required(access="a")
def add() -> Response:
    """POST /settings/sites/add: `cname`, the new site's domain. 303 to the list; the
    domain of a site removed before brings it back with its data. Invalid: 400."""
    cname = forms.text("cname", 300)
    try:
        site, restored = db.write(lambda conn: sites.add_child(conn, access.current_site(),
                                                               cname))
    except ValidationError as exc:
        return _page(forms.from_validation(exc), cname, 400)
    except BadRequest as exc:
        errors = forms.Errors()
        errors.add("cname", exc.message)
        return _page(errors, cname, 400)
    tokens.forget_sites()
    name = site["cname"]
    if restored:
        return forms.done(f"{name} was removed before; it is back, with all its data.",
                          "settings_sites.index")
    return forms.done(f"Site {name} added, with this site's settings.", "settings_sites.index")


@bp.route("/settings/sites/remove/<int:site_id>", methods=["GET"])
@access.login_required(access="a")
def remove_form(site_id: int) -> Response:
    """GET /settings/sites/remove/{id}: are you sure?"""
    return forms.page("settings/site_remove.html", "sites", target=_find(site_id),
                      current=access.current_site())


@bp.route("/settings/sites/remove/<int:site_id>", methods=["POST"])
@access.login_required(access="a")
def remove(site_id: int) -> Response:
    """POST /settings/sites/remove/{id}: remove a child site; it stops counting and is
    no longer listed. The account's first site stays (400)."""
    target = _find(site_id)
    try:
        db.write(lambda conn: sites.remove(conn, target))
    except BadRequest as exc:
        errors = forms.Errors()
        errors.add("remove", exc.message)
        return _page(errors, status=400)
    tokens.forget_sites()
    return forms.done(f"Site {target['cname'] or target['code']} removed.",
                      "settings_sites.index")


@bp.route("/settings/sites/copy-settings", methods=["POST"])
@access.login_required(access="a")
def copy_settings() -> Response:
    """POST /settings/sites/copy-settings: `sites` (ids, once each) or `allsites`: give
    them this site's settings, all of them but the domain."""
    current = access.current_site()
    account = sites.account_sites(db.get_db(), current)
    wanted = set(forms.numbers("sites"))
    if forms.checked("allsites"):
        wanted = {s["id"] for s in account}
    unknown = wanted - {s["id"] for s in account}
    if unknown:
        raise NotFound()
    targets = [s for s in account if s["id"] in wanted and s["id"] != current["id"]]
    if not targets:
        errors = forms.Errors()
        errors.add("sites", "choose at least one other site")
        return _page(errors, status=400)
    db.write(lambda conn: sites.copy_settings(conn, current, targets))
    tokens.forget_sites()
    return forms.done(f"Settings copied to {len(targets)} "
                      f"{'site' if len(targets) == 1 else 'sites'}.", "settings_sites.index")
