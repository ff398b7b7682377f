"""`goatcounter import`: read a CSV export (GoatCounter's format version 2, written by
GoatCounter or by this server, gzipped or not) into a site: its hits and the
aggregates the stats read.

Rows keep their session and first-visit flag, so the numbers come out as they were at
the source. A bad row is reported by its line number and skipped; the others go in.
Each batch is stored with the import's new position (import_runs), so an import that
was stopped goes on where it stopped, and no record is ever held whole in memory when
it is longer than csvformat.MAX_RECORD.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import math
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

import click

from goatcounter import clock
from goatcounter.collect import (
    COLLECT_LOCATION,
    COLLECT_LOCATION_REGION,
    COLLECT_REFERRER,
    COLLECT_SCREEN_SIZE,
    COLLECT_SESSION,
    COLLECT_USER_AGENT,
)
from goatcounter.counting import store
from goatcounter.counting.pipeline import locations, sizes, useragents
from goatcounter.counting.pipeline.process import Hit, valid_utf8, validate
from goatcounter.exports import import_runs
from goatcounter.exports.csvformat import (
    COLUMNS,
    Record,
    parse_name_version,
    parse_session,
    read,
)

# Hits stored per transaction: big enough to be quick, small enough that a running
# server's writers wait only briefly for each.
BATCH = 1000
SCHEMES = ("h", "g", "c", "o")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class RowError(ValueError):
    """A row that can't be imported, and why."""


def _bool(column: str, value: str) -> bool:
    # The values Go's strconv.ParseBool takes: upstream's help once wrote true/false.
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise RowError(f"{column}: must be a boolean, not {value!r}")


def _int(column: str, value: str) -> int:
    try:
        number = int(value or "0")
    except ValueError:
        raise RowError(f"{column}: must be a whole number, not {value[:40]!r}") from None
    # The same range as the API's numbers (Go's int64), which the database can hold.
    if not -(2**63) <= number < 2**63:
        raise RowError(f"{column}: out of range")
    return number


def _created_at(value: str) -> int:
    # Any year that can be written is read; validate() then refuses the ones before
    # 1990 or in the future, as the API does.
    try:
        ts = clock.parse_rfc3339_seconds(value)
    except ValueError:
        raise RowError(f"Date: not an RFC 3339 time: {value[:40]!r}") from None
    # Half a second rounds up, as the counting pipeline does.
    return math.floor(ts + 0.5)


def _width(value: str) -> int:
    try:
        return sizes.width(value)
    except sizes.SizeError as exc:
        raise RowError(f"Screen size: {exc}") from None


def _session(value: str) -> bytes | None:
    try:
        return parse_session(value)
    except ValueError:
        raise RowError(f"Session: not a session id: {value[:40]!r}") from None


def hit_from_row(fields: list[str], now: float) -> Hit:
    """The hit of one CSV record. Raises RowError."""
    if len(fields) != len(COLUMNS):
        raise RowError(f"wrong number of fields: {len(fields)} (want: {len(COLUMNS)})")
    if not valid_utf8("".join(fields)):
        raise RowError("not valid UTF-8")
    (path, title, event, user_agent, browser, system, session, bot, ref, scheme, size,
     location, first_visit, date) = fields
    if scheme and scheme not in SCHEMES:
        raise RowError(f"Referrer scheme: must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    created_at = _created_at(date)
    problem = validate(path, title, ref, user_agent, created_at, now, location=location)
    if problem:
        raise RowError(problem.replace("\n", " ").strip())
    found_browser, found_system = parse_name_version(browser), parse_name_version(system)
    if found_browser is None and found_system is None and user_agent:
        # Exports have always left UserAgent empty, but a file made by hand may not.
        found_browser, found_system = useragents.parse(user_agent)
    return Hit(
        path=path, title=title, event=_bool("Event", event), ref=ref,
        ref_scheme=scheme or "o", campaign="", width=_width(size), bot=max(0, _int("Bot", bot)),
        browser=found_browser, system=found_system, location=location, language="",
        user_agent=user_agent, session_key=None, created_at=created_at,
        session=_session(session), first_visit=_bool("FirstVisit", first_visit))


def apply_collect(hit: Hit, settings: dict[str, Any]) -> Hit:
    """Drop what the site doesn't collect, as counting would have."""
    collect = settings["collect"]
    if not collect & COLLECT_REFERRER:
        hit.ref, hit.ref_scheme = "", "o"
    if not collect & COLLECT_USER_AGENT:
        hit.browser = hit.system = None
    if not collect & COLLECT_SCREEN_SIZE:
        hit.width = 0
    if not collect & COLLECT_LOCATION:
        hit.location = ""
    regions = [r.strip() for r in str(settings.get("collect_regions", "")).split(",")
               if r.strip()]
    hit.location = locations.keep_region(
        hit.location, bool(collect & COLLECT_LOCATION_REGION), regions)
    if not collect & COLLECT_SESSION:
        hit.session, hit.first_visit = None, True
    return hit


# Reading the file --------------------------------------------------------------------

@contextlib.contextmanager
def source(name: str) -> Iterator[IO[bytes]]:
    """The file `name` as a seekable binary file; `-` is standard input, copied to a
    temporary file first (it is read twice: once to recognise it, once to import it)."""
    if name != "-":
        with open(name, "rb") as fh:
            yield fh
        return
    with tempfile.TemporaryFile(prefix="goatcounter-import-") as copy:
        shutil.copyfileobj(sys.stdin.buffer, copy, 1 << 20)
        copy.seek(0)
        yield copy


@contextlib.contextmanager
def content(raw: IO[bytes]) -> Iterator[IO[bytes] | gzip.GzipFile]:
    """A file's bytes from the start, gunzipped when it starts like a gzip file."""
    raw.seek(0)
    if raw.read(2) != b"\x1f\x8b":
        raw.seek(0)
        yield raw
        return
    raw.seek(0)
    with gzip.GzipFile(fileobj=raw) as unzipped:
        yield unzipped


@contextlib.contextmanager
def text_of(raw: IO[bytes]) -> Iterator[IO[str]]:
    """A file's content as text, for csvformat.read."""
    with content(raw) as binary:
        # Bytes that aren't UTF-8 become lone surrogates, so that only their row is bad.
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape",
                                newline="")
        try:
            yield text
        finally:
            # Closing the wrapper would close the file under it.
            text.detach()


def recognise(raw: IO[bytes]) -> import_runs.Fingerprint:
    """What identifies a file's content (and how many lines it has), read once."""
    with content(raw) as binary:
        return import_runs.fingerprint(binary)


# Storing -----------------------------------------------------------------------------

class Importer:
    """Collects good rows into batches and stores them with the import's new position;
    counts and reports bad rows."""

    def __init__(self, site: dict[str, Any], job: import_runs.Run,
                 report: Callable[[str], None] | None = None) -> None:
        self.site = site
        self.job = job
        self.report = report or (lambda message: click.echo(message, err=True))
        self.batch: list[Hit] = []
        self.refused: list[tuple[int, str]] = []
        self.records = 0
        self.now = clock.now()
        # Rows per transaction; a background import takes smaller ones, so that the
        # counting of pixel pageviews, which waits for the same lock, never waits long.
        self.batch_size = BATCH

    def add(self, record: Record) -> None:
        self.records += 1
        if record.error is not None:
            self._bad(record.line, record.error)
        else:
            try:
                hit = hit_from_row(record.fields, self.now)
            except RowError as exc:
                self._bad(record.line, str(exc))
            else:
                self.batch.append(apply_collect(hit, self.site["settings"]))
        if len(self.batch) + len(self.refused) >= self.batch_size:
            self.flush()

    def flush(self, finished: bool = False) -> None:
        """Store the batch, and move the import's position past it, in one transaction."""
        if not self.records and not finished:
            return
        batch, refused, records = self.batch, self.refused, self.records

        def run(conn: sqlite3.Connection) -> int:
            hits = store.save_in(conn, self.site, batch, preset_sessions=True) if batch else 0
            import_runs.advance(conn, self.job, records, len(batch), hits, refused, finished)
            return hits

        hits = store.write(run)
        self.job = import_runs.advanced(self.job, records, len(batch), hits, len(refused),
                                        finished)
        self.batch, self.refused, self.records = [], [], 0

    def _bad(self, line: int, message: str) -> None:
        self.refused.append((line, message))
        self.report(f"line {line}: {message}")


def run(site: dict[str, Any], text: IO[str], job: import_runs.Run,
        on_batch: Callable[[import_runs.Run], None] | None = None,
        report: Callable[[str], None] | None = None) -> import_runs.Run:
    """Import the records of an export's text into `site`, after the `job.rows_done`
    stored before; returns the finished job. Raises VersionError, and Conflict when
    another run of the same import got ahead."""
    importer = Importer(site, job, report)
    done = job.rows_done
    for number, record in enumerate(read(text), 1):
        if number <= done:
            continue  # stored (or refused) by an earlier run of this import
        importer.add(record)
        if on_batch is not None and not importer.records:
            on_batch(importer.job)
    importer.flush(finished=True)
    return importer.job
