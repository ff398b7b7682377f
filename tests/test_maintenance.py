"""Periodic upkeep: ended sessions, old keys and bots, retention settings, export files."""
from __future__ import annotations

import pytest

from goatcounter import clock, create_app, upkeep
from tests import engines, scenario
from tests.conftest import API, make_site, query

RATELIMIT = "api:none,api-count:none"


@pytest.fixture
def golden(app):
    return scenario.setup(app)


def count(app, table: str) -> int:
    return query(app, f"SELECT count(*) FROM {table}", drain=False)[0][0]


def run(app, force: bool = True) -> dict[str, int]:
    with app.app_context():
        return upkeep.run_due(force=force)


def test_ended_sessions_are_forgotten(app, golden):
    golden.post("/api/v0/count", {"hits": [{"path": "/a", "session": "v"}]})
    run(app)
    assert count(app, "sessions") == count(app, "session_paths") == 1
    clock.advance(8 * 3600 + 1)
    assert run(app)["sessions"] == 1
    assert count(app, "sessions") == count(app, "session_paths") == 0


def test_jobs_run_once_per_interval(app, golden):
    assert "sessions" in run(app, force=False)
    assert run(app, force=False) == {}
    clock.advance(601)
    assert set(run(app, force=False)) == {"sessions", "exports"}


def test_old_idempotency_keys_and_bots_go(app, golden):
    golden.post("/api/v0/count", {"no_sessions": True, "hits": [
        {"path": "/a"}, {"path": "/b", "user_agent": "curl/8.5.0"}]},
        headers={"Idempotency-Key": "k"})
    assert count(app, "idempotency_keys") == count(app, "bots") == 1
    clock.advance(25 * 3600)
    run(app)
    assert count(app, "idempotency_keys") == 0
    assert count(app, "bots") == 1
    clock.advance(30 * 86400)
    run(app)
    assert count(app, "bots") == 0
    assert count(app, "hits") == 1


def test_hit_retention_keeps_the_aggregates(app_config):
    app_config["HIT_RETENTION_DAYS"] = 30
    app = create_app(app_config)
    api = scenario.setup(app)
    api.post("/api/v0/count", {"no_sessions": True, "hits": [
        {"path": "/old", "created_at": "2026-09-01T00:00:00Z"}, {"path": "/new"}]})
    run(app)
    assert count(app, "hits") == 1
    assert engines.connect(app).execute(
        "SELECT sum(pageviews) FROM site_counts").fetchone()[0] == 2


def test_site_data_retention_removes_old_hits_and_stats(app, client):
    site, token = make_site(app, settings={"data_retention": 31})
    clock.freeze(scenario.RECORDED_AT)
    api = API(client, token, site["cname"])
    api.post("/api/v0/count", {"no_sessions": True, "hits": [
        {"path": "/old", "created_at": "2026-09-01T10:00:00Z"},
        {"path": "/new", "created_at": "2026-11-25T10:00:00Z"}]})
    run(app)
    conn = engines.connect(app)
    assert conn.execute("SELECT count(*) FROM hits").fetchone()[0] == 1
    assert conn.execute("SELECT sum(pageviews) FROM site_counts").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM hit_counts").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM path_days").fetchone()[0] == 1


def _statistics_of(conn, table: str) -> int:
    """Rows of SQLite's planner statistics for a table (0 before there are any)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
        return 0
    return conn.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = :t",
                        {"t": table}).fetchone()[0]


@pytest.mark.sqlite_only("SQLite's planner statistics (PostgreSQL's autovacuum keeps its own)")
def test_a_new_installation_gets_planner_statistics(app, golden):
    """Migrations run on empty tables leave SQLite without numbers; the daily job gives
    them, so that some paths' hours are read by their key, not by scanning every path."""
    import sqlite3

    from goatcounter.storage import db
    with app.app_context():
        def fill(c: sqlite3.Connection) -> None:
            # 10,000 paths over 200 hours, as counted (the way the planner sees it).
            c.execute("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n"
                      " WHERE i < 600000 - 1) INSERT INTO hit_counts (site_id, path_id,"
                      " hour, total, pageviews) SELECT 1, i / 60 + 1, 1793491200 + i % 60"
                      " * 3600, 1, 1 FROM n")
        db.write(fill)
        conn = db.get_db()
        some_paths = ("EXPLAIN QUERY PLAN SELECT hour, sum(total) FROM hit_counts WHERE"
                      " site_id = 1 AND path_id IN (3, 4) AND hour >= 1793491200 AND hour"
                      " <= 1793664000 GROUP BY hour")
        assert _statistics_of(conn, "hit_counts") == 0
        before = [r[3] for r in conn.execute(some_paths)]
    assert run(app)["statistics"] == len(upkeep.STATISTICS_TABLES)
    with app.app_context():
        conn = db.get_db()
        assert _statistics_of(conn, "hit_counts") >= 1
        after = [r[3] for r in conn.execute(some_paths)]
    # Without the numbers: every path's hours of the range, through the hour index.
    assert "hit_counts_hour_total" in before[0], before
    assert after[0].startswith("SEARCH hit_counts USING PRIMARY KEY (site_id=? AND path_id=?"), \
        (before, after)


def test_maintain_command(app, runner, golden):
    result = runner.invoke(args=["db", "maintain"])
    assert result.exit_code == 0, result.output
    assert "sessions: 0 removed" in result.output
    if engines.ENGINE == "sqlite":
        assert f"statistics: {len(upkeep.STATISTICS_TABLES)} tables analyzed" in result.output
