"""Storing hits: ids for paths, referrers, browsers, systems and campaigns; sessions and
first visits; the hit rows; the bot log; and the aggregates, all in one transaction.

Ids are cached per process (they never change once given). New ones are only cached
after the transaction commits, so a rolled-back insert never leaves a wrong id behind.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from flask import current_app

from . import aggregates, clock, db, defaults, sessions
from .pipeline.process import Hit

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_CACHE_LIMIT = 200_000


def fold(text: str) -> str:
    """ASCII-only lower case: the folding of SQLite's NOCASE, which paths use."""
    return text.translate(_ASCII_LOWER)


class Ids:
    """Per-process caches of ids, with the ids made by the running transaction kept apart
    until it commits."""

    def __init__(self) -> None:
        self.cache: dict[tuple, int] = {}
        self.pending: dict[tuple, int] = {}
        self.salts = sessions.Salts()

    def begin(self) -> None:
        self.pending = {}

    def commit(self) -> None:
        if len(self.cache) + len(self.pending) > _CACHE_LIMIT:
            self.cache.clear()
        self.cache.update(self.pending)
        self.pending = {}

    def get(self, key: tuple, make: Callable[[], int]) -> int:
        found = self.cache.get(key)
        if found is None:
            found = self.pending.get(key)
        if found is None:
            found = make()
            self.pending[key] = found
        return found


def ids() -> Ids:
    """The id caches of the current app (one database)."""
    return current_app.extensions.setdefault("goatcounter_ids", Ids())


def _get_or_insert(conn: sqlite3.Connection, insert: str, select: str,
                   args: dict[str, Any]) -> int:
    row = conn.execute(insert + " ON CONFLICT DO NOTHING RETURNING id", args).fetchone()
    if row is None:
        row = conn.execute(select, args).fetchone()
    return int(row[0])


def _path_id(conn: sqlite3.Connection, cache: Ids, site_id: int, h: Hit) -> int:
    return cache.get(("path", site_id, fold(h.path)), lambda: _get_or_insert(
        conn, "INSERT INTO paths (site_id, path, title, event) VALUES (:s, :p, :t, :e)",
        "SELECT id FROM paths WHERE site_id = :s AND path = :p",
        {"s": site_id, "p": h.path, "t": h.title, "e": int(h.event)}))


def _ref_id(conn: sqlite3.Connection, cache: Ids, h: Hit) -> int:
    if not h.ref and h.ref_scheme == "o":
        return 1
    return cache.get(("ref", h.ref, h.ref_scheme), lambda: _get_or_insert(
        conn, "INSERT INTO refs (ref, ref_scheme) VALUES (:r, :s)",
        "SELECT id FROM refs WHERE ref = :r AND ref_scheme = :s",
        {"r": h.ref, "s": h.ref_scheme}))


def _named_id(conn: sqlite3.Connection, cache: Ids, table: str,
              value: tuple[str, str]) -> int:
    # `table` is browsers or systems: a fixed name, never request text.
    return cache.get((table, *value), lambda: _get_or_insert(
        conn, f"INSERT INTO {table} (name, version) VALUES (:n, :v)",
        f"SELECT id FROM {table} WHERE name = :n AND version = :v",
        {"n": value[0], "v": value[1]}))


def _campaign_id(conn: sqlite3.Connection, cache: Ids, site_id: int, name: str) -> int:
    return cache.get(("campaign", site_id, fold(name)), lambda: _get_or_insert(
        conn, "INSERT INTO campaigns (site_id, name) VALUES (:s, :n)",
        "SELECT id FROM campaigns WHERE site_id = :s AND name = :n",
        {"s": site_id, "n": name}))


def _first_visits(conn: sqlite3.Connection, cache: Ids, site_id: int, hits: list[Hit],
                  now: int) -> None:
    with_session = [h for h in hits if h.session_key is not None]
    if not with_session:
        return
    seconds = int(current_app.config["SESSION_HOURS"]) * 3600
    found = sessions.resolve(conn, cache.salts, site_id,
                             (h.session_key for h in with_session if h.session_key is not None),
                             now, seconds)
    for h in with_session:
        h.session = found[h.session_key]  # type: ignore[index]
    flags = sessions.first_visits(conn, [(h.session, h.path_id) for h in with_session])
    for h, first in zip(with_session, flags, strict=True):
        h.first_visit = first


_INSERT_HIT = (
    "INSERT INTO hits (site_id, path_id, ref_id, browser_id, system_id, campaign_id, session,"
    " first_visit, width, location, language, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _save(conn: sqlite3.Connection, cache: Ids, site: dict[str, Any], hits: list[Hit],
          now: int, preset_sessions: bool) -> int:
    site_id = site["id"]
    bots = [h for h in hits if h.bot]
    kept = [h for h in hits if not h.bot and not h.dropped]
    for h in kept:
        h.path_id = _path_id(conn, cache, site_id, h)
    counted = [h for h in kept if not h.ignored]
    for h in counted:
        h.ref_id = _ref_id(conn, cache, h)
        h.browser_id = _named_id(conn, cache, "browsers", h.browser) if h.browser else None
        h.system_id = _named_id(conn, cache, "systems", h.system) if h.system else None
        h.campaign_id = _campaign_id(conn, cache, site_id, h.campaign) if h.campaign else None
    if not preset_sessions:
        for h in counted:
            h.session, h.first_visit = None, True
        _first_visits(conn, cache, site_id, counted, now)

    if site["settings"]["collect"] & defaults.COLLECT_HITS:
        conn.executemany(_INSERT_HIT, [
            (site_id, h.path_id, h.ref_id, h.browser_id, h.system_id, h.campaign_id, h.session,
             int(h.first_visit), h.width, h.location, h.language, h.created_at)
            for h in counted])
    aggregates.add(conn, site_id, counted)
    if bots:
        conn.executemany(
            "INSERT INTO bots (site_id, path, bot, user_agent, created_at) VALUES (?, ?, ?, ?, ?)",
            [(site_id, h.path, h.bot, h.user_agent, h.created_at) for h in bots])
    if counted:
        _mark_received(conn, site, min(h.created_at for h in counted))
    return len(counted)


def _mark_received(conn: sqlite3.Connection, site: dict[str, Any], earliest: int) -> None:
    """Note that the site has data, and move first_hit_at back for older hits (to 12 hours
    before the earliest, as upstream)."""
    if clock.parse_rfc3339(site["first_hit_at"]).timestamp() > earliest or \
            not site["received_data"]:
        # Whole-second RFC 3339 texts compare in time order.
        conn.execute(
            "UPDATE sites SET received_data = 1, first_hit_at = CASE WHEN :earliest <"
            " first_hit_at THEN :at ELSE first_hit_at END WHERE id = :id",
            {"earliest": clock.rfc3339(earliest), "at": clock.rfc3339(earliest - 12 * 3600),
             "id": site["id"]})


def save(site: dict[str, Any], hits: list[Hit],
         guard: Callable[[sqlite3.Connection], Any] | None = None,
         extra: Callable[[sqlite3.Connection], Any] | None = None,
         preset_sessions: bool = False) -> Any:
    """Store hits of one site in one transaction (retried while the database is busy).

    In the same transaction, `guard` runs first: when it returns something other than
    None, nothing is stored and that is returned. `extra` runs last. Returns the number
    of counted hits otherwise. With `preset_sessions` the hits' `session` and
    `first_visit` are kept as given (an import of hits that were counted before).
    """
    cache = ids()
    now = int(clock.now())

    def run(conn: sqlite3.Connection) -> Any:
        cache.begin()
        if guard is not None:
            found = guard(conn)
            if found is not None:
                return found
        count = _save(conn, cache, site, hits, now, preset_sessions)
        if extra is not None:
            extra(conn)
        return count

    try:
        count = db.write(run)
    except BaseException:
        cache.begin()
        raise
    cache.commit()
    return count
