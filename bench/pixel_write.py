"""Pixels on a database: kept in the worker's spool and counted in batches (what the
server does) against each pageview counted in a transaction of its own as it arrives
(what writing pixels straight to the database would cost). Both through the real
/count endpoint and counting path, in one process; on SQLite, or on PostgreSQL with
--db, where every transaction is a round trip to another server.

Each pageview has its own user agent and visitor, as in ingest.py's adversarial line.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common


def _requests(n: int, offset: int) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    out = []
    for i in range(offset, offset + n):
        ua = (f"Mozilla/5.0 (X11; Linux x86_64; rv:{100 + i % 9000}.{i // 9000}) "
              f"Gecko/20100101 Firefox/{100 + i % 9000}.{i // 9000}")
        out.append((f"/count?p=/post/{i % 400}&t=Post&r=https://news.example.org/{i % 50}"
                    f"&s=1920,1080,1&rnd={i}",
                    {"Host": "127.0.0.1", "User-Agent": ua},
                    {"REMOTE_ADDR": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}))
    return out


def _run(app, requests, each: bool) -> tuple[float, int]:
    """Seconds to answer and count every request, and the pageviews counted."""
    from goatcounter.counting import pending
    from goatcounter.storage import db

    client = app.test_client()
    start = time.perf_counter()
    for path, headers, environ in requests:
        resp = client.get(path, headers=headers, environ_base=environ)
        assert resp.status_code == 200, resp.status_code
        if each:
            with app.app_context():
                pending.drain()
    with app.app_context():
        pending.drain()
        elapsed = time.perf_counter() - start
        counted = db.get_db().execute("SELECT count(*) FROM hits").fetchone()[0]
    return elapsed, counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pageviews", type=int, default=2000, help="per way, per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--db", help="a postgresql:// URL (its tables are dropped first)")
    args = parser.parse_args()
    if args.db:
        os.environ["GOATCOUNTER_DB"] = args.db
        from bench.ingest import empty_postgresql
        empty_postgresql()
    from goatcounter import create_app

    with common.instance() as inst:
        common.setup_site(inst)
        app = create_app({"INSTANCE": inst, "COUNT_IN_BACKGROUND": False,
                          "RATELIMIT": "count:none"})
        engine = "PostgreSQL" if args.db else "SQLite"
        print(f"{engine}: {args.pageviews} pageviews per way and round, {args.rounds} rounds,"
              " a new user agent and visitor each")
        offset, total = 0, 0
        rates: dict[str, list[float]] = {"spool": [], "each": []}
        for r in range(args.rounds):
            # Alternate which way goes first, so that a table grown by the other way
            # doesn't favour one.
            for way in (("spool", "each") if r % 2 == 0 else ("each", "spool")):
                requests = _requests(args.pageviews, offset)
                offset += args.pageviews
                elapsed, counted = _run(app, requests, each=way == "each")
                total += args.pageviews
                assert counted == total, (counted, total)
                rates[way].append(args.pageviews / elapsed)
        spool = max(rates["spool"])
        each = max(rates["each"])
        print(f"  spooled, counted in batches:    {spool:8,.0f} pageviews/s (answered and counted)")
        print(f"  a transaction per pageview:     {each:8,.0f} pageviews/s"
              f"  ({each / spool:.2f} of the spool's)")
        print(f"  every pageview counted once: {total:,} stored")


if __name__ == "__main__":
    main()
