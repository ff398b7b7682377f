"""Imports uploaded on the settings page, run in the background.

The upload is checked (a GoatCounter CSV export, gzipped or not, within the size
limit), kept in the instance folder and queued (table import_uploads); the request
answers at once. Each worker's background thread (counting/pending.py) calls
`Worker.tick` when idle: the worker holding an upload reads it on for about two seconds,
storing a batch at a time with the import's position (import_runs, the same record as
`goatcounter import`), then lets the thread count pixel pageviews again. A worker that
stops (a restart, a crash) leaves the upload to the next one once its lease runs out,
which goes on after the last batch stored.
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import secrets
import shutil
import sqlite3
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from flask import Flask, current_app

from goatcounter import clock
from goatcounter.accounts import sites
from goatcounter.exports import import_runs, importer
from goatcounter.exports.csvformat import Record, VersionError, read
from goatcounter.storage import db

log = logging.getLogger(__name__)

# How long a worker holds an upload without a word before another may take it over
# (IMPORT_LEASE_SECONDS); each tick renews it.
LEASE = 60
# How long one tick reads on before the background thread gets to count pageviews.
SLICE = 2.0
# Rows stored per transaction: each holds the write lock that counting waits for.
BATCH = 250
_COLUMNS = ("id, site_id, user_id, name, path, size, force, import_id, state, error,"
            " lease_until, created_at, updated_at")


class UploadError(ValueError):
    """An upload that can't be imported, and why (for the form)."""


def _lease() -> int:
    return int(current_app.config.get("IMPORT_LEASE_SECONDS", LEASE))


# Accepting an upload -------------------------------------------------------------------

def folder() -> str:
    path = current_app.config["IMPORT_PATH"]
    os.makedirs(path, mode=0o700, exist_ok=True)
    return str(path)


def check(raw: IO[bytes]) -> None:
    """Refuse a file that is not a CSV export of the version `goatcounter import` reads:
    its first line must be the export's header (read from the start, gunzipped when it
    starts like gzip). Leaves `raw` at its start."""
    try:
        with importer.text_of(raw) as text:
            records = read(io.StringIO(text.readline(64 * 1024)))
            next(records, None)
    except VersionError as exc:
        raise UploadError(f"this is not a GoatCounter CSV export: {exc}") from None
    except (OSError, EOFError, zlib.error, csv.Error) as exc:
        raise UploadError(f"this file can't be read as a CSV export (gzipped or not): {exc}") \
            from None
    finally:
        raw.seek(0)


def accept(conn: sqlite3.Connection, site: dict[str, Any], user_id: int, name: str,
           upload: IO[bytes], force: bool = False) -> dict[str, Any]:
    """Keep an uploaded export and queue its import; returns the upload's row. Raises
    UploadError (nothing is kept) when it is not an export."""
    check(upload)
    target = os.path.join(folder(), f"upload-{secrets.token_hex(12)}")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(upload, out, 1 << 20)
            size = out.tell()
        now = clock.now_text()
        row = db.write(lambda c: c.execute(
            "INSERT INTO import_uploads (site_id, user_id, name, path, size, force,"
            " created_at, updated_at) VALUES (:s, :u, :n, :p, :size, :f, :now, :now)"
            f" RETURNING {_COLUMNS}",
            {"s": site["id"], "u": user_id, "n": name[:300] or "upload.csv", "p": target,
             "size": size, "f": int(force), "now": now}).fetchone(), conn)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        raise
    return dict(row)


# Reading uploads and their state ------------------------------------------------------

def get(conn: sqlite3.Connection, site_id: int, upload_id: int) -> dict[str, Any] | None:
    """An upload of the site, with its import's numbers."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM import_uploads WHERE id = :id AND site_id = :s",
                       {"id": upload_id, "s": site_id}).fetchone()
    return None if row is None else _with_run(conn, dict(row))


def recent(conn: sqlite3.Connection, site_id: int, n: int = 10) -> list[dict[str, Any]]:
    """The site's latest uploads, newest first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM import_uploads WHERE site_id = :s"
                        " ORDER BY id DESC LIMIT :n", {"s": site_id, "n": n}).fetchall()
    return [_with_run(conn, dict(r)) for r in rows]


def _with_run(conn: sqlite3.Connection, upload: dict[str, Any]) -> dict[str, Any]:
    run = import_runs.get(conn, upload["import_id"]) if upload["import_id"] else None
    upload["run"] = run
    upload["refusals"] = import_runs.refusals(conn, run) if run and run.rows_refused else []
    return upload


def progress(upload: dict[str, Any]) -> dict[str, Any]:
    """The numbers the page shows while an import runs (and its script fetches)."""
    run = upload["run"]
    done = run.rows_done if run else 0
    # The total is counted in lines before the import; records may span lines.
    total = done if upload["state"] == "done" else max(done, run.rows_total if run else 0)
    return {"state": upload["state"], "error": upload["error"] or "",
            "done": done, "total": total,
            "imported": run.rows_imported if run else 0,
            "refused": run.rows_refused if run else 0,
            "hits": run.hits_counted if run else 0}


# Running them --------------------------------------------------------------------------

@dataclass
class _Open:
    """The upload this worker is reading: the file, its records and the importer."""

    upload: dict[str, Any]
    site: dict[str, Any]
    raw: IO[bytes]
    text_ctx: Any
    records: Iterator[Record]
    work: importer.Importer
    closed: bool = field(default=False)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                self.text_ctx.__exit__(None, None, None)
            with contextlib.suppress(Exception):
                self.raw.close()


class Worker:
    """Per process: the upload being imported, if any, carried from tick to tick."""

    def __init__(self) -> None:
        self.current: _Open | None = None
        self.pid = os.getpid()
        self._claimed_any = False

    def tick(self, app: Flask) -> bool:
        """Import on for about SLICE seconds, if there is anything to import; False when
        there was nothing this worker could take."""
        if self.pid != os.getpid():
            # A forked copy: the parent's open file is not ours to go on with.
            self.current, self.pid = None, os.getpid()
        with app.app_context():
            conn = db.get_db()
            claimed = self.current is None
            if claimed:
                self.current = self._claim(conn)
            if self.current is not None:
                self._work(conn, self.current)
                return True
            return claimed and self._claimed_any

    def _claim(self, conn: sqlite3.Connection) -> _Open | None:
        self._claimed_any = False
        now = int(clock.now())
        row = db.write(lambda c: c.execute(
            "UPDATE import_uploads SET state = 'running', lease_until = :until,"
            " updated_at = :text WHERE id = (SELECT id FROM import_uploads WHERE"
            " state IN ('queued', 'running') AND lease_until < :now ORDER BY id LIMIT 1)"
            f" RETURNING {_COLUMNS}",
            {"until": now + _lease(), "now": now, "text": clock.now_text()}).fetchone(), conn)
        if row is None:
            return None
        self._claimed_any = True
        upload = dict(row)
        try:
            return self._open(conn, upload)
        except Exception as exc:
            self._failed(conn, upload, None, exc)
            return None

    def _open(self, conn: sqlite3.Connection, upload: dict[str, Any]) -> _Open | None:
        site = sites.get(conn, upload["site_id"])
        if site is None or site["state"] != "a":
            raise UploadError("the site was removed")
        raw = open(upload["path"], "rb")  # noqa: SIM115 (kept open across ticks)
        try:
            run = self._run_of(conn, upload, raw)
        except import_runs.AlreadyImported as exc:
            raw.close()
            self._finish(conn, upload, "failed", f"{exc}; tick “import it again” to do so")
            return None
        except BaseException:
            raw.close()
            raise
        text_ctx = importer.text_of(raw)
        text = text_ctx.__enter__()
        records = read(text)
        # Records stored (or refused) before a restart are skipped, not stored again.
        for _ in range(run.rows_done):
            if next(records, None) is None:
                break
        work = importer.Importer(site, run, report=lambda message: None)
        work.batch_size = BATCH
        return _Open(upload, site, raw, text_ctx, records, work)

    def _run_of(self, conn: sqlite3.Connection, upload: dict[str, Any],
                raw: IO[bytes]) -> import_runs.Run:
        """The import's record: made now on the first look at the file (reading it once
        to recognise it), taken up again after a restart."""
        if upload["import_id"]:
            before = import_runs.get(conn, upload["import_id"])
            assert before is not None
            known = import_runs.Fingerprint(before.hash, before.size, before.rows_total + 1)
        else:
            known = importer.recognise(raw)
        run = db.write(lambda c: import_runs.begin(c, upload["site_id"], known, upload["name"],
                                                   bool(upload["force"])), conn)
        if run.id != upload["import_id"]:
            db.write(lambda c: c.execute("UPDATE import_uploads SET import_id = :r WHERE id = :id",
                                         {"r": run.id, "id": upload["id"]}), conn)
            upload["import_id"] = run.id
        return run

    def _work(self, conn: sqlite3.Connection, job: _Open) -> None:
        deadline = time.monotonic() + SLICE
        try:
            for record in job.records:
                job.work.add(record)
                # Stop only right after a batch was stored, so nothing waits in memory.
                if not job.work.records and time.monotonic() > deadline:
                    self._renew(conn, job)
                    return
            job.work.flush(finished=True)
        except import_runs.Conflict:
            # Another worker took the upload over (ours went quiet too long): its run
            # goes on; this one stops without storing anything of its own.
            job.close()
            self.current = None
            return
        except Exception as exc:
            job.close()
            self.current = None
            self._failed(conn, job.upload, job.work.job, exc)
            return
        job.close()
        self.current = None
        self._finish(conn, job.upload, "done", None)

    def _renew(self, conn: sqlite3.Connection, job: _Open) -> None:
        db.write(lambda c: c.execute(
            "UPDATE import_uploads SET lease_until = :until, updated_at = :now WHERE id = :id",
            {"until": int(clock.now()) + _lease(), "now": clock.now_text(),
             "id": job.upload["id"]}), conn)

    def _failed(self, conn: sqlite3.Connection, upload: dict[str, Any],
                run: import_runs.Run | None, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, UploadError | VersionError) \
            else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, UploadError | VersionError):
            log.exception("import of upload %s failed", upload["id"])
        if run is not None:
            db.write(lambda c: import_runs.fail(c, run, reason), conn)
        self._finish(conn, upload, "failed", reason)

    def _finish(self, conn: sqlite3.Connection, upload: dict[str, Any], state: str,
                error: str | None) -> None:
        db.write(lambda c: c.execute(
            "UPDATE import_uploads SET state = :state, error = :e, lease_until = 0,"
            " updated_at = :now WHERE id = :id",
            {"state": state, "e": error, "now": clock.now_text(), "id": upload["id"]}), conn)
        # Done or not, the numbers stay in `imports`; the file is not needed any more.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(upload["path"])


def run_all(app: Flask, worker: Worker | None = None) -> None:
    """Import every upload that no other worker holds, now (for tests)."""
    worker = worker or Worker()
    while worker.tick(app):
        pass


def init_app(app: Flask) -> None:
    """Let each worker's background thread import uploads, and start that thread on the
    first request of any kind, so an import that was running goes on after a restart."""
    drainer = app.extensions["goatcounter_pending"]
    drainer.idle_jobs.append(Worker().tick)
    app.before_request(drainer.wake)
