"""PostgreSQL behind the same calls as the SQLite connections of db.py.

The rest of the code writes SQLite's dialect: `:name` and `?` parameters, rows read by
index or by name, `conn.execute(...)` returning a cursor. A `Connection` here accepts
exactly those calls and turns each statement into PostgreSQL's once (the result is
cached): parameters become psycopg's, and the few fragments that db.py's helpers make
for SQLite (list parameters, text aggregation, case folding, byte order) become their
PostgreSQL forms. No query is written twice.

Writers take one transaction-level advisory lock before their first statement, the
counterpart of SQLite's single writer: every write sees the rows of the writes before
it (the read-then-insert steps of sessions and the spool need that), and ids handed
out by the sequences follow commit order, so a reader paging by id (exports'
last_hit_id) never skips a row that committed late.
"""
from __future__ import annotations

import contextlib
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from importlib import resources
from typing import Any

import psycopg
import psycopg.adapt
import psycopg.conninfo
import psycopg.errors
import psycopg.rows
import psycopg.types.numeric
from psycopg import sql as pgsql

try:  # the pool is only needed by servers; scripts may connect without it
    import psycopg_pool
except ImportError:  # pragma: no cover
    psycopg_pool = None  # type: ignore[assignment]

SCHEMES = ("postgresql://", "postgres://")
# Every write transaction takes this lock first (pg_advisory_xact_lock): "goat" in ASCII.
WRITE_LOCK = 0x676F6174
# Held for the whole of a migration run, so that servers starting at once take turns.
MIGRATE_LOCK = WRITE_LOCK + 1
# How long a statement waits for a lock before failing (then db.write retries).
LOCK_TIMEOUT_MS = 15_000


def is_url(value: str) -> bool:
    """Whether a DB setting names a PostgreSQL database (a libpq URL)."""
    return value.startswith(SCHEMES)


# Errors ---------------------------------------------------------------------------

Error = psycopg.Error
IntegrityError = psycopg.IntegrityError
OperationalError = psycopg.OperationalError
# Another writer (or a lock it holds) was in the way: retrying may succeed.
_BUSY = (psycopg.errors.LockNotAvailable, psycopg.errors.SerializationFailure,
         psycopg.errors.DeadlockDetected)


def is_busy(exc: BaseException) -> bool:
    """Whether an error means another writer held what this one needed."""
    return isinstance(exc, _BUSY)


def is_disconnect(exc: BaseException) -> bool:
    """Whether the connection to the server was lost (the transaction did not commit,
    or its outcome is unknown: never retried)."""
    return isinstance(exc, psycopg.OperationalError) and not is_busy(exc)


# Translating statements ---------------------------------------------------------------

_TOKENS = re.compile(r"""'(?:[^']|'')*'|"[^"]*"|::|:([A-Za-z_]\w*)|\?|%""")
_IN_LIST = re.compile(
    r"(?P<col>\+?[\w.]+(?:\([\w.]+\))?(?: COLLATE NOCASE)?) (?P<neg>NOT )?IN"
    r" \(SELECT value FROM json_each\(:(?P<p>\w+)\)\)")
# `:x IS NULL` can't be typed when x is None: it asks a companion parameter instead.
_PARAM_NULL = re.compile(r":(\w+) IS (NOT )?NULL\b")
# lower() of a parameter folds as lower() of a "C" column does: ASCII only.
_LOWER_PARAM = re.compile(r"lower\(:(\w+)\)")
_NOCASE = re.compile(r"([\w.:]+) COLLATE NOCASE")
_BINARY = re.compile(r"COLLATE BINARY")
# SQLite's LIKE ignores ASCII case; ILIKE on a "C" column does the same.
_LIKE = re.compile(r"\bLIKE\b")
_BEGIN_AGG = "group_concat("

NULL_SUFFIX = "__is_null"
_translated: dict[str, str] = {}
_translated_lock = threading.Lock()


def _group_concat(text: str) -> str:
    """group_concat(x) -> string_agg(CAST(x AS TEXT), ',') (x may hold parentheses)."""
    while True:
        start = text.find(_BEGIN_AGG)
        if start < 0:
            return text
        depth, i = 1, start + len(_BEGIN_AGG)
        while depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        inner = text[start + len(_BEGIN_AGG):i - 1]
        text = f"{text[:start]}string_agg(CAST({inner} AS TEXT), ','){text[i:]}"


def _dialect(text: str) -> str:
    # A leading + (SQLite's way of keeping an index out of a plan) has no meaning here,
    # and none on text.
    text = _IN_LIST.sub(lambda m: ("NOT " if m["neg"] else "")
                        + f"({m['col'].lstrip('+')} = ANY(:{m['p']}))", text)
    text = _NOCASE.sub(r'lower(\1 COLLATE "C")', text)
    text = _BINARY.sub('COLLATE "C"', text)
    text = _LIKE.sub("ILIKE", text)
    text = _PARAM_NULL.sub(lambda m: f"(:{m[1]}{NULL_SUFFIX} = {0 if m[2] else 1})", text)
    text = _LOWER_PARAM.sub(r'lower(:\1 COLLATE "C")', text)
    return _group_concat(text)


def translate(text: str) -> str:
    """A statement in SQLite's dialect, as psycopg wants it."""
    found = _translated.get(text)
    if found is not None:
        return found

    def param(m: re.Match[str]) -> str:
        token = m[0]
        if token[0] == "'":
            return token.replace("%", "%%")
        if m[1]:
            return f"%({m[1]})s"
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token

    out = _TOKENS.sub(param, _dialect(text))
    with _translated_lock:
        if len(_translated) > 5000:
            _translated.clear()
        _translated[text] = out
    return out


def _params(args: Any) -> Any:
    # Never None: with parameters psycopg reads the %% that `translate` made.
    if not args:
        return ()
    if isinstance(args, dict):
        out = {k: _value(v) for k, v in args.items()}
        out.update({k + NULL_SUFFIX: int(v is None) for k, v in args.items()})
        return out
    return [_value(v) for v in args]


def _value(v: Any) -> Any:
    if isinstance(v, str):
        # PostgreSQL's text can't hold NUL, which SQLite's can (a path from /count may
        # have one): it is kept as U+FFFD, the character for one that can't be shown.
        return v.replace("\x00", "\ufffd") if "\x00" in v else v
    if isinstance(v, list):
        # A list parameter (db.list_param) is an array of one type: ids are whole
        # numbers, names are text.
        return [int(x) for x in v] if v and all(isinstance(x, int) for x in v) else \
            [str(x) for x in v]
    if isinstance(v, memoryview):
        return bytes(v)
    return v


# Rows and types ------------------------------------------------------------------------

class Row(tuple):
    """A row read by index or by column name, like sqlite3.Row."""

    _index: dict[str, int] = {}  # noqa: RUF012 (set per result shape)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


_row_classes: dict[tuple[str, ...], type[Row]] = {}


def _row_factory(cursor: Any) -> Any:
    desc = cursor.description
    if desc is None:
        return tuple
    names = tuple(d.name for d in desc)
    cls = _row_classes.get(names)
    if cls is None:
        cls = type("Row", (Row,), {"_index": {n: i for i, n in enumerate(names)}})
        if len(_row_classes) < 2000:
            _row_classes[names] = cls
    return cls


class _NumericLoader(psycopg.types.numeric.NumericLoader):
    """sum() of whole numbers is `numeric` here; SQLite gives an integer (or a float)."""

    def load(self, data: Any) -> Any:
        value: Decimal = super().load(data)
        return int(value) if value == value.to_integral_value() else float(value)


class _NumericBinaryLoader(psycopg.types.numeric.NumericBinaryLoader):
    def load(self, data: Any) -> Any:
        value: Decimal = super().load(data)
        return int(value) if value == value.to_integral_value() else float(value)


class _BoolDumper(psycopg.adapt.Dumper):
    """True and False are stored as 1 and 0, as in SQLite (the schema has no booleans)."""

    oid = psycopg.adapters.types["int2"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


_adapters = psycopg.adapt.AdaptersMap(psycopg.adapters)
_adapters.register_loader("numeric", _NumericLoader)
_adapters.register_loader("numeric", _NumericBinaryLoader)
_adapters.register_dumper(bool, _BoolDumper)


# Connections ---------------------------------------------------------------------------

class _NoLock:
    """Writers of PostgreSQL need no lock file: the advisory lock does that work."""

    @contextlib.contextmanager
    def held(self, wait: bool = True) -> Iterator[None]:
        yield


_NO_LOCK = _NoLock()


class Cursor:
    """The result of one statement, as sqlite3's cursor offers it."""

    def __init__(self, cur: psycopg.Cursor) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def fetchone(self) -> Any:
        return self._cur.fetchone() if self._cur.description is not None else None

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall() if self._cur.description is not None else []

    def fetchmany(self, size: int = 1) -> list[Any]:
        return self._cur.fetchmany(size) if self._cur.description is not None else []

    def __iter__(self) -> Iterator[Any]:
        if self._cur.description is None:
            return iter(())
        return iter(self._cur)

    def close(self) -> None:
        self._cur.close()


class Connection:
    """A psycopg connection that takes SQLite-dialect statements (see `translate`)."""

    engine = "postgresql"
    write_lock = _NO_LOCK

    def __init__(self, raw: psycopg.Connection, owned: bool = True) -> None:
        self.raw = raw
        self.ids: Any = None
        # A connection of its own (not the pool's) is closed when dropped, as sqlite3's
        # are, instead of warning.
        self._owned = owned

    def __del__(self) -> None:
        if getattr(self, "_owned", False):
            with contextlib.suppress(Exception):
                self.raw.close()

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def execute(self, sql: str, args: Any = ()) -> Cursor:
        return Cursor(self.raw.execute(translate(sql), _params(args)))

    def tuples(self, sql: str, args: Any = ()) -> list[tuple]:
        """All rows as plain tuples (see db.tuples)."""
        with self.raw.cursor(row_factory=psycopg.rows.tuple_row) as cur:
            return cur.execute(translate(sql), _params(args)).fetchall()

    def executemany(self, sql: str, rows: Iterable[Any]) -> Cursor:
        rows = [_params(r) for r in rows]
        cur = self.raw.cursor()
        if rows:
            cur.executemany(translate(sql), rows)
        return Cursor(cur)

    def begin(self, write: bool, wait: bool = True) -> bool:
        """Begin a transaction; False (and none begun) when `wait` is off and another
        writer holds the writers' lock."""
        if write:
            self.raw.execute("BEGIN")
            if wait:
                self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            else:
                row = self.raw.execute("SELECT pg_try_advisory_xact_lock(%s)",
                                       (WRITE_LOCK,)).fetchone()
                if row is None or not row[0]:
                    self.raw.execute("ROLLBACK")
                    return False
        else:
            # One snapshot for every query of a read, as SQLite's read transactions give.
            self.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return True

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if not self.raw.closed and self.in_transaction:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()


def _configure(raw: psycopg.Connection) -> None:
    raw.row_factory = _row_factory
    raw.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
    raw.execute("SET TIME ZONE 'UTC'")


def connect_raw(url: str, **kwargs: Any) -> psycopg.Connection:
    """A plain psycopg connection in autocommit mode (we send BEGIN and COMMIT)."""
    return psycopg.connect(url, autocommit=True, context=_adapters, **kwargs)


def connect(url: str) -> Connection:
    """A new connection, set up as every connection of the server is."""
    raw = connect_raw(url)
    _configure(raw)
    return Connection(raw)


class Pool:
    """Connections of one process (psycopg-pool), each checked before it is handed out
    so that one the server dropped is replaced instead of failing a request."""

    def __init__(self, url: str, max_size: int = 8) -> None:
        self.url = url
        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=max_size, open=True, timeout=30,
            kwargs={"autocommit": True, "context": _adapters}, configure=_configure,
            check=psycopg_pool.ConnectionPool.check_connection, name="goatcounter")
        _pools.add(self)

    def get(self) -> Connection:
        return Connection(self._pool.getconn(), owned=False)

    def put(self, conn: Connection) -> None:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        self._pool.putconn(conn.raw)

    def close(self) -> None:
        self._pool.close()


_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


def close_pools(dbname: str) -> None:
    """Close this process's pools on database `dbname` (before it is dropped: a pool
    left open keeps trying to connect to it, and says so)."""
    for pool in list(_pools):
        if psycopg.conninfo.conninfo_to_dict(pool.url).get("dbname") == dbname:
            pool.close()


def check_reachable(url: str) -> None:
    """Raise SystemExit with one line when the database can't be reached."""
    try:
        connect_raw(url, connect_timeout=10).close()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(f"goatcounter: can't connect to the PostgreSQL database"
                         f" {redact(url)}: {first}") from None


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


# Schema ---------------------------------------------------------------------------------

def migrations() -> list[tuple[str, str]]:
    """(name, SQL) of every PostgreSQL migration, in order."""
    files = resources.files(__package__).joinpath("migrations_postgresql")
    out = [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8"))
           for f in files.iterdir() if f.name.endswith(".sql")]
    return sorted(out)


@contextlib.contextmanager
def migration_lock(conn: Connection) -> Iterator[None]:
    """Held while migrations run: a server starting beside another waits for it."""
    conn.raw.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
    try:
        yield
    finally:
        conn.raw.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))


def columns(conn: Connection, table: str) -> set[str]:
    """The column names of a table."""
    rows = conn.raw.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s", (table,))
    return {r[0] for r in rows}


def tables(conn: Connection) -> list[str]:
    """The tables of the schema, by name."""
    rows = conn.raw.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema ="
        " current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name")
    return [r[0] for r in rows]


def tables_by_age(conn: Connection) -> list[str]:
    """The tables, oldest first: a table refers only to tables made before it, so rows
    copied in this order always find what they refer to."""
    rows = conn.raw.execute(
        "SELECT relname FROM pg_class WHERE relkind = 'r'"
        " AND relnamespace = current_schema()::regnamespace ORDER BY oid")
    return [r[0] for r in rows]


def set_sequences(conn: Connection) -> None:
    """Move every identity sequence past the largest id in its table (after rows were
    copied in with their ids)."""
    rows = conn.raw.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall()
    for table, column in rows:
        conn.raw.execute(pgsql.SQL(
            "SELECT setval(pg_get_serial_sequence({t}, {c}),"
            " coalesce((SELECT max({col}) FROM {tab}), 0) + 1, false)").format(
                t=pgsql.Literal(table), c=pgsql.Literal(column),
                col=pgsql.Identifier(column), tab=pgsql.Identifier(table)))


def copy_rows(conn: Connection, table: str, names: Sequence[str],
              rows: Iterable[Sequence[Any]]) -> None:
    """Rows into a table with COPY (much faster than INSERTs)."""
    query = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
        pgsql.Identifier(table), pgsql.SQL(", ").join(map(pgsql.Identifier, names)))
    with conn.raw.cursor().copy(query) as copy:
        for row in rows:
            copy.write_row([_value(v) for v in row])
