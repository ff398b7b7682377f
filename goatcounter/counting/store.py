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

from goatcounter import clock, collect
from goatcounter.counting import aggregates, sessions
from goatcounter.counting.pipeline.process import Hit
from goatcounter.storage import db

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_CACHE_LIMIT = 200_000


def fold(text: str) -> str:
    """ASCII-only lower case: the folding of SQLite's NOCASE, which paths use."""
    return text.translate(_ASCII_LOWER)


class Ids:
    """The ids of one transaction: the process-wide cache (one per database), plus the
    ids this transaction made, which join the cache only once it has committed."""

    def __init__(self, cache: dict[tuple, int], salts: sessions.Salts,
                 known: sessions.Known) -> None:
        self.cache = cache
        self.salts = salts
        self.sessions = sessions.Lookup(known)
        self.made: dict[tuple, int] = {}

    def check_epoch(self, conn: sqlite3.Connection) -> None:
        """Empty the cache when paths were removed since it was filled (id_epoch)."""
        row = conn.execute("SELECT epoch FROM id_epoch WHERE id = 1").fetchone()
        epoch = row[0] if row else 0
        if self.cache.get(("epoch",)) != epoch:
            self.cache.clear()
            self.cache[("epoch",)] = epoch

    def get(self, key: tuple, make: Callable[[], int]) -> int:
        found = self.cache.get(key)
        if found is None:
            found = self.made.get(key)
        if found is None:
            found = make()
            self.made[key] = found
        return found

    def committed(self) -> None:
        if len(self.cache) + len(self.made) > _CACHE_LIMIT:
            self.cache.clear()
        self.cache.update(self.made)
        self.sessions.committed()


def _ids() -> Ids:
    ext = current_app.extensions
    if "goatcounter_ids" not in ext:
        ext["goatcounter_ids"] = ({}, sessions.Salts(), sessions.Known())
    cache, salts, known = ext["goatcounter_ids"]
    return Ids(cache, salts, known)


def _get_or_insert(conn: sqlite3.Connection, insert: str, select: str,
                   args: dict[str, Any]) -> int:
    row = conn.execute(insert + " ON CONFLICT DO NOTHING RETURNING id", args).fetchone()
    if row is None:
        row = conn.execute(select, args).fetchone()
    return int(row[0])


def _path_id(conn: sqlite3.Connection, cache: Ids, site_id: int, h: Hit) -> int:
    return cache.get(("path", site_id, fold(h.path)), lambda: _get_or_insert(
        conn, "INSERT INTO paths (site_id, path, title, event) VALUES (:s, :p, :t, :e)",
        "SELECT id FROM paths WHERE site_id = :s AND " + db.nocase("path") + " = "
        + db.nocase(":p"),
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
        "SELECT id FROM campaigns WHERE site_id = :s AND " + db.nocase("name") + " = "
        + db.nocase(":n"),
        {"s": site_id, "n": name}))


def _first_visits(conn: sqlite3.Connection, cache: Ids, site_id: int, hits: list[Hit],
                  now: int) -> set[bytes]:
    """Sessions and first visits of the hits; returns the sessions made now."""
    keyed = [(h, h.session_key) for h in hits if h.session_key is not None]
    if not keyed:
        return set()
    seconds = int(current_app.config["SESSION_HOURS"]) * 3600
    found, fresh = sessions.resolve(conn, cache.salts, cache.sessions, site_id,
                                    (key for _, key in keyed), now, seconds)
    for h, key in keyed:
        h.session = found[key]
    flags = sessions.first_visits(conn, [(found[key], h.path_id) for h, key in keyed], fresh)
    for (h, _), first in zip(keyed, flags, strict=True):
        h.first_visit = first
    return fresh


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
    fresh: set[bytes] = set()
    if not preset_sessions:
        for h in counted:
            h.session, h.first_visit = None, True
        fresh = _first_visits(conn, cache, site_id, counted, now)

    if site["settings"]["collect"] & collect.COLLECT_HITS:
        conn.executemany(_INSERT_HIT, [
            (site_id, h.path_id, h.ref_id, h.browser_id, h.system_id, h.campaign_id, h.session,
             int(h.first_visit), h.width, h.location, h.language, h.created_at)
            for h in counted])
    aggregates.add(conn, site_id, counted, fresh)
    if bots:
        conn.executemany(
            "INSERT INTO bots (site_id, path, bot, user_agent, created_at) VALUES (?, ?, ?, ?, ?)",
            [(site_id, h.path, h.bot, h.user_agent, h.created_at) for h in bots])
    if counted:
        _mark_received(conn, site, min(h.created_at for h in counted))
    return len(counted)


# The first second a date can be written for (0001-01-01T00:00:00Z).
_YEAR_1 = -62135596800


def _mark_received(conn: sqlite3.Connection, site: dict[str, Any], earliest: int) -> None:
    """Note that the site has data, and move first_hit_at back for older hits (to 12 hours
    before the earliest, as upstream)."""
    # New hits are from 1990 on, but older ones may still wait in failed_hits.
    earliest = max(earliest, _YEAR_1 + 12 * 3600)
    if clock.parse_rfc3339(site["first_hit_at"]).timestamp() > earliest or \
            not site["received_data"]:
        # Whole-second RFC 3339 texts compare in time order.
        conn.execute(
            "UPDATE sites SET received_data = 1, first_hit_at = CASE WHEN :earliest <"
            " first_hit_at THEN :at ELSE first_hit_at END WHERE id = :id",
            {"earliest": clock.rfc3339(earliest), "at": clock.rfc3339(earliest - 12 * 3600),
             "id": site["id"]})


def write(fn: Callable[[sqlite3.Connection], Any],
          conn: sqlite3.Connection | None = None, wait: bool = True) -> Any:
    """Run `fn` in a write transaction in which `save_in` may store hits; the ids it makes
    are cached once the transaction has committed. `wait` as for db.write."""
    conn = conn or db.get_db()
    holder: list[Ids] = []

    def run(c: sqlite3.Connection) -> Any:
        # The ids of this attempt ride on the connection (a retry starts afresh).
        holder[:] = [_ids()]
        holder[0].check_epoch(c)
        c.ids = holder[0]  # type: ignore[attr-defined]
        try:
            return fn(c)
        finally:
            c.ids = None  # type: ignore[attr-defined]

    result = db.write(run, conn, wait)
    holder[0].committed()
    return result


def forget_ids(conn: sqlite3.Connection) -> None:
    """Make every process forget its cached ids before it counts again (inside the
    write transaction that removed paths)."""
    conn.execute("UPDATE id_epoch SET epoch = epoch + 1 WHERE id = 1")


def save_in(conn: sqlite3.Connection, site: dict[str, Any], hits: list[Hit],
            preset_sessions: bool = False) -> int:
    """Store hits of one site inside a transaction begun with `write`. Returns the number
    of counted hits. With `preset_sessions` the hits' `session` and `first_visit` are kept
    as given (an import of hits that were counted before)."""
    ids: Ids = conn.ids  # type: ignore[attr-defined]
    return _save(conn, ids, site, hits, int(clock.now()), preset_sessions)


def save(site: dict[str, Any], hits: list[Hit],
         guard: Callable[[sqlite3.Connection], Any] | None = None,
         extra: Callable[[sqlite3.Connection], Any] | None = None,
         preset_sessions: bool = False) -> Any:
    """Store hits of one site in one transaction (retried while the database is busy).

    In the same transaction, `guard` runs first: when it returns something other than
    None, nothing is stored and that is returned. `extra` runs last. Returns the number
    of counted hits otherwise.
    """
    def run(conn: sqlite3.Connection) -> Any:
        if guard is not None:
            found = guard(conn)
            if found is not None:
                return found
        count = save_in(conn, site, hits, preset_sessions)
        if extra is not None:
            extra(conn)
        return count

    return write(run)
