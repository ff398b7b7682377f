"""Shared pieces of the benchmarks: a throw-away instance with a site and token,
gunicorn on a loopback port, and a load driver that runs in other processes."""
from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# Browsers' user agents for generated pageviews.
UAS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.81 Mobile Safari/537.36",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bytes_written(server: Server) -> int:
    """Bytes the server's master and workers have handed to write() so far (the WAL and
    the database file, spool files, the access log): /proc's wchar."""
    total = 0
    for pid in [server.proc.pid, *workers_of(server.proc.pid)]:
        try:
            text = Path(f"/proc/{pid}/io").read_text()
        except OSError:
            continue
        total += int(text.split("wchar:", 1)[1].split()[0])
    return total


@contextlib.contextmanager
def instance() -> Iterator[str]:
    """A fresh instance folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="gc-bench-") as tmp:
        yield tmp


def setup_site(inst: str, cname: str = "127.0.0.1", email: str = "bench@example.com") -> str:
    """A site and an all-permission token in the instance's database; returns the token."""
    from goatcounter import create_app
    from goatcounter.accounts import sites, tokens, users
    from goatcounter.storage import db

    app = create_app({"INSTANCE": inst})
    with app.app_context():
        def run(conn: sqlite3.Connection) -> str:
            site = sites.create(conn, cname=cname)
            user = users.create(conn, site_id=site["id"], email=email)
            return tokens.create_token(conn, user=user, name="bench",
                                     permissions=tokens.PERM_ALL)[0]
        return db.write(run)


@dataclasses.dataclass
class Server:
    """A running gunicorn: its master process and address."""

    proc: subprocess.Popen
    addr: tuple[str, int]


def workers_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (gunicorn's workers)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; the parent follows it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return out


def cpu_seconds(server: Server) -> float:
    """CPU time (user and system) the server's master and workers have used so far."""
    total = 0
    for pid in [server.proc.pid, *workers_of(server.proc.pid)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def gunicorn(app: str, env: dict[str, str], workers: int = 2, config: str | None = None,
             log: str | None = None, access_log: str | None = None,
             port: int | None = None) -> Iterator[Server]:
    """Run `gunicorn app` with sync workers on 127.0.0.1 until every worker is up.

    Without `config`, an empty config file: the repository's gunicorn.conf.py (access
    log and all) would otherwise be read from the working directory, and the
    benchmarks compare apps, not logging settings."""
    port = port or free_port()
    if config is None:
        config = os.path.join(tempfile.gettempdir(), "gc-bench-gunicorn.conf.py")
        Path(config).write_text("")
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", config, "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--backlog", "2048", "--log-level", "warning",
         *(["--access-logfile", access_log] if access_log else []), app],
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **env}, stdout=out,
        stderr=out if log else sys.stderr)
    try:
        deadline = time.monotonic() + 60
        while len(workers_of(proc.pid)) < workers or not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start" + (
                    ":\n" + Path(log).read_text(errors="replace") if log else ""))
            time.sleep(0.1)
        yield Server(proc, ("127.0.0.1", port))
    finally:
        stop(proc, signal.SIGTERM, 30)
        if log:
            out.close()  # type: ignore[union-attr]


def stop(proc: subprocess.Popen, sig: int, wait: float) -> None:
    """Ask a server to stop with `sig`; kill it if it hasn't after `wait` seconds."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(http_request("GET", "/count.js", "127.0.0.1"))
            return _status(sock) != 0
    except OSError:
        return False


def _status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return 0
        data += chunk
    status = int(data.split(b" ", 2)[1])
    # Read to the end: the server closes the connection after the reply.
    while sock.recv(65536):
        pass
    return status


def _drive(addr: tuple[str, int], requests: list[bytes], until: float,
           out: mp.Queue) -> None:
    ok = errors = 0
    codes: dict[int, int] = {}
    i = 0
    while time.monotonic() < until:
        req = requests[i % len(requests)]
        i += 1
        try:
            with socket.create_connection(addr, timeout=30) as sock:
                sock.sendall(req)
                status = _status(sock)
        except OSError:
            status = 0
        codes[status] = codes.get(status, 0) + 1
        if 200 <= status < 300:
            ok += 1
        else:
            errors += 1
    out.put((ok, errors, codes, i, max(0, i - len(requests))))


@dataclasses.dataclass
class Load:
    """What one `load` got: 2xx replies, other replies (and connection errors, as
    status 0), seconds, replies by status; `sent` requests in all, `used` the first
    `used` requests of the list covering what every client sent, and `repeated` the
    requests sent again because a client had come to the end of its share."""

    ok: int
    errors: int
    elapsed: float
    codes: dict[int, int]
    sent: int
    used: int
    repeated: int


def load(addr: tuple[str, int], requests: list[bytes], seconds: float,
         clients: int) -> Load:
    """Send the requests from `clients` processes for `seconds`, each its share in order
    (client i the requests i, i + clients, ...), from the start again when it runs out;
    every request on a new connection."""
    out: mp.Queue = mp.Queue()
    start = time.monotonic()
    until = start + seconds
    procs = [mp.Process(target=_drive, args=(addr, requests[i::clients] or requests, until, out))
             for i in range(clients)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - start
    codes: dict[int, int] = {}
    for r in results:
        for k, v in r[2].items():
            codes[k] = codes.get(k, 0) + v
    return Load(ok=sum(r[0] for r in results), errors=sum(r[1] for r in results),
                elapsed=elapsed, codes=codes, sent=sum(r[3] for r in results),
                used=min(len(requests), max(r[3] for r in results) * clients),
                repeated=sum(r[4] for r in results))


def http_request(method: str, path: str, host: str, body: bytes = b"",
                 headers: dict[str, str] | None = None) -> bytes:
    """Raw HTTP/1.1 request bytes with Connection: close."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
