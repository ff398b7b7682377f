"""The database: connections, PRAGMAs, transactions and migrations.

SQLite (one file) is the default; a DB setting that is a postgresql:// URL puts the
server on PostgreSQL (storage/postgres.py), whose connections take the same calls. The
rest of the code writes plain, parameterised SQL in SQLite's dialect (`:name`
parameters, `INSERT ... ON CONFLICT ... DO UPDATE`); what differs between the engines
is made by the helpers under "SQL that differs between databases" below.
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


class LockHeld(Exception):
    """Another writer holds the writers' lock, and the caller asked not to wait: nothing
    was written."""


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
    def held(self, wait: bool = True) -> Iterator[None]:
        """Hold the lock; without `wait`, raise LockHeld when another writer has it."""
        if not self._thread.acquire(blocking=wait):
            raise LockHeld
        try:
            if self._fd is None or self._pid != os.getpid():
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockHeld from None
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()


# One lock object per database file and process.
_LOCKS: dict[str, WriteLock] = {}


class Connection(sqlite3.Connection):
    """A connection that knows the write lock of its database (and, inside a counting
    transaction, the ids that transaction made: see store.write)."""

    engine = "sqlite"
    write_lock: WriteLock
    ids: Any = None

    def begin(self, write: bool, wait: bool = True) -> bool:
        # IMMEDIATE takes the write lock at once, so a lock upgrade never fails halfway.
        # (`wait` is about the writers' lock file, which is taken before this.)
        self.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
        return True


def is_postgresql(target: str) -> bool:
    """Whether a DB setting names a PostgreSQL database (postgresql://...) rather than
    a SQLite file."""
    return target.startswith(("postgresql://", "postgres://"))


def _postgres() -> Any:
    # Imported only for PostgreSQL, so that SQLite installations need no psycopg.
    try:
        from goatcounter.storage import postgres
    except ImportError as exc:  # pragma: no cover
        raise SystemExit("goatcounter: PostgreSQL needs psycopg and psycopg-pool:"
                         " pip install 'goatcounter[postgresql]'") from exc
    return postgres


def engine(conn: Any) -> str:
    """"sqlite" or "postgresql": which engine a connection talks to."""
    return getattr(conn, "engine", "sqlite")


def connect(path: str) -> sqlite3.Connection:
    """A new connection with the PRAGMAs every connection needs (`path` may also be a
    postgresql:// URL)."""
    if is_postgresql(path):
        return _postgres().connect(path)
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
    if type(exc).__module__.startswith("psycopg"):
        return _postgres().is_busy(exc)
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def is_disconnect(exc: BaseException) -> bool:
    """Whether an error means the connection to a database server was lost (PostgreSQL:
    the transaction did not commit, and is not retried)."""
    return type(exc).__module__.startswith("psycopg") and _postgres().is_disconnect(exc)


def is_unique_violation(exc: BaseException) -> bool:
    """Whether an integrity error is a broken unique index."""
    if type(exc).__module__.startswith("psycopg"):
        import psycopg.errors
        return isinstance(exc, psycopg.errors.UniqueViolation)
    return "UNIQUE" in str(exc)


def database_errors() -> tuple[type[Exception], ...]:
    """The exceptions the engines raise for a database that failed or was busy (the
    error handlers answer them with a 503 or a 500)."""
    out: list[type[Exception]] = [sqlite3.OperationalError]
    with contextlib.suppress(ImportError):
        import psycopg
        out.append(psycopg.OperationalError)
    return tuple(out)


def integrity_errors() -> tuple[type[Exception], ...]:
    """The exceptions for a broken constraint (a unique index, say) of either engine."""
    out: list[type[Exception]] = [sqlite3.IntegrityError]
    with contextlib.suppress(ImportError):
        import psycopg
        out.append(psycopg.IntegrityError)
    return tuple(out)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, write: bool,
                 wait: bool = True) -> Iterator[sqlite3.Connection]:
    begin = getattr(conn, "begin", None)
    if begin is not None:
        if not begin(write, wait):
            raise LockHeld
    else:  # a plain sqlite3 connection
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    else:
        conn.execute("COMMIT")


def _write_lock(conn: sqlite3.Connection) -> Any:
    lock = getattr(conn, "write_lock", None)
    if lock is None:
        path = conn.execute("PRAGMA database_list").fetchone()[2]
        lock = _LOCKS.setdefault(path, WriteLock(path))
    return lock


def write(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection | None = None,
          wait: bool = True) -> T:
    """Run `fn` in one write transaction (BEGIN IMMEDIATE; on PostgreSQL, behind the
    writers' advisory lock), retried while the database is busy. `fn` must not have
    effects outside the database: it may run more than once. Without `wait`, LockHeld
    is raised at once when another writer of this server holds the writers' lock."""
    conn = conn or get_db()
    lock = _write_lock(conn)
    deadline = time.monotonic() + RETRY_SECONDS
    delay = 0.005
    while True:
        try:
            with lock.held(wait), _transaction(conn, True, wait):
                return fn(conn)
        except database_errors() as exc:
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
    with _transaction(conn, False):
        yield conn


def tuples(conn: sqlite3.Connection, sql: str, args: Any = ()) -> list[tuple]:
    """All rows of a query as plain tuples: quicker to make than rows that can also be
    read by column name, for the few reads of very many rows."""
    if engine(conn) == "postgresql":
        return conn.tuples(sql, args)  # type: ignore[attr-defined]
    cursor = conn.cursor()
    cursor.row_factory = None
    return cursor.execute(sql, args).fetchall()


# SQL that differs between databases --------------------------------------------------

def in_list(column: str, param: str, negate: bool = False) -> str:
    """`column IN (the values of list parameter :param)`, whatever their number: one
    parameter (made with `list_param`) keeps the query text fixed. SQLite reads the list
    as a JSON array."""
    return f"{column} {'NOT ' if negate else ''}IN (SELECT value FROM json_each(:{param}))"


class ListParam(list):
    """The value of a list parameter: SQLite reads it as JSON text, PostgreSQL as an
    array (`= ANY(...)`)."""


sqlite3.register_adapter(ListParam, lambda v: json.dumps(list(v)))


def list_param(values: Iterable[Any]) -> Any:
    """The value of a list parameter used with `in_list` (a ListParam: the callers keep it
    as an opaque value, as they kept SQLite's JSON text)."""
    return ListParam(values)


def join_text(expr: str) -> str:
    """An aggregate that joins the values of `expr` with commas (string_agg on
    PostgreSQL)."""
    return f"group_concat({expr})"


def nocase(expr: str) -> str:
    """`expr` compared ignoring ASCII case, as the schema's NOCASE columns are. Use it on
    both sides of a comparison (`expr` is a column or a `:parameter`): PostgreSQL makes
    it lower(expr COLLATE "C"), which its indexes on those columns are built on."""
    return f"{expr} COLLATE NOCASE"


def bytewise(expr: str) -> str:
    """`expr` ordered by its bytes, whatever the column's collation (COLLATE "C")."""
    return f"{expr} COLLATE BINARY"


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The column names of a table (`table` must be a fixed name, not request text)."""
    if engine(conn) == "postgresql":
        return _postgres().columns(conn, table)
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
    several processes (or, on PostgreSQL, several servers) start at once: the write
    lock, and on PostgreSQL an advisory lock held for the whole run, make them take
    turns."""
    if engine(conn) == "postgresql":
        pg = _postgres()
        with pg.migration_lock(conn):
            return _migrate(conn, pg.migrations())
    return _migrate(conn, _migrations())


def _migrate(conn: sqlite3.Connection, migrations: list[tuple[str, str]]) -> list[str]:
    applied: list[str] = []

    def setup(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                  "name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")

    write(setup, conn)
    for name, script in migrations:
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
    if engine(conn) == "postgresql":
        raise ValueError("db backup copies SQLite files; back PostgreSQL up with pg_dump")
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
    url = app.config.get("DB_URL")
    if url:
        pg = _postgres()
        pg.check_reachable(url)
        pool: Any = pg.Pool(url)
    else:
        pool = Pool(app.config["DB_PATH"])
    app.extensions["goatcounter_db"] = pool
    app.teardown_appcontext(_release)
    conn = pool.get()
    try:
        migrate(conn)
    finally:
        pool.put(conn)
