"""The largest stats/hits questions the server still answers, over ten years of data
(300,000 hits, 20,000 paths, 3,660 days): time and reply size of each, with the ratio
to a baseline measured in the same process (GET /api/v0/me).

    .venv/bin/python bench/stats_bounds.py [--runs 5] [--db /tmp/gc-bounds-bench.sqlite3]

Before the bounds, `limit=100` over the whole range answered 170 MB in about 18 s; it is
now refused at once, and what is answered stays within a few MB.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import DAY, HOST, build
from goatcounter import clock, create_app
from goatcounter.storage import db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="timed requests per question")
    ap.add_argument("--db", help="database file to build once and reuse")
    args = ap.parse_args()
    tmp = None
    path = args.db
    if not path:
        tmp = tempfile.TemporaryDirectory(prefix="gc-bounds-bench-")
        path = os.path.join(tmp.name, "bench.sqlite3")
    path = os.path.abspath(path)
    if not os.path.exists(path):
        print(f"building {path}", file=sys.stderr)
        build(path, 300_000, 20_000, 3660)
    app = create_app({"INSTANCE": os.path.dirname(path), "DB": path, "SECRET_KEY": "bench",
                      "RATELIMIT": "api:none,api-count:none,export:none,count:none,auth:none"})
    with app.app_context():
        token, last_day = db.get_db().execute("SELECT token, last_day FROM bench").fetchone()
    clock.freeze(last_day + 12 * 3600)

    def date(ts: int) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(ts))

    end = date(last_day)
    questions = [
        ("baseline GET /api/v0/me", "/api/v0/me"),
        ("hits limit=20, 30 days (hourly)",
         f"/api/v0/stats/hits?start={date(last_day - 29 * DAY)}&end={end}&limit=20"),
        ("hits limit=100, 100 days (hourly)",
         f"/api/v0/stats/hits?start={date(last_day - 99 * DAY)}&end={end}&limit=100"),
        ("hits limit=100, 1000 days (daily)",
         f"/api/v0/stats/hits?start={date(last_day - 999 * DAY)}&end={end}&limit=100"),
        ("hits limit=27, 3660 days (daily)",
         f"/api/v0/stats/hits?start={date(last_day - 3659 * DAY)}&end={end}&limit=27"),
        ("hits limit=100, 3660 days (refused)",
         f"/api/v0/stats/hits?start={date(last_day - 3659 * DAY)}&end={end}&limit=100"),
        ("total, 3660 days (hourly)",
         f"/api/v0/stats/total?start={date(last_day - 3659 * DAY)}&end={end}"),
    ]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Host": HOST}
    print(f"{'question':40} {'status':>6} {'p50 ms':>9} {'MB':>7} {'p50/baseline':>13}")
    base = None
    for name, url in questions:
        times, size, status = [], 0, 0
        for _ in range(args.runs):
            t = time.perf_counter()
            resp = client.get(url, headers=headers)
            data = resp.get_data()
            times.append((time.perf_counter() - t) * 1000)
            size, status = len(data), resp.status_code
        p50 = statistics.median(times)
        base = base or p50
        print(f"{name:40} {status:6} {p50:9.1f} {size / 1e6:7.2f} {p50 / base:13.1f}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
