"""The live log: an entry for every request to /count and every hit of a POST
/api/v0/count batch, with what was decided about it and why, for `goatcounter tail` and
the /live page.

Entries live in the database (the `live_log` table), so every worker and every host of
one database writes to and reads the same log; the newest KEEP of each site are kept.
Nothing is written to the database in the request itself:

- A pageview that is kept (counted, a bot, a path never counted) gets its entry in the
  transaction that counts it, from the spool line or the API batch: by then the session
  and first visit are known.
- What is refused before that (invalid, ignored, rate limited, a replayed batch) is
  noted in this process's memory and written by the worker's counting step right after
  the reply (counting/pending.py), in one transaction for all that waited. A worker
  killed in between loses those few entries, never a pageview.

Readers follow the log by id (`Follower`), and show entries in the order the requests
arrived (`at`).
"""
from __future__ import annotations

import collections
import datetime as dt
import functools
import os
import socket
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

from flask import Flask, current_app

from goatcounter import clock, collect
from goatcounter.counting.pipeline import bots, sizes
from goatcounter.counting.pipeline.process import Hit
from goatcounter.storage import db

DECISIONS = ("counted", "bot", "ignored", "invalid", "ratelimited", "duplicate")
ENDPOINTS = ("count", "api")
# Entries kept per site. Trimming walks the site's KEEP newest entries, so it is done
# once a process has added TRIM_EVERY to a site, not in every transaction: a site holds
# up to TRIM_EVERY more per worker for a while; readers never give out more than KEEP.
KEEP = 1000
TRIM_EVERY = 500
# Characters kept of a path, title, referrer or reason: enough to recognise one, and the
# log stays small even when a client sends kilobytes.
TEXT = 300
# Entries a process keeps waiting for its counting step at most (the oldest go first),
# should the database be unreachable for a while.
WAITING = 10_000

COLUMNS = ("site_id", "at", "endpoint", "path", "title", "event", "ref", "decision",
           "reason", "browser", "system", "size", "location", "session", "first_visit",
           "worker")
_INSERT = (f"INSERT INTO live_log ({', '.join(COLUMNS)})"
           f" VALUES ({', '.join('?' for _ in COLUMNS)})")
_SELECT = f"SELECT id, {', '.join(COLUMNS)} FROM live_log"
_TRIM = ("DELETE FROM live_log WHERE site_id = :s AND id <= (SELECT id FROM live_log"
         " WHERE site_id = :s ORDER BY id DESC LIMIT 1 OFFSET :keep)")

Row = tuple[Any, ...]


@functools.lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname()


def worker_name(pid: int | None = None) -> str:
    """How an entry names the process that took the request: host:pid."""
    return f"{_host()}:{pid if pid is not None else os.getpid()}"


def _cut(text: str) -> str:
    return text if len(text) <= TEXT else text[:TEXT - 1] + "…"


def _clean(text: str) -> str:
    """A text as a client sent it, before validation: cut, and storable as UTF-8."""
    return _cut(text.encode("utf-8", "replace").decode("utf-8")) if text else ""


@functools.lru_cache(maxsize=4096)
def size_class(width: int) -> str:
    """The size class of a screen width, as stats/sizes groups them."""
    for name, low, high in sizes.CLASSES:
        if low <= width <= high:
            return name
    return "unknown"


_NOT_COLLECTED = ((collect.COLLECT_REFERRER, "referrer"),
                  (collect.COLLECT_USER_AGENT, "browser and system"),
                  (collect.COLLECT_SCREEN_SIZE, "size"),
                  (collect.COLLECT_LOCATION, "location"),
                  (collect.COLLECT_SESSION, "sessions"))


@functools.lru_cache(maxsize=64)
def _collect_note(flags: int) -> str:
    left = [name for bit, name in _NOT_COLLECTED if not flags & bit]
    return f"not collected (site's collect setting): {', '.join(left)}" if left else ""


def judge(hit: Hit, endpoint: str, flags: int) -> tuple[str, str]:
    """The decision and reason for a hit that was stored (or dropped) by counting."""
    if hit.bot:
        return "bot", bots.explain(hit.bot, hit.user_agent, "b" if endpoint == "count" else "bot")
    if hit.dropped:
        return "ignored", f"referrer spam ({_cut(hit.ref) or 'in the query'})"
    if hit.ignored:
        return "ignored", f"the path {hit.path} is never counted"
    return "counted", _collect_note(flags)


def hit_row(site_id: int, hit: Hit, endpoint: str, decision: str, reason: str,
            worker: str, at: float | None = None) -> Row:
    """An entry for a hit that went through the pipeline (its texts are valid UTF-8)."""
    counted = decision == "counted"
    browser, system = hit.browser, hit.system
    return (site_id, at if at is not None else (hit.received or float(hit.created_at)),
            endpoint, _cut(hit.path), _cut(hit.title), int(hit.event), _cut(hit.ref), decision,
            reason, f"{browser[0]} {browser[1]}".strip() if browser else "",
            f"{system[0]} {system[1]}".strip() if system else "",
            size_class(hit.width) if hit.width else "", hit.location,
            hit.session.hex()[:8] if counted and hit.session else "",
            int(hit.first_visit) if counted else None, worker)


def raw_row(site_id: int, at: float, endpoint: str, decision: str, reason: str, *,
            path: str = "", title: str = "", event: bool = False, ref: str = "",
            worker: str | None = None) -> Row:
    """An entry for a request refused before the pipeline made anything of it."""
    return (site_id, at, endpoint, _clean(path), _clean(title), int(event), _clean(ref),
            decision, _clean(reason), "", "", "", "", "", None, worker or worker_name())


def counted_rows(site: dict[str, Any], hits: Iterable[Hit], endpoint: str,
                 worker: str) -> list[Row]:
    """Entries for hits that `store.save_in` has just stored."""
    flags = int(site["settings"]["collect"])
    return [hit_row(site["id"], h, endpoint, *judge(h, endpoint, flags), worker) for h in hits]


# Entries this process added to each site since it last trimmed it.
_added: collections.Counter[int] = collections.Counter()


def write(conn: sqlite3.Connection, rows: list[Row]) -> None:
    """Add entries (inside a write transaction), and trim sites to KEEP now and then."""
    if not rows:
        return
    conn.executemany(_INSERT, rows)
    for site_id, count in collections.Counter(row[0] for row in rows).items():
        _added[site_id] += count
        if _added[site_id] >= TRIM_EVERY:
            conn.execute(_TRIM, {"s": site_id, "keep": KEEP})
            # Should this transaction roll back, the next one trims: no harm done.
            _added[site_id] = 0


class Log:
    """The live log of one app in this process: whether it is on, and the entries noted
    here that wait to be written."""

    def __init__(self, on: bool) -> None:
        self.on = on
        self._waiting: collections.deque[Row] = collections.deque(maxlen=WAITING)
        self._lock = threading.Lock()

    def note(self, row: Row) -> None:
        """Keep an entry for this process's next flush (a deque append is atomic)."""
        if self.on:
            self._waiting.append(row)

    def waiting(self) -> bool:
        return bool(self._waiting)

    def take(self) -> list[Row]:
        """Every entry noted so far, to be written by the caller (or given back)."""
        rows = []
        while self._waiting:
            rows.append(self._waiting.popleft())
        return rows

    def give_back(self, rows: list[Row]) -> None:
        """Entries taken but not written: in front of what was noted meanwhile."""
        self._waiting.extendleft(reversed(rows))

    def flush(self, conn: sqlite3.Connection, wait: bool = True) -> int:
        """Write every entry noted so far, in one transaction (`wait` as for db.write:
        without it, nothing is written while another writer is busy)."""
        if not self._waiting:
            return 0
        with self._lock:
            rows = self.take()
            try:
                db.write(lambda c: write(c, rows), conn, wait)
            except BaseException:
                self.give_back(rows)
                raise
        return len(rows)


def of(app: Flask | None = None) -> Log:
    """The live log of an app (the current one by default)."""
    return (app or current_app).extensions["goatcounter_livelog"]


def on(app: Flask | None = None) -> bool:
    return of(app).on


# Reading ------------------------------------------------------------------------------

def _entry(row: sqlite3.Row | Row) -> dict[str, Any]:
    values = dict(zip(("id", *COLUMNS), tuple(row), strict=True))
    at = float(values.pop("at"))
    first = values.pop("first_visit")
    return {"id": values.pop("id"), "time": time_text(at), "at": at,
            "site": values.pop("site_id"), **values, "event": bool(values["event"]),
            "first_visit": None if first is None else bool(first)}


def time_text(at: float) -> str:
    """RFC 3339 in UTC with milliseconds: 2026-12-01T10:00:00.123Z."""
    moment = dt.datetime.fromtimestamp(at, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _in_order(entries: list[dict[str, Any]], newest_first: bool) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: (e["at"], e["id"]), reverse=newest_first)


def recent(conn: sqlite3.Connection, site_id: int, limit: int = 100,
           decision: str | None = None, after_id: int = 0) -> list[dict[str, Any]]:
    """A site's newest entries (of one decision, or all; with an id above `after_id`),
    newest first; never more than KEEP."""
    limit = min(limit, KEEP)
    where = "site_id = :s AND id > :after" + (" AND decision = :d" if decision else "")
    rows = conn.execute(f"{_SELECT} WHERE {where} ORDER BY id DESC LIMIT :n",
                        {"s": site_id, "d": decision, "n": limit,
                         "after": after_id}).fetchall()
    return _in_order([_entry(r) for r in rows], newest_first=True)


def after(conn: sqlite3.Connection, after_id: int, site_id: int | None = None,
          limit: int = 1000, decision: str | None = None) -> list[dict[str, Any]]:
    """Entries with an id above `after_id` (of one site, or all), by id."""
    where = "id > :after" + (" AND site_id = :s" if site_id is not None else "") + (
        " AND decision = :d" if decision else "")
    rows = conn.execute(f"{_SELECT} WHERE {where} ORDER BY id LIMIT :n",
                        {"after": after_id, "s": site_id, "d": decision, "n": limit}).fetchall()
    return [_entry(r) for r in rows]


def newest_id(conn: sqlite3.Connection, site_id: int | None = None) -> int:
    """The id of the newest entry (of one site, or all); 0 when there is none."""
    if site_id is None:
        row = conn.execute("SELECT max(id) FROM live_log").fetchone()
    else:
        row = conn.execute("SELECT max(id) FROM live_log WHERE site_id = :s",
                           {"s": site_id}).fetchone()
    return int(row[0] or 0)


def last_seconds(conn: sqlite3.Connection, seconds: float, site_id: int | None = None,
                 ) -> list[dict[str, Any]]:
    """The entries of the last `seconds` (among the newest KEEP), oldest first."""
    if site_id is None:
        # Ids are given one after the other: the newest KEEP of all sites are a range.
        rows = conn.execute(f"{_SELECT} WHERE id > :low", {
            "low": newest_id(conn) - KEEP}).fetchall()
    else:
        rows = conn.execute(f"{_SELECT} WHERE site_id = :s ORDER BY id DESC LIMIT :n",
                            {"s": site_id, "n": KEEP}).fetchall()
    since = clock.now() - seconds
    return _in_order([e for e in map(_entry, rows) if e["at"] >= since], newest_first=False)


class Follower:
    """Follows the log for `goatcounter tail`: every new entry once, in arrival order.

    Ids follow commit order on both engines (SQLite has one writer; on PostgreSQL every
    writer takes the advisory write lock before its first statement), so an entry never
    commits below an id already read: reading on from the highest id seen misses none.
    But workers write their entries after the requests (a counted pageview's when its
    worker counts, up to pending.DRAIN_EVERY later), so an entry may commit after a
    later one from another worker: entries are held back for HOLD seconds and given out
    sorted by arrival.
    """

    # How late counted pageviews' entries may be written (pending.DRAIN_EVERY, 0.5 s,
    # or LEAD_TIMER, 0.55 s) and the time to count a batch: with 0.4, a loaded
    # machine's tail showed a group of pageviews before the one sent just before it.
    # With the tail's POLL, entries still show within a second.
    HOLD = 0.8

    def __init__(self, site_id: int | None = None, start_id: int = 0) -> None:
        self.site_id = site_id
        self.floor = start_id
        self._held: list[dict[str, Any]] = []

    def poll(self, conn: sqlite3.Connection, wall: float) -> list[dict[str, Any]]:
        """Entries to show now; `wall` is the time of day."""
        found = after(conn, self.floor, self.site_id, limit=5000)
        if found:
            self.floor = found[-1]["id"]
            self._held += found
        due = [e for e in self._held if e["at"] <= wall - self.HOLD]
        self._held = [e for e in self._held if e["at"] > wall - self.HOLD]
        return _in_order(due, newest_first=False)


# Showing ------------------------------------------------------------------------------

def line(entry: dict[str, Any]) -> str:
    """One readable line for an entry, as `goatcounter tail` prints it."""
    shown = entry["time"][11:23]
    what = entry["path"] or "(no path)"
    if entry["event"]:
        what = f"event {what}"
    parts = [shown, f"site {entry['site']}", f"{entry['endpoint']:5}",
             f"{entry['decision']:11}", what]
    if entry["title"]:
        parts.append(f'"{entry["title"]}"')
    if entry["ref"]:
        parts.append(f"from {entry['ref']}")
    details = [entry[k] for k in ("browser", "system", "size", "location") if entry[k]]
    if entry["session"]:
        details.append(f"session {entry['session']}")
    if entry["first_visit"]:
        details.append("first visit")
    if details:
        parts.append("[" + ", ".join(details) + "]")
    if entry["reason"]:
        parts.append("— " + entry["reason"])
    return "  ".join(parts)


def as_json(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as tail --json and /live.json give it."""
    return {k: v for k, v in entry.items() if k != "at"}


def init_app(app: Flask) -> None:
    app.extensions["goatcounter_livelog"] = Log(bool(app.config["LIVE_LOG"]))
