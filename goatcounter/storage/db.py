"""The database: one SQLite file, its connections, PRAGMAs, transactions and migrations.

Everything SQLite-specific lives here; the rest of the code uses plain, parameterised
SQL (`INSERT ... ON CONFLICT ... DO UPDATE`) so that another backend could sit behind
the same functions.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from typing import Any, TypeVar

from flask import Flask, current_app, g

from goatcounter import clock

T = TypeVar("T")

# How long a connection waits for another writer before SQLite gives up. It must
# cover the longest write transaction (an import batch or a big count batch).
BUSY_TIMEOUT_MS = 15_000
# On top of the busy timeout, a write is retried this long before it fails.
RETRY_SECONDS = 30.0


class WriteLock:
    """A lock file beside the database that writers of this server take before
    BEGIN IMMEDIATE. SQLite's own lock makes a waiting writer sleep and poll (for
    milliseconds at a time); a blocked flock wakes the moment the holder lets go, which
    keeps several busy workers writing back to back."""

    def __init__(self, db_path: str) -> None:
        self.path = db_path + "-writelock"
        self._fd: int | None = None
        self._pid = 0
        self._thread = threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._thread:
            if self._fd is None or self._pid != os.getpid():
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


# One lock object per database file and process.
_LOCKS: dict[str, WriteLock] = {}


class Connection(sqlite3.Connection):
    """A connection that knows the write lock of its database (and, inside a counting
    transaction, the ids that transaction made: see store.write)."""

    write_lock: WriteLock
    ids: Any = None


def connect(path: str) -> sqlite3.Connection:
    """A new connection with the PRAGMAs every connection needs."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000, factory=Connection)
    conn.write_lock = _LOCKS.setdefault(path, WriteLock(path))
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    # In WAL mode NORMAL survives a process crash; only a power cut can lose the
    # last commits, and never corrupts the file.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -65536")
    return conn


class Pool:
    """Idle connections of one process, reused across requests (opening one costs more
    than a small request)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return connect(self.path)

    def put(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.rollback()
        with self._lock:
            if len(self._idle) < 4:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def get_db() -> sqlite3.Connection:
    """The connection of the current request (or app context), opened on first use."""
    if "db" not in g:
        g.db = current_app.extensions["goatcounter_db"].get()
    return g.db


def _release(_exc: BaseException | None = None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        current_app.extensions["goatcounter_db"].put(conn)


def is_busy(exc: BaseException) -> bool:
    """Whether an error means another writer held the database."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, mode: str) -> Iterator[sqlite3.Connection]:
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    else:
        conn.execute("COMMIT")


def _write_lock(conn: sqlite3.Connection) -> WriteLock:
    lock = getattr(conn, "write_lock", None)
    if lock is None:
        path = conn.execute("PRAGMA database_list").fetchone()[2]
        lock = _LOCKS.setdefault(path, WriteLock(path))
    return lock


def write(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection | None = None) -> T:
    """Run `fn` in one write transaction (BEGIN IMMEDIATE), retried while the database
    is busy. `fn` must not have effects outside the database: it may run more than once."""
    conn = conn or get_db()
    lock = _write_lock(conn)
    deadline = time.monotonic() + RETRY_SECONDS
    delay = 0.005
    while True:
        try:
            with lock.held(), _transaction(conn, "IMMEDIATE"):
                return fn(conn)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 0.25)


@contextlib.contextmanager
def read(conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
    """A read transaction: every query inside sees the same snapshot."""
    conn = conn or get_db()
    if conn.in_transaction:
        yield conn
        return
    with _transaction(conn, "DEFERRED"):
        yield conn


# SQL that differs between databases --------------------------------------------------

def in_list(column: str, param: str, negate: bool = False) -> str:
    """`column IN (the values of list parameter :param)`, whatever their number: one
    parameter (made with `list_param`) keeps the query text fixed. SQLite reads the list
    as a JSON array."""
    return f"{column} {'NOT ' if negate else ''}IN (SELECT value FROM json_each(:{param}))"


def list_param(values: Iterable[Any]) -> str:
    """The value of a list parameter used with `in_list`."""
    return json.dumps(list(values))


def join_text(expr: str) -> str:
    """An aggregate that joins the values of `expr` with commas."""
    return f"group_concat({expr})"


def nocase(expr: str) -> str:
    """`expr` compared ignoring ASCII case, as the schema's NOCASE columns are."""
    return f"{expr} COLLATE NOCASE"


def bytewise(expr: str) -> str:
    """`expr` ordered by its bytes, whatever the column's collation."""
    return f"{expr} COLLATE BINARY"


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The column names of a table (`table` must be a fixed name, not request text)."""
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


# Migrations ---------------------------------------------------------------------------

def _migrations() -> list[tuple[str, str]]:
    files = resources.files(__package__).joinpath("migrations")
    out = [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8"))
           for f in files.iterdir() if f.name.endswith(".sql")]
    return sorted(out)


def _statements(script: str) -> Iterator[str]:
    """Split a SQL script into statements (executescript would commit on its own)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            stmt = buf.strip()
            buf = ""
            if stmt and not all(s.strip().startswith("--") or not s.strip()
                                for s in stmt.splitlines()):
                yield stmt
    if buf.strip() and not all(s.strip().startswith("--") or not s.strip()
                               for s in buf.splitlines()):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buf[:80]!r}")


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction. Safe when
    several processes start at once: the write lock makes them take turns."""
    applied: list[str] = []

    def setup(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                  "name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")

    write(setup, conn)
    for name, script in _migrations():
        def apply(c: sqlite3.Connection, name: str = name, script: str = script) -> bool:
            done = c.execute("SELECT 1 FROM schema_migrations WHERE name = :name",
                             {"name": name}).fetchone()
            if done:
                return False
            for stmt in _statements(script):
                c.execute(stmt)
            c.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (:name, :at)",
                      {"name": name, "at": clock.rfc3339(clock.now())})
            return True

        if write(apply, conn):
            applied.append(name)
    return applied


def version(conn: sqlite3.Connection) -> str:
    """The newest applied migration, shown as the database version."""
    row = conn.execute("SELECT max(name) FROM schema_migrations").fetchone()
    return row[0] or ""


def backup(conn: sqlite3.Connection, target: str) -> None:
    """A consistent copy of a live database, taken with SQLite's online backup API."""
    dest = sqlite3.connect(target)
    try:
        with dest:
            # One step: the copy is read in one transaction, which writers of a WAL database
            # don't disturb; copying in steps starts over whenever somebody writes.
            conn.backup(dest, pages=-1)
    finally:
        dest.close()


def init_app(app: Flask) -> None:
    """Bind the connection pool to the app and bring the schema up to date."""
    pool = Pool(app.config["DB_PATH"])
    app.extensions["goatcounter_db"] = pool
    app.teardown_appcontext(_release)
    conn = pool.get()
    try:
        migrate(conn)
    finally:
        pool.put(conn)
