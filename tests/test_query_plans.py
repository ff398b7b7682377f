"""Counting must stay fast as the tables grow: no statement it runs may scan a table
that grows with traffic. Every statement is captured while counting and explained."""
from __future__ import annotations

import sqlite3

from goatcounter.counting import pending
from tests import scenario

# Tables that grow with every pageview (or visitor).
GROWING = ("hits", "session_paths", "sessions", "pending_files", "hit_counts", "ref_counts",
           "path_days", "visitor_days", "bots", "idempotency_keys", "browser_stats",
           "system_stats", "location_stats", "size_stats", "language_stats",
           "campaign_stats")


RATELIMIT = "api:none,api-count:none"


def _plans(conn: sqlite3.Connection, statements: list[str]) -> list[tuple[str, str]]:
    scans = []
    for sql in statements:
        head = sql.lstrip().split(None, 1)[0].upper()
        if head not in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            continue
        try:
            plan = conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        except sqlite3.Error:
            continue
        for row in plan:
            detail = row[3]
            # A scan that stops after a few rows (the oldest pending rows) is fine.
            bounded = " LIMIT " in sql.upper()
            if detail.startswith("SCAN ") and detail.split()[1] in GROWING and not bounded:
                scans.append((sql, detail))
    return scans


def test_counting_never_scans_a_growing_table(app):
    api = scenario.setup(app)
    statements: list[str] = []
    pool = app.extensions["goatcounter_db"]
    conn = pool.get()
    conn.set_trace_callback(statements.append)
    pool.put(conn)
    for body in scenario.hit_bodies():
        api.post("/api/v0/count", body, headers={"Idempotency-Key": str(len(statements))})
    api.client.get("/count?p=/pixel&t=x", headers={"Host": api.host, "User-Agent": "Mozilla/5.0"
                   " (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"},
                   environ_base={"REMOTE_ADDR": "8.8.8.8"})
    with app.app_context():
        pending.drain()
    assert len(statements) > 50
    check = sqlite3.connect(app.config["DB_PATH"])
    assert _plans(check, statements) == []
