"""GET /counter/{path}.{json,html,svg,png}: the visitor counter that pages show with
count.js's `goatcounter.visit_count()`, as GoatCounter's.

The path is the page's path as count.js sends it (URL-encoded, so `/counter/%2Fabout.json`
is `/about`), or `TOTAL` for the whole site. Answered from the hourly aggregates, and
cacheable for half an hour.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import Blueprint, Flask, Response, render_template, request
from markupsafe import Markup
from werkzeug.routing import PathConverter

from goatcounter import clock, formatting
from goatcounter.accounts import sites
from goatcounter.errors import APIError, BadRequest, Forbidden
from goatcounter.stats import counter
from goatcounter.storage import db

bp = Blueprint("counter", __name__, template_folder="templates")

FORMATS = {"json": "application/json", "html": "text/html; charset=utf-8",
           "svg": "image/svg+xml", "png": "image/png"}
CACHE_SECONDS = 30 * 60
NOT_ALLOWED = "Need to enable the ‘allow using the visitor counter’ setting"
MAX_STYLE = 2048
# Nothing in a counter runs a script or loads anything; any page may frame it.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors *"
_BACK = {"week": 7, "month": 30, "year": 365}
DAY = 86400


class CounterPath(PathConverter):
    """Everything after /counter, slashes included: `/counter//about.json` is the path
    `/about` (Werkzeug's own path converter would refuse the leading slash)."""

    regex = "/.*"


def _day(value: str, field: str) -> int:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f'{field}: not a date in the form YYYY-MM-DD: "{value}"') from None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def _range() -> tuple[int | None, int | None]:
    start = request.args.get("start", "").strip()
    end = request.args.get("end", "").strip()
    first = last = None
    if start in _BACK:
        now = int(clock.now())
        first = now - _BACK[start] * DAY
    elif start:
        first = _day(start, "start")
    if end:
        last = _day(end, "end") + DAY
    return first, last


def _split(rest: str) -> tuple[str, str]:
    target = rest[1:]
    name, dot, ext = target.rpartition(".")
    if not dot or ext not in FORMATS:
        raise BadRequest(f'unknown extension: "{ext if dot else ""}"')
    return name, ext


def _css(style: str, ext: str) -> str | Markup:
    """The `style` parameter for the document's <style>: in HTML nothing may close the
    element (a `<` becomes CSS's own escape); SVG is XML, where escaping keeps the text."""
    if len(style) > MAX_STYLE:
        raise BadRequest(f"style: longer than {MAX_STYLE} characters")
    return Markup(style.replace("<", "\\3c ")) if ext == "html" else style


def _reply(body: bytes | str, ext: str, status: int = 200) -> Response:
    response = Response(body, status, content_type=FORMATS[ext])
    response.cache_control.public = True
    response.cache_control.max_age = CACHE_SECONDS
    response.expires = dt.datetime.fromtimestamp(int(clock.now()) + CACHE_SECONDS, dt.UTC)
    response.headers["Content-Security-Policy"] = CSP
    if ext == "json":
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _error(exc: APIError, ext: str | None) -> Response:
    if ext == "json":
        response = Response(json.dumps({"error": exc.message}), exc.status,
                            content_type=FORMATS["json"])
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response
    return Response(exc.message + "\n", exc.status, content_type="text/plain; charset=utf-8")


def _render(ext: str, label: str, count: str, branding: bool, style: str) -> bytes | str:
    if ext == "json":
        return json.dumps({"count": count, "count_unique": count}, ensure_ascii=False)
    if ext == "png":
        from goatcounter.public import counter_images
        return counter_images.png(label, count, branding)
    return render_template(f"counter.{ext}", label=label, count=count, branding=branding,
                           height=80 if branding else 60, style=_css(style, ext))


@bp.route("/counter<counter_path:rest>", methods=["GET"], merge_slashes=False)
def visitor_counter(rest: str) -> Response:
    """GET /counter/{path}.{ext}: the visitors of a path (or `TOTAL`) as JSON, an HTML
    or SVG box, or a PNG; `start` (a date, or week/month/year back from now), `end`,
    `no_branding` and `style` as upstream."""
    ext = None
    try:
        name, ext = _split(rest)
        start, end = _range()
        conn = db.get_db()
        site = sites.by_host(conn, request.host)
        if not site["settings"].get("allow_counter"):
            raise Forbidden(NOT_ALLOWED)
        found: Any = True
        path = None
        if name != "TOTAL":
            path = found = counter.path_id(conn, site["id"], name)
        num = counter.visitors(conn, site["id"], path, start, end) if found else 0
    except APIError as exc:
        return _error(exc, ext)
    count = formatting.thousands(num, site["user_defaults"].get("number_format") or 0)
    label = "Views for this site:" if name == "TOTAL" else "Views for this page:"
    branding = "no_branding" not in request.args
    body = _render(ext, label, count, branding, request.args.get("style", ""))
    # A path never counted still gets a box (with 0), as upstream, but says so.
    return _reply(body, ext, 200 if found else 404)


def init_app(app: Flask) -> None:
    app.url_map.converters["counter_path"] = CounterPath
    app.register_blueprint(bp)
