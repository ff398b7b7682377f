"""Counting pageviews: POST /api/v0/count for backends, and the public /count endpoint
that count.js (or an <img>) calls from the visitor's browser."""
from __future__ import annotations

import sqlite3
from typing import Any

from flask import Blueprint, Response, request

from .. import auth, clock, db, idempotency, params, store
from ..errors import BadRequest
from ..pipeline import bots, languages, sizes, urls
from ..pipeline.process import Incoming, process
from ..responses import compact_response, json_response

bp = Blueprint("count", __name__)

MAX_HITS = 500
NO_SESSION = ("session or browser/IP not set; use no_sessions if you don't want to track "
              "unique visits")


def _size(value: Any, field: str) -> int:
    try:
        return sizes.width(value)
    except sizes.SizeError as exc:
        raise BadRequest(f"invalid JSON: {field}: {exc}") from exc


def _created_at(value: Any, field: str) -> float | None:
    parsed = params.j_time(value, field)
    return parsed.timestamp() if parsed is not None else None


_HIT_FIELDS = {
    "path": params.j_str, "title": params.j_str, "event": params.j_loose_bool,
    "ref": params.j_str, "size": _size, "query": params.j_str, "bot": params.j_int,
    "user_agent": params.j_str, "location": params.j_str, "language": params.j_str,
    "ip": params.j_str, "created_at": _created_at, "session": params.j_str,
}


def _hits(value: Any, field: str) -> list[Incoming]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise params.json_error(field, value, "array of hits")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise params.json_error(f"{field}[{i}]", item, "hit object")
        fields = params.match_keys(item, _HIT_FIELDS, f"{field}[{i}].")
        if "size" in fields:
            fields["width"] = fields.pop("size")
        out.append(Incoming(**fields))
    return out


def _filter(value: Any, field: str) -> list[str] | None:
    return None if value is None else params.j_str_list(value, field)


_COUNT_FIELDS = {"no_sessions": params.j_bool, "filter": _filter, "hits": _hits}


def _session_key(hit: Incoming, no_sessions: bool) -> str | None:
    """What groups this hit into a visit, as upstream: the client's session id, else its
    user agent and IP. Without either, only `no_sessions` lets the hit through: such
    hits share one key per site."""
    if hit.session:
        return "s:" + hit.session
    if (hit.user_agent and hit.ip) or no_sessions:
        return f"u:{hit.user_agent}-{hit.ip}"
    return None


@bp.route("/api/v0/count", methods=["POST"])
def api_count() -> Response:
    """POST /api/v0/count: record pageviews and events sent by a backend.

    Body: `{"no_sessions": bool, "filter": ["ip"], "hits": [Hit, ...]}` with 1 to 500
    hits. Reply 202 `{"status":"ok"}` once every valid hit is stored; 400 with
    `{"errors": {"<index>": "<message>"}}` for hits that could not be stored (the others
    are stored all the same). Hits from the site's ignored IPs are skipped and listed in
    `X-Goatcounter-Filter`. An `Idempotency-Key` header makes a retry safe: a repeated key
    gets the first reply again and records nothing.
    """
    who = auth.authenticate(auth.PERM_COUNT)
    site = who.site
    key = idempotency.key_of(request.headers.get(idempotency.HEADER))
    if key is not None:
        replay = idempotency.saved(db.get_db(), site["id"], key)
        if replay is not None:
            return replay
    args = params.decode_body(_COUNT_FIELDS)
    incoming: list[Incoming] = args.get("hits") or []
    if not incoming:
        return json_response({"error": "no hits"}, 400)
    if len(incoming) > MAX_HITS:
        return json_response(
            {"error": f"maximum amount of pageviews in one batch is {MAX_HITS}"}, 400)
    filters = args.get("filter")
    filters = ["ip"] if filters is None else list(filters)
    filter_ip = "ip" in filters
    unknown = [f for f in filters if f != "ip"]
    if unknown:
        # Upstream answers this with a 200; an error never comes with a 2xx here.
        return json_response({"error": f"unknown value in Filter: [{' '.join(unknown)}]"}, 400)

    settings = site["settings"]
    ignore = {ip.strip() for ip in str(settings.get("ignore_ips", "")).split(",") if ip.strip()}
    now = clock.now()
    errors: dict[str, str] = {}
    filtered: list[int] = []
    ready = []
    for i, hit in enumerate(incoming):
        if filter_ip and hit.ip and hit.ip in ignore:
            filtered.append(i)
            continue
        session = _session_key(hit, bool(args.get("no_sessions")))
        if session is None:
            errors[str(i)] = NO_SESSION
            continue
        result = process(hit, settings, now, session)
        if isinstance(result, str):
            errors[str(i)] = result
        else:
            ready.append(result)

    if errors:
        response = json_response({"errors": errors}, 400)
    else:
        response = compact_response('{"status":"ok"}', 202)
    if filtered:
        response.headers["X-Goatcounter-Filter"] = ", ".join(str(i) for i in filtered)

    guard = extra = None
    if key is not None:
        def guard(conn: sqlite3.Connection) -> Response | None:
            return idempotency.saved(conn, site["id"], key)

        def extra(conn: sqlite3.Connection) -> None:
            idempotency.save(conn, site["id"], key, response)
    result = store.save(site, ready, guard=guard, extra=extra)
    return result if isinstance(result, Response) else response


# The public counter ------------------------------------------------------------------

GIF = bytes.fromhex("47494638396101000100800100000000ffffff21f90401"
                    "0a0001002c00000000010001000002024c01003b")
_GIF_HEADERS = {
    "Content-Type": "image/gif",
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Connection": "close",
    "Cache-Control": "no-store,no-cache",
    "Strict-Transport-Security": "max-age=7776000",
    "X-Frame-Options": "deny",
    "X-Content-Type-Options": "nosniff",
}


def gif(status: int = 200, explain: str | None = None) -> Response:
    """The 1x1 GIF every /count reply carries, with an explanation header if any."""
    response = Response(GIF, status=status, headers=_GIF_HEADERS)
    if explain:
        response.headers["X-Goatcounter"] = explain
    return response


class _Decode(ValueError):
    pass


def _bool(value: str, name: str) -> bool:
    low = value.strip().lower()
    if low in ("true", "1", "on", "t", "yes"):
        return True
    if low in ("false", "0", "off", "f", "no", ""):
        return False
    raise _Decode(f"{name}: invalid boolean {value!r}")


def _int(value: str, name: str) -> int:
    try:
        return int(value.strip() or "0")
    except ValueError as exc:
        raise _Decode(f"{name}: not a number: {value!r}") from exc


def _count_args() -> dict[str, str]:
    raw = request.query_string.decode("utf-8", "surrogateescape")
    # The first value of each name wins, as Go's Get does.
    out: dict[str, str] = {}
    for k, v in urls.parse_query(raw, errors="surrogateescape"):
        out.setdefault(k, v)
    return out


@bp.route("/count", methods=["GET", "POST"])
def count() -> Response:
    """GET|POST /count: the pixel that count.js requests for each pageview or event.

    Parameters come from the query string (a POST body is ignored): p path, t title,
    r referrer, e event, s screen width, q the page's query string, b bot hint, ns no
    session, rnd cache buster. Every reply is the same 1x1 GIF; why a hit was not
    counted is told in the X-Goatcounter header.
    """
    if bots.is_prefetch(request.headers):
        return gif()
    site = auth.current_site()
    ip = request.remote_addr or ""
    settings = site["settings"]
    ignore = {x.strip() for x in str(settings.get("ignore_ips", "")).split(",") if x.strip()}
    if ip in ignore:
        return gif(202, f'ignored because "{ip}" is in the IP ignore list')
    args = _count_args()
    try:
        event = _bool(args.get("e", ""), "e")
        no_session = _bool(args.get("ns", ""), "ns")
        bot = _int(args.get("b", ""), "b")
        width = sizes.width(args.get("s", ""))
    except (_Decode, sizes.SizeError) as exc:
        return gif(400, f"error decoding parameters: {exc}")
    if 0 < bot < 150:
        return gif(400, f"wrong value: b={bot}")
    path = args.get("p", "")
    if len(path.encode("utf-8", "surrogateescape")) > 2048:
        uri = len(request.full_path.encode("utf-8", "surrogateescape"))
        return gif(400, f"ignored because path is longer than 2048 bytes ({uri} bytes)")
    ua = request.headers.get("User-Agent", "")
    found = bots.from_request(ua)
    if found:
        bot = found

    hit = Incoming(path=path, title=args.get("t", ""), event=event, ref=args.get("r", ""),
                   query=args.get("q", ""), width=width, bot=bot, user_agent=ua, ip=ip,
                   language=languages.from_accept_language(
                       request.headers.get("Accept-Language", "")))
    result = process(hit, settings, clock.now(), None if no_session else f"u:{ua}-{ip}")
    if isinstance(result, str):
        return gif(400, "not valid: " + result.replace("\n", " ").strip())
    store.save(site, [result])
    return gif()

