"""Managing pageviews: GET|POST /settings/purge (find paths, delete them with their hits
and statistics) and POST /settings/merge (make several paths one), at upstream's paths
(access s).

Both ask first: a POST without `confirm` answers with a page that says how many
pageviews the change touches; the same form with `confirm` makes it, in one
transaction (counting/path_admin.py).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from werkzeug.wrappers import Response

from goatcounter.counting import path_admin
from goatcounter.dashboard import access
from goatcounter.dashboard.settings import forms
from goatcounter.storage import db

bp = Blueprint("settings_purge", __name__)

# Paths offered as the target of a merge, the most viewed first.
TARGETS = 5000


def _targets(site_id: int) -> list[dict[str, Any]]:
    return path_admin.find(db.get_db(), site_id, "%", limit=TARGETS)


def _chosen(site_id: int) -> list[dict[str, Any]]:
    return path_admin.of_site(db.get_db(), site_id, forms.numbers("paths")[:path_admin.MAX_MATCHES])


@bp.route("/settings/purge", methods=["GET"])
@access.login_required(access="s")
def purge() -> Response:
    """GET /settings/purge: `path` (a search: `%` and `_` are wildcards, `\\%` and `\\_`
    the characters), `match-title`, `match-case`: the matching paths and their pageviews,
    to delete or merge."""
    site = access.current_site()
    query = request.args.get("path", "")[:500]
    title = request.args.get("match-title", "") not in ("", "off")
    case = request.args.get("match-case", "") not in ("", "off")
    found = path_admin.find(db.get_db(), site["id"], query, title, case) if query else []
    return forms.page("settings/purge.html", "purge", query=query, match_title=title,
                      match_case=case, found=found,
                      targets=_targets(site["id"]) if found else [])


def _nothing() -> Response:
    errors = forms.Errors()
    errors.add("paths", "choose at least one path")
    return forms.page("settings/purge.html", "purge", 400, query="", match_title=False,
                      match_case=False, found=[], targets=[], errors=errors)


@bp.route("/settings/purge", methods=["POST"])
@access.login_required(access="s")
def purge_paths() -> Response:
    """POST /settings/purge: `paths` (ids, once each). Without `confirm`: the page that
    asks, with the number of pageviews. With it: they are deleted, 303 back."""
    site = access.current_site()
    chosen = _chosen(site["id"])
    if not chosen:
        return _nothing()
    ids = [p["id"] for p in chosen]
    if not forms.checked("confirm"):
        return forms.page("settings/purge_confirm.html", "purge", action="purge",
                          paths=chosen, hits=sum(p["hits"] for p in chosen), target=None)
    removed = db.write(lambda conn: path_admin.purge(conn, site["id"], ids))
    return forms.done(f"Deleted {len(ids)} {'path' if len(ids) == 1 else 'paths'} and their "
                      f"{removed} pageviews.", "settings_purge.purge")


@bp.route("/settings/merge", methods=["POST"])
@access.login_required(access="s")
def merge() -> Response:
    """POST /settings/merge: `paths` (ids) and `merge_with` (the id they become part
    of). Without `confirm`: the page that asks. With it: merged, 303 back."""
    site = access.current_site()
    target_id = forms.whole_number("merge_with", forms.Errors(), -1)
    targets = path_admin.of_site(db.get_db(), site["id"], [target_id])
    chosen = [p for p in _chosen(site["id"]) if p["id"] != target_id]
    if not chosen or not targets:
        return _nothing()
    ids = [p["id"] for p in chosen]
    if not forms.checked("confirm"):
        return forms.page("settings/purge_confirm.html", "purge", action="merge",
                          paths=chosen, hits=sum(p["hits"] for p in chosen),
                          target=targets[0])
    moved = db.write(lambda conn: path_admin.merge(conn, site["id"], target_id, ids))
    return forms.done(f"Merged {len(ids)} {'path' if len(ids) == 1 else 'paths'} "
                      f"({moved} pageviews) into {targets[0]['path']}.",
                      "settings_purge.purge")
