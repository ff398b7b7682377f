"""Which database engine the tests run on, and a fresh PostgreSQL database per test.

`pytest --engine postgresql` (or GOATCOUNTER_TEST_ENGINE=postgresql) runs every test on
PostgreSQL: each test gets a database cloned from one migrated template (a clone costs
far less than migrating), on the server named by GOATCOUNTER_TEST_POSTGRESQL (a URL of
a role that may create databases). Tests that are about SQLite itself carry
`@pytest.mark.sqlite_only(reason)` and are skipped there. Tests of PostgreSQL alone
(`@pytest.mark.postgresql`) run on either engine's run when a server is configured;
without one a local run skips them with a message, and CI (CI=true) fails instead.
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
_template: str | None = None


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


def _ensure_template() -> str:
    global _template
    if _template is not None:
        return _template
    from goatcounter.storage import db
    name = f"gctest_{os.getpid()}_template"
    with contextlib.closing(_admin_conn()) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    migrated = db.connect(_url_for(name))
    try:
        db.migrate(migrated)
    finally:
        migrated.close()
    _template = name
    atexit.register(_drop, name)
    return name


def fresh_database() -> str:
    """The URL of a new database with the current schema."""
    template = _ensure_template()
    name = f"gctest_{os.getpid()}_{next(_counter)}"
    with contextlib.closing(_admin_conn()) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return _url_for(name)


def empty_database() -> str:
    """The URL of a new database without any tables."""
    name = f"gctest_{os.getpid()}_{next(_counter)}"
    with contextlib.closing(_admin_conn()) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _url_for(name)


def _drop(name: str) -> None:
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
