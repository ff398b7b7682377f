"""Where the time goes under one of bench/ingest.py's loads, per step and per function.

    .venv/bin/pip install py-spy
    .venv/bin/python bench/profile_ingest.py LOAD [--server] [--cprofile] [--steps]
                     [--requests 3000] [--seconds 20] [--top 40] [--out DIR]

LOAD is one of:

- pixel-adversarial: GET /count, every request a new user agent, address and session,
  default rate limits, X-Forwarded-For from 127.0.0.1 (a trusted proxy);
- pixel-realistic: the realistic pixel load of bench/ingest.py;
- api-adversarial: POST /api/v0/count, batches of 100, every hit a new user agent,
  address and session;
- api-sessions: the same batches with the friendly load's 5 user agents, every hit
  with a `session` of its own: the cost of a new session alone.

By default the app runs alone in one process: `--requests` requests (hits in batches
of 100 for the API) as WSGI calls, no gunicorn, no sockets, under py-spy (which starts
the process it samples), after 200 untimed ones. Printed: the CPU time per request or
hit, how much of it each step of the path takes (the samples with its function on the
stack), the functions with the most samples (with and without what they call) and the
files whose own code has the most.

- `--cprofile`: the same requests under cProfile timing CPU time, for calls and µs per
  call (cProfile's own cost inflates functions with many small calls: compare its
  total with the sampled run's);
- `--steps`: each step of the path on its own, on inputs nobody sent before: CPU µs
  per call, the best and the median of 5 runs (the best is the cost without a busy
  machine's interference);
- `--server`: gunicorn with 2 sync workers under py-spy while `--clients` processes
  send the load for `--seconds`, as in the benchmark. This includes gunicorn's HTTP
  and socket work, but py-spy counts a thread as busy while it is runnable, also
  while it waits for a core: on a machine as busy as the load makes it, that inflates
  the system calls that wake another process (the reply, closing the connection).
  The workers' CPU time per request is exact (from /proc).

py-spy's collapsed stacks are kept in --out, for flame graphs.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ingest
from common import ROOT, free_port, instance, load, setup_site, workers_of

LOADS = ("pixel-adversarial", "pixel-realistic", "api-adversarial", "api-sessions")
WARM = 200

# Steps of the paths: (label, function, file, paths); a sample counts for a step when
# the function is on its stack. `paths`: "p" the pixel, "a" the API.
STEPS = [
    ("idle: waiting for a connection", "SyncWorker.wait", "gunicorn/workers/sync.py", "pa"),
    ("gunicorn: one request, accept to close", "SyncWorker.handle", "gunicorn/workers/sync.py",
     "pa"),
    ("  send the reply", "Response.write", "gunicorn/http/wsgi.py", "pa"),
    ("  close the connection", "close_graceful", "gunicorn/util.py", "pa"),
    ("the app (WSGI call)", "TrustedProxies.__call__", "goatcounter/web/proxies.py", "pa"),
    ("  pixel layer", "PixelEndpoint._handle", "goatcounter/public/pixel.py", "p"),
    ("    site by host", "HostCache.get", "goatcounter/accounts/sites.py", "p"),
    ("    rate limit (count bucket)", "check_count", "goatcounter/web/ratelimit.py", "p"),
    ("    parse_args", "parse_args", "goatcounter/public/pixel.py", "p"),
    ("    decide", "decide", "goatcounter/public/pixel.py", "p"),
    ("      process (the pipeline)", "process", "goatcounter/counting/pipeline/process.py", "p"),
    ("    pending.add (spool append)", "add", "goatcounter/counting/pending.py", "p"),
    ("  Flask", "Flask.wsgi_app", "flask/app.py", "a"),
    ("    before-request hooks (limiter, ...)", "Flask.preprocess_request", "flask/app.py",
     "a"),
    ("    api_count view", "api_count", "goatcounter/api/count.py", "a"),
    ("      authenticate", "authenticate", "goatcounter/accounts/tokens.py", "a"),
    ("      decoding.decode_body (JSON, hit fields)", "decode_body", "goatcounter/decoding.py",
     "a"),
    ("      _session_key", "_session_key", "goatcounter/api/count.py", "a"),
    ("      process (the pipeline)", "process", "goatcounter/counting/pipeline/process.py", "a"),
    ("      store.save", "save", "goatcounter/counting/store.py", "a"),
    ("steps of the pipeline, wherever called", "process",
     "goatcounter/counting/pipeline/process.py", "pa"),
    ("  bots.from_user_agent", "from_user_agent", "goatcounter/counting/pipeline/bots.py", "pa"),
    ("    crawlerdetect", "CrawlerDetect._check_crawler", "crawlerdetect/crawlerdetect.py",
     "pa"),
    ("  useragents.parse (ua-parser)", "parse", "goatcounter/counting/pipeline/useragents.py",
     "pa"),
    ("  locations.lookup_ip", "lookup_ip", "goatcounter/counting/pipeline/locations.py", "pa"),
    ("  referrers.clean_referrer", "clean_referrer", "goatcounter/counting/pipeline/referrers.py",
     "pa"),
    ("  validate", "validate", "goatcounter/counting/pipeline/process.py", "pa"),
    ("counting the spool (pending.drain)", "drain", "goatcounter/counting/pending.py", "p"),
    ("storing (store._save)", "_save", "goatcounter/counting/store.py", "pa"),
    ("  path ids", "_path_id", "goatcounter/counting/store.py", "pa"),
    ("  ref, browser, system ids", "_named_id", "goatcounter/counting/store.py", "pa"),
    ("  sessions.resolve", "resolve", "goatcounter/counting/sessions.py", "pa"),
    ("  sessions.first_visits", "first_visits", "goatcounter/counting/sessions.py", "pa"),
    ("  _save itself (inserting hits and bots)", "_save", "goatcounter/counting/store.py", "pa"),
    ("  aggregates.add", "add", "goatcounter/counting/aggregates.py", "pa"),
    ("write transactions in all (db.write)", "write", "goatcounter/storage/db.py", "pa"),
    ("  begin, commit", "_transaction", "goatcounter/storage/db.py", "pa"),
    ("  waiting for the write lock (flock)", "WriteLock.held", "goatcounter/storage/db.py", "pa"),
    ("  waiting for the rate limit's database", "SQLiteStorage.incr",
     "goatcounter/web/ratelimit.py", "p"),
]
# For this one, only the samples in _save's own code: its executemany of hits and bots.
OWN_ONLY = {"  _save itself (inserting hits and bots)", "  waiting for the write lock (flock)",
            "  waiting for the rate limit's database"}

Samples = list[tuple[list[tuple[str, str]], int]]


# Samples --------------------------------------------------------------------------------

def frames(stack: str) -> list[tuple[str, str]]:
    """(function, file) of each frame of a collapsed stack, outermost first."""
    out = []
    for frame in stack.split(";"):
        if re.match(r"process \d+:", frame):  # py-spy's entry for a process
            continue
        name, _, where = frame.rpartition(" (")
        out.append((name, where.rstrip(")").rsplit(":", 1)[0]))
    return out


def _matches(frame: tuple[str, str], func: str, file: str) -> bool:
    return frame[0] == func and file in frame[1]


def read_samples(path: str, keep: Callable[[list[tuple[str, str]]], bool]) -> Samples:
    out = []
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        fr = frames(stack)
        if keep(fr):
            out.append((fr, int(count)))
    return out


def report(samples: Samples, cpu: float, units: int, unit: str, top: int,
           path: str, what: str = "CPU") -> str:
    total = sum(n for _, n in samples) or 1
    per = cpu / max(1, units) * 1e6

    def line(label: str, n: int) -> str:
        return f"  {label[:62]:62} {n / total:6.1%} {n / total * per:9.1f}"

    head = f" {'share':>6} {'µs/' + unit:>9}"
    out = [f"{what} {cpu:.2f} s for {units} {unit}s: {per:.0f} µs per {unit}; {total} samples",
           "", f"  {'step (samples with its function on the stack)':62}{head}"]
    for label, func, file, paths in STEPS:
        if path not in paths:
            continue
        if label in OWN_ONLY:
            n = sum(c for fr, c in samples if fr and _matches(fr[-1], func, file))
        else:
            n = sum(c for fr, c in samples if any(_matches(f, func, file) for f in fr))
        if n:
            out.append(line(label, n))
    inclusive: Counter[tuple[str, str]] = Counter()
    own: Counter[tuple[str, str]] = Counter()
    by_file: Counter[str] = Counter()
    for fr, n in samples:
        for f in set(fr):
            inclusive[f] += n
        if fr:
            own[fr[-1]] += n
            by_file[fr[-1][1]] += n
    out += ["", f"  {'functions, with what they call':62}{head}"]
    out += [line(f"{func} ({file})", n) for (func, file), n in inclusive.most_common(top)]
    out += ["", f"  {'functions, their own code':62}{head}"]
    out += [line(f"{func} ({file})", n) for (func, file), n in own.most_common(top // 2)]
    out += ["", f"  {'files, their own code':62}{head}"]
    out += [line(file, n) for file, n in by_file.most_common(top // 2)]
    return "\n".join(out)


# Loads ----------------------------------------------------------------------------------

class Requests:
    """The requests of a load, made on demand (every call gives new ones)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rng = random.Random(42)
        self.mix = ingest.Mix(random.Random(1))
        self.addresses = ingest.Addresses(random.Random(2))
        self.pixel = name.startswith("pixel")
        self.seq = 0
        self.env = ({"GOATCOUNTER_RATELIMIT": ingest.DEFAULT_LIMITS, **ingest.PROXIED}
                    if self.pixel else
                    {"GOATCOUNTER_RATELIMIT": ingest.API_LIMITS, **ingest.PROXIED})
        self.per_request = 1 if self.pixel else ingest.BATCH
        self.unit = "request" if self.pixel else "hit"

    def make(self, token: str, units: int) -> list[bytes]:
        """Requests for `units` pageviews (pixel) or hits (API)."""
        if self.pixel:
            gen = ingest.adversarial if self.name == "pixel-adversarial" else ingest.realistic
            return [ingest.pixel_request(self.rng, v)
                    for v in gen(self.rng, self.mix, self.addresses, units)]
        if self.name == "api-adversarial":
            hits = [ingest.api_hit(v) for v in
                    ingest.adversarial(self.rng, self.mix, self.addresses, units)]
        else:
            hits = []
            for _ in range(units):
                self.seq += 1
                hits.append({"path": f"/page/{self.seq % 5000}", "title": "Page", "ref": "",
                             "user_agent": ingest.UAS[self.seq % len(ingest.UAS)],
                             "session": f"s{self.seq}", "size": "1920,1080,1"})
        return [ingest.api_request(token, hits[i:i + ingest.BATCH])
                for i in range(0, len(hits), ingest.BATCH)]


def environ_of(request: bytes) -> dict[str, Any]:
    """The WSGI environ of a raw request, as gunicorn makes it (from 127.0.0.1)."""
    head, _, body = request.partition(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = first.split(" ")
    path, _, query = target.partition("?")
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False}
    for line in lines:
        name, _, value = line.partition(": ")
        key = name.upper().replace("-", "_")
        env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    return env


# In one process -------------------------------------------------------------------------

class App:
    """The app in this process, on a fresh instance."""

    def __init__(self, inst: str, load_: Requests) -> None:
        from goatcounter import create_app

        self.token = setup_site(inst)
        os.environ.update({"GOATCOUNTER_INSTANCE": inst, **load_.env})
        self.app = create_app({"INSTANCE": inst, "COUNT_IN_BACKGROUND": False})
        self.statuses: Counter[str] = Counter()

    def _start_response(self, status: str, headers: list, exc_info: Any = None) -> None:
        self.statuses[status.split()[0]] += 1

    def warm_up(self, requests: list[bytes], load_: Requests) -> None:
        """Untimed (first calls build parsers, compile patterns, open files). For the
        realistic load, the most common user agents are seen first, as in the benchmark."""
        from goatcounter.counting.pipeline import bots, useragents

        self._serve(requests)
        if load_.name == "pixel-realistic":
            mix = load_.mix
            for ua in mix.browsers[:ingest.WARM_BROWSERS] + mix.bots[:ingest.WARM_BOTS]:
                bots.from_user_agent(ua)
                useragents.parse(ua)

    def timed_run(self, requests: list[bytes]) -> float:
        return self._serve(requests)

    def _serve(self, requests: list[bytes]) -> float:
        """Serve the requests as gunicorn would (iterate, close), then count what is
        pending; returns the CPU time."""
        from goatcounter.counting import pending

        environs = [environ_of(r) for r in requests]
        start = time.process_time()
        for env in environs:
            result = self.app(env, self._start_response)
            for _ in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        with self.app.app_context():
            pending.drain()
        return time.process_time() - start


def child(args: argparse.Namespace) -> None:
    """The sampled process: warm up, then the timed run; its figures go to a file."""
    load_ = Requests(args.load)
    with instance() as inst:
        app = App(inst, load_)
        app.warm_up(load_.make(app.token, WARM), load_)
        requests = load_.make(app.token, args.requests)
        cpu = app.timed_run(requests)
        Path(args.child).write_text(json.dumps({
            "cpu": cpu, "units": args.requests, "statuses": app.statuses}))


def sampled(args: argparse.Namespace) -> None:
    raw = os.path.join(args.out, f"ingest-{args.load}-in-process.txt")
    stats = os.path.join(args.out, f"ingest-{args.load}-in-process.json")
    subprocess.run(
        [args.py_spy, "record", "--function", "--rate", str(args.rate), "--format", "raw",
         "--output", raw, "--", sys.executable, __file__, args.load, "--child", stats,
         "--requests", str(args.requests)], check=True, stdout=subprocess.DEVNULL)
    got = json.loads(Path(stats).read_text())
    load_ = Requests(args.load)
    samples = read_samples(raw, lambda fr: any(f[0] == "App.timed_run" for f in fr))
    print(f"{args.load}, the app alone in one process under py-spy: {got['units']} "
          f"{load_.unit}s, replies {got['statuses']}")
    print(report(samples, got["cpu"], got["units"], load_.unit, args.top,
                 "p" if load_.pixel else "a"))
    print(f"\nraw samples: {raw}")


def profiled(args: argparse.Namespace) -> None:
    load_ = Requests(args.load)
    with instance() as inst:
        app = App(inst, load_)
        app.warm_up(load_.make(app.token, WARM), load_)
        plain = app.timed_run(load_.make(app.token, args.requests))
        requests = load_.make(app.token, args.requests)
        # CPU time, so that waiting for a core (on a busy machine) counts nowhere.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        total = app.timed_run(requests)
        profiler.disable()
    units, unit = args.requests, load_.unit
    print(f"{args.load}, the app alone in one process: {plain / units * 1e6:.0f} µs CPU per "
          f"{unit}, {total / units * 1e6:.0f} µs under cProfile")
    rows = []
    for (file, _, func), (_, nc, tt, ct, _) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        short = file.split("site-packages/")[-1].split(str(ROOT) + "/")[-1]
        rows.append((ct, tt, nc, f"{func} ({short})"))
    head = f"{'calls':>7} {'µs/call':>8} {'µs/' + unit:>9} {'share':>6}"
    print(f"\n  {'function, with what it calls':62} {head}")
    for ct, _, nc, label in sorted(rows, reverse=True)[:args.top]:
        print(f"  {label[:62]:62} {nc:7} {ct / nc * 1e6:8.1f} {ct / units * 1e6:9.1f} "
              f"{ct / total:6.1%}")
    print(f"\n  {'function, its own code':62} {head}")
    for _, tt, nc, label in sorted(rows, key=lambda r: -r[1])[:args.top // 2]:
        print(f"  {label[:62]:62} {nc:7} {tt / nc * 1e6:8.1f} {tt / units * 1e6:9.1f} "
              f"{tt / total:6.1%}")


def steps(args: argparse.Namespace, n: int = 1000, repeats: int = 5) -> None:
    """Each step on its own, on inputs nobody sent before."""
    from goatcounter.accounts import sites
    from goatcounter.counting import aggregates, pending, sessions, store
    from goatcounter.counting.pipeline import bots, locations, useragents
    from goatcounter.counting.pipeline.process import Incoming, process
    from goatcounter.storage import db
    from goatcounter.web import counters, ratelimit

    load_ = Requests(args.load)
    mix, addresses = load_.mix, load_.addresses
    with instance() as inst:
        app = App(inst, load_).app
        with app.app_context():
            site = sites.get(db.get_db(), 1)
        assert site is not None
        spool = app.extensions["goatcounter_spool"]
        seen = mix.browsers[:50]
        for ua in seen:
            bots.from_user_agent(ua)

        def hits(k: int) -> list[Any]:
            out = []
            for v in ingest.adversarial(load_.rng, mix, addresses, k):
                h = process(Incoming(path=v.path, title=v.title, ref=v.ref, width=390,
                                     user_agent=v.user_agent, ip=v.ip), site["settings"],
                            time.time(), sessions.client_key("k", f"u:{v.user_agent}-{v.ip}"))
                assert not isinstance(h, str)
                out.append(h)
            return out

        def batches(fn: Callable[[list[Any]], None], k: int) -> Callable[[list[Any]], None]:
            def run(items: list[Any]) -> None:
                for i in range(0, len(items), k):
                    fn(items[i:i + k])
            return run

        def save(batch: list[Any]) -> None:
            with app.app_context():
                store.save(site, batch)

        def count(batch: list[Any]) -> None:
            for h in batch:
                pending.add(site["id"], h, spool)
            with app.app_context():
                pending.drain()

        table = counters.SharedCounters(os.path.join(inst, "steps.counters"))
        now = time.time()

        def keys(repeat: int) -> list[str]:
            fresh = [f"{addresses.fresh()}\x00{mix.fresh()}" for _ in range(n // repeat)]
            return [key for key in fresh for _ in range(repeat)]

        each = [
            ("bots.from_user_agent, new user agent (crawlerdetect)", bots.from_user_agent,
             lambda: [mix.fresh() for _ in range(n)]),
            ("bots.from_user_agent, one seen before (its lru_cache)", bots.from_user_agent,
             lambda: [seen[i % len(seen)] for i in range(n)]),
            ("useragents.parse, new user agent (ua-parser)", useragents.parse,
             lambda: [mix.fresh() for _ in range(n)]),
            ("locations.lookup_ip, new address (iptocc)", locations.lookup_ip,
             lambda: [addresses.fresh() for _ in range(n)]),
            ("ratelimit.check_count, new address and UA (shared counters)",
             lambda x: ratelimit.check_count(app, *x),
             lambda: [(addresses.fresh(), mix.fresh()) for _ in range(n)]),
            ("counters.incr, new key (the pixel's rate-limit table)",
             lambda k: table.incr(k, 1, now), lambda: keys(1)),
            ("counters.incr, each key 4 times in its window", lambda k: table.incr(k, 1, now),
             lambda: keys(4)),
            ("sessions.client_key (blake2b)", lambda x: sessions.client_key("secret", x),
             lambda: [f"u:{mix.fresh()}-{addresses.fresh()}" for _ in range(n)]),
            ("process(), new UA and address (the pipeline, all steps)",
             lambda v: process(Incoming(path=v.path, user_agent=v.user_agent, ip=v.ip),
                               site["settings"], time.time(), "key"),
             lambda: ingest.adversarial(load_.rng, mix, addresses, n)),
            ("pending.add: spool one pageview (JSON line, write)",
             lambda h: pending.add(site["id"], h, spool), lambda: hits(n)),
        ]
        # One worker counts, after FULL (1,000) pageviews or DRAIN_EVERY (0.5 s): under
        # load, batches of about a thousand; a quiet site's are of a few.
        rng = random.Random(3)

        def stored(spread: int) -> Callable[[int], list[Any]]:
            """Hits as storing leaves them for the aggregates (ids found, new sessions),
            over `spread` paths, browsers and systems."""
            def make(k: int) -> list[Any]:
                out = hits(k)
                for h in out:
                    h.path_id, h.ref_id = rng.randrange(1, spread), rng.choice([1, 1, 2, 3])
                    h.browser_id, h.system_id = rng.randrange(1, spread), rng.randrange(1, 10)
                    h.session, h.first_visit = rng.randbytes(16), True
                return out
            return make

        def aggregate(batch: list[Any]) -> None:
            with app.app_context():
                conn = db.get_db()
                conn.execute("BEGIN")  # rolled back: every batch meets the same tables
                try:
                    aggregates.add(conn, site["id"], batch, {h.session for h in batch})
                finally:
                    conn.rollback()

        whole: list[tuple[str, Callable[[list[Any]], None], Callable[[int], list[Any]]]] = [
            (f"aggregates.add, a batch of {n} new sessions, {spread} paths, per hit",
             aggregate, stored(spread)) for spread in (50, 5)]
        whole += [(f"counting the spool, batches of {k} new sessions, per pageview",
                   batches(count, k), hits) for k in (10, 30, 100, 1000)]
        whole += [(f"store.save, batches of {k} new sessions (the API's), per hit",
                   batches(save, k), hits) for k in (10, 100, 500)]
        print(f"\n  {'step, on inputs nobody sent before':62} {'best':>7} {'median':>7}"
              "  µs per call")
        for label, fn, make in each:
            times = []
            for _ in range(repeats):
                items = make()
                start = time.process_time()
                for x in items:
                    fn(x)
                times.append((time.process_time() - start) / len(items) * 1e6)
            print(f"  {label:62} {min(times):7.1f} {statistics.median(times):7.1f}")
        for label, run, make_hits in whole:
            times = []
            for _ in range(repeats):
                items = make_hits(n)
                start = time.process_time()
                run(items)
                times.append((time.process_time() - start) / len(items) * 1e6)
            print(f"  {label:62} {min(times):7.1f} {statistics.median(times):7.1f}")


# Under gunicorn -------------------------------------------------------------------------

def _ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _cpu(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def server(args: argparse.Namespace) -> None:
    load_ = Requests(args.load)
    raw = os.path.join(args.out, f"ingest-{args.load}-server.txt")
    with instance() as inst:
        token = setup_site(inst)
        units = int(args.seconds * (1500 if load_.pixel else 8000)) + 10_000
        requests = load_.make(token, units)
        conf = os.path.join(inst, "gunicorn.conf.py")
        Path(conf).write_text("")
        port = free_port()
        spy = subprocess.Popen(
            [args.py_spy, "record", "--subprocesses", "--function", "--rate", str(args.rate),
             *(["--idle"] if args.idle else []),
             "--format", "raw", "--output", raw, "--", sys.executable, "-m", "gunicorn", "-c",
             conf, "--bind", f"127.0.0.1:{port}", "--workers", "2", "--backlog", "2048",
             "--log-level", "warning", "wsgi:app"],
            cwd=ROOT, env={**os.environ, "GOATCOUNTER_INSTANCE": inst, **load_.env},
            stdout=subprocess.DEVNULL)
        master = None
        deadline = time.monotonic() + 60
        while master is None or len(workers_of(master)) < 2 or not _ready(port):
            kids = workers_of(spy.pid)
            master = kids[0] if kids else None
            if time.monotonic() > deadline or spy.poll() is not None:
                raise SystemExit("gunicorn did not start under py-spy")
            time.sleep(0.2)
        time.sleep(1)
        if args.load == "pixel-realistic":
            ingest.warm_up(("127.0.0.1", port), token, load_.mix)
        workers = workers_of(master)
        before = _cpu(workers)
        got = load(("127.0.0.1", port), requests, args.seconds, args.clients)
        time.sleep(1.5)  # the counting that follows the last replies
        used = _cpu(workers) - before
        os.kill(master, signal.SIGTERM)
        spy.wait(timeout=120)
    done = got.ok * load_.per_request

    def keep(fr: list[tuple[str, str]]) -> bool:
        # The workers once they are up (their main thread, and the counting thread when
        # it counts): no start-up (imports, loading the app), and for the pixel nothing
        # in Flask (which only the warm-up reaches).
        names = {f[0] for f in fr}
        main = "SyncWorker.run" in names
        counting = "Drainer._idle_loop" in names and (not args.idle or "drain" in names)
        return ((main or counting) and not names & {"load_wsgi", "_find_and_load"}
                and not (load_.pixel and "Flask.wsgi_app" in names))

    if args.idle:
        # Wall time of the main threads (the counting thread idles in a sleep).
        used = 2 * got.elapsed
    print(f"{args.load} under gunicorn and py-spy: {got.ok} replies in {got.elapsed:.1f} s "
          f"({done / got.elapsed:.0f} {load_.unit}s/s), replies {got.codes}, repeated "
          f"{got.repeated}; " + ("wall time of both workers' main threads" if args.idle else
                                 "workers' CPU from /proc"))
    print(report(read_samples(raw, keep), used, done, load_.unit, args.top,
                 "p" if load_.pixel else "a", "wall time" if args.idle else "CPU"))
    print(f"\nraw samples: {raw}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("load", choices=LOADS)
    parser.add_argument("--server", action="store_true", help="under gunicorn, with the load")
    parser.add_argument("--cprofile", action="store_true", help="calls, under cProfile")
    parser.add_argument("--steps", action="store_true", help="each step on its own")
    parser.add_argument("--requests", type=int, default=3000,
                        help="pageviews or hits of the in-process run (default 3000)")
    parser.add_argument("--seconds", type=float, default=20, help="with --server")
    parser.add_argument("--clients", type=int, default=4, help="with --server")
    parser.add_argument("--idle", action="store_true",
                        help="with --server: sample waiting threads too (wall time: where "
                             "the workers wait, for a connection or for the write lock)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", default=tempfile.gettempdir())
    parser.add_argument("--py-spy", default=str(Path(sys.executable).parent / "py-spy"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
    elif args.server:
        server(args)
    elif args.cprofile:
        profiled(args)
    elif args.steps:
        steps(args)
    else:
        sampled(args)


if __name__ == "__main__":
    main()
