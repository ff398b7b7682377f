"""Visitor sessions without cookies, shared by every worker through the database.

A session is found by a keyed hash of (site, session key), where the key is the
client's own session id or its user agent and IP address. The hash key (the salt)
changes every day and old salts are deleted, so nothing stored can be tied back to a
user agent or address for long. The previous day's salt is still tried, so a visit
that spans midnight stays one session. A session ends after SESSION_HOURS without hits.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable

DAY = 86400


class Salts:
    """The salts of one process, read from the database once per day."""

    def __init__(self) -> None:
        self._by_epoch: dict[int, bytes] = {}

    def get(self, conn: sqlite3.Connection, epoch: int, create: bool) -> bytes | None:
        salt = self._by_epoch.get(epoch)
        if salt is not None:
            return salt
        row = conn.execute("SELECT salt FROM session_salts WHERE epoch = :e",
                           {"e": epoch}).fetchone()
        if row is None and create:
            # Several workers may get here at once; the first insert wins for all.
            conn.execute("INSERT INTO session_salts (epoch, salt) VALUES (:e, :s)"
                         " ON CONFLICT (epoch) DO NOTHING", {"e": epoch, "s": os.urandom(32)})
            row = conn.execute("SELECT salt FROM session_salts WHERE epoch = :e",
                               {"e": epoch}).fetchone()
        if row is None:
            return None
        if len(self._by_epoch) > 4:
            self._by_epoch.clear()
        self._by_epoch[epoch] = bytes(row[0])
        return self._by_epoch[epoch]


def client_key(secret: str, key: str) -> str:
    """What the server keeps of a session key (user agent and IP, or the client's own
    session id) between the request and counting: a keyed hash, never the key."""
    data = key.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, key=secret.encode()[:64], digest_size=20).hexdigest()


def new_id(now: int) -> bytes:
    """A new session id: the second it began, then 12 random bytes. Ids made about the
    same time sort together, so the rows keyed by them (session_paths, visitor_days) are
    added at the end of their indexes, a few pages per batch, instead of one random page
    for each new visitor. The first 8 bytes (what visitor_days keeps) still hold 32
    random bits, which two sessions of the same second share once in 4 billion pairs."""
    return (now & 0xFFFFFFFF).to_bytes(4, "big") + os.urandom(12)


def key_hash(salt: bytes, site_id: int, key: str) -> bytes:
    """The stored form of a session key."""
    data = f"{site_id}\x00{key}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, key=salt, digest_size=16).digest()


def resolve(conn: sqlite3.Connection, salts: Salts, site_id: int, keys: Iterable[str],
            now: int, session_seconds: int) -> tuple[dict[str, bytes], set[bytes]]:
    """The session id of each key, creating sessions for new (or expired) keys and
    marking all of them as seen now, and the ids made now. Runs inside the caller's
    write transaction."""
    epoch = now // DAY
    current = salts.get(conn, epoch, create=True)
    assert current is not None
    previous = salts.get(conn, epoch - 1, create=False)
    wanted = {k: key_hash(current, site_id, k) for k in set(keys)}
    old = {k: key_hash(previous, site_id, k) for k in wanted} if previous else {}
    lookup = list(wanted.values()) + list(old.values())
    found: dict[bytes, tuple[bytes, int]] = {}
    for start in range(0, len(lookup), 500):
        chunk = lookup[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
                f"SELECT key, session, last_seen FROM sessions WHERE key IN ({marks})", chunk):
            found[bytes(row[0])] = (bytes(row[1]), row[2])

    cutoff = now - session_seconds
    out: dict[str, bytes] = {}
    fresh: set[bytes] = set()
    moved: list[tuple[bytes]] = []
    ended: list[tuple[bytes]] = []
    for key, hashed in wanted.items():
        hit = found.get(hashed)
        if hit is None and key in old and old[key] in found:
            hit = found[old[key]]
            moved.append((old[key],))
        if hit is not None and hit[1] >= cutoff:
            out[key] = hit[0]
        else:
            out[key] = new_id(now)
            fresh.add(out[key])
            if hit is not None:
                # The row is reused for the new session; its old paths go now, since
                # the purge only finds paths through the sessions table.
                ended.append((hit[0],))
    if moved:
        conn.executemany("DELETE FROM sessions WHERE key = ?", moved)
    if ended:
        conn.executemany("DELETE FROM session_paths WHERE session = ?", ended)
    conn.executemany(
        "INSERT INTO sessions (key, site_id, session, last_seen) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET session = excluded.session,"
        " last_seen = excluded.last_seen",
        [(wanted[k], site_id, out[k], now) for k in wanted])
    return out, fresh


def first_visits(conn: sqlite3.Connection, pairs: list[tuple[bytes, int]],
                 fresh: set[bytes] | frozenset[bytes] = frozenset()) -> list[bool]:
    """For each (session, path id), in order: whether it is the session's first visit
    to the path. Records the new ones. Sessions in `fresh` were made in this transaction,
    so they have no paths to look up yet. Runs inside the caller's write transaction."""
    seen: set[tuple[bytes, int]] = set()
    unique = [pair for pair in dict.fromkeys(pairs) if pair[0] not in fresh]
    # OR-ed pairs, so that SQLite seeks the primary key for each (a row-value IN over
    # both columns would make it scan the whole table).
    for start in range(0, len(unique), 200):
        chunk = unique[start:start + 200]
        where = " OR ".join(["(session = ? AND path_id = ?)"] * len(chunk))
        flat = [v for pair in chunk for v in pair]
        for row in conn.execute(  # only placeholders are formatted in
                f"SELECT session, path_id FROM session_paths WHERE {where}", flat):
            seen.add((bytes(row[0]), row[1]))
    out = []
    new = []
    for pair in pairs:
        if pair in seen:
            out.append(False)
        else:
            out.append(True)
            seen.add(pair)
            new.append(pair)
    conn.executemany("INSERT INTO session_paths (session, path_id) VALUES (?, ?)"
                     " ON CONFLICT DO NOTHING", new)
    return out


def purge(conn: sqlite3.Connection, now: int, session_seconds: int) -> int:
    """Forget sessions that ended, their paths, and salts no lookup needs any more."""
    cutoff = now - session_seconds
    conn.execute("DELETE FROM session_paths WHERE session IN"
                 " (SELECT session FROM sessions WHERE last_seen < :cutoff)", {"cutoff": cutoff})
    gone = conn.execute("DELETE FROM sessions WHERE last_seen < :cutoff",
                        {"cutoff": cutoff}).rowcount
    conn.execute("DELETE FROM session_salts WHERE epoch < :e", {"e": now // DAY - 1})
    return gone
