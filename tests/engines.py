"""Which database engine the tests run on, and a fresh PostgreSQL database per test.

`pytest --engine postgresql` (or GOATCOUNTER_TEST_ENGINE=postgresql) runs every test on
PostgreSQL, on the server named by GOATCOUNTER_TEST_POSTGRESQL (a URL of a role that may
create databases). One database is migrated per run; before each test every other
connection to it is ended and every table emptied back to what the migrations left
(a tenth of what creating a database costs), so each test starts as on a new one.
Tests that are about SQLite itself carry `@pytest.mark.sqlite_only(reason)` and are
skipped there. Tests of PostgreSQL alone (`@pytest.mark.postgresql`) run on either
engine's run when a server is configured; without one a local run skips them with a
message, and CI (CI=true) fails instead.
"""
from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
from typing import Any

import pytest
from flask import Flask

ENGINES = ("sqlite", "postgresql")
ENGINE = "sqlite"
ADMIN_ENV = "GOATCOUNTER_TEST_POSTGRESQL"

_counter = itertools.count(1)
_shared: tuple[str, str, str] | None = None


def configure(value: str | None) -> None:
    """Pick the engine (called once, when pytest starts)."""
    global ENGINE
    value = (value or "sqlite").strip().lower()
    if value not in ENGINES:
        raise pytest.UsageError(f"unknown engine {value!r}: use one of {', '.join(ENGINES)}")
    ENGINE = value
    if ENGINE == "postgresql":
        admin()


def header() -> str:
    where = f" on {_redact(os.environ.get(ADMIN_ENV, ''))}" if ENGINE == "postgresql" else ""
    return f"database engine: {ENGINE}{where}"


def _redact(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def admin() -> str:
    """The URL of the PostgreSQL server the tests may create databases on. Without one:
    a usage error for a PostgreSQL run, a skip for one test locally, a failure in CI."""
    url = os.environ.get(ADMIN_ENV, "")
    if not url:
        message = (f"no PostgreSQL configured: set {ADMIN_ENV}=postgresql://user@host/db"
                   " (a role that may create databases) to run the PostgreSQL tests")
        if ENGINE == "postgresql":
            raise pytest.UsageError(message)
        if in_ci():
            pytest.fail(message + " (CI must run them)", pytrace=False)
        pytest.skip(message)
    return url


def redis_url() -> str:
    """The Redis the shared rate-limit tests use (GOATCOUNTER_TEST_REDIS): skipped
    locally without one, a failure in CI."""
    url = os.environ.get("GOATCOUNTER_TEST_REDIS", "")
    if not url:
        message = "no Redis configured: set GOATCOUNTER_TEST_REDIS=redis://127.0.0.1:PORT/0"
        if in_ci():
            pytest.fail(message + " (CI must run these tests)", pytrace=False)
        pytest.skip(message)
    return url


def _admin_conn() -> Any:
    import psycopg
    try:
        return psycopg.connect(admin(), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        # A configured server that can't be reached is a failure, never a skip.
        pytest.fail(f"PostgreSQL at {_redact(admin())} can't be reached: {exc}", pytrace=False)


def _url_for(name: str) -> str:
    import psycopg.conninfo
    params = psycopg.conninfo.conninfo_to_dict(admin())
    params["dbname"] = name
    return _as_url(params)


def _as_url(params: dict[str, Any]) -> str:
    from urllib.parse import quote
    user = quote(str(params.get("user", "")), safe="")
    password = params.get("password")
    auth = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    host = str(params.get("host", ""))
    query = ""
    if host.startswith("/"):
        query, host = f"?host={quote(host, safe='')}", ""
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{auth}{host}{port}/{quote(str(params['dbname']), safe='')}{query}"


def _shared_database() -> tuple[str, str, str]:
    """(name, URL, the SQL that empties it back to its migrated state) of the run's
    database."""
    global _shared
    if _shared is not None:
        return _shared
    from goatcounter.storage import db, postgres
    name = f"gctest_{os.getpid()}"
    with contextlib.closing(_admin_conn()) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _url_for(name)
    conn = db.connect(url)
    try:
        db.migrate(conn)
        tables = [t for t in postgres.tables(conn) if t != "schema_migrations"]
        # The rows the migrations put in go back after each emptying, as the statements
        # pg_dump would write for them, with their sequences set past them.
        # DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE makes new files
        # for every table and index, which costs far more.
        # Newest table first: a table refers only to ones made before it.
        made = [r[0] for r in conn.raw.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace ="
            " current_schema()::regnamespace ORDER BY oid DESC")]
        reset = [f'DELETE FROM "{t}"' for t in made if t in tables]
        for (seq,) in conn.raw.execute(
                "SELECT pg_get_serial_sequence(table_name, column_name) FROM"
                " information_schema.columns WHERE table_schema = current_schema()"
                " AND is_identity = 'YES'"):
            reset.append(f"SELECT setval('{seq}', 1, false)")
        for table in tables:
            rows = conn.raw.execute(f'SELECT * FROM "{table}"').fetchall()
            if not rows:
                continue
            names = [d.name for d in conn.raw.execute(f'SELECT * FROM "{table}" LIMIT 0')
                     .description]
            for row in rows:
                values = ", ".join(_literal(v) for v in row)
                reset.append(f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({values})')
            if "id" in names:
                reset.append(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                             f" (SELECT max(id) FROM \"{table}\"))")
    finally:
        conn.close()
    _shared = (name, url, "; ".join(reset))
    atexit.register(_drop, name)
    return _shared


def _literal(value: Any) -> str:
    from psycopg import sql
    return sql.Literal(value).as_string(None)


def fresh_database() -> str:
    """The URL of the run's database, emptied back to its migrated state."""
    import psycopg
    name, url, reset = _shared_database()
    with contextlib.closing(psycopg.connect(url, autocommit=True)) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        conn.execute(reset.encode())
    return url


def own_database() -> dict[str, str]:
    """Settings for an app that outlives one test (a module's fixture): on PostgreSQL a
    database of its own, which the per-test emptying leaves alone; {} on SQLite."""
    if ENGINE != "postgresql":
        return {}
    url = separate_database()
    atexit.register(drop_database, url)
    return {"DB": url}


def env_of(config: dict[str, str]) -> dict[str, str]:
    """The environment that gives a server started by a test the same database."""
    return {f"GOATCOUNTER_{k}": v for k, v in config.items()}


def separate_database() -> str:
    """The URL of a new migrated database of its own (for a test that needs two)."""
    from goatcounter.storage import db
    url = empty_database()
    conn = db.connect(url)
    try:
        db.migrate(conn)
    finally:
        conn.close()
    return url


def empty_database() -> str:
    """The URL of a new database without any tables."""
    name = f"gctest_{os.getpid()}_{next(_counter)}"
    with contextlib.closing(_admin_conn()) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _url_for(name)


def _drop(name: str) -> None:
    from goatcounter.storage import postgres
    with contextlib.suppress(Exception):
        postgres.close_pools(name)
    with contextlib.suppress(Exception), contextlib.closing(_admin_conn()) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_database(url: str) -> None:
    """Remove a database made by fresh_database (closing whatever is still connected)."""
    import psycopg.conninfo
    _drop(psycopg.conninfo.conninfo_to_dict(url)["dbname"])


def connect(app: Flask) -> Any:
    """A connection of the test's own to the app's database (rows by index or name)."""
    from goatcounter.storage import db
    return db.connect(app.config.get("DB_URL") or app.config["DB_PATH"])


def query_url(url: str, sql: str, args: Any = ()) -> list[Any]:
    """Rows of `sql` on the database at `url` (a SQLite file or a postgresql:// URL)."""
    from goatcounter.storage import db
    conn = db.connect(url)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def query(app: Flask, sql: str, args: Any = ()) -> list[Any]:
    """Rows of `sql` on the app's database, on a connection of its own."""
    from goatcounter.storage import db
    url = app.config.get("DB_URL")
    conn = db.connect(url) if url else None
    if conn is None:
        import sqlite3
        with contextlib.closing(sqlite3.connect(app.config["DB_PATH"])) as plain:
            plain.row_factory = sqlite3.Row
            return plain.execute(sql, args).fetchall()
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def dump(conn: Any) -> str:
    """Every row of every table as text (SQLite's iterdump, or its like here)."""
    from goatcounter.storage import db
    if db.engine(conn) != "postgresql":
        return "\n".join(conn.iterdump())
    from goatcounter.storage import postgres
    lines = []
    for table in postgres.tables(conn):
        for row in conn.raw.execute(f'SELECT * FROM "{table}"'):
            lines.append(f"{table}: {tuple(row)!r}")
    return "\n".join(lines)


def set_json(app: Flask, table: str, column: str, key: str, value: Any,
             row_id: int | None = None) -> None:
    """Set one key of a JSON text column (of every row, or of one), as a test's set-up."""
    import json

    from goatcounter.storage import db
    where = "" if row_id is None else " WHERE id = :id"
    with app.app_context():
        def run(conn: Any) -> None:
            for row in conn.execute(f"SELECT id, {column} FROM {table}{where}", {"id": row_id}):
                data = json.loads(row[1])
                data[key] = value
                conn.execute(f"UPDATE {table} SET {column} = :v WHERE id = :id",
                             {"v": json.dumps(data), "id": row[0]})
        db.write(run)


def select(items: list[pytest.Item]) -> None:
    """Skip, on a PostgreSQL run, the tests that are about SQLite itself."""
    if ENGINE != "postgresql":
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))
