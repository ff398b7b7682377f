"""Counting pageviews sent by a backend: POST /api/v0/count. (The browsers' /count is in
public/pixel.py.)"""
from __future__ import annotations

import sqlite3
from typing import Any

from flask import Blueprint, Response, current_app, request

from goatcounter import clock, decoding
from goatcounter.accounts import sites, tokens
from goatcounter.counting import idempotency, sessions, store
from goatcounter.counting.pipeline import sizes
from goatcounter.counting.pipeline.process import Incoming, process
from goatcounter.errors import BadRequest
from goatcounter.responses import compact_response, json_response
from goatcounter.storage import db

bp = Blueprint("count", __name__)

MAX_HITS = 500
NO_SESSION = ("session or browser/IP not set; use no_sessions if you don't want to track "
              "unique visits")


def _size(value: Any, field: str) -> int:
    try:
        return sizes.width(value)
    except sizes.SizeError as exc:
        raise BadRequest(f"invalid JSON: {field}: {exc}") from exc


_HIT_FIELDS = {
    "path": decoding.j_str, "title": decoding.j_str, "event": decoding.j_loose_bool,
    "ref": decoding.j_str, "size": _size, "query": decoding.j_str, "bot": decoding.j_int,
    "user_agent": decoding.j_str, "location": decoding.j_str, "language": decoding.j_str,
    "ip": decoding.j_str, "created_at": decoding.j_time_seconds, "session": decoding.j_str,
}


def _hits(value: Any, field: str) -> list[Incoming]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise decoding.json_error(field, value, "array of hits")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise decoding.json_error(f"{field}[{i}]", item, "hit object")
        fields = decoding.match_keys(item, _HIT_FIELDS, f"{field}[{i}].")
        if "size" in fields:
            fields["width"] = fields.pop("size")
        out.append(Incoming(**fields))
    return out


def _filter(value: Any, field: str) -> list[str] | None:
    return None if value is None else decoding.j_str_list(value, field)


_COUNT_FIELDS = {"no_sessions": decoding.j_bool, "filter": _filter, "hits": _hits}


def _session_key(hit: Incoming, no_sessions: bool) -> str | None:
    """What groups this hit into a visit, as upstream: the client's session id, else its
    user agent and IP. Without either, only `no_sessions` lets the hit through: such
    hits share one key per site."""
    if hit.session:
        return _hashed("s:" + hit.session)
    if (hit.user_agent and hit.ip) or no_sessions:
        return _hashed(f"u:{hit.user_agent}-{hit.ip}")
    return None


def _hashed(key: str) -> str:
    return sessions.client_key(current_app.config["SECRET_KEY"], key)


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
    who = tokens.authenticate(tokens.PERM_COUNT)
    site = who.site
    key = idempotency.key_of(request.headers.get(idempotency.HEADER))
    if key is not None:
        replay = idempotency.saved(db.get_db(), site["id"], key)
        if replay is not None:
            return replay
    args = decoding.decode_body(_COUNT_FIELDS)
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
    ignore = sites.ignored_ips(settings)
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
