"""Ingest throughput under friendly, realistic and adversarial loads: requests/s of the
GET /count pixel and durable hits/s of POST /api/v0/count, each line printed beside its
baseline measured in the same run.

    .venv/bin/python bench/ingest.py [--seconds 10] [--clients 4] [--quick]
                                     [--only pixel|api] [--line NAME ...]

gunicorn runs with 2 sync workers on a loopback port; the load comes from `--clients`
other processes, each request on a new connection (as with gunicorn's sync workers,
and nginx, which doesn't keep connections to its upstream by default). The loads:

- friendly: the old benchmark's. 5 user agents in all; pixels from 127.0.0.1 itself
  (so 5 sessions in all, and no rate limit applies), batches that cycle over the same
  40,000 hits (20,000 visitors). Every user-agent, bot and location lookup is a cache
  hit after the first seconds. Rate limits off.
- realistic: visitors from a pool of a million public addresses (IPv4 and IPv6, as
  X-Forwarded-For from nginx on 127.0.0.1, a trusted proxy), each with a user agent
  drawn Zipf-like from 21,000 distinct real-looking strings, 5 % of them bots
  (bench/useragents.py); 90 % of visits are new visitors, 10 % come back; a visit is
  one pageview (65 %) or several, seconds apart. Over the first 30,000 pageviews 57 %
  start a session; the pixel's shorter runs see more of the visits' first pageviews
  (about 70 %; every line prints its share). Before the timed rounds, each worker has
  seen the 4,000 most common browser strings and 300 bot strings (85 % of the draws),
  as a server that has been up a while has. Rate limits as in the default
  configuration.
- sessions (API only): the friendly load's hits and 5 user agents, but every hit with
  a `session` of its own, so every hit is a new visitor: what new sessions cost the
  store. Rate limits off. The API lines also print the bytes the server wrote per hit.
- adversarial: every request (every hit, for the API) has a user agent that no cache
  has seen and an address of its own, so a new session; default rate limits, and the
  pixel once more with rate limits off, to show what they cost.

Each line also prints the server's CPU time per request or hit (master and workers,
from /proc), which depends less than the rates on what else the machine is doing, the
replies by status (429s included), and how many pageviews were left to count when a
round ended.

The API lines keep the default limits but raise `api-count` (60 batches per 120 s per
token by default, which would refuse nearly all of a single backend's load).

Baselines: for the pixel, a bare Flask app that returns the same GIF, under the same
gunicorn settings, alternated with ours in short rounds (both servers stay up; ours has
counted its pageviews before the bare one is loaded); for the API, a plain
`executemany` of the same rows into a bare SQLite table, one transaction per batch.

The live-log lines run the realistic pixel and API loads on two servers at once, one
with the live log on (the default) and one with GOATCOUNTER_LIVE_LOG=0, alternated in
short rounds; the ratio is on against off, by rate and by server CPU per request or hit
(the steadier of the two on a shared machine).

After each line the database is checked: every pageview or hit that got a 2xx is stored
once (as a hit, or in the bot log), the aggregates add up to the stored hits, and their
unique visitors to the first visits.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import ipaddress
import json
import os
import random
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from common import (
    UAS,
    Load,
    bytes_written,
    cpu_seconds,
    gunicorn,
    http_request,
    instance,
    load,
    setup_site,
)
from useragents import Mix

from goatcounter import server_config

BATCH = 100
REFS = ["", "", "", "https://www.google.com/search?q=x", "https://news.ycombinator.com/item?id=1",
        "https://example.com/blog/post", "https://duckduckgo.com/", "newsletter"]
SIZES = ["1920,1080,1", "1366,768,1", "390,844,3", "2560,1440,1", "1280,800,2"]
LOCATIONS = ["NL", "US-TX", "DE", "GB", "JP", "FR", ""]
HOST = "127.0.0.1"
ROUNDS = 4

DEFAULT_LIMITS = server_config.DEFAULTS["RATELIMIT"]
NO_LIMITS = "api:none,api-count:none,count:none"
# The default, but api-count raised so that one token's load is not refused: the
# limiter still counts every batch.
API_LIMITS = DEFAULT_LIMITS + ",api-count:1000000/60"
PROXIED = {"GOATCOUNTER_TRUSTED_PROXIES": "127.0.0.1"}

# Real browsers' Accept-Language, roughly most common first.
LANGUAGES = ["en-US,en;q=0.9", "en-GB,en;q=0.9", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7",
             "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "nl-NL,nl;q=0.9,en-US;q=0.8,en;q=0.7",
             "es-ES,es;q=0.9", "en-US,en;q=0.5", "ja,en-US;q=0.9,en;q=0.8", "pt-BR,pt;q=0.9",
             "it-IT,it;q=0.9,en-US;q=0.8,en;q=0.7", "pl-PL,pl;q=0.9,en-US;q=0.8,en;q=0.7",
             "zh-CN,zh;q=0.9", "ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", "sv-SE,sv;q=0.9", ""]
MOBILE_SIZES = ["390,844,3", "412,915,2.625", "393,873,2.75", "360,800,3", "430,932,3",
                "414,896,2", "375,667,2", "384,832,2.8125"]
DESKTOP_SIZES = ["1920,1080,1", "1536,864,1.25", "1366,768,1", "1440,900,2", "2560,1440,1",
                 "1280,720,1.5", "1680,1050,1", "1728,1117,2"]
# Networks of large access providers (fully in iptocc's data): IPv6 visitors' addresses.
IPV6_NETS = [ipaddress.IPv6Network(n) for n in (
    "2a01:c000::/20", "2003::/19", "2601::/20", "2607:fb90::/28", "2401:4900::/32",
    "2409:8a00::/24", "2804:14c::/32", "2a00:23c0::/28", "2405:201::/32", "240e::/20",
    "2001:ee0::/32", "2a0d:5600::/29")]
WARM_BROWSERS = 4000
WARM_BOTS = 300


def make_hits(rng: random.Random, n: int, visitors: int = 20000,
              paths: int = 5000) -> list[dict]:
    """The friendly load's pageviews: many visitors over a Zipf-like spread of paths,
    with 5 user agents in all."""
    hits = []
    for _ in range(n):
        v = rng.randrange(visitors)
        p = min(int(rng.paretovariate(1.1)), paths)
        hits.append({
            "path": f"/page/{p}", "title": f"Page {p}", "ref": rng.choice(REFS),
            "user_agent": UAS[v % len(UAS)], "ip": f"10.{v >> 16 & 255}.{v >> 8 & 255}.{v & 255}",
            "size": rng.choice(SIZES), "location": rng.choice(LOCATIONS),
            "query": "utm_campaign=spring&utm_source=mail" if rng.random() < 0.02 else "",
        })
    return hits


# Realistic and adversarial traffic --------------------------------------------------------

class Addresses:
    """Visitors' public addresses, none given twice: 70 % IPv4, 30 % IPv6."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.given: set[str] = set()

    def fresh(self) -> str:
        while True:
            if self.rng.random() < 0.7:
                addr: ipaddress.IPv4Address | ipaddress.IPv6Address = \
                    ipaddress.IPv4Address(self.rng.getrandbits(32))
            else:
                net = self.rng.choice(IPV6_NETS)
                addr = net[self.rng.getrandbits(128 - net.prefixlen)]
            text = str(addr)
            if addr.is_global and text not in self.given:
                self.given.add(text)
                return text


@dataclasses.dataclass(slots=True)
class View:
    """One pageview of generated traffic."""

    path: str
    title: str
    ref: str
    size: str
    user_agent: str
    ip: str
    language: str


def _page(rng: random.Random, paths: int = 5000) -> tuple[str, str]:
    p = min(int(rng.paretovariate(1.1)), paths)
    return f"/page/{p}", f"Page {p}"


def _view(rng: random.Random, ua: str, ip: str, lang: str, first: bool) -> View:
    path, title = _page(rng)
    mobile = "Mobile" in ua or "Android" in ua or "iPhone" in ua
    return View(path=path, title=title, ref=rng.choice(REFS) if first else "",
                size=rng.choice(MOBILE_SIZES if mobile else DESKTOP_SIZES),
                user_agent=ua, ip=ip, language=lang)


def realistic(rng: random.Random, mix: Mix, addresses: Addresses, n: int) -> list[View]:
    """`n` pageviews of visits, in the order they happen: 90 % of visits by new
    visitors, 10 % by one seen before (same address and browser: the same session);
    65 % of visits are one pageview, the others one more and then another with
    probability 1/2 each time, some hundreds of pageviews (seconds) apart."""
    timed: list[tuple[float, int, View]] = []
    known: list[tuple[str, str, str]] = []
    seq = 0
    start = 0.0
    while len(timed) < n:
        if known and rng.random() < 0.1:
            ua, ip, lang = rng.choice(known)
        else:
            ua, ip, lang = mix.draw(), addresses.fresh(), rng.choice(LANGUAGES)
            if len(known) < 100_000:
                known.append((ua, ip, lang))
        pages = 1
        if rng.random() >= 0.65:
            pages = 2
            while rng.random() < 0.5 and pages < 20:
                pages += 1
        at = start
        for i in range(pages):
            timed.append((at, seq, _view(rng, ua, ip, lang, i == 0)))
            seq += 1
            at += 200 + rng.expovariate(1 / 1500)
        start += 1
    timed.sort(key=lambda t: (t[0], t[1]))
    return [v for _, _, v in timed[:n]]


def adversarial(rng: random.Random, mix: Mix, addresses: Addresses, n: int) -> list[View]:
    """`n` pageviews, each with a user agent nobody sent before and an address of its own."""
    return [_view(rng, mix.fresh(), addresses.fresh(), rng.choice(LANGUAGES), True)
            for _ in range(n)]


def pixel_request(rng: random.Random, v: View, proxied: bool = True) -> bytes:
    """GET /count as count.js sends it, through nginx (X-Forwarded-For) when `proxied`."""
    q = (f"/count?p={quote(v.path)}&t={quote(v.title)}&r={quote(v.ref)}"
         f"&s={v.size.split(',')[0]}&b=0&rnd={rng.randrange(10**6)}")
    headers = {"User-Agent": v.user_agent}
    if v.language:
        headers["Accept-Language"] = v.language
    if proxied:
        headers["X-Forwarded-For"] = v.ip
        headers["X-Forwarded-Proto"] = "https"
    return http_request("GET", q, HOST, headers=headers)


def api_hit(v: View) -> dict:
    """A hit as a backend sends it: no location (the server finds it from the address)."""
    return {"path": v.path, "title": v.title, "ref": v.ref, "user_agent": v.user_agent,
            "ip": v.ip, "size": v.size}


def api_request(token: str, hits: list[dict]) -> bytes:
    return http_request("POST", "/api/v0/count", HOST, json.dumps({"hits": hits}).encode(),
                        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})


def warm_up(addr: tuple[str, int], token: str, mix: Mix, repeat: int = 6) -> int:
    """Let each worker see the most common user agents (through the API: a few large
    batches), as on a server that has been up a while. Every batch is sent `repeat`
    times from 4 threads, so that both workers get it; returns the hits acknowledged."""
    uas = mix.browsers[:WARM_BROWSERS] + mix.bots[:WARM_BOTS]
    rng = random.Random(7)
    addresses = Addresses(rng)
    batches = [[{"path": "/warm-up", "title": "Warm-up", "user_agent": ua,
                 "ip": addresses.fresh()} for ua in uas[i:i + 500]]
               for i in range(0, len(uas), 500)]
    requests = [api_request(token, b) for b in batches for _ in range(repeat)]

    def send(req: bytes) -> int:
        with socket.create_connection(addr, timeout=60) as sock:
            sock.sendall(req)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return int(data.split(b" ", 2)[1])

    sizes = [len(b) for b in batches for _ in range(repeat)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(send, requests))
    bad = [c for c in codes if c != 202]
    if bad:
        raise RuntimeError(f"warm-up refused: {bad[:5]}")
    return sum(sizes)


# Checking what was stored -------------------------------------------------------------

@dataclasses.dataclass
class Stored:
    hits: int
    bots: int
    pageviews: int
    site_pageviews: int
    first_visits: int
    totals: tuple[int, int, int]
    sessions: int
    timed_hits: int

    @property
    def consistent(self) -> bool:
        return (self.hits == self.pageviews == self.site_pageviews
                and self.first_visits == self.totals[0] == self.totals[1] == self.totals[2])


def _connect(db_path: str) -> Any:
    """The benchmark's database: --db's PostgreSQL (GOATCOUNTER_DB) or the SQLite file."""
    from goatcounter.storage import db
    return db.connect(os.environ.get("GOATCOUNTER_DB") or db_path)


def stored(db_path: str) -> Stored:
    conn = _connect(db_path)
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        # The warm-up's hits are left out of the session count (they are on their path).
        timed = ("FROM hits WHERE path_id NOT IN"
                 " (SELECT id FROM paths WHERE path = '/warm-up')")
        return Stored(
            hits=one("SELECT count(*) FROM hits"), bots=one("SELECT count(*) FROM bots"),
            pageviews=one("SELECT coalesce(sum(pageviews), 0) FROM hit_counts"),
            site_pageviews=one("SELECT coalesce(sum(pageviews), 0) FROM site_counts"),
            first_visits=one("SELECT count(*) FROM hits WHERE first_visit = 1"),
            totals=(one("SELECT coalesce(sum(total), 0) FROM hit_counts"),
                    one("SELECT coalesce(sum(total), 0) FROM site_counts"),
                    one("SELECT coalesce(sum(total), 0) FROM path_days")),
            sessions=one(f"SELECT count(DISTINCT session) {timed}"),
            timed_hits=one(f"SELECT count(*) {timed}"))
    finally:
        conn.close()


def counted(db_path: str) -> int:
    """Hits and bot pageviews in the database now."""
    conn = _connect(db_path)
    try:
        return conn.execute("SELECT (SELECT count(*) FROM hits) + (SELECT count(*) FROM bots)"
                            ).fetchone()[0]
    finally:
        conn.close()


def drain(inst: str) -> None:
    """Count whatever is still pending (after the server has stopped)."""
    from goatcounter import create_app
    from goatcounter.counting import pending

    app = create_app({"INSTANCE": inst})
    with app.app_context():
        pending.drain()


def wait_counted(db_path: str, expected: int, limit: float = 60) -> tuple[int, float]:
    """(pageviews not counted yet, seconds until they were) once a round has ended."""
    start = time.monotonic()
    backlog = expected - counted(db_path)
    while counted(db_path) < expected and time.monotonic() - start < limit:
        time.sleep(0.05)
    return backlog, time.monotonic() - start


def baseline_insert(rows: list[tuple], path: str) -> float:
    """Rows/s of a plain executemany into a bare table, one transaction per batch (on
    PostgreSQL with --db: a table of the same database)."""
    if os.environ.get("GOATCOUNTER_DB"):
        return _baseline_postgresql(rows, os.environ["GOATCOUNTER_DB"])
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE hits (id INTEGER PRIMARY KEY, path TEXT, title TEXT, ref TEXT,"
                 " ua TEXT, ip TEXT, size TEXT, location TEXT, query TEXT)")
    start = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO hits (path, title, ref, ua, ip, size, location, query)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows[i:i + BATCH])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def _baseline_postgresql(rows: list[tuple], url: str) -> float:
    conn = _connect(url)
    conn.execute("DROP TABLE IF EXISTS bare_hits")
    conn.execute("CREATE TABLE bare_hits (id BIGINT GENERATED BY DEFAULT AS IDENTITY"
                 " PRIMARY KEY, path TEXT, title TEXT, ref TEXT, ua TEXT, ip TEXT, size TEXT,"
                 " location TEXT, query TEXT)")
    start = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        conn.begin(True)
        conn.executemany("INSERT INTO bare_hits (path, title, ref, ua, ip, size, location,"
                         " query) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows[i:i + BATCH])
        conn.commit()
    elapsed = time.perf_counter() - start
    conn.execute("DROP TABLE bare_hits")
    conn.close()
    return len(rows) / elapsed


def empty_postgresql() -> None:
    """Drop every table of --db's database: each line starts on a new one."""
    url = os.environ.get("GOATCOUNTER_DB")
    if url:
        conn = _connect(url)
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
        conn.close()


# The lines ----------------------------------------------------------------------------

@dataclasses.dataclass
class Line:
    """One line of the results: ours beside its baseline."""

    name: str
    unit: str
    rate: float
    base: float
    base_name: str
    ok: bool

    @property
    def ratio(self) -> float:
        return self.rate / self.base


@dataclasses.dataclass
class Settings:
    seconds: float
    clients: int
    rounds: int
    warm_repeat: int


def _codes(codes: dict[int, int]) -> str:
    return ", ".join(f"{k or 'conn err'}: {v}" for k, v in sorted(codes.items()))


def _traffic(views: list[View], mix: Mix) -> str:
    uas = {v.user_agent for v in views}
    bots = sum(1 for v in views if mix.is_bot(v.user_agent))
    return (f"{len(views)} pageviews sent, {len(uas)} distinct user agents, "
            f"{len({(v.ip, v.user_agent) for v in views})} visitors, "
            f"{len({v.ip for v in views})} addresses, bots {bots / max(1, len(views)):.1%}")


@contextlib.contextmanager
def fresh_site() -> Iterator[tuple[str, str, str]]:
    with instance() as inst:
        empty_postgresql()
        token = setup_site(inst)
        yield inst, token, os.path.join(inst, "goatcounter.sqlite3")


def pixel_line(name: str, requests: list[bytes], env: dict[str, str], s: Settings,
               views: list[View] | None = None, mix: Mix | None = None,
               warm: bool = False) -> Line:
    """GET /count on ours and on the bare app, alternated in `s.rounds` rounds."""
    with fresh_site() as (inst, token, db_path):
        env = {"GOATCOUNTER_INSTANCE": inst, **env}
        ours, bare = [], []
        warmed = pos = 0
        cpu = [0.0, 0.0]
        backlogs: list[tuple[int, float]] = []
        with gunicorn("wsgi:app", env) as server, \
                gunicorn("bench.bare_app:app", env) as bare_server:
            if warm and mix is not None:
                warmed = warm_up(server.addr, token, mix, s.warm_repeat)
                wait_counted(db_path, warmed)
            for _ in range(s.rounds):
                before = cpu_seconds(server)
                got = load(server.addr, requests[pos:] if views else requests,
                           s.seconds / s.rounds, s.clients)
                pos += got.used
                ours.append(got)
                backlogs.append(wait_counted(db_path, warmed + sum(r.ok for r in ours)))
                cpu[0] += cpu_seconds(server) - before
                before = cpu_seconds(bare_server)
                bare.append(load(bare_server.addr, requests, s.seconds / s.rounds, s.clients))
                cpu[1] += cpu_seconds(bare_server) - before
        drain(inst)
        db = stored(db_path)
    o, b = _sum(ours), _sum(bare)
    rate, base = o.ok / o.elapsed, b.ok / b.elapsed
    acked = warmed + o.ok
    good = db.hits + db.bots == acked and db.consistent and (views is None or o.repeated == 0)
    print(f"{name}: GET /count, {s.clients} clients, {o.elapsed:.1f} s in {s.rounds} rounds")
    print(f"    requests/s          {rate:10.0f}   (replies {_codes(o.codes)})")
    print(f"    bare Flask GIF      {base:10.0f}   requests/s (replies {_codes(b.codes)})")
    print(f"    ratio               {rate / base:10.3f}")
    print(f"    server CPU per request: {cpu[0] / max(1, o.sent) * 1e6:.0f} µs, bare "
          f"{cpu[1] / max(1, b.sent) * 1e6:.0f} µs (counting after the reply included)")
    if views is not None and mix is not None:
        print(f"    traffic: {_traffic(views[:pos], mix)}; repeated {o.repeated}")
    print(f"    new sessions {db.sessions} for {db.timed_hits} stored hits "
          f"({db.sessions / max(1, db.timed_hits):.0%})"
          + (f"; warm-up {warmed} hits through the API" if warmed else ""))
    worst = max(backlogs)
    print(f"    left to count at the end of a round: at most {worst[0]} pageviews, counted "
          f"{worst[1]:.2f} s later")
    print(f"    stored {db.hits} hits + {db.bots} bot pageviews for {acked} acknowledged;"
          f" hit_counts {db.pageviews}, site_counts {db.site_pageviews}; first visits"
          f" {db.first_visits} = totals {'/'.join(map(str, db.totals))}:"
          f" {'OK' if good else 'MISMATCH'}")
    return Line(name, "requests/s", rate, base, "bare Flask GIF", good)


def api_line(name: str, batches: list[list[dict]], env: dict[str, str], s: Settings,
             views: list[View] | None = None, mix: Mix | None = None,
             warm: bool = False) -> Line:
    """POST /api/v0/count in batches for `s.seconds`, then a bare executemany of the
    same rows."""
    with fresh_site() as (inst, token, db_path):
        env = {"GOATCOUNTER_INSTANCE": inst, **env}
        requests = [api_request(token, b) for b in batches]
        warmed = 0
        with gunicorn("wsgi:app", env) as server:
            if warm and mix is not None:
                warmed = warm_up(server.addr, token, mix, s.warm_repeat)
            before, wrote = cpu_seconds(server), bytes_written(server)
            got = load(server.addr, requests, s.seconds, s.clients)
            cpu = cpu_seconds(server) - before
            wrote = bytes_written(server) - wrote
        db = stored(db_path)
        accepted = got.ok * BATCH
        rows = [(h["path"], h["title"], h["ref"], h["user_agent"], h["ip"], h["size"],
                 h.get("location", ""), h.get("query", "")) for b in batches for h in b]
        rows = (rows * (accepted // len(rows) + 1))[:max(accepted, 100_000)]
        base = baseline_insert(rows, os.path.join(inst, "bare.sqlite3"))
    rate = accepted / got.elapsed
    acked = accepted + warmed
    good = db.hits + db.bots == acked and db.consistent and (views is None or got.repeated == 0)
    print(f"{name}: POST /api/v0/count, batches of {BATCH}, {s.clients} clients, "
          f"{got.elapsed:.1f} s")
    print(f"    durable hits/s      {rate:10.0f}   (replies {_codes(got.codes)})")
    print(f"    bare executemany    {base:10.0f}   rows/s in the same run")
    print(f"    ratio               {rate / base:10.3f}")
    print(f"    server CPU per hit: {cpu / max(1, accepted) * 1e6:.0f} µs; bytes written per hit:"
          f" {wrote / max(1, accepted):,.0f} (WAL, database, log)")
    if views is not None and mix is not None:
        print(f"    traffic: {_traffic(views[:got.used * BATCH], mix)}; "
              f"repeated batches {got.repeated}")
    print(f"    new sessions {db.sessions} for {db.timed_hits} stored hits "
          f"({db.sessions / max(1, db.timed_hits):.0%})"
          + (f"; warm-up {warmed} hits" if warmed else ""))
    print(f"    stored {db.hits} hits + {db.bots} bot hits for {acked} acknowledged;"
          f" hit_counts {db.pageviews}, site_counts {db.site_pageviews}; first visits"
          f" {db.first_visits} = totals {'/'.join(map(str, db.totals))}:"
          f" {'OK' if good else 'MISMATCH'}")
    return Line(name, "hits/s", rate, base, "bare executemany", good)


def live_log_line(name: str, make: Callable[[str], list[bytes]], per: int, env: dict[str, str],
                  s: Settings) -> Line:
    """The same load on a server with the live log on and one with it off, alternated
    in `s.rounds` rounds; `make(token)` gives the requests, `per` hits each."""
    with fresh_site() as (inst_on, token_on, db_on), \
            fresh_site() as (inst_off, token_off, db_off):
        runs = {"on": (inst_on, make(token_on), db_on), "off": (inst_off, make(token_off), db_off)}
        loads: dict[str, list[Load]] = {"on": [], "off": []}
        cpu = {"on": 0.0, "off": 0.0}
        with gunicorn("wsgi:app", {**env, "GOATCOUNTER_INSTANCE": inst_on,
                                   "GOATCOUNTER_LIVE_LOG": "1"}) as on, \
                gunicorn("wsgi:app", {**env, "GOATCOUNTER_INSTANCE": inst_off,
                                      "GOATCOUNTER_LIVE_LOG": "0"}) as off:
            servers = {"on": on, "off": off}
            pos = {"on": 0, "off": 0}
            for _ in range(s.rounds):
                for key, server in servers.items():
                    _, requests, db_path = runs[key]
                    before = cpu_seconds(server)
                    got = load(server.addr, requests[pos[key]:], s.seconds / s.rounds,
                               s.clients)
                    pos[key] += got.used
                    loads[key].append(got)
                    if per == 1:
                        wait_counted(db_path, sum(r.ok for r in loads[key]))
                    cpu[key] += cpu_seconds(server) - before
        for key in runs:
            drain(runs[key][0])
        db = stored(db_on)
        kept = sqlite3.connect(db_on).execute("SELECT count(*) FROM live_log").fetchone()[0]
    o, f = _sum(loads["on"]), _sum(loads["off"])
    rate, base = o.ok * per / o.elapsed, f.ok * per / f.elapsed
    cpu_on, cpu_off = (cpu[k] / max(1, x.ok * per) for k, x in (("on", o), ("off", f)))
    good = db.hits + db.bots == o.ok * per and db.consistent and o.repeated == f.repeated == 0
    unit = "requests/s" if per == 1 else "hits/s"
    print(f"{name}: {s.clients} clients, {o.elapsed + f.elapsed:.1f} s in {s.rounds} rounds")
    print(f"    live log on         {rate:10.0f}   {unit} (replies {_codes(o.codes)})")
    print(f"    live log off        {base:10.0f}   {unit} (replies {_codes(f.codes)})")
    print(f"    ratio               {rate / base:10.3f}")
    print(f"    server CPU per {'request' if per == 1 else 'hit'}: on {cpu_on * 1e6:.0f} µs, "
          f"off {cpu_off * 1e6:.0f} µs, ratio off/on {cpu_off / cpu_on:.3f}")
    print(f"    live log entries kept {kept}; stored {db.hits} hits + {db.bots} bots for "
          f"{o.ok * per} acknowledged: {'OK' if good else 'MISMATCH'}")
    return Line(name, unit, rate, base, "live log off", good)


def _sum(loads: list[Load]) -> Load:
    codes: dict[int, int] = {}
    for r in loads:
        for k, v in r.codes.items():
            codes[k] = codes.get(k, 0) + v
    return Load(ok=sum(r.ok for r in loads), errors=sum(r.errors for r in loads),
                elapsed=sum(r.elapsed for r in loads), codes=codes,
                sent=sum(r.sent for r in loads), used=sum(r.used for r in loads),
                repeated=sum(r.repeated for r in loads))


LINES = ("pixel-friendly", "pixel-realistic", "pixel-adversarial", "pixel-adversarial-nolimits",
         "api-friendly", "api-sessions", "api-realistic", "api-adversarial", "live-log-pixel",
         "live-log-api")


def run(lines: list[str], s: Settings) -> list[Line]:
    rng = random.Random(42)
    mix = Mix(random.Random(1))
    addresses = Addresses(random.Random(2))
    # Enough requests that no client comes to the end of its share (checked).
    n_pixels = int(s.seconds * 6000) + 4000
    n_hits = int(s.seconds * 20000) + 20000
    out = []
    for name in lines:
        env_px = {"GOATCOUNTER_RATELIMIT": DEFAULT_LIMITS, **PROXIED}
        if name == "pixel-friendly":
            pixels = []
            for h in make_hits(rng, 5000):
                q = (f"/count?p={quote(h['path'])}&t={quote(h['title'])}&r={quote(h['ref'])}"
                     f"&s={h['size'].split(',')[0]}&b=0&rnd={rng.randrange(10**6)}")
                pixels.append(http_request("GET", q, HOST,
                                           headers={"User-Agent": h["user_agent"]}))
            out.append(pixel_line("pixel, friendly (old load: 5 UAs from 127.0.0.1, "
                                  "limits off)", pixels,
                                  {"GOATCOUNTER_RATELIMIT": NO_LIMITS}, s))
        elif name == "pixel-realistic":
            views = realistic(rng, mix, addresses, n_pixels)
            out.append(pixel_line("pixel, realistic (default limits)",
                                  [pixel_request(rng, v) for v in views], env_px, s,
                                  views, mix, warm=True))
        elif name in ("pixel-adversarial", "pixel-adversarial-nolimits"):
            views = adversarial(rng, mix, addresses, n_pixels)
            limits = name == "pixel-adversarial"
            out.append(pixel_line(
                "pixel, adversarial (" + ("default limits" if limits else "limits off") + ")",
                [pixel_request(rng, v) for v in views],
                env_px if limits else {**env_px, "GOATCOUNTER_RATELIMIT": NO_LIMITS},
                s, views, mix))
        elif name == "api-friendly":
            batches = [make_hits(rng, BATCH) for _ in range(400)]
            out.append(api_line("API, friendly (old load: 5 UAs, 40,000 hits cycled, "
                                "limits off)", batches, {"GOATCOUNTER_RATELIMIT": NO_LIMITS}, s))
        elif name == "api-sessions":
            hits = make_hits(rng, n_hits)
            for i, h in enumerate(hits):
                h["session"] = f"visitor-{i}"
            batches = [hits[i:i + BATCH] for i in range(0, len(hits), BATCH)]
            out.append(api_line("API, a new session per hit (5 UAs, limits off)", batches,
                                {"GOATCOUNTER_RATELIMIT": NO_LIMITS}, s))
        elif name in ("api-realistic", "api-adversarial"):
            make = realistic if name == "api-realistic" else adversarial
            views = make(rng, mix, addresses, n_hits)
            hits = [api_hit(v) for v in views]
            batches = [hits[i:i + BATCH] for i in range(0, len(hits), BATCH)]
            out.append(api_line(f"API, {name.split('-')[1]} (default limits, api-count raised)",
                                batches, {"GOATCOUNTER_RATELIMIT": API_LIMITS, **PROXIED}, s,
                                views, mix, warm=name == "api-realistic"))
        elif name == "live-log-pixel":
            views = realistic(rng, mix, addresses, n_pixels)
            pixels = [pixel_request(rng, v) for v in views]
            out.append(live_log_line("live log, pixel, realistic (default limits)",
                                     lambda _token, p=pixels: p, 1, env_px, s))
        elif name == "live-log-api":
            hits = [api_hit(v) for v in realistic(rng, mix, addresses, n_hits)]
            batches = [hits[i:i + BATCH] for i in range(0, len(hits), BATCH)]
            out.append(live_log_line(
                "live log, API, realistic (default limits, api-count raised)",
                lambda token, bs=batches: [api_request(token, b) for b in bs], BATCH,
                {"GOATCOUNTER_RATELIMIT": API_LIMITS, **PROXIED}, s))
        print(flush=True)
    return out


def summary(lines: list[Line]) -> str:
    rows = [f"{'line':62} {'ours':>9} {'baseline':>9} {'ratio':>6}  check"]
    for ln in lines:
        rows.append(f"{ln.name:62} {ln.rate:9.0f} {ln.base:9.0f} {ln.ratio:6.3f}  "
                    f"{'OK' if ln.ok else 'MISMATCH'}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10,
                        help="timed load per line (default 10; 3 with --quick)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--quick", action="store_true",
                        help="shorter lines, in 2 rounds: a check that it all works")
    parser.add_argument("--only", choices=("pixel", "api", "live-log"),
                        help="run only these lines")
    parser.add_argument("--line", action="append", choices=LINES, help="run only this line")
    parser.add_argument("--rounds", type=int,
                        help=f"alternations of ours and the baseline (default {ROUNDS}): more"
                        " of them cancel more of a shared machine's changing speed")
    parser.add_argument("--db", help="a postgresql:// URL to run every line on (its tables are"
                        " dropped first) instead of a new SQLite file")
    args = parser.parse_args()
    if args.db:
        os.environ["GOATCOUNTER_DB"] = args.db
        print(f"database: PostgreSQL ({args.db})")
    seconds = args.seconds if args.seconds != 10 or not args.quick else 3
    s = Settings(seconds=seconds, clients=args.clients,
                 rounds=args.rounds or (2 if args.quick else ROUNDS),
                 warm_repeat=3 if args.quick else 6)
    lines = args.line or [n for n in LINES if args.only is None or n.startswith(args.only)]
    if args.db and any(n.startswith("live-log") for n in lines):
        # Two servers at once, each on a database of its own, which one URL can't give.
        print("the live-log lines run on SQLite only: left out")
        lines = [n for n in lines if not n.startswith("live-log")]
    results = run(lines, s)
    print(summary(results))
    raise SystemExit(0 if all(ln.ok for ln in results) else 1)


if __name__ == "__main__":
    main()
