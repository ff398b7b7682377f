"""Soak test: nothing lost when a worker dies under load, or the spool meets faults.

    .venv/bin/python bench/soak.py [--seconds 60] [--clients 8] [--workers 4] [--no-faults]

gunicorn runs with gunicorn.conf.py and 4 sync workers on a loopback port. 8 client
threads send, for a fixed time, a mix of POST /api/v0/count batches (each with its own
Idempotency-Key, retried with the same key when the reply never came), GET and POST
/count pixels (a tenth of them from a bot), and stats reads; rate limits are on, set
too high to refuse any of it. Halfway through, one worker is killed with SIGKILL, one
caught inside a write transaction when there is one. Then the server is stopped, the
pending pixel pageviews are counted, and the database is checked.

Before and after the kill, the pixel spool meets the faults it must survive:

- at a fifth of the time, a worker's spool file is truncated under it, below the part
  already counted (the worker is stopped for the moment it takes, so that the pageviews
  cut off are known: those not counted yet are gone, and are not counted as lost);
- at a third, the spool's file system (a tmpfs of its own) is full for a moment, so that
  writes fail with ENOSPC: those pixels must get a 503, never a 200;
- at seven tenths, `goatcounter db backup` runs in another PID namespace (`unshare
  --pid --fork`; without root, in a process that sees no other pid), where every
  worker looks dead: it must remove none of their files.

The tmpfs and the namespace need root; without it the full disk is left out (and said
so). Then:

- every hit that got a 2xx is stored exactly once (every hit has a path of its own),
  but for the ones cut off by the truncation before they were counted;
- the aggregate tables add up to the stored hits;
- no reply was a 5xx but the 503s of the full disk, and no reply said "database is locked".

With --db postgresql://..., the same runs on PostgreSQL, and at the same moment the
database connection of a batch caught mid-write (its hit rows in, not committed) is
ended with pg_terminate_backend: that client gets a 5xx (503) and retries with its key,
and each such batch must be stored wholly or not at all; those replies are the only 5xx
allowed.

Requests that never got a reply (the one the killed worker was serving) are counted as
connection errors, not as acknowledged; their hits may or may not be stored. The
figures are printed as a table; the exit status is 1 when a check failed.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

if __package__ in (None, ""):
    # Run as a script (python bench/soak.py): make `bench` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, gunicorn, setup_site, workers_of
from bench.common import UAS as COMMON_UAS
from goatcounter.storage import db

UAS = COMMON_UAS[:3]
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
READS = ["/api/v0/stats/total", "/api/v0/paths?limit=5", "/api/v0/stats/hits?limit=5",
         "/api/v0/stats/browsers", "/api/v0/stats/toprefs"]
HOST = "soak.example.com"
# High enough never to refuse the load, so that the limiter's shared counters are
# exercised (and survive the killed worker) without getting in the way.
LIMITS = "api:1000000/60,api-count:1000000/60,count:1000000/60"
# Replies that are not HTTP replies at all: the connection closed or reset under us.
CONNECTION_ERRORS = (ConnectionError, http.client.HTTPException, socket.timeout, OSError)
KINDS = ("POST /api/v0/count", "/count pixels", "stats reads")


@dataclasses.dataclass
class Tally:
    """What one kind of request got."""

    requests: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    connection_errors: int = 0
    retries: int = 0
    replayed: int = 0
    hits_sent: int = 0
    hits_acked: int = 0
    # 503s for pageviews the server could not write (the full disk): refused, not lost.
    refused_full: int = 0

    def add(self, other: Tally) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


@dataclasses.dataclass
class Client:
    """One client thread's record: tallies, and the paths of its hits by outcome."""

    tallies: dict[str, Tally] = dataclasses.field(
        default_factory=lambda: {kind: Tally() for kind in KINDS})
    acked: set[str] = dataclasses.field(default_factory=set)
    acked_bots: set[str] = dataclasses.field(default_factory=set)
    sent: set[str] = dataclasses.field(default_factory=set)
    refused: set[str] = dataclasses.field(default_factory=set)
    locked: int = 0
    samples: list[str] = dataclasses.field(default_factory=list)
    failed_batches: list[list[str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Result:
    """The whole run, and what the database held afterwards."""

    seconds: float
    workers: int
    clients: int
    killed: int | None
    killed_at: float
    killed_writing: bool
    tallies: dict[str, Tally]
    stored: dict[str, int]
    stored_bots: dict[str, int]
    acked: set[str]
    acked_bots: set[str]
    sent: set[str]
    locked: int
    samples: list[str]
    aggregates: dict[str, int]
    pending_left: int
    tracebacks: int
    faults: Faults = dataclasses.field(default_factory=lambda: Faults())
    refused: set[str] = dataclasses.field(default_factory=set)

    @property
    def refused_stored(self) -> int:
        """Pixels answered with a 503 (not kept) that were stored all the same."""
        return len(self.refused & (self.stored.keys() | self.stored_bots.keys()))
    # PostgreSQL only: connections ended mid-batch, and the paths of every batch that got
    # a 5xx (each must be stored wholly or not at all).
    connections_killed: int = 0
    failed_batches: list[list[str]] = dataclasses.field(default_factory=list)

    @property
    def torn(self) -> int:
        """Batches that got a 5xx and were stored in part."""
        return sum(1 for paths in self.failed_batches
                   if len({min(self.stored.get(p, 0), 1) for p in paths}) > 1)

    @property
    def lost(self) -> int:
        """Acknowledged hits not stored, but for those a truncation cut off."""
        return sum(1 for p in self.acked - self.faults.cut if self.stored.get(p, 0) == 0) + \
            sum(1 for p in self.acked_bots - self.faults.cut if self.stored_bots.get(p, 0) == 0)

    @property
    def cut_off(self) -> int:
        """Acknowledged pixel pageviews that the truncation took before they were counted."""
        return sum(1 for p in self.acked & self.faults.cut if p not in self.stored) + \
            sum(1 for p in self.acked_bots & self.faults.cut if p not in self.stored_bots)

    @property
    def duplicated(self) -> int:
        return sum(1 for n in self.stored.values() if n > 1) + \
            sum(1 for n in self.stored_bots.values() if n > 1)

    @property
    def unknown(self) -> int:
        """Stored hits of paths that were never sent."""
        return len((self.stored.keys() | self.stored_bots.keys()) - self.sent)

    @property
    def server_errors(self) -> int:
        return sum(t.server_errors for t in self.tallies.values())

    @property
    def aggregates_ok(self) -> bool:
        a = self.aggregates
        return a["hits"] == a["hit_counts.pageviews"] == a["site_counts.pageviews"] and \
            a["first_visits"] == a["hit_counts.total"] == a["site_counts.total"] == \
            a["path_days.total"]

    @property
    def ok(self) -> bool:
        allowed = self.connections_killed
        return (self.lost == self.duplicated == self.unknown == self.torn == 0
                and self.server_errors <= allowed and self.locked <= allowed
                and self.tracebacks == 0 and self.aggregates_ok
                and self.pending_left == 0 and self.killed is not None and self.faults.ok
                and self.refused_stored == 0)

    def table(self) -> str:
        head = (f"{'':20} {'requests':>8} {'2xx':>6} {'4xx':>5} {'5xx':>5} {'conn err':>8}"
                f" {'retried':>7} {'hits sent':>9} {'acked':>6} {'stored':>6} {'lost':>5}")
        lines = [f"soak: {self.workers} workers, {self.clients} clients, {self.seconds:.0f} s; "
                 f"worker {self.killed} killed with SIGKILL at {self.killed_at:.1f} s"
                 f"{' while writing' if self.killed_writing else ''}", "", head]
        total = Tally()
        stored_api = sum(1 for p in self.stored if p.startswith("/api/"))
        stored_px = sum(1 for p in self.stored if p.startswith("/px/")) + len(self.stored_bots)
        lost_api = sum(1 for p in self.acked if p.startswith("/api/") and p not in self.stored)
        lost_px = self.lost - lost_api
        for kind, t in self.tallies.items():
            total.add(t)
            stored, lost = {"POST /api/v0/count": (stored_api, lost_api),
                            "/count pixels": (stored_px, lost_px)}.get(kind, ("-", "-"))
            lines.append(self._row(kind, t, stored, lost))
        lines.append(self._row("total", total, stored_api + stored_px, self.lost))
        a = self.aggregates
        api = self.tallies["POST /api/v0/count"]
        lines += [
            "",
            f"hits stored {a['hits']}; hit_counts.pageviews {a['hit_counts.pageviews']};"
            f" site_counts.pageviews {a['site_counts.pageviews']}",
            f"first visits {a['first_visits']}; hit_counts.total {a['hit_counts.total']};"
            f" site_counts.total {a['site_counts.total']}; path_days.total"
            f" {a['path_days.total']}: {'consistent' if self.aggregates_ok else 'MISMATCH'}",
            f"batches retried after a lost reply {api.retries}, answered from their"
            f" Idempotency-Key (stored before the reply was lost) {api.replayed}",
            f"bot pageviews acknowledged {len(self.acked_bots)}, logged"
            f" {sum(self.stored_bots.values())}",
            f"stored twice {self.duplicated}; stored but never sent {self.unknown};"
            f" left pending {self.pending_left}",
            f"replies saying the database is locked {self.locked}; server tracebacks"
            f" {self.tracebacks}",
            *self.faults.lines(self),
            *([f"PostgreSQL connections ended mid-batch {self.connections_killed}; batches"
               f" answered 5xx {len(self.failed_batches)}, stored in part {self.torn}"]
              if self.connections_killed or self.failed_batches else []),
            f"result: {'OK' if self.ok else 'FAILED'}",
        ]
        if self.samples:
            lines += ["", "first unexpected replies:", *self.samples[:5]]
        return "\n".join(lines)

    @staticmethod
    def _row(kind: str, t: Tally, stored: Any, lost: Any) -> str:
        hits = (t.hits_sent, t.hits_acked) if t.hits_sent else ("-", "-")
        return (f"{kind:20} {t.requests:>8} {t.ok:>6} {t.client_errors:>5} {t.server_errors:>5}"
                f" {t.connection_errors:>8} {t.retries:>7} {hits[0]:>9} {hits[1]:>6}"
                f" {stored:>6} {lost:>5}")


# The server -----------------------------------------------------------------------------

def victim(master: int, instance: str, rng: random.Random) -> tuple[int | None, bool]:
    """The worker to kill, and whether it is writing: preferably one caught inside a write
    transaction (holding the write lock file), the worst moment to die; else any."""
    workers = workers_of(master)
    lock = Path(instance) / "goatcounter.sqlite3-writelock"
    deadline = time.monotonic() + 1.0
    while workers and time.monotonic() < deadline:
        holder = lock_holder(lock)
        if holder in workers:
            return holder, True
        time.sleep(0.001)
    return (rng.choice(workers) if workers else None), False


def lock_holder(path: Path) -> int | None:
    """The process holding a flock on `path`, from /proc/locks (None if nobody)."""
    try:
        inode = path.stat().st_ino
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split()
        # "1: FLOCK ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF"; waiters have "->".
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
            return int(fields[4])
    return None


# The faults -----------------------------------------------------------------------------

SPOOL_DISK = "256m"
# A process in which every pid but its own looks gone, for when we can't make a namespace.
BLIND = ("import os, sys\n"
         "real = os.kill\n"
         "def kill(pid, sig):\n"
         "    if pid != os.getpid():\n"
         "        raise ProcessLookupError(pid)\n"
         "    return real(pid, sig)\n"
         "os.kill = kill\n"
         "from goatcounter.cli import main\n"
         "sys.argv[0] = 'goatcounter'\n"
         "main()\n")


@dataclasses.dataclass
class Faults:
    """What each fault did; `cut` holds the paths of the pageviews in the part of the
    spool file that the truncation cut off."""

    enabled: bool = False
    truncated: str = "not run"
    cut: set[str] = dataclasses.field(default_factory=set)
    truncated_warnings: int = 0
    disk: str = "not run"
    disk_full: bool | None = None
    backup: str = "not run"
    backup_ok: bool | None = None

    @property
    def ok(self) -> bool:
        return not self.enabled or (bool(self.cut) and self.backup_ok is True)

    def lines(self, result: Result) -> list[str]:
        if not self.enabled:
            return ["faults: none (--no-faults)"]
        refused = result.tallies["/count pixels"].refused_full
        disk = self.disk
        if self.disk_full:
            disk += (f"; {refused} pixels answered 503 meanwhile, {result.refused_stored}"
                     " of them stored")
        return [
            f"fault, spool truncated: {self.truncated}; {len(self.cut)} pageviews in the"
            f" part cut off, {result.cut_off} of them not counted yet (gone);"
            f" {self.truncated_warnings} warnings of it logged",
            f"fault, spool disk full: {disk}",
            f"fault, backup from another PID namespace: {self.backup}",
        ]


def spool_dir(instance: str) -> Path:
    return Path(instance) / "goatcounter.sqlite3-pending"


@contextlib.contextmanager
def spool_disk(instance: str) -> Iterator[Path | None]:
    """The spool folder on a tmpfs of its own (None when it can't be mounted)."""
    directory = spool_dir(instance)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        yield None
        return
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SPOOL_DISK},mode=0700",
                            "tmpfs", str(directory)], capture_output=True)
    if mount.returncode:
        yield None
        return
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill_disk(directory: Path, seconds: float) -> str:
    """Fill the spool's file system for `seconds`, then make room again."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for block in (1 << 20, 4096, 64):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * block)
        time.sleep(seconds)
    finally:
        os.close(fd)
        filler.unlink()
    return f"full for {seconds:.1f} s"


def _stopped(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return True


def truncate_spool(master: int, instance: str, db_path: str) -> tuple[str, set[str]]:
    """Cut the biggest spool file of a live worker to half of what was counted of it.
    The worker is stopped meanwhile, so that what is cut off is known exactly."""
    workers = set(workers_of(master))
    files = []
    for path in spool_dir(instance).glob("*.jsonl"):
        with contextlib.suppress(ValueError, OSError):
            if int(path.name.split("-", 1)[0]) in workers:
                files.append((path.stat().st_size, path))
    if not files:
        return "no spool file to truncate", set()
    _, path = max(files)
    owner = int(path.name.split("-", 1)[0])
    os.kill(owner, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 2
        while not _stopped(owner) and time.monotonic() < deadline:
            time.sleep(0.001)
        conn = sqlite3.connect(db_path, timeout=30)
        try:
            row = conn.execute("SELECT counted FROM pending_files WHERE name = ?",
                               (path.name,)).fetchone()
        finally:
            conn.close()
        counted = row[0] if row else 0
        data = path.read_bytes()
        cut_at = counted // 2
        os.truncate(path, cut_at)
    finally:
        os.kill(owner, signal.SIGCONT)
    cut, start = set(), 0
    for line in data.split(b"\n")[:-1]:
        start += len(line) + 1
        if start > cut_at:
            with contextlib.suppress(ValueError, IndexError, TypeError):
                cut.add(json.loads(line)[1])
    return (f"worker {owner}'s file cut from {len(data):,} to {cut_at:,} bytes (counted to"
            f" {counted:,})"), cut


def backup_elsewhere(instance: str) -> tuple[str, bool]:
    """`goatcounter db backup` from a process that can't see the workers' pids."""
    target = str(Path(instance) / "backup.sqlite3")
    args = ["db", "backup", target]
    command = [sys.executable, "-c", BLIND, *args]
    how = "in a process that sees no other pid"
    if os.geteuid() == 0 and shutil.which("unshare") and subprocess.run(
            ["unshare", "--pid", "--fork", "true"], capture_output=True).returncode == 0:
        command = ["unshare", "--pid", "--fork", sys.executable, "-m", "goatcounter", *args]
        how = "unshare --pid --fork"
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GOATCOUNTER_INSTANCE": instance,
                               "GOATCOUNTER_RATELIMIT": LIMITS,
                               "GOATCOUNTER_COUNT_IN_BACKGROUND": "0"})
    if done.returncode:
        return f"{how}: FAILED ({done.stderr.strip()[-200:]})", False
    return f"{how}: written", True


# The clients ----------------------------------------------------------------------------

class Driver:
    """One client: a loop of requests until the deadline."""

    def __init__(self, n: int, port: int, token: str, until: float, seed: int) -> None:
        self.n, self.port, self.token, self.until = n, port, token, until
        self.rng = random.Random(seed)
        self.record = Client()
        self.seq = 0

    def run(self) -> None:
        while time.monotonic() < self.until:
            self.seq += 1
            roll = self.rng.random()
            if roll < 0.3:
                self.batch()
            elif roll < 0.9:
                self.pixel()
            else:
                self.read()

    def _send(self, method: str, url: str, body: bytes | None,
              headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=90)
        try:
            conn.request(method, url, body=body, headers={"Host": HOST, **headers})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def _note(self, tally: Tally, status: int, body: bytes, what: str) -> None:
        tally.requests += 1
        if 200 <= status < 300:
            tally.ok += 1
        elif status >= 500:
            tally.server_errors += 1
        else:
            tally.client_errors += 1
        if b"locked" in body or b"busy" in body:
            self.record.locked += 1
        if status == 503 and b"No space left on device" in body:
            tally.server_errors -= 1
            tally.refused_full += 1
            return
        if status >= 300 and status != 304:
            self.record.samples.append(f"{what}: {status} {body[:200]!r}")

    def batch(self) -> None:
        tally = self.record.tallies["POST /api/v0/count"]
        paths = [f"/api/{self.n}/{self.seq}/{i}" for i in range(self.rng.randint(1, 20))]
        hits = [{"path": p, "title": f"Soak {p}", "user_agent": self.rng.choice(UAS),
                 "ip": f"192.0.2.{self.rng.randint(1, 254)}", "size": "1920,1080,1",
                 "ref": self.rng.choice(["", "https://example.org/from"])} for p in paths]
        body = json.dumps({"hits": hits}).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                   "Idempotency-Key": f"soak-{self.n}-{self.seq}"}
        self.record.sent.update(paths)
        tally.hits_sent += len(paths)
        # A backend retries a batch whose reply never came, with the same key: the
        # server must count it once whether or not the first try was stored.
        for attempt in range(4):
            if attempt:
                tally.retries += 1
                time.sleep(0.05)
            try:
                status, reply_headers, reply = self._send("POST", "/api/v0/count", body, headers)
            except CONNECTION_ERRORS:
                tally.connection_errors += 1
                continue
            self._note(tally, status, reply, "POST /api/v0/count")
            if status >= 500:
                # Told the batch failed: retried with its key, as a backend would.
                self.record.failed_batches.append(paths)
                continue
            if reply_headers.get("Idempotent-Replayed") == "true":
                tally.replayed += 1
            if 200 <= status < 300:
                tally.hits_acked += len(paths)
                self.record.acked.update(paths)
            return

    def pixel(self) -> None:
        tally = self.record.tallies["/count pixels"]
        path = f"/px/{self.n}/{self.seq}"
        bot = self.rng.random() < 0.1
        ua = BOT_UA if bot else self.rng.choice(UAS)
        url = (f"/count?p={quote(path)}&t={quote('Pixel ' + path)}&r="
               f"{quote(self.rng.choice(['', 'https://news.example.net/item']))}"
               f"&s=1280&b=0&rnd={self.rng.randrange(10**6)}")
        # count.js sends a beacon (POST, parameters in the query) or loads an image.
        method = "POST" if self.rng.random() < 0.3 else "GET"
        self.record.sent.add(path)
        tally.hits_sent += 1
        try:
            status, _, reply = self._send(method, url, b"" if method == "POST" else None,
                                          {"User-Agent": ua})
        except CONNECTION_ERRORS:
            tally.requests += 1
            tally.connection_errors += 1
            return
        self._note(tally, status, reply, f"{method} /count")
        if status == 503:
            self.record.refused.add(path)
        if status == 200:
            tally.hits_acked += 1
            (self.record.acked_bots if bot else self.record.acked).add(path)

    def read(self) -> None:
        tally = self.record.tallies["stats reads"]
        url = self.rng.choice(READS)
        try:
            status, _, reply = self._send("GET", url, None,
                                          {"Authorization": f"Bearer {self.token}"})
        except CONNECTION_ERRORS:
            tally.requests += 1
            tally.connection_errors += 1
            return
        self._note(tally, status, reply, f"GET {url}")


# The run --------------------------------------------------------------------------------

def check(instance: str) -> tuple[dict[str, int], dict[str, int], dict[str, int], int]:
    """Count what is still pending, then read what the database holds."""
    from goatcounter import create_app
    from goatcounter.counting import pending

    app = create_app({"INSTANCE": instance})
    with app.app_context():
        pending.drain()
        left = pending.backlog()
    conn = db.connect(app.config["DB_URL"] or app.config["DB_PATH"])
    try:
        stored = dict(conn.execute("SELECT p.path, count(*) FROM hits h"
                                   " JOIN paths p ON p.id = h.path_id GROUP BY p.path"))
        bots = dict(conn.execute("SELECT path, count(*) FROM bots GROUP BY path"))
        one = {
            "hits": "SELECT count(*) FROM hits",
            "first_visits": "SELECT count(*) FROM hits WHERE first_visit = 1",
            "hit_counts.pageviews": "SELECT coalesce(sum(pageviews), 0) FROM hit_counts",
            "hit_counts.total": "SELECT coalesce(sum(total), 0) FROM hit_counts",
            "site_counts.pageviews": "SELECT coalesce(sum(pageviews), 0) FROM site_counts",
            "site_counts.total": "SELECT coalesce(sum(total), 0) FROM site_counts",
            "path_days.total": "SELECT coalesce(sum(total), 0) FROM path_days",
        }
        aggregates = {name: conn.execute(sql).fetchone()[0] for name, sql in one.items()}
    finally:
        conn.close()
    return stored, bots, aggregates, left


def kill_connection_mid_batch(url: str) -> int:
    """End the PostgreSQL connection of a batch caught inside its write (it has written
    rows, not committed them); returns how many were ended (0 or 1)."""
    conn = db.connect(url)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            row = conn.raw.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
                " AND state = 'active' AND query LIKE 'INSERT%%' LIMIT 1").fetchone()
            if row is not None:
                conn.raw.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                return 1
            time.sleep(0.0005)
        return 0
    finally:
        conn.close()


def run(seconds: float = 60, clients: int = 8, workers: int = 4,
        instance: str | None = None, seed: int = 1, faults: bool = True) -> Result:
    """The soak test; `instance` is a fresh folder (a temporary one when None). On
    PostgreSQL (GOATCOUNTER_DB) the faults of the SQLite file (a backup, the spool beside
    it) are left out; a connection ended mid-batch takes their place."""
    faults = faults and not db.is_postgresql(os.environ.get("GOATCOUNTER_DB", ""))
    report = Faults(enabled=faults)
    with contextlib.ExitStack() as stack:
        if instance is None:
            instance = stack.enter_context(tempfile.TemporaryDirectory(prefix="gc-soak-"))
        token = setup_site(instance, cname=HOST, email="soak@example.com")
        disk = stack.enter_context(spool_disk(instance)) if faults else None
        if faults and disk is None:
            report.disk = "left out (mounting a tmpfs needs root)"
        killed: int | None = None
        writing = False
        env = {"GOATCOUNTER_INSTANCE": instance, "GOATCOUNTER_RATELIMIT": LIMITS}
        log = str(Path(instance) / "gunicorn.log")
        with gunicorn("wsgi:app", env, workers, config=str(ROOT / "gunicorn.conf.py"),
                      log=log, access_log="/dev/null") as server:
            master, port = server.proc, server.addr[1]
            start = time.monotonic()
            until = start + seconds
            drivers = [Driver(n, port, token, until, seed * 1000 + n) for n in range(clients)]
            threads = [threading.Thread(target=d.run, name=f"soak-{d.n}") for d in drivers]
            for t in threads:
                t.start()

            def at(part: float) -> None:
                time.sleep(max(0.0, start + seconds * part - time.monotonic()))

            if faults:
                at(0.2)
                report.truncated, report.cut = truncate_spool(
                    master.pid, instance, str(Path(instance) / "goatcounter.sqlite3"))
                if disk is not None:
                    at(1 / 3)
                    report.disk = fill_disk(disk, min(1.0, seconds / 20))
                    report.disk_full = True
            at(0.5)
            url = os.environ.get("GOATCOUNTER_DB", "")
            cut = kill_connection_mid_batch(url) if db.is_postgresql(url) else 0
            killed, writing = victim(master.pid, instance, random.Random(seed))
            if killed is not None:
                os.kill(killed, signal.SIGKILL)
            killed_at = time.monotonic() - start
            if faults:
                at(0.7)
                report.backup, report.backup_ok = backup_elsewhere(instance)
            for t in threads:
                t.join()
            elapsed = time.monotonic() - start
        text = Path(log).read_text(errors="replace")
        report.truncated_warnings = text.count("was truncated") + text.count(
            "hold no whole pageview")
        stored, bots, aggregates, left = check(instance)

    tallies = {kind: Tally() for kind in KINDS}
    record = Client()
    for d in drivers:
        for kind, t in d.record.tallies.items():
            tallies[kind].add(t)
        record.acked |= d.record.acked
        record.acked_bots |= d.record.acked_bots
        record.sent |= d.record.sent
        record.refused |= d.record.refused
        record.locked += d.record.locked
        record.samples += d.record.samples
        record.failed_batches += d.record.failed_batches
    return Result(seconds=elapsed, workers=workers, clients=clients, killed=killed,
                  killed_at=killed_at, killed_writing=writing, tallies=tallies,
                  stored=stored, stored_bots=bots, acked=record.acked,
                  acked_bots=record.acked_bots, sent=record.sent,
                  locked=record.locked, samples=record.samples, aggregates=aggregates,
                  pending_left=left, tracebacks=text.count("Traceback"), faults=report,
                  refused=record.refused, connections_killed=cut,
                  failed_batches=record.failed_batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-faults", action="store_true",
                        help="only the killed worker: no truncation, full disk or backup")
    parser.add_argument("--db", help="a postgresql:// URL to run on (emptied first); the"
                        " faults of the SQLite file (backup, truncated spool) are left out")
    args = parser.parse_args()
    if args.db:
        conn = db.connect(args.db)
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
        conn.close()
        os.environ["GOATCOUNTER_DB"] = args.db
    result = run(args.seconds, args.clients, args.workers, seed=args.seed,
                 faults=not args.no_faults and not args.db)
    print(result.table())
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
