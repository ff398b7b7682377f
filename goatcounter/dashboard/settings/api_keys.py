"""API keys: GET /user/api, POST /user/api-token and POST /user/api-token/remove/{id}, at
upstream's paths (access a: only admins may use the API, as upstream).

Keys are made, stored (as hashes) and revoked by the same code as `goatcounter db
create|delete apitoken`. A new key's secret is shown once, in the reply to the POST that
made it, and never again: only its hash is kept (and it never sits in a cookie).
"""
from __future__ import annotations

import sqlite3
from typing import Any

from flask import Blueprint
from werkzeug.wrappers import Response

from goatcounter.accounts import sites, tokens
from goatcounter.dashboard import access
from goatcounter.dashboard.settings import forms
from goatcounter.errors import NotFound
from goatcounter.storage import db

bp = Blueprint("user_api", __name__)

PERMISSIONS = [
    (tokens.PERM_COUNT, "Record pageviews", "POST /api/v0/count"),
    (tokens.PERM_STATS, "Read statistics", "/api/v0/stats/..., /api/v0/paths"),
    (tokens.PERM_EXPORT, "Export", "/api/v0/export"),
    (tokens.PERM_SITE_READ, "Read sites", "GET /api/v0/sites"),
    (tokens.PERM_SITE_CREATE, "Create sites", "PUT /api/v0/sites"),
    (tokens.PERM_SITE_UPDATE, "Update sites", "POST, PATCH /api/v0/sites/{id}"),
]


def _rows(conn: sqlite3.Connection, user: dict[str, Any],
          names: dict[int, str]) -> list[dict[str, Any]]:
    out = []
    for tok in tokens.list_tokens(conn, user["id"]):
        ids = tok["site_ids"]
        out.append({**tok, "perm_labels": [label for bit, label, _ in PERMISSIONS
                                           if tok["permissions"] & bit],
                    "site_names": ["Every site"] if -1 in ids
                    else [names.get(i, f"site {i} (removed)") for i in ids]})
    return out


def _page(errors: forms.Errors | None = None, typed: dict[str, Any] | None = None,
          status: int = 200, new_key: dict[str, str] | None = None) -> Response:
    user, site = access.current_user(), access.current_site()
    conn = db.get_db()
    account = sites.account_sites(conn, site)
    names = {s["id"]: s["cname"] or s["code"] for s in account}
    return forms.page("settings/api.html", "api", status, errors=errors or forms.Errors(),
                      typed=typed or {"name": "", "permissions": [], "sites": [-1]},
                      tokens=_rows(conn, user, names), permissions=PERMISSIONS,
                      account=account, new_key=new_key, api_url=f"{forms.origin()}/api/v0")


@bp.route("/user/api", methods=["GET"])
@access.login_required(access="a")
def index() -> Response:
    """GET /user/api: the user's API keys (name, permissions, sites, created, last used)
    and the form for a new one."""
    return _page()


@bp.route("/user/api-token", methods=["POST"])
@access.login_required(access="a")
def create() -> Response:
    """POST /user/api-token: `name`, `permissions` (once per permission bit) and `sites`
    (site ids, or -1 for every site of the account, also later ones). Made: the page
    with the new key shown this once (200). Invalid: the form again (400)."""
    user = access.current_user()
    name = forms.text("name", 200)
    bits = 0
    for bit in forms.numbers("permissions"):
        if bit in {b for b, _, _ in PERMISSIONS}:
            bits |= bit
    site_ids = sorted(set(forms.numbers("sites")))
    if -1 in site_ids:
        site_ids = [-1]
    typed = {"name": name, "permissions": [b for b, _, _ in PERMISSIONS if bits & b],
             "sites": site_ids}

    def run(conn: sqlite3.Connection) -> str | forms.Errors:
        errors = tokens.token_errors(conn, user, name, bits, site_ids)
        if errors:
            return forms.Errors(errors.errors)
        secret, _ = tokens.create_token(conn, user=user, name=name, permissions=bits,
                                        site_ids=site_ids)
        return secret

    result = db.write(run)
    if isinstance(result, forms.Errors):
        return _page(result, typed, 400)
    return _page(new_key={"name": name, "secret": result})


@bp.route("/user/api-token/remove/<int:token_id>", methods=["POST"])
@access.login_required(access="a")
def remove(token_id: int) -> Response:
    """POST /user/api-token/remove/{id}: revoke one of the user's keys; 404 for anyone
    else's."""
    user = access.current_user()
    if not db.write(lambda conn: tokens.delete_token(conn, token_id, user["id"])):
        raise NotFound()
    return forms.done("API key revoked: requests with it are refused from now on.",
                      "user_api.index")
