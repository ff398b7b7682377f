"""Tracing a SQLite app's statements and finding the reads that scan a table which grows
with traffic (the dashboard's plan tests; SQLite only)."""
from __future__ import annotations

import contextlib
import sqlite3

from flask import Flask

# Tables whose size follows the traffic: a read may seek them, never scan them.
GROWING = ("hits", "hit_counts", "ref_counts", "path_days", "visitor_days", "visitor_prevs",
           "browser_stats", "system_stats", "location_stats", "size_stats", "language_stats",
           "campaign_stats", "path_months")


def trace(app: Flask) -> list[str]:
    """The statements the app's connection runs from now on (the list fills as it runs)."""
    statements: list[str] = []
    pool = app.extensions["goatcounter_db"]
    conn = pool.get()
    conn.set_trace_callback(statements.append)
    pool.put(conn)
    return statements


def read_scans(app: Flask, statements: list[str]) -> list[tuple[str, str]]:
    """(plan line, statement) of every read among `statements` that scans a growing table."""
    scans = []
    with contextlib.closing(sqlite3.connect(app.config["DB_PATH"])) as check:
        for sql in statements:
            if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            for row in check.execute("EXPLAIN QUERY PLAN " + sql):
                words = row[3].split()
                if words[0] == "SCAN" and words[1] in GROWING:
                    scans.append((row[3], sql[:200]))
    return scans
