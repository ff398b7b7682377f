"""Export throughput and memory: one CSV export of a site with many hits, against
baselines measured in the same process.

    .venv/bin/python bench/export.py [--rows 1000000] [--paths 5000]

A fresh database is filled with `--rows` hits over `--paths` paths (written straight
into the tables, which is all an export reads). Then a new process, so that its peak
RSS is the export's alone, runs one export the way POST /api/v0/export does, and two
baselines over the same data: a plain sqlite3 SELECT of the hits (no joins, nothing
formatted) and gzip of the export's own CSV bytes at the same level.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import time
import zlib

from common import ROOT, instance

TITLES = ["Home", "Blog, news & updates", 'Say "hello", world', "Pricing", "Über uns",
          "  padded", "Getting started\nwith the API", "Docs"]
BROWSERS = [("Firefox", str(v)) for v in range(120, 133)] + \
    [("Chrome", str(v)) for v in range(120, 133)] + [("Safari", "18.1"), ("Edge", "131"), ("", "")]
SYSTEMS = [("Linux", ""), ("Windows", "10"), ("macOS", "14.6"), ("iOS", "18.1"),
           ("Android", "14"), ("", "")]
LOCATIONS = ["NL", "US-TX", "DE", "GB", "JP", "", "US-CA", "FR"]
WIDTHS = [0, 390, 412, 1024, 1366, 1440, 1920, 2560]


def fill(db_path: str, rows: int, paths: int, seed: int = 42) -> None:
    """Hits of many visitors over a Zipf-like spread of paths, one per few seconds."""
    rng = random.Random(seed)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO paths (id, site_id, path, title, event) VALUES (?, 1, ?, ?, ?)",
        [(i, f"/section-{i % 40}/page-{i}" + ("?a=1,2" if i % 97 == 0 else ""),
          f"{TITLES[i % len(TITLES)]} {i}", int(i % 50 == 0)) for i in range(1, paths + 1)])
    conn.executemany("INSERT INTO browsers (id, name, version) VALUES (?, ?, ?)",
                     [(i, *b) for i, b in enumerate(BROWSERS, 1)])
    conn.executemany("INSERT INTO systems (id, name, version) VALUES (?, ?, ?)",
                     [(i, *s) for i, s in enumerate(SYSTEMS, 1)])
    refs = 2000
    conn.executemany("INSERT INTO refs (id, ref, ref_scheme) VALUES (?, ?, ?)",
                     [(i, f"example{i}.com/post/{i}", "h") for i in range(2, refs + 2)])
    sessions = [os.urandom(16) for _ in range(rows // 10 or 1)]

    def hits():
        ts = 1_767_225_600
        for _ in range(rows):
            ts += rng.randrange(6)
            yield (min(int(rng.paretovariate(1.1)), paths),
                   1 if rng.random() < 0.6 else rng.randrange(2, refs + 2),
                   rng.randrange(1, len(BROWSERS) + 1), rng.randrange(1, len(SYSTEMS) + 1),
                   rng.choice(sessions) if rng.random() < 0.95 else None,
                   int(rng.random() < 0.7), rng.choice(WIDTHS), rng.choice(LOCATIONS), ts)

    conn.executemany(
        "INSERT INTO hits (site_id, path_id, ref_id, browser_id, system_id, session,"
        " first_visit, width, location, created_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        hits())
    conn.execute("COMMIT")
    conn.close()


def setup(inst: str, rows: int, paths: int) -> None:
    sys.path.insert(0, str(ROOT))
    from goatcounter import create_app
    from goatcounter.accounts import sites
    from goatcounter.storage import db

    app = create_app({"INSTANCE": inst})
    with app.app_context():
        db.write(lambda conn: sites.create(conn, cname="127.0.0.1"))
    fill(app.config["DB_PATH"], rows, paths)


def measure(inst: str) -> dict:
    """In a process of its own: the export, then the baselines."""
    sys.path.insert(0, str(ROOT))
    from goatcounter import create_app
    from goatcounter.accounts import sites
    from goatcounter.exports import exporter
    from goatcounter.storage import db

    app = create_app({"INSTANCE": inst})
    out: dict = {}
    with app.app_context():
        conn = db.get_db()
        site = sites.get(conn, 1)
        out["rss_before"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        start, cpu = time.perf_counter(), time.process_time()
        row = exporter.create(conn, site, 0)
        out["seconds"] = time.perf_counter() - start
        # Of every thread of the process: the export compresses in a thread of its own.
        out["cpu"] = time.process_time() - cpu
        out["rss_peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out["rows"], out["path"] = row["num_rows"], row["path"]
        out["file_size"] = os.path.getsize(row["path"])

    plain = sqlite3.connect(app.config["DB_PATH"])
    start, cpu = time.perf_counter(), time.process_time()
    count = 0
    for _ in plain.execute(exporter._SELECT_HITS, {"site": 1, "after": 0}):
        count += 1
    out["select_seconds"] = time.perf_counter() - start
    out["select_cpu"] = time.process_time() - cpu
    assert count == out["rows"]

    out["gzip_seconds"] = out["gzip_cpu"] = out["csv_bytes"] = 0
    with gzip.open(out["path"], "rb") as fp:
        deflate = zlib.compressobj(exporter.GZIP_LEVEL, zlib.DEFLATED, 31)
        while chunk := fp.read(1 << 20):
            start, cpu = time.perf_counter(), time.process_time()
            deflate.compress(chunk)
            out["gzip_seconds"] += time.perf_counter() - start
            out["gzip_cpu"] += time.process_time() - cpu
            out["csv_bytes"] += len(chunk)
        deflate.flush()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--paths", type=int, default=5000)
    parser.add_argument("--measure", metavar="INSTANCE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return

    with instance() as inst:
        start = time.perf_counter()
        setup(inst, args.rows, args.paths)
        filled = time.perf_counter() - start
        done = subprocess.run([sys.executable, __file__, "--measure", inst], check=True,
                              capture_output=True, text=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])

    mb = 1024 * 1024
    rate = r["rows"] / r["seconds"]
    print(f"filled {args.rows:,} hits over {args.paths:,} paths in {filled:.1f} s")
    print(f"export          {r['seconds']:8.2f} s   {rate:12,.0f} rows/s   "
          f"{r['rows']:,} rows, {r['csv_bytes'] / mb:.0f} MiB of CSV, "
          f"{r['file_size'] / mb:.1f} MiB gzipped")
    print(f"peak RSS        {r['rss_peak'] / mb:8.0f} MiB   (the process before the export: "
          f"{r['rss_before'] / mb:.0f} MiB)")
    print(f"plain SELECT    {r['select_seconds']:8.2f} s   "
          f"{r['rows'] / r['select_seconds']:12,.0f} rows/s   "
          f"export/select {r['seconds'] / r['select_seconds']:.2f}x the time")
    print(f"gzip only       {r['gzip_seconds']:8.2f} s   "
          f"{r['csv_bytes'] / mb / r['gzip_seconds']:9.0f} MiB/s   "
          f"export/gzip {r['seconds'] / r['gzip_seconds']:.2f}x the time")
    both = r["select_seconds"] + r["gzip_seconds"]
    both_cpu = r["select_cpu"] + r["gzip_cpu"]
    print(f"export/(SELECT + gzip)   {r['seconds'] / both:.2f}x the time "
          f"({r['seconds']:.2f} s against {both:.2f} s),   {r['cpu'] / both_cpu:.2f}x the CPU "
          f"time ({r['cpu']:.2f} s against {both_cpu:.2f} s)")


if __name__ == "__main__":
    main()
