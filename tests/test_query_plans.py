"""Counting must stay fast as the tables grow: no statement it runs may scan a table
that grows with traffic. Every statement is captured while counting and explained."""
from __future__ import annotations

import sqlite3

import pytest

from goatcounter.counting import pending
from tests import scenario

# Tables that grow with every pageview (or visitor).
GROWING = ("hits", "session_paths", "sessions", "pending_files", "hit_counts", "ref_counts",
           "path_days", "visitor_days", "bots", "idempotency_keys", "browser_stats",
           "system_stats", "location_stats", "size_stats", "language_stats",
           "campaign_stats")


RATELIMIT = "api:none,api-count:none"


# Statements with no plan to judge: transaction control and settings.
NO_PLAN = ("BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA")


def _plans(conn: sqlite3.Connection, statements: list[str]) -> tuple[int, list[tuple[str, str]]]:
    """How many statements were explained, and the problems: each statement that scans
    a growing table (a LIMIT does not excuse it: the rows it skips are read all the
    same), and each statement that could not be explained at all."""
    explained, problems = 0, []
    for sql in statements:
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head in NO_PLAN:
            continue
        try:
            plan = conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        except sqlite3.Error as exc:
            problems.append((sql, f"not explained: {exc}"))
            continue
        explained += 1
        for row in plan:
            detail = row[3]
            if detail.startswith("SCAN ") and detail.split()[1] in GROWING:
                problems.append((sql, detail))
    return explained, problems


def test_the_plan_check_judges_every_statement(app):
    """The check itself: a scan under a LIMIT and a statement it can't explain both count
    against the code, and only transaction control goes unexplained."""
    check = sqlite3.connect(app.config["DB_PATH"])
    statements = ["BEGIN IMMEDIATE", "SELECT id FROM hits ORDER BY id LIMIT 10",
                  "SELECT * FROM no_such_table", "WITH x AS (SELECT 1) SELECT * FROM x",
                  "SELECT id FROM hits WHERE id = 5", "COMMIT"]
    explained, problems = _plans(check, statements)
    assert explained == 3
    assert [(sql, detail.split(":")[0]) for sql, detail in problems] == [
        ("SELECT id FROM hits ORDER BY id LIMIT 10", "SCAN hits"),
        ("SELECT * FROM no_such_table", "not explained")]


@pytest.mark.sqlite_only("SQLite's EXPLAIN QUERY PLAN")
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
    check = sqlite3.connect(app.config["DB_PATH"])
    explained, problems = _plans(check, statements)
    assert problems == []
    assert explained > 50
    assert explained == sum(1 for s in statements if s.split(None, 1)[0].upper()
                            in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "REPLACE"))
