"""The dashboard page: read the period and filters from the URL, ask the stats functions,
render the widgets. Every view of it is a plain GET URL, so any of them can be
bookmarked; the script only spares full reloads."""
from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping
from typing import Any

from flask import current_app, render_template, request

from goatcounter import clock
from goatcounter.accounts import users
from goatcounter.counting import pending
from goatcounter.dashboard import layout, widgets
from goatcounter.dashboard import period as periods
from goatcounter.dashboard.formatting import Formats
from goatcounter.errors import APIError, BadRequest, NotFound
from goatcounter.stats import filters, ranges, segments
from goatcounter.stats.filters import PathSet
from goatcounter.stats.query import go_quote, parse_int
from goatcounter.storage import db

# Every parameter the page reads; links keep these and nothing else.
PARAMS = ("period-start", "period-end", "group", "filter", "path", *segments.KINDS,
          "pages", "more")
MAX_PAGES = 500
# The endpoint of the site settings page, whose collect section the widgets point to.
SITE_SETTINGS = "settings.main"
SITE_SETTINGS_ACCESS = "s"
# Upstream's parameters that mean nothing here (its own script's, or the highlight of a
# preset): a bookmark carrying them still opens.
IGNORED = frozenset({"hl-period", "showrefs", "reload", "connectID", "no-websocket",
                     "hideui", "period"})


@dataclasses.dataclass
class Chip:
    """An active filter, shown with a link that removes it."""

    label: str
    remove: str


def _args() -> dict[str, str]:
    """The page's parameters (the first value of each), refusing unknown ones."""
    out = {k: v for k, v in request.args.items(multi=False) if k in PARAMS}
    for key in request.args:
        if key not in PARAMS and key not in IGNORED:
            raise BadRequest(f"unknown parameter {go_quote(key)}")
    return out


def link_maker(current: Mapping[str, str]) -> widgets.Link:
    """A function giving the URL of this page with some parameters changed."""
    def link(**changes: str | int | None) -> str:
        args = dict(current)
        for key, value in changes.items():
            key = key.replace("_", "-")
            if value is None:
                args.pop(key, None)
            else:
                args[key] = str(value)
        if any(k in changes for k in ("path", "filter", *segments.KINDS)):
            # A new filter starts the lists from their first rows.
            args.pop("pages", None)
            args.pop("more", None)
        ordered = [(k, args[k]) for k in PARAMS if k in args]
        return "/?" + urllib.parse.urlencode(ordered) if ordered else "/"
    return link


def _paths(conn: Any, site_id: int, args: Mapping[str, str]) -> tuple[PathSet, int | None]:
    """The path filters: `filter` (text in the path or title, upstream's keywords) and
    `path` (one path, exactly)."""
    out = filters.ALL
    text = args.get("filter", "").strip()
    if len(text) > segments.MAX_TEXT:
        raise BadRequest(f"filter must be at most {segments.MAX_TEXT} characters")
    if text:
        out = PathSet(tuple(filters.matching(conn, site_id, text)))
        if out.nothing:
            raise NotFound(f"no path or title matches {go_quote(text)}")
    path_id = None
    if "path" in args:
        row = conn.execute("SELECT id FROM paths WHERE site_id = :site AND path = :path",
                           {"site": site_id, "path": args["path"]}).fetchone()
        if row is None:
            raise NotFound(f"this site has no path {go_quote(args['path'])}")
        path_id = row[0]
        out = out.intersect(PathSet((path_id,)))
        if out.nothing:
            raise NotFound("the path doesn't match the path filter")
    return out, path_id


def _limit(text: str | None) -> int:
    if text is None:
        return 0
    number = parse_int(text)
    if number is None or number < 1:
        raise BadRequest("pages must be a whole number above 0")
    return min(number, MAX_PAGES)


def _header(period: periods.Period, fmt: Formats, link: widgets.Link, now: float,
            sunday: bool) -> dict[str, Any]:
    """The period controls: the presets, previous and next, hour or day."""
    today = ranges.local(int(now), period.tz).date()
    active = periods.matching_preset(period, now, sunday)
    presets = []
    for name, label in periods.PRESETS:
        first, last = periods.preset(name, today, sunday)
        presets.append({"label": label, "active": name == active,
                        "link": link(period_start=first.isoformat(),
                                     period_end=last.isoformat())})
    back, forward = period.shifted(-1), period.shifted(1)
    span = fmt.date(period.first) if period.days == 1 else \
        f"{fmt.date(period.first)} – {fmt.date(period.last)}"
    return {
        "presets": presets, "span": span,
        "back": link(period_start=back[0].isoformat(), period_end=back[1].isoformat()),
        "forward": link(period_start=forward[0].isoformat(), period_end=forward[1].isoformat())
        if forward[0] <= today else "",
        "groups": [{"name": g, "label": label, "active": period.group == g,
                    "link": link(group=g), "disabled": bool(period.fixed) and period.group != g}
                   for g, label in (("hour", "By hour"), ("day", "By day"))],
        "fixed": period.fixed, "first": period.first.isoformat(),
        "last": period.last.isoformat(), "today": today.isoformat(),
    }


def render_dashboard(site: dict[str, Any], user: dict[str, Any]) -> tuple[str, int]:
    """GET / for a signed-in user of the site: the page and its status."""
    settings = user.get("settings") or {}
    fmt = Formats.of(settings)
    tz = ranges.user_zone(user)
    now = clock.now()
    args: dict[str, str] = {}
    try:
        args = _args()
        first_hit = clock.parse_rfc3339(site["first_hit_at"]).timestamp()
        period = periods.parse({**args, **({"period": request.args["period"]}
                                         if "period" in request.args else {})},
                               settings, tz, now, first_hit)
        if "period" in request.args:
            args["period-start"], args["period-end"] = (period.first.isoformat(),
                                                        period.last.isoformat())
        link = link_maker(args)
        conn = db.get_db()
        # Pixel pageviews still in the spool count before the numbers are read, as for
        # the API's reads.
        pending.catch_up(conn)
        with db.read(conn):
            paths, path_id = _paths(conn, site["id"], args)
            segment = segments.resolve(conn, site["id"],
                                       {k: args[k] for k in segments.KINDS if k in args})
            daily = [d.kind for d in segment.dims if d.kind != "ref"]
            if daily:
                period = dataclasses.replace(period, group="day", fixed=(
                    f"Visits by {daily[0]} are counted per day, not per hour"))
            rq = widgets.Request(conn=conn, site=site, period=period, paths=paths,
                                 segment=segment, fmt=fmt, link=link, now=now,
                                 raw_cap=int(current_app.config["DASHBOARD_RAW_HITS"]),
                                 more=args.get("more", ""), pages_limit=_limit(args.get("pages")),
                                 path_id=path_id, settings_link=_settings_link(user))
            shown = widgets.build(rq, settings.get("widgets") or [])
            chips = [Chip(widgets.chip_label(k, args[k], conn, site), link(**{k: None}))
                     for k in ("filter", "path", *segments.KINDS) if args.get(k)]
    except APIError as exc:
        if exc.status not in (400, 404):
            raise
        return _problem(exc, args, site, fmt, now, settings), exc.status
    html = render_template(
        "dashboard.html", site=site, widgets=shown, chips=chips,
        head=_header(period, fmt, link, now, bool(settings.get("sunday_starts_week"))),
        args=args, kinds=[k for k in segments.KINDS if k in args], tz_name=_zone_name(tz),
        clear=link(**dict.fromkeys(("filter", "path", *segments.KINDS))),
        active="dashboard")
    return html, 200


def _problem(exc: APIError, args: dict[str, str], site: dict[str, Any], fmt: Formats,
             now: float, settings: dict[str, Any]) -> str:
    """The page for a request the dashboard can't answer: what is wrong, and the links
    that get out of it (without the bad parameter, or the default view)."""
    link = link_maker(args)
    undo = []
    for key in ("filter", "path", *segments.KINDS):
        if key in args:
            undo.append(Chip(f"Remove the filter {key} = {args[key]}", link(**{key: None})))
    if any(k in args for k in ("period-start", "period-end", "group")):
        undo.append(Chip("Back to the default period",
                         link(period_start=None, period_end=None, group=None)))
    return render_template("dashboard_problem.html", site=site, message=exc.message,
                           status=exc.status, undo=undo, active="dashboard")


def _settings_link(user: dict[str, Any]) -> str:
    """Where the site's collect settings are, for a signed-in user who may change them,
    once the settings page exists ("" otherwise: a viewer of a public dashboard or a
    read-only user has no way to turn collecting on)."""
    if user.get("id") is None or not users.has_access(user, SITE_SETTINGS_ACCESS):
        return ""
    url = layout.page_url(SITE_SETTINGS)
    return f"{url}#section-collect" if url else ""


def _zone_name(tz: Any) -> str:
    return getattr(tz, "key", None) or "UTC"
