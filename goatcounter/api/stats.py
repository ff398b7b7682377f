"""Reading the data: GET /api/v0/paths, /api/v0/stats/*, and the API description at
/api.json."""
from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from importlib import resources

from flask import Blueprint, Response
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import PathConverter

from goatcounter.accounts import tokens
from goatcounter.errors import ValidationError
from goatcounter.stats import dims, filters, hitlist, path_list, refs, render, totals
from goatcounter.stats import query as stats_args
from goatcounter.stats.query import Args
from goatcounter.storage import db

bp = Blueprint("stats", __name__)


class AnyText(PathConverter):
    """The rest of the path, newlines included: referrer names in details may hold
    anything."""

    regex = "(?s:.+?)"
    part_isolating = False


@bp.record_once
def _add_converter(state: BlueprintSetupState) -> None:
    """Converters are the app's: this runs when the blueprint is registered, before its
    rules."""
    state.app.url_map.converters.setdefault("anytext", AnyText)

# The pages of GET /api/v0/stats/{page}, in upstream's order (its 400 lists them so).
PAGES = ("browsers", "systems", "locations", "languages", "sizes", "campaigns", "toprefs")
DETAIL_PAGES = ("browsers", "systems", "locations", "sizes", "campaigns", "toprefs")
# What some clients call the referrer list.
PAGE_ALIASES = {"refs": "toprefs"}


def _page(name: str, allowed: tuple[str, ...]) -> str:
    """The page named in the URL (any case), checked before authentication as upstream."""
    page = name.lower()
    page = PAGE_ALIASES.get(page, page)
    if page not in allowed:
        raise ValidationError({"page": [f"must be one of ‘{', '.join(allowed)}’"]})
    return page


def _stats_request(kind: str) -> tuple[tokens.Auth, Args]:
    who = tokens.authenticate(tokens.PERM_STATS)
    return who, stats_args.decode(kind, who.user)


def _include(conn: sqlite3.Connection, who: tokens.Auth, args: Args) -> filters.PathSet:
    return filters.include(conn, who.site["id"], args.include, args.by_name, args.filter)


@bp.route("/api/v0/paths", methods=["GET"])
def list_paths() -> Response:
    """GET /api/v0/paths: the site's paths, without statistics.

    Query: `limit` (default 20, 1 to 200), `after` (only ids above this). The names
    `Limit`/`After` work too. Reply: `{"paths": [Path, ...], "more": bool}`, by id.
    """
    who = tokens.authenticate(tokens.PERM_STATS)
    limit, after = stats_args.decode_paths()
    with db.read() as conn:
        return render.reply(path_list.list_paths(conn, who.site["id"], after, limit))


@bp.route("/api/v0/stats/total", methods=["GET"])
def stats_total() -> Response:
    """GET /api/v0/stats/total: visits in a range, per day and hour.

    Query: `start`, `end`, `include_paths`, `path_by_name` (and `filter`). Reply:
    `{"total", "total_events", "total_utc", "visitors", "stats": [HitListStat, ...]}`;
    `visitors` counts each session once over the range's days (site-wide).
    """
    who, args = _stats_request("total")
    with db.read() as conn:
        include = _include(conn, who, args)
        return render.reply(totals.total(conn, who.site["id"], args.rng, include))


@bp.route("/api/v0/stats/hits", methods=["GET"])
def stats_hits() -> Response:
    """GET /api/v0/stats/hits: the paths with the most visits, with their hourly numbers.

    Query: `start`, `end`, `limit` (1 to 100), `include_paths`, `exclude_paths` (for
    paging), `path_by_name`, `group` (what `max` is of: hour, day, week, month), `daily`
    (older group=day); also `filter` and `after` (a path id to continue after). Reply:
    `{"hits": [HitList, ...], "total": visits of the listed paths, "more": bool}`.
    """
    who, args = _stats_request("hits")
    with db.read() as conn:
        site_id = who.site["id"]
        include = _include(conn, who, args)
        exclude = filters.exclude(conn, site_id, args.exclude, args.by_name)
        return render.reply(hitlist.hits(conn, site_id, args.rng, include, exclude,
                                          args.limit, args.group, args.after))


@bp.route("/api/v0/stats/hits/<path_id>", methods=["GET"])
def stats_path_refs(path_id: str) -> Response:
    """GET /api/v0/stats/hits/{path_id}: the referrers of one path.

    Query: `start`, `end`, `limit`, `offset`. Reply: `{"refs": [{"name", "count",
    "ref_scheme"}, ...], "more": bool}`; an unknown path gives an empty list.
    """
    who = tokens.authenticate(tokens.PERM_STATS)
    number = stats_args.path_id(path_id)
    args = stats_args.decode("refs", who.user)
    with db.read() as conn:
        return render.reply(refs.path_refs(conn, who.site["id"], number, args.rng,
                                            args.limit, args.offset))


@bp.route("/api/v0/stats/<page>", methods=["GET"])
def stats_page(page: str) -> Response:
    """GET /api/v0/stats/{page}: visits per browser, system, location, language, size
    class, campaign or referrer (toprefs).

    Query: `start`, `end`, `limit`, `offset`, `include_paths`, `path_by_name` (and
    `filter`; `after` as an offset). Reply: `{"stats": [HitStat, ...], "more": bool}`.
    """
    name = _page(page, PAGES)
    who, args = _stats_request("page")
    with db.read() as conn:
        include = _include(conn, who, args)
        if name == "toprefs":
            body = refs.top_refs(conn, who.site, args.rng, include, args.limit, args.offset)
        else:
            q = dims.Query(conn, who.site["id"], args.rng, include)
            body = dims.LISTS[name](q, args.limit, args.offset)
        return render.reply(body)


# A referrer such as "a//b" is an id, not a path to tidy up.
@bp.route("/api/v0/stats/<page>/<anytext:ident>", methods=["GET"], merge_slashes=False)
def stats_detail(page: str, ident: str) -> Response:
    """GET /api/v0/stats/{page}/{id}: the versions of a browser or system, the regions
    of a country, the widths of a size class, the sources of a campaign, or the paths a
    referrer sent visits to.

    Query as for /stats/{page}. Reply: `{"stats": [{"name", "count"}, ...], "more"}`.
    """
    name = _page(page, DETAIL_PAGES)
    who, args = _stats_request("page")
    with db.read() as conn:
        include = _include(conn, who, args)
        site_id = who.site["id"]
        if name == "toprefs":
            body = refs.ref_paths(conn, site_id, ident, args.rng, include, args.limit,
                                  args.offset)
        else:
            q = dims.Query(conn, site_id, args.rng, include)
            if name == "browsers":
                body = dims.browser(q, ident, args.limit, args.offset)
            elif name == "systems":
                body = dims.system(q, ident, args.limit, args.offset)
            elif name == "locations":
                body = dims.location(q, ident, args.limit, args.offset)
            elif name == "sizes":
                body = dims.size(q, ident, args.limit, args.offset)
            else:
                body = dims.campaign(q, stats_args.campaign_id(ident), args.limit,
                                     args.offset)
        return render.reply(body)


@lru_cache(maxsize=1)
def _api_description() -> str:
    text = resources.files("goatcounter.api").joinpath("api.json").read_text(encoding="utf-8")
    # Parsed once to fail loudly on a broken file, and written the way replies are.
    return json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


@bp.route("/api.json", methods=["GET"])
def api_description() -> Response:
    """GET /api.json: the API described as Swagger 2.0 (what this server implements)."""
    return Response(_api_description(), content_type="application/json; charset=utf-8")
