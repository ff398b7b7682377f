"""What the live log costs: ingest with it on and off, and /count while /live pages are
open (polling, as the page does, against a Server-Sent Events stream).

    .venv/bin/python bench/livelog.py [--seconds 20] [--clients 4] [--only a|b|c]

gunicorn runs with 2 sync workers on a loopback port; the load comes from other
processes. Every figure is a ratio against a baseline measured in the same run, the two
alternated in short rounds so that both see the same machine. Besides requests/s, each
line gives requests per second of the workers' CPU time (utime + stime from /proc),
which other work on a shared machine disturbs far less than wall-clock rates:

(a) GET /count requests/s with GOATCOUNTER_LIVE_LOG=1 against =0 (every pageview a new
    visitor of a spread of paths and browsers; a tenth of the requests are refused, as
    invalid, so that both ways of writing entries are measured);
(b) durable hits/s of POST /api/v0/count in batches of 100, on against off;
(c) GET /count requests/s with 10 /live pages open (signed in, polling /live.json every
    half second, as the page's script does), and with 10 Server-Sent Events streams open
    (bench/sse_app.py, made for this measurement), against no page open.

(bench/ingest.py is being rewritten for realistic loads; these lines go there once it
lands.)
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import socket
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

from common import UAS, gunicorn, http_request, instance, load, setup_site, workers_of

ROUNDS = 4
NO_LIMITS = "api:none,api-count:none,count:none,login:none,auth:none"
BATCH = 100
VIEWERS = 10
POLL = 0.5


def pixel_requests(rng: random.Random, n: int = 5000) -> list[bytes]:
    out = []
    for i in range(n):
        path = f"/page/{min(int(rng.paretovariate(1.1)), 2000)}"
        ua = UAS[i % len(UAS)].replace("131.0", f"131.{i % 97}")
        # A tenth are refused (an unknown boolean): noted in memory, written after the reply.
        bad = "&e=maybe" if i % 10 == 0 else ""
        q = f"/count?p={quote(path)}&t=Page&s=1920&b=0&rnd={i}{bad}"
        out.append(http_request("GET", q, "127.0.0.1", headers={
            "User-Agent": ua, "X-Forwarded-For": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}))
    return out


def batch_requests(rng: random.Random, token: str, n: int = 200) -> list[bytes]:
    out = []
    for b in range(n):
        hits = [{"path": f"/page/{min(int(rng.paretovariate(1.1)), 2000)}", "title": "Page",
                 "user_agent": UAS[(b + i) % len(UAS)], "size": "1920,1080,1",
                 "ip": f"10.{b & 255}.{i}.{rng.randrange(256)}"} for i in range(BATCH)]
        out.append(http_request("POST", "/api/v0/count", "127.0.0.1",
                                json.dumps({"hits": hits}).encode(),
                                {"Content-Type": "application/json",
                                 "Authorization": f"Bearer {token}"}))
    return out


def alternate(inst: str, configs: dict[str, tuple[str, dict[str, str]]], requests: list[bytes],
              seconds: float, clients: int, during=None) -> dict[str, list]:
    """Run each config (app, env) for seconds/ROUNDS, ROUNDS times in turn; returns
    {name: [2xx replies, failures (no reply, 5xx), elapsed, worker CPU seconds]}.
    `during(name, addr)` runs beside the load (a context)."""
    totals = {name: [0, 0, 0.0, 0.0] for name in configs}
    for _ in range(ROUNDS):
        for name, (app, env) in configs.items():
            with gunicorn(app, {"GOATCOUNTER_INSTANCE": inst, **env}) as server:
                workers = workers_of(server.proc.pid)
                with (during(name, server.addr) if during else _nothing()):
                    before = cpu(workers)
                    ok, _, elapsed, codes = load(server.addr, requests, seconds / ROUNDS, clients)
                    # The invalid tenth answers 400 by design; failures are the rest.
                    bad = sum(n for code, n in codes.items() if code == 0 or code >= 500)
                    # Counting what the last replies left behind is part of the cost.
                    time.sleep(0.5)
                    used = cpu(workers) - before
            totals[name][0] += ok
            totals[name][1] += bad
            totals[name][2] += elapsed
            totals[name][3] += used
    return totals


def cpu(pids: list[int]) -> float:
    """CPU seconds (user and system) the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def rates(total: list, per: int = 1) -> tuple[float, float]:
    """(per second of wall time, per second of the workers' CPU time)."""
    return total[0] * per / total[2], total[0] * per / max(total[3], 1e-9)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def entries(inst: str) -> int:
    conn = sqlite3.connect(f"{inst}/goatcounter.sqlite3")
    return conn.execute("SELECT count(*) FROM live_log").fetchone()[0]


def bench_pixels(inst: str, rng: random.Random, seconds: float, clients: int) -> None:
    requests = pixel_requests(rng)
    env = {"GOATCOUNTER_RATELIMIT": NO_LIMITS, "GOATCOUNTER_TRUSTED_PROXIES": "127.0.0.1"}
    totals = alternate(inst, {"on": ("wsgi:app", {**env, "GOATCOUNTER_LIVE_LOG": "1"}),
                              "off": ("wsgi:app", {**env, "GOATCOUNTER_LIVE_LOG": "0"})},
                       requests, seconds, clients)
    (on, on_cpu), (off, off_cpu) = rates(totals["on"]), rates(totals["off"])
    print(f"(a) GET /count, {clients} clients, {totals['on'][2] + totals['off'][2]:.0f} s in"
          f" {ROUNDS} rounds each")
    print(f"    live log on         {on:10.0f}   requests/s   {on_cpu:8.0f} per CPU second")
    print(f"    live log off        {off:10.0f}   requests/s   {off_cpu:8.0f} per CPU second")
    print(f"    ratio on/off        {on / off:10.3f}                {on_cpu / off_cpu:8.3f}"
          f"   (entries kept: {entries(inst)})")


def bench_batches(inst: str, token: str, rng: random.Random, seconds: float,
                  clients: int) -> None:
    requests = batch_requests(rng, token)
    env = {"GOATCOUNTER_RATELIMIT": NO_LIMITS}
    totals = alternate(inst, {"on": ("wsgi:app", {**env, "GOATCOUNTER_LIVE_LOG": "1"}),
                              "off": ("wsgi:app", {**env, "GOATCOUNTER_LIVE_LOG": "0"})},
                       requests, seconds, clients)
    (on, on_cpu), (off, off_cpu) = rates(totals["on"], BATCH), rates(totals["off"], BATCH)
    print(f"(b) POST /api/v0/count, batches of {BATCH}, {clients} clients")
    print(f"    live log on         {on:10.0f}   hits/s       {on_cpu:8.0f} per CPU second")
    print(f"    live log off        {off:10.0f}   hits/s       {off_cpu:8.0f} per CPU second")
    print(f"    ratio on/off        {on / off:10.3f}                {on_cpu / off_cpu:8.3f}")


def _session(addr: tuple[str, int], email: str, password: str) -> str:
    """Sign in through the form; returns the session cookie."""
    import requests
    base = f"http://{addr[0]}:{addr[1]}"
    with requests.Session() as s:
        form = s.get(base + "/user/new").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        s.post(base + "/user/requestlogin", data={"csrf": csrf, "email": email,
                                                  "password": password}, allow_redirects=False)
        return s.cookies["session"]


def _poller(addr: tuple[str, int], cookie: str, until: float, out: mp.Queue) -> None:
    import requests
    base = f"http://{addr[0]}:{addr[1]}"
    after, polls, bad = 0, 0, 0
    while time.monotonic() < until:
        start = time.monotonic()
        resp = requests.get(f"{base}/live.json?after={after}", cookies={"session": cookie},
                            allow_redirects=False, timeout=60)
        if resp.status_code == 200:
            after = resp.json()["newest"]
            polls += 1
        else:
            bad += 1
        time.sleep(max(0.0, POLL - (time.monotonic() - start)))
    out.put((polls, bad))


def _streamer(addr: tuple[str, int], until: float, out: mp.Queue) -> None:
    got = 0
    try:
        with socket.create_connection(addr, timeout=max(1.0, until - time.monotonic())) as sock:
            sock.sendall(http_request("GET", "/live/stream", "127.0.0.1"))
            while time.monotonic() < until:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                got += 1
    except OSError:
        pass
    out.put((got, 0))


class _viewers:
    """VIEWERS pages open beside the load: pollers of /live.json, or streams."""

    def __init__(self, kind: str, addr: tuple[str, int], cookie: str, seconds: float) -> None:
        self.kind, self.addr, self.cookie, self.seconds = kind, addr, cookie, seconds
        self.out: mp.Queue = mp.Queue()
        self.procs: list[mp.Process] = []

    def __enter__(self) -> None:
        until = time.monotonic() + self.seconds + 5
        for _ in range(VIEWERS if self.kind != "none" else 0):
            args = (self.addr, self.cookie, until, self.out) if self.kind == "polling" else (
                self.addr, until, self.out)
            target = _poller if self.kind == "polling" else _streamer
            self.procs.append(mp.Process(target=target, args=args))
        for p in self.procs:
            p.start()
        time.sleep(1.0)  # the pages are open before the load starts

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.terminate()
            p.join()


def bench_viewers(inst: str, rng: random.Random, seconds: float, clients: int,
                  email: str, password: str) -> None:
    requests = pixel_requests(rng)
    env = {"GOATCOUNTER_RATELIMIT": NO_LIMITS, "GOATCOUNTER_TRUSTED_PROXIES": "127.0.0.1"}
    with gunicorn("wsgi:app", {"GOATCOUNTER_INSTANCE": inst, **env}) as server:
        cookie = _session(server.addr, email, password)
    configs = {"none": ("wsgi:app", env), "polling": ("wsgi:app", env),
               "sse": ("bench.sse_app:app",
                       {**env, "BENCH_STREAM_SECONDS": str(seconds / ROUNDS + 1)})}
    totals = alternate(inst, configs, requests, seconds, clients,
                       during=lambda name, addr: _viewers(name, addr, cookie, seconds / ROUNDS))
    rate = {name: rates(t) for name, t in totals.items()}
    none = rate["none"]
    print(f"(c) GET /count, {clients} clients, with {VIEWERS} /live pages open")
    for name, label in (("none", "no page open"), ("polling", f"polling every {POLL} s"),
                        ("sse", "SSE streams")):
        wall, per_cpu = rate[name]
        print(f"    {label:19} {wall:10.0f}   requests/s   {per_cpu:8.0f} per CPU second"
              f"   ratio {wall / none[0]:.3f} / {per_cpu / none[1]:.3f}"
              + (f"   (failed {totals[name][1]})" if totals[name][1] else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--only", choices=("a", "b", "c"))
    args = parser.parse_args()
    rng = random.Random(7)
    with instance() as inst:
        token = setup_site(inst)
        email, password = "bench@example.com", "a bench password"
        from goatcounter import create_app
        from goatcounter.accounts import passwords, users
        from goatcounter.storage import db
        app = create_app({"INSTANCE": inst})
        with app.app_context():
            hashed = passwords.hash_password(password)
            db.write(lambda c: users.set_password(c, 1, hashed))
        if args.only in (None, "a"):
            bench_pixels(inst, rng, args.seconds, args.clients)
        if args.only in (None, "b"):
            bench_batches(inst, token, rng, args.seconds, args.clients)
        if args.only in (None, "c"):
            bench_viewers(inst, rng, args.seconds, args.clients, email, password)


if __name__ == "__main__":
    main()
