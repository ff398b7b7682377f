"""Ingest throughput: durable hits/s of POST /api/v0/count in batches of 100, and
requests/s of GET /count, each against a baseline measured in the same run.

    .venv/bin/python bench/ingest.py [--seconds 20] [--clients 4]

gunicorn runs with 2 sync workers on a loopback port; the load comes from other
processes. (a) is compared with a plain `executemany` of the same rows into a bare
SQLite table (same PRAGMAs); (b) with a bare Flask endpoint that returns the same GIF
under the same gunicorn settings. After the load the database is checked: every hit
that got a 202 is stored, and the aggregates add up to the stored hits.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import time
from urllib.parse import quote

from common import UAS, gunicorn, http_request, instance, load, setup_site

BATCH = 100
REFS = ["", "", "", "https://www.google.com/search?q=x", "https://news.ycombinator.com/item?id=1",
        "https://example.com/blog/post", "https://duckduckgo.com/", "newsletter"]
SIZES = ["1920,1080,1", "1366,768,1", "390,844,3", "2560,1440,1", "1280,800,2"]
LOCATIONS = ["NL", "US-TX", "DE", "GB", "JP", "FR", ""]


def make_hits(rng: random.Random, n: int, visitors: int = 20000,
              paths: int = 5000) -> list[dict]:
    """Pageviews of many visitors over a Zipf-like spread of paths."""
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


def baseline_insert(rows: list[tuple], path: str) -> float:
    """Rows/s of a plain executemany into a bare table, one transaction per batch."""
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


def check_storage(db_path: str, accepted: int) -> tuple[int, int, int]:
    conn = sqlite3.connect(db_path)
    stored = conn.execute("SELECT count(*) FROM hits").fetchone()[0]
    pageviews = conn.execute("SELECT coalesce(sum(pageviews), 0) FROM hit_counts").fetchone()[0]
    site = conn.execute("SELECT coalesce(sum(pageviews), 0) FROM site_counts").fetchone()[0]
    return stored, pageviews, site


def count_after_drain(inst: str) -> int:
    """Stored hits, once every accepted pageview has been counted."""
    from goatcounter import create_app
    from goatcounter.counting import pending

    app = create_app({"INSTANCE": inst})
    with app.app_context():
        pending.drain()
    conn = sqlite3.connect(os.path.join(inst, "goatcounter.sqlite3"))
    return conn.execute("SELECT count(*) FROM hits").fetchone()[0]


ROUNDS = 4
ENV_LIMITS = {"GOATCOUNTER_RATELIMIT": "api:none,api-count:none,count:none"}


def bench_batches(inst: str, token: str, rng: random.Random, seconds: float,
                  clients: int) -> None:
    """(a): durable hits/s of POST /api/v0/count against a bare executemany."""
    env = {"GOATCOUNTER_INSTANCE": inst, **ENV_LIMITS}
    hits = [make_hits(rng, BATCH) for _ in range(400)]
    requests = [http_request("POST", "/api/v0/count", "127.0.0.1",
                             json.dumps({"hits": batch}).encode(),
                             {"Content-Type": "application/json",
                              "Authorization": f"Bearer {token}"}) for batch in hits]
    before = count_after_drain(inst)
    with gunicorn("wsgi:app", env) as server:
        ok, bad, elapsed, codes = load(server.addr, requests, seconds, clients)
    accepted = ok * BATCH
    rate = accepted / elapsed
    stored, pageviews, site_pv = check_storage(os.path.join(inst, "goatcounter.sqlite3"),
                                               accepted)
    rows = [(h["path"], h["title"], h["ref"], h["user_agent"], h["ip"], h["size"],
             h["location"], h["query"]) for batch in hits for h in batch]
    rows = (rows * (accepted // len(rows) + 1))[:max(accepted, 100_000)]
    base = baseline_insert(rows, os.path.join(inst, "bare.sqlite3"))
    good = stored - before == pageviews - before == site_pv - before == accepted
    print(f"(a) POST /api/v0/count, batches of {BATCH}, {clients} clients, {elapsed:.1f} s")
    print(f"    durable hits/s      {rate:10.0f}   (replies {codes}, errors {bad})")
    print(f"    bare executemany    {base:10.0f}   rows/s in the same run")
    print(f"    ratio               {rate / base:10.3f}")
    print(f"    stored {stored - before}, in hit_counts {pageviews - before}, in site_counts "
          f"{site_pv - before}, accepted {accepted}: {'OK' if good else 'MISMATCH'}")


def bench_pixels(inst: str, rng: random.Random, seconds: float, clients: int) -> None:
    """(b): requests/s of GET /count against a bare Flask app returning the same GIF."""
    env = {"GOATCOUNTER_INSTANCE": inst, **ENV_LIMITS}
    pixels = []
    for h in make_hits(rng, 5000):
        q = (f"/count?p={quote(h['path'])}&t={quote(h['title'])}&r={quote(h['ref'])}"
             f"&s={h['size'].split(',')[0]}&b=0&rnd={rng.randrange(10**6)}")
        pixels.append(http_request("GET", q, "127.0.0.1", headers={"User-Agent": h["user_agent"]}))
    before = count_after_drain(inst)
    # The machine is shared with the load driver (and maybe more): alternate the two
    # servers in short rounds so that both see the same conditions.
    totals = {"wsgi:app": [0, 0, 0.0, {}], "bench.bare_app:app": [0, 0, 0.0, {}]}
    for _ in range(ROUNDS):
        for app_name, acc in totals.items():
            with gunicorn(app_name, env) as server:
                ok, bad, elapsed, codes = load(server.addr, pixels, seconds / ROUNDS, clients)
            acc[0] += ok
            acc[1] += bad
            acc[2] += elapsed
            for k, v in codes.items():
                acc[3][k] = acc[3].get(k, 0) + v
    ours, bare = totals["wsgi:app"], totals["bench.bare_app:app"]
    stored = count_after_drain(inst) - before
    rate, bare_rate = ours[0] / ours[2], bare[0] / bare[2]
    print(f"(b) GET /count, {clients} clients, {ours[2]:.1f} s in {ROUNDS} rounds")
    print(f"    requests/s          {rate:10.0f}   (replies {ours[3]}, errors {ours[1]})")
    print(f"    bare Flask GIF      {bare_rate:10.0f}   requests/s (errors {bare[1]})")
    print(f"    ratio               {rate / bare_rate:10.3f}")
    print(f"    stored hits {stored} for {ours[0]} replies: "
          f"{'OK' if stored == ours[0] else 'MISMATCH'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--only", choices=("a", "b"), help="run only part (a) or (b)")
    args = parser.parse_args()
    rng = random.Random(42)
    with instance() as inst:
        token = setup_site(inst)
        if args.only in (None, "a"):
            bench_batches(inst, token, rng, args.seconds, args.clients)
        if args.only in (None, "b"):
            bench_pixels(inst, rng, args.seconds, args.clients)


if __name__ == "__main__":
    main()
