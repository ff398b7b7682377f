"""Pageviews of the public /count endpoint: stored at once, counted in batches.

A browser's pageview is appended to this worker's spool file (spool.py) before the
reply goes out, so it is never lost. Counting it (paths, sessions, the hit row and the
aggregates) costs much less per pageview when done for many at once, so the files are
counted in batches: by one process per machine right after a reply when it hasn't
counted for a moment (or from its background thread when its replies stop), by the
background thread of every worker when its own traffic stops, and before any stats or
export read, so that what the API shows is always complete.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import operator
import os
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from flask import Flask, Response, current_app, request

from goatcounter.accounts import sites
from goatcounter.counting import livelog, spool, store
from goatcounter.counting.pipeline import process
from goatcounter.counting.pipeline.process import Hit
from goatcounter.storage import db

log = logging.getLogger(__name__)

# Pageviews counted per transaction, and how much of a file is read for them.
BATCH = 2000
MAX_BYTES = 1 << 20
# When a worker counts what is pending: from its background thread once no pageview
# came for IDLE_CHECK seconds, and right after a reply once FULL pageviews wait or
# DRAIN_EVERY seconds went by since it last counted. So under load the work of
# counting is done in big batches (a batch costs about 1 ms besides its pageviews, and
# rows that repeat within it are written once), and a burst of traffic is answered
# first and counted when it ends. Stats, exports and the dashboard count whatever is
# pending before they read, so they never show less. DRAIN_EVERY also bounds how late a
# counted pageview reaches the live log and another app server's reads: well within a
# second, as `goatcounter tail` promises.
FULL = 1000
DRAIN_EVERY = 0.5
IDLE_CHECK = 0.5
# One process per spool directory (per machine) counts after its replies: the one that
# holds the spool's counting lock (Spool.counts). The others only append, and their
# pageviews are counted in its batches. When workers took turns, each counted half
# batches into a database whose caches the other had just made stale, at twice the
# CPU per pageview (two sync workers, adversarial pixel load). The counting process's
# background thread also counts when its replies haven't for LEAD_TIMER seconds (it
# gets little traffic), so that the others' pageviews are never left waiting; every
# worker's thread still counts when its own traffic stops.
LEAD_TIMER = 0.55
# A worker that would count after a reply while another process writes does not wait
# for it (its clients would wait too, and its core would idle): it goes on answering
# and tries again this many seconds later. Only its background thread, reads that must
# see every pageview, and the tools wait.
RETRY_HELD = 0.02
# The live log's entries noted in memory (requests refused before counting) are written
# this soon after the reply that noted them, apart from counting: a live page or a tail
# shows them at once. (Entries of pageviews are written when they are counted.)
NOTES_EVERY = 0.1

_FIELDS = ("path", "title", "event", "ref", "ref_scheme", "campaign", "width", "bot",
           "browser", "system", "location", "language", "user_agent", "session_key",
           "created_at", "ignored", "received", "unclassified")
# Older lines end sooner: before `unclassified` was kept (17 fields), and before they
# carried their arrival time too (16).
_RECEIVED = _FIELDS.index("received")


_VALUES = operator.attrgetter(*_FIELDS)


def encode(site_id: int, hit: Hit) -> bytes:
    """A pageview as the line kept in a spool file: compact JSON in UTF-8, the bytes that
    json.dumps(..., ensure_ascii=False, separators=(",", ":")) gives (so that files of
    earlier versions read the same), for less of the reply's time."""
    return orjson.dumps([site_id, *_VALUES(hit)]) + b"\n"


# A Hit has `dropped` too, after `ignored`: a dropped hit is never spooled.
_DROPPED = _FIELDS.index("ignored") + 1
_BROWSER, _SYSTEM = _FIELDS.index("browser"), _FIELDS.index("system")


def decode(line: bytes) -> tuple[int, Hit]:
    """(site id, hit) of a spool line."""
    return _hit_of(orjson.loads(line))


def decode_all(lines: list[bytes]) -> list[tuple[int, Hit]]:
    """`decode` of each line, read by one call of the JSON parser (whose cost per call
    was half of a line's)."""
    try:
        rows = orjson.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        rows = None
    if not isinstance(rows, list) or len(rows) != len(lines):
        return [decode(line) for line in lines]  # one at a time: a broken one raises
    return [_hit_of(row) for row in rows]


def _hit_of(row: Any) -> tuple[int, Hit]:
    """(site id, hit) of a parsed spool line."""
    site_id, *rest = row
    for at in (_BROWSER, _SYSTEM):
        if len(rest) > at and rest[at] is not None:
            rest[at] = tuple(rest[at])
    if len(rest) == len(_FIELDS):
        # The newest lines: every field, in the order of Hit's.
        rest.insert(_DROPPED, False)
        return int(site_id), Hit(*rest)
    if len(rest) == _RECEIVED:
        # Written before lines carried their arrival time.
        rest.append(rest[_FIELDS.index("created_at")])
    # Unclassified lines are the newest: the older ones end before that field.
    fields = _FIELDS[:-1] if len(rest) == len(_FIELDS) - 1 else _FIELDS
    return int(site_id), Hit(**dict(zip(fields, rest, strict=True)))


def queue() -> spool.Spool:
    """The spool of the current app."""
    return current_app.extensions["goatcounter_spool"]


def add(site_id: int, hit: Hit, where: spool.Spool | None = None) -> None:
    """Keep one accepted pageview until it is counted."""
    (where or queue()).append(encode(site_id, hit))


def _counted(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT counted FROM pending_files WHERE name = :n",
                       {"n": name}).fetchone()
    return row[0] if row else 0


def _mark(conn: sqlite3.Connection, name: str, offset: int) -> None:
    conn.execute("INSERT INTO pending_files (name, counted) VALUES (:n, :o) ON CONFLICT (name)"
                 " DO UPDATE SET counted = excluded.counted", {"n": name, "o": offset})


class Progress(NamedTuple):
    """What one step of counting a file did: pageviews counted, and whether the recorded
    position moved (it also moves past bytes that hold no pageview)."""

    counted: int
    moved: bool


def _start(conn: sqlite3.Connection, path: str, name: str) -> int:
    """Where counting a file goes on. A file that is now shorter than what was counted
    was truncated: whatever was cut off is gone, and counting goes on at its new end,
    where whatever is written next lands."""
    start = _counted(conn, name)
    now = spool.size(path)
    if now < start and os.path.exists(path):
        log.warning("spool file %s was truncated to %d bytes, below the %d already counted:"
                    " pageviews written after that point are counted from there", name,
                    now, start)
        _mark(conn, name, now)
        return now
    return start


def _warn_lost(name: str, pieces: list[spool.Piece]) -> None:
    lost = sum(p.lost for p in pieces)
    if lost:
        log.warning("spool file %s: skipped %d bytes that hold no whole pageview (left by"
                    " a truncation)", name, lost)


def _count_file(conn: sqlite3.Connection, path: str, name: str, most: int,
                notes: list[livelog.Row] | None = None) -> Progress:
    """Count up to `most` lines of one file from where counting stopped (inside a
    transaction begun with store.write); the new position is recorded in it too, and
    the live log's `notes` are written in it."""
    if notes:
        livelog.write(conn, notes)
    start = _start(conn, path, name)
    pieces = spool.read_lines(path, start, MAX_BYTES)[:most]
    if not pieces:
        return Progress(0, False)
    by_site: dict[int, list[Hit]] = defaultdict(list)
    lines = [piece.line for piece in pieces if piece.line]
    for site_id, hit in decode_all(lines):
        by_site[site_id].append(hit)
    counted = len(lines)
    live = livelog.on()
    for site_id, hits in by_site.items():
        site = sites.get(conn, site_id)
        if site is not None:
            _classify(site, hits)
            store.save_in(conn, site, hits)
            if live:
                livelog.write(conn, livelog.counted_rows(site, hits, "count", _writer(name)))
    _mark(conn, name, pieces[-1].end)
    _warn_lost(name, pieces)
    return Progress(counted, True)


def _writer(name: str) -> str:
    """The worker that wrote a spool file, as the live log names it (the pid is the
    first part of the file's name)."""
    pid = name.split("-", 1)[0]
    return livelog.worker_name(int(pid)) if pid.isdigit() else livelog.worker_name()


def _classify(site: dict[str, Any], hits: list[Hit]) -> None:
    for hit in hits:
        process.classify(hit, site["settings"])


def _set_aside(conn: sqlite3.Connection, path: str, name: str, error: BaseException) -> None:
    """Move the next line of a file to failed_hits, with the reason it failed."""
    def run(c: sqlite3.Connection) -> None:
        start = _start(c, path, name)
        pieces = spool.read_lines(path, start, MAX_BYTES)
        bad = next((p for p in pieces if p.line), None)
        if bad is None:
            return
        text = bad.line.decode("utf-8", "replace")
        c.execute("INSERT INTO failed_hits (site_id, hit, error, failed_at)"
                  " VALUES (:s, :h, :e, :at)",
                  {"s": _site_of(text), "h": text, "e": f"{type(error).__name__}: {error}",
                   "at": int(time.time())})
        _mark(c, name, bad.end)
    db.write(run, conn)


def _site_of(text: str) -> int:
    try:
        return int(orjson.loads(text)[0])
    except (ValueError, TypeError, IndexError, KeyError):
        return 0


def _one_by_one(conn: sqlite3.Connection, path: str, name: str, count: int) -> Progress:
    """After a batch failed: count its lines one at a time, and set aside the ones that
    fail alone, so that one bad pageview can't hold up all that came after it."""
    done, moved = 0, False
    for _ in range(count):
        try:
            step = store.write(lambda c: _count_file(c, path, name, 1), conn)
        except Exception as exc:  # whatever it is, it must not stop the queue
            if db.is_busy(exc) or db.is_disconnect(exc):
                raise
            log.exception("pending pageview set aside")
            _set_aside(conn, path, name, exc)
            moved = True
            continue
        if not step.moved:
            break
        done, moved = done + step.counted, True
    return Progress(done, moved)


def _tidy(conn: sqlite3.Connection, where: spool.Spool, path: str, name: str) -> None:
    """Remove a file that is counted to its end and that nobody appends to any more."""
    with where.claim(path) as finished:
        if not finished:
            return
        left = spool.size(path) - _counted(conn, name)
        if left > 0:
            if spool.read_lines(path, _counted(conn, name), MAX_BYTES):
                return  # whole lines that could not be counted yet: next time
            # Its writer stopped in the middle of a line, so never answered for it.
            log.warning("spool file %s ends in %d bytes of a line never finished; dropped",
                        name, left)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        db.write(lambda c: c.execute("DELETE FROM pending_files WHERE name = :n",
                                     {"n": name}), conn)


def drain(conn: sqlite3.Connection | None = None, wait: bool = True) -> int:
    """Count every pending pageview; returns how many were counted. Without `wait`,
    db.LockHeld is raised when another writer holds the lock (what was counted before
    stays counted)."""
    conn = conn or db.get_db()
    where = queue()
    total = 0
    # The live log entries this process noted ride along in the first transaction.
    notes = livelog.of().take()
    try:
        for name, path in list(where.files()):
            while True:
                try:
                    step = store.write(functools.partial(_count_file, path=path, name=name,
                                                         most=BATCH, notes=notes), conn, wait)
                    notes = []
                except Exception as exc:
                    # A busy or lost database is nobody's pageview's fault: try again later.
                    if isinstance(exc, db.LockHeld) or db.is_busy(exc) or db.is_disconnect(exc):
                        raise
                    step = _one_by_one(conn, path, name, BATCH)
                total += step.counted
                if not step.moved:
                    break
            _tidy(conn, where, path, name)
    finally:
        livelog.of().give_back(notes)
    return total


def backlog(conn: sqlite3.Connection | None = None) -> int:
    """Bytes of accepted pageviews not counted yet (0 when all are counted)."""
    conn = conn or db.get_db()
    return sum(max(0, spool.size(path) - _counted(conn, name))
               for name, path in queue().files())


class Drainer:
    """Per process: counts pending rows after replies (in big batches) and when idle,
    and writes the live log's noted entries soon after the replies that noted them."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.last = 0.0
        # No counting after a reply before this (monotonic) time: another writer was busy.
        self.not_before = 0.0
        # When the live log's noted entries were last written.
        self.flushed = 0.0
        # Pageviews this worker answered since it last counted, and when the last came.
        self.waiting = 0
        self.last_pageview = 0.0
        # Whether this process counts after its replies (Spool.counts), as last asked.
        self.counting = False
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.stopping = threading.Event()
        # Set when a reply noted live log entries that the throttle kept from being
        # written at once.
        self.wakeup = threading.Event()
        # Jobs the background thread also runs when idle (upkeep adds its schedule), each
        # called with the app; they decide themselves how often to do work.
        self.idle_jobs: list[Callable[[Flask], object]] = []

    def wake(self) -> None:
        """Start this worker's background thread if it hasn't started yet (idle jobs such
        as an import in progress must not wait for the first /count)."""
        if self.app.config["COUNT_IN_BACKGROUND"]:
            self._ensure_thread()

    def soon(self) -> None:
        """Called after a /count reply that kept a pageview has gone out."""
        self.waiting += 1
        self.last_pageview = time.monotonic()
        self.noted()

    def noted(self) -> None:
        """Called after a reply that noted live log entries has gone out (and by `soon`):
        counts once FULL pageviews wait or DRAIN_EVERY went by, else writes what the
        live log noted (within NOTES_EVERY)."""
        background = self.app.config["COUNT_IN_BACKGROUND"]
        if background:
            self._ensure_thread()
        now = time.monotonic()
        if now < self.not_before:
            return
        if (self.waiting >= FULL or (self.waiting and now - self.last >= DRAIN_EVERY)) \
                and self._counts(background):
            self.run(wait=False)
        elif not livelog.of(self.app).waiting():
            return
        elif now - self.flushed >= NOTES_EVERY:
            self.flush(wait=False)
        elif background:
            # Written by the background thread once the throttle allows, rather than
            # when the next request comes (or the thread's next idle check).
            self.wakeup.set()

    def _counts(self, background: bool) -> bool:
        """Whether this process counts after its replies; without background threads
        every process does (nobody would count the others' pageviews otherwise)."""
        counting = not background or self.app.extensions["goatcounter_spool"].counts()
        if counting and not self.counting and background:
            self.wakeup.set()  # the thread's pause is LEAD_TIMER from now on
        self.counting = counting
        return counting

    def run(self, wait: bool = True) -> None:
        """Count what is pending (the live log's noted entries ride along). Without
        `wait`, nothing more is done while another writer is busy (see RETRY_HELD)."""
        if not self.lock.acquire(blocking=False):
            return
        waiting = self.waiting
        try:
            self.last = time.monotonic()
            self.waiting = 0
            with self.app.app_context():
                drain(wait=wait)
                self.flushed = time.monotonic()
                livelog.of(self.app).flush(db.get_db(), wait)
        except db.LockHeld:
            self._held(waiting)
        except Exception as exc:
            # The rows stay pending and are counted on the next try.
            if db.is_disconnect(exc):
                log.warning("counting pending pageviews: lost the database connection (%s);"
                            " they are counted on the next try", str(exc).strip())
            else:
                log.exception("counting pending pageviews failed")
        finally:
            self.lock.release()

    def _held(self, waiting: int) -> None:
        """Another writer was busy: what waits is counted on a later reply (or by the
        background thread, which waits for the lock, once traffic stops)."""
        self.waiting += waiting
        self.not_before = time.monotonic() + RETRY_HELD

    def flush(self, wait: bool = True) -> None:
        """Write the live log's noted entries, apart from counting (which may wait for a
        bigger batch)."""
        if not self.lock.acquire(blocking=False):
            # Counting right now: the background thread writes what that did not take.
            self.wakeup.set()
            return
        try:
            self.flushed = time.monotonic()
            with self.app.app_context():
                livelog.of(self.app).flush(db.get_db(), wait)
        except db.LockHeld:
            self._held(0)
        except Exception as exc:
            # The entries wait in memory for the next try.
            log.warning("writing the live log failed (%s); tried again with the next",
                        str(exc).strip())
        finally:
            self.lock.release()

    def _ensure_thread(self) -> None:
        if self.thread is not None and self.pid == os.getpid():
            return
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._idle_loop, name="goatcounter-pending",
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """End the background thread (for tests; workers just exit)."""
        self.stopping.set()
        self.wakeup.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def _idle_loop(self) -> None:
        pause = IDLE_CHECK
        jobs_at = time.monotonic()
        while not self.stopping.is_set():
            woken = self.wakeup.wait(pause)
            if self.stopping.is_set():
                return
            if woken:
                self.wakeup.clear()
                wait = NOTES_EVERY - (time.monotonic() - self.flushed)
                if wait > 0 and self.stopping.wait(wait):
                    return
                if livelog.of(self.app).waiting():
                    self.flush()
            now = time.monotonic()
            if (now - self.last_pageview >= IDLE_CHECK and now - self.last >= IDLE_CHECK) \
                    or (self.counting and now - self.last >= LEAD_TIMER):
                self.run()
            # Jobs keep their pace when replies wake the thread more often.
            if pause == 0.0 or time.monotonic() - jobs_at >= IDLE_CHECK:
                jobs_at = time.monotonic()
                pause = 0.0 if self._jobs() else IDLE_CHECK
            if self.waiting and pause:
                # Back when the last pageview is IDLE_CHECK old, so that what it left is
                # counted then, not up to IDLE_CHECK later.
                due = self.last_pageview + IDLE_CHECK - time.monotonic()
                pause = min(IDLE_CHECK, max(0.01, due))
            if self.counting and pause:
                pause = min(pause, max(0.01, self.last + LEAD_TIMER - time.monotonic()))

    def _jobs(self) -> bool:
        """Run the idle jobs; whether one of them has more to do at once."""
        busy = False
        for job in self.idle_jobs:
            try:
                # A job that did a slice of a longer work (an import) says so: the
                # loop comes back at once, after counting what came in meanwhile.
                busy = bool(job(self.app)) or busy
            except Exception:
                log.exception("background job failed")
        return busy


def _retry(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> int:
    """Count failed pageviews and remove them from failed_hits in one transaction, so
    that nothing dying in between can count one twice."""
    by_site: dict[int, list[Hit]] = defaultdict(list)
    for row in rows:
        site_id, hit = decode(row["hit"].encode())
        by_site[site_id].append(hit)
    for site_id, hits in by_site.items():
        site = sites.get(conn, site_id)
        if site is not None:
            _classify(site, hits)
            store.save_in(conn, site, hits)
    conn.executemany("DELETE FROM failed_hits WHERE id = ?", [(r["id"],) for r in rows])
    return len(rows)


def retry_failed(conn: sqlite3.Connection) -> int:
    """Count the pageviews that were set aside again (after the cause was fixed); those
    that still fail stay, with the new reason. Returns how many were counted."""
    done = 0
    after = 0
    while True:
        rows = conn.execute("SELECT id, hit FROM failed_hits WHERE id > :after ORDER BY id"
                            " LIMIT :n", {"after": after, "n": BATCH}).fetchall()
        if not rows:
            return done
        after = rows[-1]["id"]
        try:
            done += store.write(functools.partial(_retry, rows=rows), conn)
            continue
        except Exception as exc:
            if db.is_busy(exc):
                raise
        for row in rows:
            try:
                done += store.write(functools.partial(_retry, rows=[row]), conn)
            except Exception as exc:  # it stays set aside, with why it failed this time
                if db.is_busy(exc):
                    raise
                db.write(functools.partial(_still_failing, row_id=row["id"], error=exc), conn)


def _still_failing(conn: sqlite3.Connection, row_id: int, error: BaseException) -> None:
    conn.execute("UPDATE failed_hits SET error = :e, failed_at = :at WHERE id = :id",
                 {"e": f"{type(error).__name__}: {error}", "at": int(time.time()),
                  "id": row_id})


# Reads that must see every accepted pageview.
_READS = ("/api/v0/stats", "/api/v0/paths", "/api/v0/export")


def catch_up(conn: sqlite3.Connection | None = None) -> None:
    """Count every pending pageview before a read that must show them all (the API's
    reads here, the dashboard from its view)."""
    conn = conn or db.get_db()
    if backlog(conn):
        drain(conn)


def _before_read() -> None:
    if request.path.startswith(_READS):
        conn = db.get_db()
        catch_up(conn)
    elif request.path.startswith("/live") and not current_app.config["COUNT_IN_BACKGROUND"]:
        # The live log may lag a moment: the background threads count (and write what
        # was noted) within a fraction of a second, and a page polling twice a second
        # must not add a write, and the wait for the write lock, to every poll. Without
        # them, the page counts.
        conn = db.get_db()
        catch_up(conn)
        livelog.of().flush(conn)


def _after_reply(response: Response) -> Response:
    """Live log entries noted by a request are written right after its reply."""
    if livelog.of().waiting():
        response.call_on_close(current_app.extensions["goatcounter_pending"].noted)
    return response


def init_app(app: Flask) -> None:
    # In each worker as it starts, not on its first pageviews.
    process.warm_up()
    app.extensions["goatcounter_spool"] = spool.Spool(app.config["DB_PATH"] + "-pending")
    app.extensions["goatcounter_pending"] = Drainer(app)
    app.before_request(_before_read)
    app.after_request(_after_reply)
