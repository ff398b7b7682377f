"""The Sites API: list, read, create and update sites (spec 10.14).

A token sees the site of the request (chosen by the Host header) and that site's
direct children, nothing else. DELETE is not offered, as upstream: Flask answers 405
because the paths have routes for other methods.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from goatcounter import decoding, validation
from goatcounter.accounts import sites, tokens
from goatcounter.errors import NotFound
from goatcounter.responses import json_response
from goatcounter.storage import db

bp = Blueprint("sites", __name__, url_prefix="/api/v0")


def _find(who: tokens.Auth, raw_id: str) -> dict[str, Any]:
    """The site of the URL, after auth and before the body is read (spec 9)."""
    site = sites.visible(db.get_db(), who.site, validation.parse_id(raw_id))
    if site is None:
        raise NotFound()
    return site


@bp.route("/sites", methods=["GET"])
def list_sites() -> Response:
    """GET /api/v0/sites: the current site and its child sites (site-read).

    Reply: `{"sites": [Site, ...]}`, the current site first, then its active children
    ordered by code.
    """
    who = tokens.authenticate(tokens.PERM_SITE_READ)
    with db.read() as conn:
        found = sites.list_visible(conn, who.site)
    return json_response({"sites": [sites.to_api(s) for s in found]})


@bp.route("/sites", methods=["PUT"])
def create_site() -> Response:
    """PUT /api/v0/sites: create a child site of the current site's account (site-create).

    Request: a Site object. `cname` is required; `link_domain`, `setttings` (or
    `settings`) and `user_defaults` may be set; read-only fields are ignored and the
    code is generated. Reply 200: the new Site; 400 `{"errors": ...}` when invalid.
    """
    who = tokens.authenticate(tokens.PERM_SITE_CREATE)
    fields = sites.decode_create(decoding.body())
    site = db.write(lambda conn: sites.create_child(conn, who.site, fields))
    tokens.forget_sites()
    return json_response(sites.to_api(site))


@bp.route("/sites/<site_id>", methods=["GET"])
def get_site(site_id: str) -> Response:
    """GET /api/v0/sites/{id}: one site, the current one or a child of it (site-read).

    Reply: the Site; 404 `not found` for any other site; 400 for an id that is not a
    whole number.
    """
    who = tokens.authenticate(tokens.PERM_SITE_READ)
    return json_response(sites.to_api(_find(who, site_id)))


@bp.route("/sites/<site_id>", methods=["POST", "PATCH"])
def update_site(site_id: str) -> Response:
    """POST|PATCH /api/v0/sites/{id}: change a site's settings, cname and link_domain
    (site-update).

    Request: `{"settings": SiteSettings, "cname": string|null, "link_domain": string}`
    (`setttings` is accepted too). POST replaces: what is left out is reset. PATCH
    changes only what is sent, settings field by field (collect bits are added, as
    upstream). An empty cname is stored as null. Reply 200: the updated Site.
    """
    who = tokens.authenticate(tokens.PERM_SITE_UPDATE)
    site = _find(who, site_id)
    changes = sites.decode_update(decoding.body())
    replace = request.method == "POST"
    updated = db.write(lambda conn: sites.update(conn, who.site, site["id"], changes,
                                                 replace=replace))
    tokens.forget_sites()
    return json_response(sites.to_api(updated))
