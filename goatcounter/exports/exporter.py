"""Exports: a site's hits written as a gzipped CSV file (GoatCounter's format version 2),
the records the API shows for them, and how long their files are kept.

An export is written while the request waits, then recorded, so a record always
describes a complete file. Files live in one folder (EXPORT_PATH) and are deleted
EXPORT_RETENTION_HOURS after they were finished; their records stay. A file missing
within that time (written by another app server, or removed by hand) is written again
from the same hits, and served only if it comes out as the recorded one.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import hashlib
import itertools
import os
import queue
import re
import secrets
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from flask import Flask, current_app

from goatcounter import clock
from goatcounter.errors import Gone
from goatcounter.exports.csvformat import (
    HEADER,
    date_text,
    escape_formula,
    line,
    name_version,
    quote,
    session_text,
    size_text,
)
from goatcounter.storage import db

FORMAT_CSV = "csv"
FILE_PREFIX = "goatcounter-export-"
# Rows fetched and written at a time: enough to keep the per-call overhead small, few
# enough that memory stays flat however many hits a site has.
BATCH = 5000
# Go's default gzip level, which upstream writes with.
GZIP_LEVEL = 6
# Bytes of CSV handed to the compressing thread at a time.
CHUNK = 1 << 21
# Cells of paths, referrers, browsers and systems are formatted once and remembered;
# past this many the memo starts over, so a site with millions of distinct paths
# doesn't grow the export's memory.
MEMO_LIMIT = 50_000

_COLUMNS = ("id, site_id, format, start_from_hit_id, last_hit_id, path, created_at,"
            " finished_at, num_rows, size, hash, error")


@dataclasses.dataclass
class Written:
    """What writing an export file produced."""

    rows: int
    last_hit_id: int
    size: int
    sha256: str


# Settings ----------------------------------------------------------------------------

def export_dir() -> str:
    """The folder of export files, made absolute and resolved."""
    return os.path.realpath(current_app.config["EXPORT_PATH"])


def retention_hours() -> int:
    return int(current_app.config["EXPORT_RETENTION_HOURS"])


def gone_message() -> str:
    hours = retention_hours()
    return (f"exports are kept for {hours} hour{'' if hours == 1 else 's'}; this export "
            "file has been deleted")


# Records -----------------------------------------------------------------------------

def to_api(row: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    """The Export object (spec 11.1). `error` is only there when the export failed: a
    successful reply never carries an `error` key (clients reject it even as null)."""
    out = {
        "id": row["id"],
        "site_id": row["site_id"],
        "format": row["format"],
        "start_from_hit_id": row["start_from_hit_id"],
        "last_hit_id": row["last_hit_id"],
        "path": row["path"],
        "created_at": row["created_at"],
        "finished_at": row["finished_at"],
        "num_rows": row["num_rows"],
        "size": row["size"],
        "hash": row["hash"],
    }
    if row["error"] is not None:
        out["error"] = row["error"]
    return out


def get(conn: sqlite3.Connection, site_id: int, export_id: int) -> sqlite3.Row | None:
    """The export `export_id` of this site; None for another site's or a missing one."""
    return conn.execute(f"SELECT {_COLUMNS} FROM exports WHERE id = :id AND site_id = :site",
                        {"id": export_id, "site": site_id}).fetchone()


def size_mib(size: int) -> str:
    """The size as upstream reports it: MiB with one decimal, never "0.0"."""
    text = f"{size / 1024 / 1024:.1f}"
    return "0.1" if text == "0.0" else text


def create(conn: sqlite3.Connection, site: dict[str, Any], start_from_hit_id: int) -> sqlite3.Row:
    """Write the CSV export of the site's hits after `start_from_hit_id` and record it.
    Returns the finished record. On failure the partial file is removed and nothing is
    recorded."""
    purge(conn)
    created = int(clock.now())
    path, fd = _reserve(conn, export_dir(), site["code"], created, start_from_hit_id)
    try:
        with os.fdopen(fd, "wb") as fp:
            written = write_csv(conn, site["id"], start_from_hit_id, fp)
            fp.flush()
            # The reply says the file is complete; make it so on disk too.
            os.fsync(fp.fileno())
    except BaseException:
        _unlink(path)
        raise
    record = {
        "site": site["id"], "format": FORMAT_CSV, "start": start_from_hit_id,
        "last": written.last_hit_id, "path": path, "created": clock.rfc3339(created),
        "finished": clock.rfc3339(int(clock.now())), "rows": written.rows,
        "size": size_mib(written.size), "hash": "sha256-" + written.sha256,
    }
    try:
        return db.write(lambda c: c.execute(
            "INSERT INTO exports (site_id, format, start_from_hit_id, last_hit_id, path,"
            " created_at, finished_at, num_rows, size, hash) VALUES (:site, :format, :start,"
            f" :last, :path, :created, :finished, :rows, :size, :hash) RETURNING {_COLUMNS}",
            record).fetchone(), conn)
    except BaseException:
        _unlink(path)
        raise


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def file_name(code: str, created: int, start_from_hit_id: int, n: int = 1) -> str:
    """`goatcounter-export-<site code>-<YYYYMMDDTHHMMSSZ>-<start>.csv.gz`, as upstream;
    the n-th export with the same name gets `-<n>` before the extension."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created))
    suffix = f"-{n}" if n > 1 else ""
    return f"{FILE_PREFIX}{_UNSAFE.sub('_', code)}-{stamp}-{start_from_hit_id}{suffix}.csv.gz"


def _reserve(conn: sqlite3.Connection, directory: str, code: str, created: int,
             start_from_hit_id: int) -> tuple[str, int]:
    """A new file for an export, created exclusively (two workers can't both get one
    name), and never the name of an earlier export whose file was purged."""
    os.makedirs(directory, exist_ok=True)
    for n in itertools.count(1):
        path = os.path.join(directory, file_name(code, created, start_from_hit_id, n))
        if conn.execute("SELECT 1 FROM exports WHERE path = :path", {"path": path}).fetchone():
            continue
        try:
            return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# Writing the CSV ---------------------------------------------------------------------

class _Memo(dict):
    """Formatted cells by key, made on first use by `make`; at most `limit` of them
    (MEMO_LIMIT without one)."""

    def __init__(self, make: Callable[[Any], str], limit: int | None = None) -> None:
        super().__init__()
        self._make = make
        self._limit = limit

    def __missing__(self, key: Any) -> str:
        if len(self) >= (self._limit or MEMO_LIMIT):
            self.clear()
        value = self[key] = self._make(key)
        return value


class _RowCells(dict):
    """Formatted cells of a table's rows by id. At the first id of a batch of hits that
    isn't known yet, every unknown one of the batch is read, in one statement: a site
    may have hundreds of thousands of paths and referrers."""

    def __init__(self, conn: sqlite3.Connection, sql: str, column: int,
                 make: Callable[[tuple], str], absent: str) -> None:
        super().__init__()
        self._conn, self._sql, self._column = conn, sql, column
        self._make, self._absent = make, absent
        self.batch: Iterable[tuple] = ()

    def __missing__(self, key: Any) -> str:
        ids = {row[self._column] for row in self.batch}.difference(self)
        ids.add(key)
        if len(self) + len(ids) > MEMO_LIMIT:
            self.clear()
        for row_id in ids:
            self[row_id] = self._absent
        found = [i for i in ids if i is not None]
        if found:
            for row in db.tuples(self._conn, self._sql, {"ids": db.list_param(sorted(found))}):
                self[row[0]] = self._make(row)
        return self[key]


def _path_cells(conn: sqlite3.Connection) -> _RowCells:
    # The path's title, not the hit's: a path keeps the first title it was seen with.
    return _RowCells(
        conn, f"SELECT id, path, title, event FROM paths WHERE {db.in_list('id', 'ids')}",
        1, lambda row: f"{quote(row[1])},{quote(row[2])},{1 if row[3] else 0}", ",,0")


def _ref_cells(conn: sqlite3.Connection) -> _RowCells:
    return _RowCells(
        conn, f"SELECT id, ref, ref_scheme FROM refs WHERE {db.in_list('id', 'ids')}",
        2, lambda row: f"{quote(row[1])},{quote(row[2])}", ",")


def _name_cells(conn: sqlite3.Connection, table: str) -> _Memo:
    # `table` is browsers or systems, a fixed name. A hit without a row has an empty
    # cell; a row with empty name and version is a lone space.
    def make(row_id: int | None) -> str:
        if row_id is None:
            return ""
        row = conn.execute(f"SELECT name, version FROM {table} WHERE id = :id",
                           {"id": row_id}).fetchone()
        return quote(name_version(row[0], row[1])) if row else ""
    return _Memo(make)


class _Gzip:
    """A gzip stream written to `fp`, counting the size and SHA-256 of what it writes.

    The compressing, hashing and writing run in a thread of their own: zlib and hashlib
    let go of the GIL while they work on a large buffer, so the next rows are read and
    formatted meanwhile (gzip at level 6 costs as much as everything else together).
    Text is handed over in pieces of about CHUNK bytes, at most one waiting, which keeps
    memory flat; how it is cut doesn't change the bytes zlib writes.
    """

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp
        self.size = 0
        self.hash = hashlib.sha256()
        # wbits 31: a gzip header and trailer around the deflate data.
        self._zip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="export-gzip", daemon=True)
        self._thread.start()

    def __enter__(self) -> _Gzip:
        return self

    def __exit__(self, *exc: object) -> None:
        # On an error of the caller, the thread stops after what it was given.
        self._stop()

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= CHUNK:
            self._send()

    def close(self) -> None:
        """Compress what is left and end the stream; raises what the thread met."""
        self._send()
        self._stop()
        if self._error is not None:
            raise self._error

    def _send(self) -> None:
        if self._error is not None:
            raise self._error
        if self._pending:
            self._queue.put(b"".join(self._pending))
            self._pending, self._pending_size = [], 0

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            # After an error it still takes what comes, so the writer never waits on it.
            if self._error is None:
                try:
                    self._out(self._zip.compress(data))
                except BaseException as exc:
                    self._error = exc
        if self._error is None:
            try:
                self._out(self._zip.flush())
            except BaseException as exc:
                self._error = exc

    def _out(self, data: bytes) -> None:
        if data:
            self.fp.write(data)
            self.hash.update(data)
            self.size += len(data)


_SELECT_HITS = (
    "SELECT id, path_id, ref_id, browser_id, system_id, session, width, location,"
    " first_visit, created_at FROM hits WHERE site_id = :site AND id > :after ORDER BY id")
# A batch of them at a time, the next after the last one's id: bounded memory on both
# engines (a PostgreSQL cursor would hold the whole result), each batch found by the
# index on (site_id, id).
_SELECT_BATCH = _SELECT_HITS + " LIMIT :n"
# The same, up to the last hit of an export written before.
_SELECT_BATCH_THROUGH = _SELECT_BATCH.replace(" ORDER BY", " AND id <= :through ORDER BY")


def write_csv(conn: sqlite3.Connection, site_id: int, start_from_hit_id: int,
              fp: BinaryIO, through: int | None = None) -> Written:
    """Write the gzipped CSV of the site's hits with an id above `start_from_hit_id`
    (and at most `through`), in id order, to `fp`. One read transaction: the file is one
    consistent snapshot."""
    rows = 0
    last = start_from_hit_id
    sql = _SELECT_BATCH if through is None else _SELECT_BATCH_THROUGH
    with _Gzip(fp) as out, db.read(conn):
        out.write(HEADER.encode())
        format_rows = _row_formatter(conn)
        while batch := db.tuples(conn, sql, {"site": site_id, "after": last,
                                             "through": through, "n": BATCH}):
            out.write(format_rows(batch).encode())
            rows += len(batch)
            last = batch[-1][0]
            if len(batch) < BATCH:
                break
        out.close()
    return Written(rows=rows, last_hit_id=last, size=out.size, sha256=out.hash.hexdigest())


def _row_formatter(conn: sqlite3.Connection) -> Callable[[Iterable[tuple]], str]:
    """A function from hit rows (as _SELECT_HITS) to their CSV text. UserAgent is always
    empty and Bot always 0: bots are never stored as hits, and neither are user agents."""
    paths, refs = _path_cells(conn), _ref_cells(conn)
    browsers, systems = _name_cells(conn, "browsers"), _name_cells(conn, "systems")
    places, sizes = _Memo(quote), _Memo(lambda w: quote(size_text(w)))
    # Many hits share a minute: the date is its minute's text, made once, and the
    # seconds after it. Hits come in about the order of their times, so few minutes are
    # worth keeping. (Sessions are too many to remember: made each time, it is quicker.)
    minutes = _Memo(lambda minute: date_text(minute * 60)[:-3], limit=1000)

    def format_rows(batch: Iterable[tuple]) -> str:
        paths.batch = refs.batch = batch
        return "".join([
            f"{paths[p]},,{browsers[b]},{systems[s]},{session_text(session)},0,{refs[r]},"
            f"{sizes[w]},{places[loc]},{1 if first else 0},{minutes[at // 60]}"
            f"{_SECONDS[at % 60]}"
            for _, p, r, b, s, session, w, loc, first, at in batch])
    return format_rows


# The end of a Date cell and of its line, by the second of the minute.
_SECONDS = tuple(f"{second:02d}Z\n" for second in range(60))


def escaped(path: str) -> Iterator[bytes]:
    """The export file at `path` as a new gzip stream in which every cell that a
    spreadsheet would run as a formula starts with `'` (the file itself keeps the raw
    values, which GoatCounter's format and importers need). Read and written a batch
    at a time."""
    zipper = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    with gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape", newline="") as text:
        reader = csv.reader(text, strict=True)
        out: list[str] = []
        for record in reader:
            out.append(line(escape_formula(cell) for cell in record))
            if len(out) >= BATCH:
                yield zipper.compress("".join(out).encode("utf-8", "surrogateescape"))
                out = []
        yield zipper.compress("".join(out).encode("utf-8", "surrogateescape"))
    yield zipper.flush()


# Retention ---------------------------------------------------------------------------

def expired(row: sqlite3.Row | dict[str, Any], now: float | None = None) -> bool:
    """Whether an export's file is past its retention."""
    finished = row["finished_at"] or row["created_at"]
    age = (clock.now() if now is None else now) - clock.parse_rfc3339(finished).timestamp()
    return age > retention_hours() * 3600


def file_for_download(row: sqlite3.Row | dict[str, Any]) -> str:
    """The file of a finished export, if it is still kept: the one recorded, or one of
    its name in this server's folder, or written again (see `_write_again`). Raises Gone
    (410) for a file past its retention (deleting it if it is still there) or one that
    can't be had."""
    directory = export_dir()
    path = os.path.realpath(row["path"])
    # A record never leads outside the exports folder, whatever its path says.
    inside = os.path.commonpath([directory, path]) == directory and path != directory
    if expired(row):
        if inside:
            _unlink(path)
        raise Gone(gone_message())
    if inside and os.path.isfile(path):
        return path
    name = os.path.basename(path)
    if not _EXPORT_NAME.fullmatch(name):
        raise Gone(gone_message())
    here = os.path.join(directory, name)
    if os.path.isfile(here):
        return here
    return _write_again(row, here)


_EXPORT_NAME = re.compile(re.escape(FILE_PREFIX) + r"[A-Za-z0-9_.-]+\.csv\.gz")


def _write_again(row: sqlite3.Row | dict[str, Any], path: str) -> str:
    """Write an export's file again from its range of hits, at `path`. Several app
    servers share the database but not their folders, so a download may reach one that
    never had the file. Only a file whose SHA-256 is the recorded one is kept: if hits of
    the range were deleted or a path renamed since, the answer is 410."""
    conn = db.get_db()
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    # The prefix lets the retention purge remove what a killed worker left behind.
    partial = os.path.join(directory, f"{FILE_PREFIX}rewrite-{secrets.token_hex(8)}.partial")
    try:
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                       "wb") as fp:
            written = write_csv(conn, row["site_id"], row["start_from_hit_id"], fp,
                                through=row["last_hit_id"])
            fp.flush()
            os.fsync(fp.fileno())
        if "sha256-" + written.sha256 != row["hash"]:
            raise Gone("this export's file is not on this server, and the hits it held have"
                       " changed since it was made (deleted, or a path renamed): start a new"
                       " export")
        os.replace(partial, path)
    finally:
        _unlink(partial)
    return path


def purge(conn_or_app: sqlite3.Connection | Flask | None = None) -> int:
    """Delete the export files past EXPORT_RETENTION_HOURS; returns how many went.

    Files with a record age from the record's finish time (the server's clock); files
    without one (being written right now, or left by an export that died midway) from
    their modification time.
    With an app, runs in its own app context (for a periodic job); with a connection
    or nothing, in the current one.
    """
    if isinstance(conn_or_app, Flask):
        with conn_or_app.app_context():
            return purge(db.get_db())
    conn = conn_or_app or db.get_db()
    directory = export_dir()
    try:
        files = [e for e in os.scandir(directory)
                 if e.name.startswith(FILE_PREFIX) and e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    now = clock.now()
    limit = retention_hours() * 3600
    records = _records_by_path(conn, [e.path for e in files])
    removed = 0
    for entry in files:
        row = records.get(entry.path)
        old = expired(row, now) if row is not None \
            else now - entry.stat(follow_symlinks=False).st_mtime > limit
        if old:
            _unlink(entry.path)
            removed += 1
    return removed


def _records_by_path(conn: sqlite3.Connection, paths: list[str]) -> dict[str, sqlite3.Row]:
    """The newest record of each path."""
    out: dict[str, sqlite3.Row] = {}
    for start in range(0, len(paths), 500):
        chunk = paths[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(f"SELECT path, created_at, finished_at FROM exports"
                                f" WHERE path IN ({marks}) ORDER BY id", chunk):
            out[row["path"]] = row
    return out
