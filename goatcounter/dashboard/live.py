"""GET /live: the site's live log, newest first, as the requests arrive; GET /live.json is
what the page's script asks for every half second (polling: see README, "The live
log", for why not a stream).

A poll is cheap when nothing is new (one indexed query). When entries come faster than
anyone reads them, every open page would format the same newest entries twice a second:
a reply is kept for REUSE seconds per process and given to every page of the site that
asks meanwhile."""
from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request

from goatcounter.counting import livelog
from goatcounter.dashboard.access import current_site, current_user, login_required
from goatcounter.errors import BadRequest
from goatcounter.stats import ranges
from goatcounter.storage import db

bp = Blueprint("live", __name__)

# Entries a page shows at most, and what one reply of /live.json holds at most.
SHOWN = 100
POLLED = 50
REUSE = 0.25
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


def _entries(decision: str | None, limit: int) -> list[dict[str, Any]]:
    zone = ranges.user_zone(current_user())
    found = livelog.recent(db.get_db(), current_site()["id"], limit, decision)
    # An entry never changes: formatted once per zone and process, while pages poll.
    done = current_app.extensions.setdefault("goatcounter_live_shown", {})
    if len(done) > 4 * SHOWN * 16:
        done.clear()
    out = []
    for entry in found:
        key = (str(zone), entry["id"])
        if key not in done:
            done[key] = shown(entry, zone)
        out.append(done[key])
    return out


@bp.route("/live", methods=["GET"])
@login_required
def page() -> str:
    """GET /live[?decision=bot]: the newest entries of the site's live log, newest first;
    the page's script adds new ones as they come."""
    decision = _decision()
    newest = livelog.newest_id(db.get_db(), current_site()["id"])
    return render_template("live.html", active="live", entries=_entries(decision, SHOWN),
                           newest=newest,
                           decision=decision or "", decisions=livelog.DECISIONS,
                           keep=livelog.KEEP, shown_most=SHOWN)


@bp.route("/live.json", methods=["GET"])
@login_required
def entries_json() -> Response:
    """GET /live.json?after=ID[&decision=bot]: the site's newest entries (up to POLLED),
    newest first, and the id of its newest entry; when that is not above `after`,
    nothing new: no entries."""
    decision, after = _decision(), _after()
    site = current_site()
    newest = livelog.newest_id(db.get_db(), site["id"])
    if newest <= after:
        body = json.dumps({"entries": [], "newest": newest})
    else:
        key = (site["id"], decision, str(ranges.user_zone(current_user())))
        kept = current_app.extensions.setdefault("goatcounter_live_replies", {})
        found = kept.get(key)
        if found is None or found[0] < time.monotonic():
            if len(kept) > 256:
                kept.clear()
            # What the reply holds is as of the newest it was made with.
            found = (time.monotonic() + REUSE, json.dumps(
                {"entries": _entries(decision, POLLED), "newest": newest}, ensure_ascii=False))
            kept[key] = found
        body = found[1]
    return Response(body, mimetype="application/json", headers={"Cache-Control": "no-store"})
