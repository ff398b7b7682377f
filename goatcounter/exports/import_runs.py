"""The record of each import (table `imports`): which file went into which site, how far
it got, and why rows were refused.

A run's position (`rows_done`: records of the file dealt with) moves only inside the
transaction that stores the rows it covers, and only from the position the run started
that batch at, so whatever stops an import, running it again resumes exactly after the
last row stored: nothing is lost and nothing doubled, and two runs of one import at once
can't both store a batch. The command line uses it today; an upload on the settings
page can start the same record, run it in the background and show it.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import sqlite3
from typing import IO, Any

from goatcounter import clock

# Reasons kept per import; rows_refused counts every refused row.
REFUSALS_KEPT = 1000
_CHUNK = 1 << 20
_COLUMNS = ("id, site_id, hash, name, size, rows_total, rows_done, rows_imported,"
            " rows_refused, hits_counted, state, error, started_at, updated_at, finished_at")


class AlreadyImported(Exception):
    """The file was imported into the site before."""

    def __init__(self, previous: Run) -> None:
        super().__init__(f"already imported into site {previous.site_id} (import"
                         f" {previous.id}, finished {previous.finished_at})")
        self.previous = previous


class Conflict(Exception):
    """Another run of the same import stored rows meanwhile."""


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """A file's content (after gunzip), as recorded: its hash, size and line count."""

    hash: str
    size: int
    lines: int


@dataclasses.dataclass
class Run:
    """One row of `imports`."""

    id: int
    site_id: int
    hash: str
    name: str
    size: int
    rows_total: int
    rows_done: int
    rows_imported: int
    rows_refused: int
    hits_counted: int
    state: str
    error: str | None
    started_at: str
    updated_at: str
    finished_at: str | None
    resumed: bool = False


def fingerprint(content: IO[bytes] | gzip.GzipFile) -> Fingerprint:
    """Hash, size and number of lines of a file's content, read in bounded pieces."""
    digest, size, lines, last = hashlib.sha256(), 0, 0, b"\n"
    while chunk := content.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    # A last line without a newline is a line too.
    return Fingerprint(digest.hexdigest(), size, lines + (last != b"\n"))


def _row(row: sqlite3.Row | None) -> Run | None:
    return None if row is None else Run(**dict(row))


def get(conn: sqlite3.Connection, import_id: int) -> Run | None:
    """The import with this id."""
    return _row(conn.execute(f"SELECT {_COLUMNS} FROM imports WHERE id = :id",
                             {"id": import_id}).fetchone())


def begin(conn: sqlite3.Connection, site_id: int, file: Fingerprint, name: str,
          force: bool = False) -> Run:
    """The run that imports `file` into a site: the unfinished one if there is one (its
    `resumed` set), else a new one. Raises AlreadyImported for a file imported before,
    unless `force` (then it is imported again). Call inside a write transaction."""
    last = _row(conn.execute(
        f"SELECT {_COLUMNS} FROM imports WHERE site_id = :s AND hash = :h"
        " ORDER BY id DESC LIMIT 1", {"s": site_id, "h": file.hash}).fetchone())
    if last is not None and last.state != "done":
        now = clock.now_text()
        conn.execute("UPDATE imports SET state = 'running', error = NULL, updated_at = :now"
                     " WHERE id = :id", {"now": now, "id": last.id})
        return dataclasses.replace(last, state="running", error=None, updated_at=now,
                                   resumed=True)
    if last is not None and not force:
        raise AlreadyImported(last)
    now = clock.now_text()
    row = conn.execute(
        "INSERT INTO imports (site_id, hash, name, size, rows_total, started_at, updated_at)"
        " VALUES (:s, :h, :name, :size, :total, :now, :now)"
        f" RETURNING {_COLUMNS}",
        {"s": site_id, "h": file.hash, "name": name, "size": file.size,
         "total": max(0, file.lines - 1), "now": now}).fetchone()
    run = _row(row)
    assert run is not None
    return run


def advance(conn: sqlite3.Connection, run: Run, rows: int, imported: int, hits: int,
            refusals: list[tuple[int, str]], finished: bool = False) -> None:
    """Record, in the transaction that stored them, that `rows` more records were dealt
    with: `imported` stored (`hits` counted) and `refusals` (line, reason) refused; with
    `finished` the import is done. Raises Conflict when another run moved it meanwhile
    (the transaction must then be rolled back)."""
    now = clock.now_text()
    moved = conn.execute(
        "UPDATE imports SET rows_done = rows_done + :rows,"
        " rows_imported = rows_imported + :imported, rows_refused = rows_refused + :refused,"
        " hits_counted = hits_counted + :hits, updated_at = :now,"
        " state = CASE WHEN :finished = 1 THEN 'done' ELSE state END,"
        " finished_at = CASE WHEN :finished = 1 THEN :now ELSE finished_at END"
        " WHERE id = :id AND rows_done = :was AND state = 'running'",
        {"rows": rows, "imported": imported, "refused": len(refusals), "hits": hits,
         "now": now, "finished": finished, "id": run.id, "was": run.rows_done}).rowcount
    if not moved:
        raise Conflict(f"another run of import {run.id} stored rows meanwhile; this one"
                       " stopped without storing any of its own")
    room = max(0, REFUSALS_KEPT - run.rows_refused)
    conn.executemany("INSERT INTO import_refusals (import_id, line, reason) VALUES (?, ?, ?)",
                     [(run.id, line, reason) for line, reason in refusals[:room]])


def advanced(run: Run, rows: int, imported: int, hits: int, refused: int,
             finished: bool = False) -> Run:
    """`run` as it is after `advance` committed."""
    return dataclasses.replace(
        run, rows_done=run.rows_done + rows, rows_imported=run.rows_imported + imported,
        rows_refused=run.rows_refused + refused, hits_counted=run.hits_counted + hits,
        state="done" if finished else run.state)


def fail(conn: sqlite3.Connection, run: Run, error: str) -> None:
    """Mark a run stopped by an error; running it again resumes it."""
    conn.execute("UPDATE imports SET state = 'failed', error = :e, updated_at = :now"
                 " WHERE id = :id AND state = 'running'",
                 {"e": error, "now": clock.now_text(), "id": run.id})


def refusals(conn: sqlite3.Connection, run: Run) -> list[dict[str, Any]]:
    """The reasons kept for the rows an import refused, by line."""
    return [dict(r) for r in conn.execute(
        "SELECT line, reason FROM import_refusals WHERE import_id = :id ORDER BY line",
        {"id": run.id})]
