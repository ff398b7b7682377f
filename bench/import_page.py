"""An import of 1,000,000 rows through the settings page while /count is being answered:
how long the upload's request takes, how long the import runs in the background, and
the /count pixel's latency during the import against a baseline measured in the same
run just before it.

    .venv/bin/python bench/import_page.py [--rows 1000000] [--workers 2] [--clients 2]

A gzipped CSV export of --rows rows is made, a 2-worker gunicorn started, an admin signs
in with requests and uploads the file to POST /settings/export/import; /count is driven
by --clients threads throughout, and the import's progress is read from its page
(Accept: application/json) until it is done.
"""
from __future__ import annotations

import argparse
import gzip
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import UAS, gunicorn, instance, setup_site

HEADER = ("2Path,Title,Event,UserAgent,Browser,System,Session,Bot,Referrer,Referrer scheme,"
          "Screen size,Location,FirstVisit,Date\n")
EMAIL, PASSWORD = "bench@example.com", "a bench password"


def make_export(path: str, rows: int) -> int:
    """A gzipped export of `rows` rows over 5,000 paths and 60 days; returns its size."""
    now = int(time.time()) - 3600
    with gzip.open(path, "wt", compresslevel=6, newline="") as out:
        out.write(HEADER)
        lines = []
        for i in range(rows):
            ts = now - (i * 5) % (60 * 86400)
            date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
            session = f"{i // 3:016x}-{(i * 7919) % (1 << 60):016x}"
            lines.append(f"/page/{i % 5000},Page {i % 5000},0,,Firefox 131,Linux ,{session},0,"
                         f"https://ref{i % 50}.example.org/,h,\"1920,1080,1\",NL,"
                         f"{1 if i % 3 == 0 else 0},{date}\n")
            if len(lines) >= 10_000:
                out.write("".join(lines))
                lines = []
        out.write("".join(lines))
    return os.path.getsize(path)


class CountLoad:
    """Threads sending GET /count pixels one after another, keeping each latency."""

    def __init__(self, base: str, clients: int) -> None:
        self.base, self.clients = base, clients
        self.samples: list[tuple[float, float, int]] = []  # (start, ms, status)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(clients)]

    def _run(self, n: int) -> None:
        session = requests.Session()
        i = 0
        while not self.stopping.is_set():
            i += 1
            start = time.perf_counter()
            try:
                status = session.get(f"{self.base}/count", params={
                    "p": f"/live/{n}/{i % 100}", "t": "Live"}, timeout=30,
                    headers={"User-Agent": UAS[(n + i) % len(UAS)]}).status_code
            except requests.RequestException:
                status = 0
            self.samples.append((start, (time.perf_counter() - start) * 1000, status))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)

    def between(self, a: float, b: float) -> list[tuple[float, float, int]]:
        return [s for s in self.samples if a <= s[0] < b]


def summary(samples: list[tuple[float, float, int]], seconds: float) -> str:
    ms = sorted(s[1] for s in samples)
    if not ms:
        return "no requests"
    bad = sum(1 for s in samples if s[2] != 200)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"{len(ms) / seconds:,.0f} req/s, p50 {statistics.median(ms):.2f} ms, "
            f"p99 {p99:.2f} ms, {bad} not 200")


def sign_in(base: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/user/new", timeout=10).text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    resp = session.post(f"{base}/user/requestlogin", timeout=30, allow_redirects=False,
                        data={"csrf": token, "email": EMAIL, "password": PASSWORD})
    assert resp.status_code == 303, resp.text[:500]
    return session


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--baseline", type=float, default=10.0, help="seconds of /count alone")
    ap.add_argument("--no-cli", dest="cli", action="store_false",
                    help="leave out the command line's import of the same file")
    args = ap.parse_args()
    with instance() as inst:
        setup_site(inst, email=EMAIL)
        from goatcounter import create_app
        from goatcounter.accounts import passwords, users
        from goatcounter.storage import db
        app = create_app({"INSTANCE": inst})
        with app.app_context():
            hashed = passwords.hash_password(PASSWORD)
            db.write(lambda conn: users.set_password(conn, 1, hashed))
        export = os.path.join(inst, "bench-export.csv.gz")
        t = time.perf_counter()
        size = make_export(export, args.rows)
        print(f"made {args.rows:,} rows, {size / 1e6:.1f} MB gzipped, in "
              f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
        env = {"GOATCOUNTER_INSTANCE": inst,
               "GOATCOUNTER_RATELIMIT": "count:none,login:none,api:none"}
        with gunicorn("wsgi:app", env, workers=args.workers) as server:
            base = f"http://{server.addr[0]}:{server.addr[1]}"
            session = sign_in(base)
            load = CountLoad(base, args.clients)
            load.start()
            t0 = time.perf_counter()
            time.sleep(args.baseline)
            t1 = time.perf_counter()
            page = session.get(f"{base}/settings/export", timeout=10).text
            token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            with open(export, "rb") as fh:
                resp = session.post(f"{base}/settings/export/import", timeout=120,
                                    allow_redirects=False, data={"csrf": token},
                                    files={"csv": ("bench-export.csv.gz", fh)})
            t2 = time.perf_counter()
            assert resp.status_code == 303, resp.text[:500]
            status_url = base + resp.headers["Location"]
            state: dict = {}
            seen = []
            first = session.get(status_url, headers={"Accept": "application/json"},
                                timeout=30).json()
            while True:
                state = session.get(status_url, headers={"Accept": "application/json"},
                                    timeout=30).json()
                seen.append((time.perf_counter(), state["done"]))
                if state["state"] in ("done", "failed"):
                    break
                time.sleep(1)
            t3 = time.perf_counter()
            load.stop()
            # The pixels counted meanwhile are all there.
            counted = requests.get(f"{base}/api/v0/stats/total", timeout=60, headers={
                "Authorization": "Bearer " + open_token(inst)}).json()
        print(f"upload request: {t2 - t1:.2f} s for {size / 1e6:.1f} MB; the import then was "
              f"{first['state']} with {first['done']:,} rows done")
        print(f"import in the background: {args.rows:,} rows in {t3 - t2:.1f} s "
              f"({args.rows / (t3 - t2):,.0f} rows/s); imported {state['imported']:,}, "
              f"refused {state['refused']:,}")
        base_s = load.between(t0, t1)
        during = load.between(t2, t3)
        print(f"/count alone:          {summary(base_s, t1 - t0)}")
        print(f"/count during import:  {summary(during, t3 - t2)}")
        if base_s and during:
            ratio = statistics.median(s[1] for s in during) / statistics.median(
                s[1] for s in base_s)
            print(f"/count p50 during the import is {ratio:.2f} of its p50 alone")
        print(f"visits counted (stats/total over its default range): {counted.get('total')}")
        if args.cli:
            cli = cli_import(export)
            print(f"`goatcounter import` of the same file, no other load: {cli:.1f} s "
                  f"({args.rows / cli:,.0f} rows/s); the page's import took "
                  f"{(t3 - t2) / cli:.2f} times as long, beside the /count load")


def cli_import(export: str) -> float:
    """Seconds `goatcounter import` takes for the file on a fresh instance."""
    import subprocess
    with instance() as inst:
        setup_site(inst)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "goatcounter", "import", export], check=True,
                       env={**os.environ, "GOATCOUNTER_INSTANCE": inst},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t


def open_token(inst: str) -> str:
    """A new all-permission token of the bench's user, for the final read."""
    from goatcounter import create_app
    from goatcounter.accounts import tokens, users
    from goatcounter.storage import db
    app = create_app({"INSTANCE": inst})
    with app.app_context():
        def run(conn):  # type: ignore[no-untyped-def]
            user = users.get(conn, 1)
            return tokens.create_token(conn, user=user, name="read", permissions=tokens.PERM_ALL)[0]
        return db.write(run)


if __name__ == "__main__":
    main()
