"""GET /live: the site's live log, newest first, as the requests arrive; GET /live.json is
what the page's script asks for every half second (polling: see README, "The live
log", for why not a stream)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request

from goatcounter.counting import livelog
from goatcounter.dashboard.access import current_site, current_user, login_required
from goatcounter.errors import BadRequest
from goatcounter.stats import ranges
from goatcounter.storage import db

bp = Blueprint("live", __name__)

# Entries a page shows (and one reply of /live.json holds) at most.
SHOWN = 100
ENDPOINTS = {"count": "/count", "api": "API"}


def _decision() -> str | None:
    value = request.args.get("decision", "").strip()
    if not value:
        return None
    if value not in livelog.DECISIONS:
        raise BadRequest(f"unknown decision {value!r}; one of {', '.join(livelog.DECISIONS)}")
    return value


def _after() -> int:
    value = request.args.get("after", "0").strip() or "0"
    if not value.isdigit() or len(value) > 18:
        raise BadRequest("after: want the id of an entry")
    return int(value)


def shown(entry: dict[str, Any], zone: dt.tzinfo) -> dict[str, Any]:
    """An entry with what the page shows of it, formatted here: the time in the user's
    zone, the endpoint's name, and what the pipeline made of it on one line."""
    moment = dt.datetime.fromtimestamp(entry["at"], dt.UTC).astimezone(zone)
    details = [entry[k] for k in ("browser", "system", "size", "location") if entry[k]]
    if entry["session"]:
        details.append(f"session {entry['session']}")
    if entry["first_visit"]:
        details.append("first visit")
    if entry["ref"]:
        details.append(f"from {entry['ref']}")
    return {**livelog.as_json(entry), "at": entry["at"],
            "shown_time": moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}",
            "shown_date": moment.strftime("%Y-%m-%d"),
            "endpoint_name": ENDPOINTS.get(entry["endpoint"], entry["endpoint"]),
            "details": " · ".join(details)}


def _entries(decision: str | None, after: int) -> tuple[list[dict[str, Any]], int]:
    site = current_site()
    zone = ranges.user_zone(current_user())
    conn = db.get_db()
    found = livelog.recent(conn, site["id"], SHOWN, decision, after_id=after)
    return [shown(e, zone) for e in found], livelog.newest_id(conn, site["id"])


@bp.route("/live", methods=["GET"])
@login_required
def page() -> str:
    """GET /live[?decision=bot]: the newest entries of the site's live log, newest first;
    the page's script adds new ones as they come."""
    decision = _decision()
    entries, newest = _entries(decision, 0)
    return render_template("live.html", active="live", entries=entries, newest=newest,
                           decision=decision or "", decisions=livelog.DECISIONS,
                           keep=livelog.KEEP, shown_most=SHOWN)


@bp.route("/live.json", methods=["GET"])
@login_required
def entries_json() -> Response:
    """GET /live.json?after=ID[&decision=bot]: entries with an id above `after` (the newest
    SHOWN of them), newest first, and the id of the site's newest entry."""
    entries, newest = _entries(_decision(), _after())
    response = jsonify({"entries": entries, "newest": newest})
    response.headers["Cache-Control"] = "no-store"
    return response
