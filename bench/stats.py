"""Stats read latency: p50 and p95 of every stats endpoint for a 30-day range over a
database of 1,000,000 hits (10,000 paths, 90 days), through the Flask test client, with
the ratio to a baseline measured in the same process (GET /api/v0/me: authentication
and a JSON reply, no statistics).

    .venv/bin/python bench/stats.py [--runs 30] [--db /tmp/gc-stats-bench.sqlite3]
                                    [--answers /tmp/gc-stats-replies.json]

The database is built by counting generated hits straight into the aggregate tables
with `aggregates.add`, the code storing a hit runs: visitors with sessions of a few
pageviews, a Zipf-like spread over paths and referrers, a daily rhythm, a mix of
browsers, systems, countries, screens, languages and campaigns. The `hits` table stays
empty, so every answer shown here comes from the aggregates. With --db the database is
kept and reused by later runs (delete it to rebuild).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from goatcounter import clock, create_app
from goatcounter.accounts import sites, tokens, users
from goatcounter.counting import aggregates
from goatcounter.counting.pipeline.process import Hit
from goatcounter.storage import copy, db

DAY = 86400
HOST = "stats.example.com"
# (name, version, share) of browsers and systems.
BROWSERS = [("Chrome", v, 9 - i) for i, v in enumerate(("131", "130", "129", "128"))] + \
    [("Firefox", v, 4 - i) for i, v in enumerate(("132", "131", "115"))] + \
    [("Safari", v, 5 - i) for i, v in enumerate(("18.1", "17.6", "16.6"))] + \
    [("Edge", "131", 3), ("Samsung Internet", "26", 1), ("Opera", "114", 1), ("", "", 1)]
SYSTEMS = [("Windows", "10", 10), ("macOS", "10.15", 6), ("iOS", "18.1", 5), ("iOS", "17.6", 2),
           ("Android", "14", 6), ("Android", "13", 2), ("Linux", "", 2), ("Chrome OS", "", 1),
           ("", "", 1)]
COUNTRIES = ["US", "DE", "GB", "NL", "FR", "IN", "JP", "BR", "CA", "PL", "ES", "IT", "SE",
             "AU", "RU", "CN", "KR", "MX", "ID", "TR"]
REGIONS = ["US-CA", "US-TX", "US-NY", "US-WA", "US-FL", "RU-MOW", "CN-BJ"]
WIDTHS = [360, 375, 390, 393, 412, 414, 768, 800, 820, 1024, 1280, 1366, 1440, 1536, 1600,
          1680, 1920, 2048, 2560, 3440, 0]
LANGUAGES = ["eng", "deu", "fra", "nld", "spa", "jpn", "por", "rus", "zho", "pol", ""]
# Hours of the day weighted like a European site's traffic.
HOUR_WEIGHTS = [2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 7, 7, 7, 7, 6, 5, 4, 3]


def zipf_weights(n: int, s: float = 1.0) -> list[float]:
    return list(itertools.accumulate(1 / (i + 1) ** s for i in range(n)))


def build(path: str, hits: int, paths: int, days: int, seed: int = 1,
          keep_hits: bool = False) -> None:
    """Fill a new database with `hits` pageviews counted into the aggregates; with
    `keep_hits` the hit rows are stored too (as a site that keeps them has them), and
    the site collects languages."""
    rnd = random.Random(seed)
    app = create_app({"INSTANCE": os.path.dirname(path), "DB": path, "SECRET_KEY": "bench"})
    with app.app_context():
        conn = db.get_db()

        def setup(c):
            site = sites.create(c, cname=HOST, settings={"collect": 510} if keep_hits else None)
            user = users.create(c, site_id=site["id"], email="bench@example.com")
            c.executemany(
                "INSERT INTO paths (id, site_id, path, title, event) VALUES (?, ?, ?, ?, ?)",
                [(i, site["id"], f"/page/{i}" if i % 50 else f"event-{i}", f"Page {i}",
                  int(i % 50 == 0)) for i in range(1, paths + 1)])
            refs = [("Google", "g"), ("Hacker News", "g"), ("Email", "g"), ("DuckDuckGo", "g")] + \
                [(f"site{i}.example.org/post/{i % 7}", "h") for i in range(2000)]
            c.executemany("INSERT INTO refs (id, ref, ref_scheme) VALUES (?, ?, ?)",
                          [(i + 2, r, s) for i, (r, s) in enumerate(refs)])
            c.executemany("INSERT INTO browsers (id, name, version) VALUES (?, ?, ?)",
                          [(i + 1, n, v) for i, (n, v, _) in enumerate(BROWSERS)])
            c.executemany("INSERT INTO systems (id, name, version) VALUES (?, ?, ?)",
                          [(i + 1, n, v) for i, (n, v, _) in enumerate(SYSTEMS)])
            c.executemany("INSERT INTO campaigns (id, site_id, name) VALUES (?, ?, ?)",
                          [(i + 1, site["id"], f"campaign-{i + 1}") for i in range(20)])
            token, _ = tokens.create_token(c, user=user, name="bench", permissions=tokens.PERM_ALL)
            c.execute("CREATE TABLE bench (token TEXT, last_day INTEGER)")
            return site, token, len(refs)

        site, token, nrefs = db.write(setup, conn)
        path_w = zipf_weights(paths)
        # Referrer 1 (none: direct visits) takes about half of the sessions.
        ref_ids = list(range(1, nrefs + 2))
        ref_w = list(itertools.accumulate([8.0] + [1 / (i + 1) for i in range(nrefs)]))
        browser_w = list(itertools.accumulate(b[2] for b in BROWSERS))
        system_w = list(itertools.accumulate(s[2] for s in SYSTEMS))
        width_w = zipf_weights(len(WIDTHS), 0.6)
        lang_w = zipf_weights(len(LANGUAGES), 0.8)
        places = COUNTRIES + REGIONS + [""]
        place_w = zipf_weights(len(places), 0.9)
        today = int(time.time()) // DAY * DAY
        first = today - (days - 1) * DAY
        per_day = hits // days
        start = time.perf_counter()
        for d in range(days):
            day = first + d * DAY
            batch: list[Hit] = []
            while len(batch) < per_day:
                views = min(1 + int(rnd.expovariate(1 / 1.6)), 12)
                anonymous = rnd.random() < 0.05
                session = None if anonymous else rnd.getrandbits(128).to_bytes(16, "big")
                ts = day + rnd.choices(range(24), HOUR_WEIGHTS)[0] * 3600 + rnd.randrange(3600)
                b = rnd.choices(range(len(BROWSERS)), cum_weights=browser_w)[0] + 1
                s = rnd.choices(range(len(SYSTEMS)), cum_weights=system_w)[0] + 1
                loc = rnd.choices(places, cum_weights=place_w)[0]
                width = rnd.choices(WIDTHS, cum_weights=width_w)[0]
                lang = rnd.choices(LANGUAGES, cum_weights=lang_w)[0]
                campaign = rnd.randrange(20) + 1 if rnd.random() < 0.03 else None
                seen: set[int] = set()
                for v in range(views):
                    if seen and rnd.random() < 0.25:
                        # Back to a page seen before (a reload, the back button).
                        p = rnd.choice(sorted(seen))
                    else:
                        p = rnd.choices(range(1, paths + 1), cum_weights=path_w)[0]
                    when = min(ts + v * rnd.randrange(20, 300), day + DAY - 1)
                    h = Hit(path="", title="", event=p % 50 == 0, ref="", ref_scheme="o",
                            campaign="", width=width, bot=0, browser=None, system=None,
                            location=loc, language=lang, user_agent="", session_key=None,
                            created_at=when)
                    h.path_id = p
                    h.ref_id = rnd.choices(ref_ids, cum_weights=ref_w)[0] if v == 0 else 1
                    h.browser_id, h.system_id = b, s
                    h.campaign_id = campaign if v == 0 else None
                    h.ref = "newsletter" if h.campaign_id else ""
                    h.session = session
                    h.first_visit = anonymous or p not in seen
                    seen.add(p)
                    batch.append(h)
            db.write(lambda c, batch=batch: aggregates.add(c, site["id"], batch), conn)
            if keep_hits:
                db.write(lambda c, batch=batch: c.executemany(
                    "INSERT INTO hits (site_id, path_id, ref_id, browser_id, system_id,"
                    " campaign_id, session, first_visit, width, location, language, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(site["id"], h.path_id, h.ref_id, h.browser_id, h.system_id, h.campaign_id,
                      h.session, int(h.first_visit), h.width, h.location, h.language,
                      h.created_at) for h in batch]), conn)
            if d % 10 == 9:
                print(f"  built {d + 1}/{days} days ({time.perf_counter() - start:.0f} s)",
                      file=sys.stderr)
        db.write(lambda c: c.execute("INSERT INTO bench VALUES (?, ?)", (token, today)), conn)
        conn.execute("ANALYZE")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def measure(client, path: str, headers: dict[str, str], runs: int) -> list[float]:
    for _ in range(3):
        resp = client.get(path, headers=headers)
        assert resp.status_code == 200, (path, resp.status_code, resp.get_data(as_text=True))
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        resp = client.get(path, headers=headers)
        out.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="timed requests per endpoint")
    ap.add_argument("--db", help="database file to build once and reuse, or a postgresql://"
                    " URL: the SQLite database (--sqlite) is copied into it with db copy,"
                    " measured there, and every answer compared with SQLite's")
    ap.add_argument("--sqlite", help="with a postgresql:// --db: the SQLite file to build"
                    " once and reuse")
    ap.add_argument("--answers", help="a file for every endpoint's reply text: written when"
                    " missing, else the replies are compared with it (run it before and"
                    " after a change)")
    ap.add_argument("--hits", type=int, default=1_000_000)
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=90)
    args = ap.parse_args()

    tmp = None
    url = args.db if args.db and db.is_postgresql(args.db) else None
    path = args.sqlite if url else args.db
    if not path:
        tmp = tempfile.TemporaryDirectory(prefix="gc-stats-bench-")
        path = os.path.join(tmp.name, "bench.sqlite3")
    path = os.path.abspath(path)
    if not os.path.exists(path):
        print(f"building {path}: {args.hits:,} hits, {args.paths:,} paths, {args.days} days",
              file=sys.stderr)
        t = time.perf_counter()
        build(path, args.hits, args.paths, args.days)
        print(f"  built in {time.perf_counter() - t:.0f} s", file=sys.stderr)

    lite = db.connect(path)
    token, last_day = lite.execute("SELECT token, last_day FROM bench").fetchone()
    if url:
        target = db.connect(url)
        t = time.perf_counter()
        copied = copy.copy(lite, target, force=True)
        target.raw.execute("VACUUM ANALYZE")
        target.close()
        print(f"copied {sum(copied.values()):,} rows into {url} in"
              f" {time.perf_counter() - t:.0f} s (db copy)", file=sys.stderr)
    lite.close()
    limits = "api:none,api-count:none,export:none,count:none"
    app = create_app({"INSTANCE": os.path.dirname(path), "DB": url or path, "SECRET_KEY": "bench",
                      "RATELIMIT": limits})
    with app.app_context():
        conn = db.get_db()
        stats = conn.execute(
            "SELECT count(*), sum(pageviews), sum(total) FROM hit_counts").fetchone()
        top = [r[0] for r in conn.execute(
            "SELECT path_id FROM path_days WHERE day >= ? GROUP BY path_id"
            " ORDER BY sum(total) DESC LIMIT 20", (last_day - 30 * DAY,))]
        raw = conn.execute("SELECT count(*) FROM hits").fetchone()[0]
    clock.freeze(last_day + 12 * 3600)
    print(f"database: {stats[1]:,} hits ({stats[2]:,} visits) in {stats[0]:,} path-hours;"
          f" raw hits table rows: {raw}")

    def date(ts: int) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(ts))

    rng = f"start={date(last_day - 30 * DAY)}&end={date(last_day)}"
    odd = (f"start={date(last_day - 30 * DAY)}T09:00:00Z"
           f"&end={date(last_day)}T15:00:00Z")
    excl = ",".join(map(str, top))
    endpoints = [
        ("stats/total", f"/api/v0/stats/total?{rng}"),
        ("stats/total (hour edges)", f"/api/v0/stats/total?{odd}"),
        ("stats/total include_paths=5", f"/api/v0/stats/total?{rng}&include_paths="
         + ",".join(map(str, top[:5]))),
        ("stats/hits", f"/api/v0/stats/hits?{rng}"),
        ("stats/hits (hour edges)", f"/api/v0/stats/hits?{odd}"),
        ("stats/hits page 2", f"/api/v0/stats/hits?{rng}&exclude_paths={excl}"),
        ("stats/hits/{top path}", f"/api/v0/stats/hits/{top[0]}?{rng}"),
        ("stats/browsers", f"/api/v0/stats/browsers?{rng}"),
        ("stats/systems", f"/api/v0/stats/systems?{rng}"),
        ("stats/locations", f"/api/v0/stats/locations?{rng}"),
        ("stats/languages", f"/api/v0/stats/languages?{rng}"),
        ("stats/sizes", f"/api/v0/stats/sizes?{rng}"),
        ("stats/campaigns", f"/api/v0/stats/campaigns?{rng}"),
        ("stats/toprefs", f"/api/v0/stats/toprefs?{rng}"),
        ("stats/toprefs (hour edges)", f"/api/v0/stats/toprefs?{odd}"),
        ("stats/browsers include_paths=1", f"/api/v0/stats/browsers?{rng}&include_paths={top[0]}"),
        ("stats/browsers/Chrome", f"/api/v0/stats/browsers/Chrome?{rng}"),
        ("stats/systems/Windows", f"/api/v0/stats/systems/Windows?{rng}"),
        ("stats/locations/US", f"/api/v0/stats/locations/US?{rng}"),
        ("stats/sizes/desktop", f"/api/v0/stats/sizes/desktop?{rng}"),
        ("stats/campaigns/1", f"/api/v0/stats/campaigns/1?{rng}"),
        ("stats/toprefs/Google", f"/api/v0/stats/toprefs/Google?{rng}"),
        ("paths limit=200", "/api/v0/paths?limit=200"),
    ]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Host": HOST}
    base = measure(client, "/api/v0/me", headers, args.runs)
    base50 = statistics.median(base)
    print(f"\n{args.runs} requests each, 30-day range ({rng}); ms\n")
    print(f"{'endpoint':34} {'p50':>8} {'p95':>8} {'p50/baseline':>13}")
    print(f"{'baseline GET /api/v0/me':34} {base50:8.2f} {percentile(base, 0.95):8.2f} {1:13.1f}")
    worst = 0.0
    for name, target in endpoints:
        times = measure(client, target, headers, args.runs)
        p50 = statistics.median(times)
        worst = max(worst, p50)
        print(f"{name:34} {p50:8.2f} {percentile(times, 0.95):8.2f} {p50 / base50:13.1f}")
    print(f"\nslowest p50: {worst:.2f} ms (floor 100 ms, aim 20 ms)")
    if args.answers:
        # Reply texts, byte for byte: a change meant to be faster must not change them.
        texts = {name: client.get(u, headers=headers).get_data(as_text=True)
                 for name, u in endpoints}
        if os.path.exists(args.answers):
            with open(args.answers, encoding="utf-8") as f:
                kept = json.load(f)
            differ = [name for name in texts if kept.get(name) != texts[name]]
            print(f"replies equal to {args.answers}'s: {len(texts) - len(differ)}/{len(texts)}"
                  + (f"; differ: {', '.join(differ)}" if differ else ""))
        else:
            with open(args.answers, "w", encoding="utf-8") as f:
                json.dump(texts, f)
            print(f"replies written to {args.answers}")
    if url:
        # The same questions to the SQLite database the copy came from.
        lite_app = create_app({"INSTANCE": os.path.dirname(path), "DB": path,
                               "SECRET_KEY": "bench", "RATELIMIT": limits})
        other = lite_app.test_client()
        same = [name for name, u in endpoints
                if client.get(u, headers=headers).get_json()
                == other.get(u, headers=headers).get_json()]
        differ = [name for name, _ in endpoints if name not in same]
        print(f"answers equal to SQLite's: {len(same)}/{len(endpoints)} endpoints"
              + (f"; differ: {', '.join(differ)}" if differ else ""))
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
