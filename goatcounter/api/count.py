"""Counting pageviews sent by a backend: POST /api/v0/count. (The browsers' /count is in
public/pixel.py.)"""
from __future__ import annotations

import sqlite3
from typing import Any

from flask import Blueprint, Response, current_app, request

from goatcounter import clock, decoding
from goatcounter.accounts import sites, tokens
from goatcounter.counting import idempotency, livelog, sessions, store
from goatcounter.counting.pipeline import sizes
from goatcounter.counting.pipeline.process import Hit, Incoming, process
from goatcounter.errors import APIError, BadRequest
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
    gets the first reply again and records nothing. Every hit gets a live log entry.
    """
    who = tokens.authenticate(tokens.PERM_COUNT)
    site = who.site
    key = idempotency.key_of(request.headers.get(idempotency.HEADER))
    if key is not None:
        replay = idempotency.saved(db.get_db(), site["id"], key)
        if replay is not None:
            _note_replay(site, key)
            return replay
    try:
        args = decoding.decode_body(_COUNT_FIELDS)
    except APIError as exc:
        _note(site, "invalid", exc.message, [])
        raise
    incoming: list[Incoming] = args.get("hits") or []
    refused = _refused_batch(args, incoming)
    if refused is not None:
        _note(site, "invalid", refused, incoming)
        return json_response({"error": refused}, 400)
    filters = args.get("filter")
    filter_ip = "ip" in (["ip"] if filters is None else filters)

    settings = site["settings"]
    ignore = sites.ignored_ips(settings)
    now = clock.now()
    errors: dict[str, str] = {}
    filtered: list[int] = []
    ready = []
    # Per hit, in the batch's order: the stored hit, or the live log's decision and reason.
    outcomes: list[Hit | tuple[str, str]] = []
    for i, hit in enumerate(incoming):
        if filter_ip and hit.ip and hit.ip in ignore:
            filtered.append(i)
            outcomes.append(("ignored", f'ignored because "{hit.ip}" is in the IP ignore list'))
            continue
        session = _session_key(hit, bool(args.get("no_sessions")))
        if session is None:
            errors[str(i)] = NO_SESSION
            outcomes.append(("invalid", NO_SESSION))
            continue
        result = process(hit, settings, now, session)
        if isinstance(result, str):
            errors[str(i)] = result
            outcomes.append(("invalid", result.replace("\n", " ").strip()))
        else:
            ready.append(result)
            outcomes.append(result)

    if errors:
        response = json_response({"errors": errors}, 400)
    else:
        response = compact_response('{"status":"ok"}', 202)
    if filtered:
        response.headers["X-Goatcounter-Filter"] = ", ".join(str(i) for i in filtered)

    live = livelog.on()
    guard = None
    if key is not None:
        def guard(conn: sqlite3.Connection) -> Response | None:
            return idempotency.saved(conn, site["id"], key)

    def extra(conn: sqlite3.Connection) -> None:
        if key is not None:
            idempotency.save(conn, site["id"], key, response)
        if live:
            livelog.write(conn, _entries(site, incoming, outcomes, now))
    result = store.save(site, ready, guard=guard, extra=extra)
    if isinstance(result, Response):
        # The same key was stored meanwhile by a request that got there first.
        assert key is not None
        _note_replay(site, key, incoming)
        return result
    return response


def _refused_batch(args: dict[str, Any], incoming: list[Incoming]) -> str | None:
    """Why the whole batch is refused, if it is."""
    if not incoming:
        return "no hits"
    if len(incoming) > MAX_HITS:
        return f"maximum amount of pageviews in one batch is {MAX_HITS}"
    filters = args.get("filter")
    unknown = [f for f in (filters or []) if f != "ip"]
    if unknown:
        # Upstream answers this with a 200; an error never comes with a 2xx here.
        return f"unknown value in Filter: [{' '.join(unknown)}]"
    return None


def _entries(site: dict[str, Any], incoming: list[Incoming],
             outcomes: list[Hit | tuple[str, str]], now: float) -> list[livelog.Row]:
    """The live log's entries of a stored batch, one per hit in the batch's order."""
    worker = livelog.worker_name()
    flags = int(site["settings"]["collect"])
    rows = []
    for raw, outcome in zip(incoming, outcomes, strict=True):
        if isinstance(outcome, Hit):
            rows.append(livelog.hit_row(site["id"], outcome, "api",
                                        *livelog.judge(outcome, "api", flags), worker, at=now))
        else:
            rows.append(_raw(site, raw, *outcome, now))
    return rows


def _raw(site: dict[str, Any], hit: Incoming | None, decision: str, reason: str,
         now: float) -> livelog.Row:
    if hit is None:
        return livelog.raw_row(site["id"], now, "api", decision, reason)
    return livelog.raw_row(site["id"], now, "api", decision, reason, path=hit.path,
                           title=hit.title, event=hit.event, ref=hit.ref)


def _note(site: dict[str, Any], decision: str, reason: str,
          incoming: list[Incoming]) -> None:
    """Entries for a batch that was not stored: one per hit, or one for the request when
    its hits could not be read."""
    log = livelog.of()
    if not log.on:
        return
    now = clock.now()
    hits: list[Incoming | None] = [*incoming[:MAX_HITS]] or [None]
    for hit in hits:
        log.note(_raw(site, hit, decision, reason, now))


def _note_replay(site: dict[str, Any], key: str, incoming: list[Incoming] | None = None) -> None:
    if not livelog.on():
        return
    if incoming is None:
        try:
            incoming = decoding.decode_body(_COUNT_FIELDS).get("hits") or []
        except APIError:
            incoming = []
    _note(site, "duplicate", f"Idempotency-Key {key!r} was accepted before: its first reply "
                             "is sent again and nothing is counted", incoming)
