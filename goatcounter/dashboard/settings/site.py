"""The site's settings: GET /settings (303), GET|POST /settings/main and
GET /settings/main/ip, at upstream's paths.

The form sends every field of SiteSettings (spec 11.3); they are checked and stored by
the same code as PATCH /api/v0/sites/{id} (accounts/sites.update), so the page and the
API accept and refuse the same values with the same messages.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, request
from werkzeug.wrappers import Response

from goatcounter import collect, encoding
from goatcounter.accounts import sites, tokens
from goatcounter.accounts.settings_schema import PUBLIC_VALUES, decode_settings
from goatcounter.dashboard import access
from goatcounter.dashboard.settings import forms
from goatcounter.errors import BadRequest, ValidationError
from goatcounter.storage import db

bp = Blueprint("settings", __name__)

# The collect flags the form offers, in upstream's order, with what each keeps.
COLLECT_FLAGS = [
    (collect.COLLECT_HITS, "Individual pageviews",
     "Every pageview as a row: what exports contain. Off: only the statistics are kept."),
    (collect.COLLECT_SESSION, "Sessions", "Recognise a visitor's later pageviews (no cookies)."),
    (collect.COLLECT_REFERRER, "Referrer", "Where visitors came from."),
    (collect.COLLECT_USER_AGENT, "Browser and system", "From the User-Agent header."),
    (collect.COLLECT_SCREEN_SIZE, "Screen size", None),
    (collect.COLLECT_LOCATION, "Country", None),
    (collect.COLLECT_LOCATION_REGION, "Region", "Regions of the countries listed below."),
    (collect.COLLECT_LANGUAGE, "Language", "From the Accept-Language header."),
]
PUBLIC_LABELS = {"private": "Only users of this site, signed in",
                 "secret": "Also anyone with the secret link",
                 "public": "Anyone"}
# Form fields as the Sites API names them; errors come back under these keys.
FIELDS = ("link_domain", "cname", "settings.public", "settings.secret",
          "settings.allow_counter", "settings.allow_embed", "settings.data_retention",
          "settings.ignore_ips", "settings.collect", "settings.collect_regions")


def _client_ip() -> str:
    return request.remote_addr or ""


def _values(site: dict[str, Any]) -> dict[str, Any]:
    """The form's fields from a stored site."""
    s = site["settings"]
    return {"link_domain": site["link_domain"], "cname": site["cname"] or "",
            "settings.public": s["public"],
            # A suggestion, so that choosing "secret" works without typing one.
            "settings.secret": s["secret"] or encoding.random_base36(128)[:24],
            "settings.allow_counter": s["allow_counter"],
            "settings.allow_embed": s["allow_embed"].replace(",", ", "),
            "settings.data_retention": s["data_retention"],
            "settings.ignore_ips": s["ignore_ips"].replace(",", ", "),
            "settings.collect": s["collect"],
            "settings.collect_regions": s["collect_regions"].replace(",", ", ")}


def _changes(errors: forms.Errors) -> tuple[dict[str, Any], dict[str, Any]]:
    """(changes for sites.update, the form's values as typed) from the posted form."""
    typed: dict[str, Any] = {name: forms.text(name, 10_000) for name in FIELDS}
    offered = {flag for flag, _, _ in COLLECT_FLAGS}
    bits = sum(b for b in set(forms.numbers("settings.collect")) if b in offered)
    typed["settings.collect"] = bits
    typed["settings.allow_counter"] = forms.checked("settings.allow_counter")
    retention = forms.whole_number("settings.data_retention", errors)
    raw_settings = {
        "public": typed["settings.public"], "secret": typed["settings.secret"],
        "allow_counter": typed["settings.allow_counter"],
        "allow_embed": typed["settings.allow_embed"], "data_retention": retention,
        "ignore_ips": typed["settings.ignore_ips"], "collect": bits,
        "collect_regions": typed["settings.collect_regions"]}
    try:
        settings = decode_settings(raw_settings, "settings")
    except BadRequest as exc:
        errors.add("settings", exc.message)
        settings = {}
    changes = {"settings": settings, "cname": typed["cname"] or None,
               "link_domain": typed["link_domain"]}
    return changes, typed


def _form(site: dict[str, Any], values: dict[str, Any], errors: forms.Errors,
          status: int = 200) -> Response:
    return forms.page("settings/main.html", "main", status, values=values, errors=errors,
                      flags=COLLECT_FLAGS, public=[(v, PUBLIC_LABELS[v]) for v in PUBLIC_VALUES],
                      client_ip=_client_ip(), site_url=request.host_url.rstrip("/"))


@bp.route("/settings", methods=["GET"])
@access.login_required(access="s")
def index() -> Response:
    """GET /settings: 303 to /settings/main, as upstream."""
    return redirect("/settings/main", 303)


@bp.route("/settings/main", methods=["GET"])
@access.login_required(access="s")
def main() -> Response:
    """GET /settings/main: the site's settings form (access s)."""
    site = access.current_site()
    return _form(site, _values(site), forms.Errors())


@bp.route("/settings/main", methods=["POST"])
@access.login_required(access="s")
def save_main() -> Response:
    """POST /settings/main: store the site's settings (access s).

    Fields are the Sites API's (`settings.public`, `settings.collect` once per flag, ...).
    Valid: 303 back with "Saved.". Invalid: the form again (400) with what was typed and
    each field's errors beside it; nothing is stored.
    """
    site = access.current_site()
    errors = forms.Errors()
    changes, typed = _changes(errors)
    if errors:
        return _form(site, typed, errors, 400)
    try:
        db.write(lambda conn: sites.update(conn, site, site["id"], changes, replace=False,
                                           or_collect=False))
    except ValidationError as exc:
        return _form(site, typed, forms.from_validation(exc), 400)
    except BadRequest as exc:
        errors.add("cname", exc.message)
        return _form(site, typed, errors, 400)
    tokens.forget_sites()
    return forms.done("Saved.", "settings.main")


@bp.route("/settings/main/ip", methods=["GET"])
@access.login_required(access="s")
def my_ip() -> Response:
    """GET /settings/main/ip: the address this request came from, as text (for "add my
    current address" to the ignored ones)."""
    return Response(_client_ip(), content_type="text/plain; charset=utf-8")
