"""Visitor counter latency: p50 and p95 of GET /counter/... over the bench/stats.py database
(1,000,000 hits over 10,000 paths and 90 days), through the Flask test client, beside a
GET /count pixel answered by the same app in the same run.

    .venv/bin/python bench/counter.py [--runs 200] [--db /tmp/gc-stats-bench.sqlite3]

The counter sums hourly rows over all time (or a start/end range), so the busiest path and
TOTAL are its hard cases; a path seen a few times is its easy one.
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

from bench.stats import HOST, build, percentile
from goatcounter import clock, create_app
from goatcounter.public import counter_images
from goatcounter.storage import db

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"


def timed(client, url: str, runs: int, status: int = 200, cold: bool = False,
          **headers: str) -> list[float]:
    """Server times of `runs` requests; `cold` renders every PNG anew (no cached picture)."""
    headers = {"Host": HOST, **headers}
    for _ in range(3):
        resp = client.get(url, headers=headers)
        assert resp.status_code == status, (url, resp.status_code, resp.get_data(as_text=True))
    out = []
    for _ in range(runs):
        if cold:
            counter_images.png.cache_clear()
        t = time.perf_counter()
        client.get(url, headers=headers)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--db", help="database file to build once and reuse (as bench/stats.py)")
    args = ap.parse_args()
    tmp = None
    path = args.db
    if not path:
        tmp = tempfile.TemporaryDirectory(prefix="gc-counter-bench-")
        path = os.path.join(tmp.name, "bench.sqlite3")
    path = os.path.abspath(path)
    if not os.path.exists(path):
        print(f"building {path}", file=sys.stderr)
        build(path, 1_000_000, 10_000, 90)
    app = create_app({"INSTANCE": os.path.dirname(path), "DB": path, "SECRET_KEY": "bench",
                      "RATELIMIT": "api:none,api-count:none,export:none,count:none",
                      "COUNT_IN_BACKGROUND": False})
    with app.app_context():
        conn = db.get_db()
        db.write(lambda c: c.execute(
            "UPDATE sites SET settings = json_set(settings, '$.allow_counter', json('true'))"))
        busiest, quiet = (conn.execute(
            "SELECT p.path FROM path_days d JOIN paths p ON p.id = d.path_id"
            f" GROUP BY d.path_id ORDER BY sum(d.total) {order} LIMIT 1").fetchone()[0]
            for order in ("DESC", "ASC"))
        last_day = conn.execute("SELECT last_day FROM bench").fetchone()[0]
    clock.freeze(last_day + 12 * 3600)
    client = app.test_client()
    enc = {p: p.replace("/", "%2F") for p in (busiest, quiet)}
    lines = [
        ("GET /count (pixel, baseline)", "/count?p=%2Fbench-baseline&t=x", 200, {"User-Agent": UA}),
        ("counter busiest path, all time, json", f"/counter/{enc[busiest]}.json", 200, {}),
        ("counter busiest path, start=month, json", f"/counter/{enc[busiest]}.json?start=month",
         200, {}),
        ("counter quiet path, json", f"/counter/{enc[quiet]}.json", 200, {}),
        ("counter TOTAL, all time, json", "/counter/TOTAL.json", 200, {}),
        ("counter busiest path, svg", f"/counter/{enc[busiest]}.svg", 200, {}),
        ("counter busiest path, html", f"/counter/{enc[busiest]}.html", 200, {}),
        ("counter busiest path, png", f"/counter/{enc[busiest]}.png", 200, {}),
        ("counter busiest path, png drawn anew", f"/counter/{enc[busiest]}.png", 200,
         {"cold": True}),
    ]
    print(f"{'request':44} {'p50 ms':>8} {'p95 ms':>8} {'x pixel':>8}")
    base = None
    for name, url, status, headers in lines:
        times = timed(client, url, args.runs, status, **headers)  # type: ignore[arg-type]
        p50 = statistics.median(times)
        base = base or p50
        print(f"{name:44} {p50:8.2f} {percentile(times, 0.95):8.2f} {p50 / base:8.1f}")


if __name__ == "__main__":
    main()
