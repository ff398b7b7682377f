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
           "campaign_stats", "live_log")


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


@pytest.mark.sqlite_only("checks the SQLite plan check")
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


def _use_the_live_log(conn, monkeypatch) -> None:
    """What writing (and trimming) the live log in the counting transaction, and every
    read of tail and /live, run: with five entries of site 1, trimmed to three."""
    from goatcounter.counting import livelog
    from goatcounter.storage import db
    monkeypatch.setattr(livelog, "TRIM_EVERY", 1)
    monkeypatch.setattr(livelog, "KEEP", 3)
    rows = [livelog.raw_row(1, 1e9 + i, "count", "counted", "", path=f"/{i}")
            for i in range(5)]
    db.write(lambda c: livelog.write(c, rows), conn)
    newest = livelog.newest_id(conn, 1)
    livelog.recent(conn, 1, 10, "counted", after_id=newest - 2)
    livelog.recent(conn, 1, 10)
    livelog.after(conn, newest - 2, 1, decision="bot")
    livelog.after(conn, newest - 2)
    livelog.newest_id(conn)
    livelog.last_seconds(conn, 10, 1)
    livelog.last_seconds(conn, 10)


@pytest.mark.sqlite_only("SQLite's EXPLAIN QUERY PLAN (the PostgreSQL one is below)")
def test_the_live_log_never_scans(app, monkeypatch):
    """Writing (and trimming) the live log in the counting transaction, and every read of
    tail and /live, go through its indexes."""
    statements: list[str] = []
    with app.app_context():
        from goatcounter.storage import db
        conn = db.get_db()
        conn.set_trace_callback(statements.append)
        _use_the_live_log(conn, monkeypatch)
        conn.set_trace_callback(None)
    check = sqlite3.connect(app.config["DB_PATH"])
    explained, problems = _plans(check, statements)
    assert problems == []
    assert explained >= 10


# PostgreSQL -----------------------------------------------------------------------------

def _fill(conn, table: str, rows: int) -> None:
    """`rows` rows of other sites in `table`, every key distinct, so that a plan that
    reads the table whole costs what it would on a busy server."""
    cols = conn.raw.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s"
        " AND table_schema = current_schema() AND is_generated = 'NEVER'"
        " AND identity_generation IS NULL ORDER BY ordinal_position", (table,)).fetchall()
    values = []
    for name, kind in cols:
        if name == "site_id":
            values.append("1000 + i % 50")
        elif kind in ("bigint", "double precision"):
            values.append("i")
        elif kind == "bytea":
            values.append("decode(lpad(to_hex(i), 32, '0'), 'hex')")
        else:
            values.append("'f' || i")
    names = ", ".join(n for n, _ in cols)
    conn.raw.execute(f"INSERT INTO {table} ({names}) SELECT {', '.join(values)}"
                     f" FROM generate_series(1, {rows}) AS i")


def _seq_scans(plan: dict) -> list[str]:
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in GROWING:
        found.append(plan["Relation Name"])
    for sub in plan.get("Plans", []):
        found += _seq_scans(sub)
    return found


def _trace_postgresql(monkeypatch) -> list[tuple[str, object]]:
    """Every statement (with its parameters) that PostgreSQL connections run from now on,
    until the monkeypatch is undone."""
    from goatcounter.storage import postgres
    seen: list[tuple[str, object]] = []
    execute, executemany = postgres.Connection.execute, postgres.Connection.executemany

    def traced(self, sql, args=()):
        seen.append((sql, args))
        return execute(self, sql, args)

    def traced_many(self, sql, rows):
        rows = list(rows)
        if rows:
            seen.append((sql, rows[0]))
        return executemany(self, sql, rows)

    monkeypatch.setattr(postgres.Connection, "execute", traced)
    monkeypatch.setattr(postgres.Connection, "executemany", traced_many)
    return seen


def _explain_postgresql(conn, seen: list[tuple[str, object]], limit_excuses: bool,
                        ) -> tuple[int, list[tuple[str, str]]]:
    """How many statements were explained, and (table, statement) for each that reads a
    growing table whole; with `limit_excuses`, a statement with a LIMIT may."""
    from goatcounter.storage import postgres
    scans = []
    explained = 0
    for sql, args in dict.fromkeys((s, repr(a)) for s, a in seen):
        head = sql.lstrip().split(None, 1)[0].upper()
        if head not in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH"):
            continue
        params = next(a for s, a in seen if s == sql and repr(a) == args)
        plan = conn.raw.execute("EXPLAIN (FORMAT JSON) " + postgres.translate(sql),
                                postgres._params(params)).fetchone()[0][0]["Plan"]
        explained += 1
        bounded = limit_excuses and " LIMIT " in sql.upper()
        scans += [(table, sql) for table in _seq_scans(plan) if not bounded]
    return explained, scans


@pytest.mark.postgresql
def test_postgresql_counting_and_reads_use_indexes(tmp_path, monkeypatch):
    """What counting and every stats endpoint run on PostgreSQL, explained (EXPLAIN
    (FORMAT JSON)) on tables of 20,000 rows of other sites: no growing table is read
    whole."""
    from goatcounter import create_app
    from goatcounter.storage import db
    from tests import engines
    from tests.test_stats import RECORDED, R, auth_headers, count_scenario

    url = engines.separate_database()
    app = create_app({"INSTANCE": str(tmp_path), "DB": url, "TESTING": True,
                      "SECRET_KEY": "test", "RATELIMIT": "api:none,api-count:none",
                      "COUNT_IN_BACKGROUND": False})
    conn = db.connect(url)
    for table in GROWING:
        _fill(conn, table, 20_000)
    conn.raw.execute("ANALYZE")
    seen = _trace_postgresql(monkeypatch)
    scenario.oracle_site(app)
    from goatcounter import clock
    clock.freeze(RECORDED)
    client = app.test_client()
    count_scenario(client)
    for u in [f"/api/v0/stats/total?{R}", f"/api/v0/stats/hits?{R}",
              f"/api/v0/stats/hits?{R}&include_paths=1,2", f"/api/v0/stats/hits/1?{R}",
              "/api/v0/stats/hits?start=2026-01-01&end=2026-11-25&limit=100",
              "/api/v0/stats/hits?start=2026-11-19T05:00:00Z&end=2026-11-25T20:00:00Z",
              "/api/v0/paths?after=3",
              *(f"/api/v0/stats/{p}?{R}{f}" for p in (
                  "browsers", "systems", "locations", "languages", "sizes", "campaigns",
                  "toprefs", "browsers/firefox", "systems/Linux", "locations/US",
                  "sizes/phone", "campaigns/1", "toprefs/Google")
                for f in ("", "&include_paths=1"))]:
        assert client.get(u, headers=auth_headers()).status_code == 200, u
    monkeypatch.undo()
    app.extensions["goatcounter_db"].close()
    explained, scans = _explain_postgresql(conn, seen, limit_excuses=True)
    conn.close()
    engines.drop_database(url)
    assert explained > 50
    assert scans == []


@pytest.mark.postgresql
def test_postgresql_live_log_uses_indexes(tmp_path, monkeypatch):
    """The live log's writing, trimming and every read of tail and /live, explained on
    PostgreSQL with 20,000 entries of other sites: none reads the table whole, with a
    LIMIT or without (the rows a LIMIT skips are read all the same)."""
    from goatcounter import create_app
    from goatcounter.storage import db
    from tests import engines

    url = engines.separate_database()
    app = create_app({"INSTANCE": str(tmp_path), "DB": url, "TESTING": True,
                      "SECRET_KEY": "test", "RATELIMIT": RATELIMIT,
                      "COUNT_IN_BACKGROUND": False})
    conn = db.connect(url)
    _fill(conn, "live_log", 20_000)
    conn.raw.execute("ANALYZE live_log")
    seen = _trace_postgresql(monkeypatch)
    with app.app_context():
        _use_the_live_log(db.get_db(), monkeypatch)
    monkeypatch.undo()
    app.extensions["goatcounter_db"].close()
    explained, scans = _explain_postgresql(conn, seen, limit_excuses=False)
    conn.close()
    engines.drop_database(url)
    assert explained >= 10
    assert scans == []
