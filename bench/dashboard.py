"""Dashboard latency: p50 and p95 of the whole server time of GET / (signed in, every
widget, the HTML rendered) for a 30-day range over the bench/stats.py database (1,000,000
hits, 10,000 paths, 90 days; here with the raw hits kept, as a site that keeps them has
them), unfiltered and with each kind of filter, each beside GET /api/v0/stats/total for
the same range measured in the same run.

    .venv/bin/python bench/dashboard.py [--runs 20] [--db /tmp/gc-dashboard-bench.sqlite3]

Requests go through the Flask test client, so the times are the app's own (routing,
session, queries, templates), without the network. With --db the database is kept and
reused by later runs (delete it to rebuild).
"""
from __future__ import annotations

import argparse
import gzip
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import DAY, HOST, build, percentile
from goatcounter import clock, create_app
from goatcounter.accounts import passwords, users
from goatcounter.storage import db

PASSWORD = "bench-password-1"
FLOOR = {"unfiltered": (150, 50), "filtered": (300, 100)}


def sign_in(client, email: str) -> None:
    """Sign the client in as the bench user, through the form."""
    form = client.get("/user/new", headers={"Host": HOST}).get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    resp = client.post("/user/requestlogin", headers={"Host": HOST},
                       data={"csrf": csrf, "email": email, "password": PASSWORD})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]


def timed(client, url: str, headers: dict[str, str], runs: int) -> tuple[list[float], int]:
    """Milliseconds of `runs` requests (after three to warm up), and the gzipped size."""
    size = 0
    for _ in range(3):
        resp = client.get(url, headers=headers)
        assert resp.status_code == 200, (url, resp.status_code, resp.get_data(as_text=True)[:500])
        size = len(gzip.compress(resp.data))
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        resp = client.get(url, headers=headers)
        out.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200
    return out, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="timed requests per case")
    ap.add_argument("--db", help="database file to build once and reuse")
    args = ap.parse_args()

    tmp = None
    path = args.db
    if not path:
        tmp = tempfile.TemporaryDirectory(prefix="gc-dashboard-bench-")
        path = os.path.join(tmp.name, "bench.sqlite3")
    path = os.path.abspath(path)
    if not os.path.exists(path):
        print(f"building {path}: 1,000,000 hits, 10,000 paths, 90 days (raw hits kept)",
              file=sys.stderr)
        t = time.perf_counter()
        build(path, 1_000_000, 10_000, 90, keep_hits=True)
        print(f"  built in {time.perf_counter() - t:.0f} s", file=sys.stderr)

    app = create_app({"INSTANCE": os.path.dirname(path), "DB": path, "SECRET_KEY": "bench",
                      "RATELIMIT": "api:none,api-count:none,export:none,count:none"})
    with app.app_context():
        conn = db.get_db()
        token, last_day = conn.execute("SELECT token, last_day FROM bench").fetchone()
        email = conn.execute("SELECT email FROM users ORDER BY id LIMIT 1").fetchone()[0]
        user_id = conn.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()[0]
        hashed = passwords.hash_password(PASSWORD)
        db.write(lambda c: users.set_password(c, user_id, hashed), conn)
        raw = conn.execute("SELECT count(*) FROM hits").fetchone()[0]
        cap = app.config["DASHBOARD_RAW_HITS"]
    clock.freeze(last_day + 12 * 3600)

    def date(ts: int) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(ts))

    first, last = date(last_day - 29 * DAY), date(last_day)
    week = date(last_day - 6 * DAY)
    period = f"period-start={first}&period-end={last}"
    api_range = f"start={first}&end={last}T23:59:59Z"
    # (name, dashboard query, stats/total query, week instead of month)
    cases = [
        ("unfiltered", "", "", False),
        ("filter=page/1 (path text)", "&filter=page/1", "&filter=page/1", False),
        ("path=/page/7 (one path)", "&path=/page/7", "&include_paths=7", False),
        ("ref=Google", "&ref=Google", "", False),
        ("browser=Chrome", "&browser=Chrome", "", False),
        ("system=Windows", "&system=Windows", "", False),
        ("size=phone", "&size=phone", "", False),
        ("location=US", "&location=US", "", False),
        ("language=deu", "&language=deu", "", False),
        ("campaign=1", "&campaign=1", "", False),
        ("browser+location (over the raw cap)", "&browser=Firefox&location=DE", "", False),
        ("browser+location, 7 days (raw hits)", "&browser=Firefox&location=DE", "", True),
        ("path text+browser, 7 days (raw hits)", "&filter=page/1&browser=Safari", "", True),
    ]
    client = app.test_client()
    sign_in(client, email)
    page_headers = {"Host": HOST}
    api_headers = {"Authorization": f"Bearer {token}", "Host": HOST}
    print(f"database: {raw:,} raw hits; raw-hit answers up to {cap:,} pageviews a period;"
          f" {args.runs} requests each; ms\n")
    print(f"{'GET / with':40} {'p50':>7} {'p95':>7} {'KB gz':>6} | {'stats/total p50':>15}"
          f" {'p95':>7} | {'ratio':>5}")
    worst = {"unfiltered": 0.0, "filtered": 0.0}
    for name, dash, api, short in cases:
        rng = f"period-start={week}&period-end={last}" if short else period
        api_rng = f"start={week}&end={last}T23:59:59Z" if short else api_range
        page, size = timed(client, f"/?{rng}{dash}", page_headers, args.runs)
        total, _ = timed(client, f"/api/v0/stats/total?{api_rng}{api}", api_headers, args.runs)
        p50, t50 = statistics.median(page), statistics.median(total)
        kind = "unfiltered" if not dash else "filtered"
        worst[kind] = max(worst[kind], p50)
        print(f"{name:40} {p50:7.1f} {percentile(page, 0.95):7.1f} {size / 1000:6.1f} |"
              f" {t50:15.1f} {percentile(total, 0.95):7.1f} | {p50 / t50:5.1f}")
    assets = Path(__file__).resolve().parent.parent / "goatcounter" / "dashboard" / "static"
    static = sum(len(gzip.compress(f.read_bytes())) for f in assets.iterdir() if f.is_file())
    print(f"\nstylesheet and script: {static / 1000:.1f} KB gzipped")
    for kind, (floor, aim) in FLOOR.items():
        print(f"slowest {kind} p50: {worst[kind]:.1f} ms (floor {floor} ms, aim {aim} ms)")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
