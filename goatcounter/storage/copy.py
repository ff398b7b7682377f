"""Moving an installation from SQLite to PostgreSQL: every table, every row, every id.

The target gets the schema from its own migrations first; then each table the two
schemas share is copied column by column (COPY, in one transaction, so a copy that
fails halfway leaves nothing behind), and the sequences are moved past the copied ids
so that new rows never take an id that is already there.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from goatcounter.storage import db

BATCH = 10_000


class NotEmpty(Exception):
    """The target database already holds data (and --force was not given)."""


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                        " AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
    return [r[0] for r in rows]


def plan(source: sqlite3.Connection, target: Any) -> list[tuple[str, list[str], int]]:
    """(table, columns, rows) of every table to copy: those both schemas have, with the
    columns both have. The migration record stays the target's own."""
    pg = db._postgres()
    theirs_tables = set(_sqlite_tables(source))
    out = []
    for table in pg.tables_by_age(target):
        if table == "schema_migrations" or table not in theirs_tables:
            continue
        names = [r[1] for r in source.execute(f'PRAGMA table_info("{table}")')]
        theirs = pg.columns(target, table)
        cols = [c for c in names if c in theirs]
        count = source.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        out.append((table, cols, count))
    return out


# Rows the migrations put in (the empty referrer): not data of a site.
SEEDED = {"refs": 1, "id_epoch": 1}


def occupied(target: Any) -> list[str]:
    """Tables of the target that hold rows beyond what its migrations put in."""
    pg = db._postgres()
    out = []
    for table in pg.tables(target):
        if table == "schema_migrations":
            continue
        count = target.raw.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        if count > SEEDED.get(table, 0):
            out.append(table)
    return out


def _rows(source: sqlite3.Connection, table: str, cols: list[str]) -> Iterator[tuple]:
    names = ", ".join(f'"{c}"' for c in cols)
    cur = source.execute(f'SELECT {names} FROM "{table}"')
    while True:
        chunk = cur.fetchmany(BATCH)
        if not chunk:
            return
        yield from (tuple(r) for r in chunk)


def copy(source: sqlite3.Connection, target: Any, force: bool = False,
         progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Copy every row of `source` (SQLite) into `target` (PostgreSQL, migrated here).
    Refuses a target with data unless `force`, which empties it first. Returns the rows
    copied per table; `progress` is called with the rows done since its last call."""
    pg = db._postgres()
    db.migrate(target)
    busy = occupied(target)
    if busy and not force:
        raise NotEmpty(", ".join(busy))
    tables = plan(source, target)
    done: dict[str, int] = {}
    source.execute("BEGIN DEFERRED")  # one snapshot of the source for every table
    try:
        target.begin(True)
        try:
            everything = [t for t in pg.tables(target) if t != "schema_migrations"]
            target.raw.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in everything))
            for table, cols, _count in tables:
                n = 0
                for batch in _batches(_rows(source, table, cols)):
                    pg.copy_rows(target, table, cols, batch)
                    n += len(batch)
                    if progress:
                        progress(len(batch))
                done[table] = n
            pg.set_sequences(target)
            target.commit()
        except BaseException:
            target.rollback()
            raise
    finally:
        source.execute("ROLLBACK")
    return done


def _batches(rows: Iterator[tuple]) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
