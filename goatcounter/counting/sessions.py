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


class _Sequence:
    """The second and the counter of this process's last new session id, and random
    bytes for the next ids (read from the system in bulk: one call per id cost more
    than the rest of making it)."""

    second = -1
    next = 0
    random = b""
    used = 0


def _forked() -> None:
    # A forked worker must not carry on its parent's counter or random bytes.
    _Sequence.second, _Sequence.random, _Sequence.used = -1, b"", 0


os.register_at_fork(after_in_child=_forked)


def new_id(now: int) -> bytes:
    """A new session id: the second it began, a counter, then 8 random bytes. Ids made
    about the same time sort together, so the rows keyed by them (session_paths,
    visitor_days) are added at the end of their indexes, a few pages per batch, instead
    of one random page for each new visitor. The counter starts at a random number each
    second in each process and goes up by one, so a process's ids of one second are
    adjacent too (with random bytes there, every batch of a busy second dirtied pages
    all over that second's rows). The first 8 bytes (what visitor_days keeps) are never
    the same twice within a process; two processes share some only when their counters'
    ranges of one second overlap, which gives as many shared keys on average as 32
    random bits would."""
    seq = _Sequence
    second = now & 0xFFFFFFFF
    if seq.used + 12 > len(seq.random):
        seq.random, seq.used = os.urandom(4096), 0
    at = seq.used
    if seq.second != second:
        seq.second = second
        seq.next = int.from_bytes(seq.random[at:at + 4], "big")
        at += 4
    count = seq.next
    seq.next = (count + 1) & 0xFFFFFFFF
    seq.used = at + 8
    return second.to_bytes(4, "big") + count.to_bytes(4, "big") + seq.random[at:at + 8]


def key_hash(salt: bytes, site_id: int, key: str) -> bytes:
    """The stored form of a session key."""
    data = f"{site_id}\x00{key}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, key=salt, digest_size=16).digest()


# A session as the map holds it: its id, when it was last seen, and the id of its row.
Row = tuple[bytes, int, int]
_PRUNE_SECONDS = 600


class Known:
    """The sessions of one database as this process last read them: hashed key to
    session, and the largest row id read. Rows are only added at the end of the table
    (and deleted), so reading the rows past that id brings the map up to date."""

    def __init__(self) -> None:
        self.rows: dict[bytes, Row] = {}
        self.last_id = -1  # not read yet
        self.pruned_at = 0

    def put(self, key: bytes, row: Row) -> None:
        had = self.rows.get(key)
        # Another thread's newer row may have got here first.
        if had is None or had[2] < row[2]:
            self.rows[key] = row

    def prune(self, cutoff: int) -> None:
        """Forget the sessions last seen before `cutoff`."""
        self.rows = {k: r for k, r in self.rows.items() if r[1] >= cutoff}


class Lookup:
    """The sessions as one write transaction sees them: the process's map, read up to
    date at its first lookup, and the rows the transaction added, which join the map
    once it has committed (a rolled-back row must never be found)."""

    def __init__(self, known: Known) -> None:
        self.known = known
        self.top: int | None = None
        self.added: dict[bytes, Row] = {}

    def sync(self, conn: sqlite3.Connection, now: int, session_seconds: int) -> int:
        """Read the rows other processes added (once: no one else writes while this
        transaction does); returns the largest row id this transaction knows."""
        if self.top is not None:
            return self.top
        known = self.known
        cutoff = now - session_seconds
        newest = conn.execute("SELECT coalesce(max(id), 0) FROM sessions").fetchone()[0]
        if newest < known.last_id:
            # Ids never go back: the table was emptied or restored under this process.
            known.rows.clear()
            known.last_id = -1
        if known.last_id < 0:
            top = newest
            rows = conn.execute("SELECT id, key, session, last_seen FROM sessions"
                                " WHERE last_seen >= :since",
                                {"since": cutoff - session_seconds})
        else:
            top = known.last_id
            rows = conn.execute("SELECT id, key, session, last_seen FROM sessions"
                                " WHERE id > :top", {"top": top})
        for row_id, key, session, last_seen in rows:
            known.put(bytes(key), (bytes(session), last_seen, row_id))
            top = max(top, row_id)
        known.last_id = max(known.last_id, top)
        if not known.pruned_at <= now < known.pruned_at + _PRUNE_SECONDS:
            # A session is kept for as long again after it ended: if its key comes
            # back before the purge ran, its row and paths are still found and go then.
            known.prune(cutoff - session_seconds)
            known.pruned_at = now
        self.top = top
        return top

    def get(self, key: bytes) -> Row | None:
        found = self.added.get(key)
        return found if found is not None else self.known.rows.get(key)

    def committed(self) -> None:
        for key, row in self.added.items():
            self.known.put(key, row)
        if self.top is not None:
            self.known.last_id = max(self.known.last_id, self.top)


def resolve(conn: sqlite3.Connection, salts: Salts, lookup: Lookup, site_id: int,
            keys: Iterable[str], now: int,
            session_seconds: int) -> tuple[dict[str, bytes], set[bytes]]:
    """The session id of each key, creating sessions for new (or expired) keys and
    marking all of them as seen now, and the ids made now. Runs inside the caller's
    write transaction."""
    epoch = now // DAY
    current = salts.get(conn, epoch, create=True)
    assert current is not None
    previous = salts.get(conn, epoch - 1, create=False)
    top = lookup.sync(conn, now, session_seconds)
    cutoff = now - session_seconds
    out: dict[str, bytes] = {}
    fresh: set[bytes] = set()
    replaced: list[tuple[int]] = []
    ended: list[tuple[bytes]] = []
    added: list[tuple[bytes, int, bytes, int]] = []
    for key in dict.fromkeys(keys):
        hashed = key_hash(current, site_id, key)
        hit = lookup.get(hashed)
        if hit is None and previous is not None:
            # Seen before the salt changed: the row moves to today's key.
            hit = lookup.get(key_hash(previous, site_id, key))
        if hit is not None:
            replaced.append((hit[2],))
        if hit is not None and hit[1] >= cutoff:
            out[key] = hit[0]
        else:
            out[key] = new_id(now)
            fresh.add(out[key])
            if hit is not None:
                # Its old paths go now, since the purge only finds paths through the
                # sessions table.
                ended.append((hit[0],))
        added.append((hashed, site_id, out[key], now))
    if replaced:
        conn.executemany("DELETE FROM sessions WHERE id = ?", replaced)
    if ended:
        conn.executemany("DELETE FROM session_paths WHERE session = ?", ended)
    conn.executemany("INSERT INTO sessions (key, site_id, session, last_seen)"
                     " VALUES (?, ?, ?, ?)", added)
    # The ids the rows got: this transaction is the only writer, so they are the rows
    # past the largest id it knew.
    for row_id, key, session, last_seen in conn.execute(
            "SELECT id, key, session, last_seen FROM sessions WHERE id > :top",
            {"top": top}):
        lookup.added[bytes(key)] = (bytes(session), last_seen, row_id)
        lookup.top = max(lookup.top or 0, row_id)
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
