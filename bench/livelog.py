"""What open /live pages cost the server: GET /count while 10 signed-in pages poll,
against the same with 10 Server-Sent Events streams open, against none.

    .venv/bin/python bench/livelog.py [--seconds 20] [--clients 4]

gunicorn runs with 2 sync workers on a loopback port; the load (realistic browsers,
a tenth of the pageviews refused as invalid) comes from other processes. The three
configurations are alternated in short rounds, so that all see the same machine. A
poller asks /live.json every half second as the page's script does; a stream is
bench/sse_app.py's, made for this measurement only. Besides requests/s, each line gives
requests per second of the workers' CPU time (utime + stime from /proc), which other
work on a shared machine disturbs less.

The live log's cost on ingest (on against off) is measured by bench/ingest.py's
live-log lines. On a shared machine those swing by more than the cost itself, so
`--share` also measures it in one process, where load on the machine slows both parts
alike: the realistic pixel and API loads served as gunicorn would (bench/profile_ingest.py)
with the live log on, and the CPU time spent in the live log's own code (its entries made,
noted and written) against the whole.

    .venv/bin/python bench/livelog.py --share [--requests 6000]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import re
import socket
import time
from pathlib import Path
from urllib.parse import quote

from common import UAS, gunicorn, http_request, instance, load, setup_site, workers_of

ROUNDS = 4
NO_LIMITS = "api:none,api-count:none,count:none,login:none,auth:none"
VIEWERS = 10
# CPU seconds the viewers' processes used, by configuration.
VIEWER_CPU: dict[str, float] = {}
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
                    got = load(server.addr, requests, seconds / ROUNDS, clients)
                    ok, elapsed, codes = got.ok, got.elapsed, got.codes
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
        # The pages' own CPU time: on this machine they take it from the server.
        VIEWER_CPU[self.kind] = VIEWER_CPU.get(self.kind, 0.0) + cpu(
            [p.pid for p in self.procs if p.pid is not None])
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
    print(f"GET /count, {clients} clients, with {VIEWERS} /live pages open")
    for name, label in (("none", "no page open"), ("polling", f"polling every {POLL} s"),
                        ("sse", "SSE streams")):
        wall, per_cpu = rate[name]
        print(f"    {label:19} {wall:10.0f}   requests/s   {per_cpu:8.0f} per CPU second"
              f"   ratio {wall / none[0]:.3f} / {per_cpu / none[1]:.3f}"
              + (f"   (failed {totals[name][1]})" if totals[name][1] else ""))
    print(f"    the pollers' own CPU: {VIEWER_CPU.get('polling', 0) / totals['polling'][2]:.2f}"
          " s per second, on the same 2 cores as the server and the load")


def _timed(owner: object, name: str, spent: list[float], depth: list[int]) -> None:
    """Wrap owner.name so that its CPU time adds to spent[0] (the outermost call only)."""
    inner = getattr(owner, name)

    def wrapper(*args: object, **kwargs: object) -> object:
        depth[0] += 1
        start = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                spent[0] += time.process_time() - start
    setattr(owner, name, wrapper)


def ingest_share(load_name: str, units: int) -> None:
    """The live log's share of the CPU time of serving and counting `units` pageviews
    (or hits) of a load, in this process."""
    import profile_ingest

    from goatcounter.api import count
    from goatcounter.counting import livelog
    from goatcounter.public import pixel
    load_ = profile_ingest.Requests(load_name)
    with instance() as inst:
        app = profile_ingest.App(inst, load_)
        app.warm_up(load_.make(app.token, profile_ingest.WARM), load_)
        requests = load_.make(app.token, units)
        spent, depth = [0.0], [0]
        for owner, name in ((livelog, "counted_rows"), (livelog, "write"),
                            (livelog.Log, "note"), (livelog.Log, "flush"),
                            (pixel, "live_row"), (count, "_entries")):
            _timed(owner, name, spent, depth)
        total = app.timed_run(requests)
    print(f"{load_name}: {units} {load_.unit}s in one process, replies {dict(app.statuses)}")
    print(f"    CPU {total:.2f} s in all, {spent[0]:.3f} s of it in the live log:"
          f" {spent[0] / total * 100:.1f} % ({spent[0] / units * 1e6:.0f} µs per {load_.unit},"
          f" of {total / units * 1e6:.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--share", action="store_true",
                        help="the live log's share of ingest CPU, in one process")
    parser.add_argument("--requests", type=int, default=6000,
                        help="pageviews (hits for the API) per load with --share")
    args = parser.parse_args()
    if args.share:
        for name in ("pixel-realistic", "api-realistic"):
            ingest_share(name, args.requests if name.startswith("pixel") else args.requests * 5)
        return
    rng = random.Random(7)
    with instance() as inst:
        setup_site(inst)
        email, password = "bench@example.com", "a bench password"
        from goatcounter import create_app
        from goatcounter.accounts import passwords, users
        from goatcounter.storage import db
        app = create_app({"INSTANCE": inst})
        with app.app_context():
            hashed = passwords.hash_password(password)
            db.write(lambda c: users.set_password(c, 1, hashed))
        bench_viewers(inst, rng, args.seconds, args.clients, email, password)


if __name__ == "__main__":
    main()
