"""PostgreSQL itself: ids in commit order, migrations when servers start together, an
unreachable URL, a connection killed mid-batch, the schema both engines share, and
moving a SQLite installation over with `goatcounter db copy`."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from goatcounter import create_app
from goatcounter.storage import db
from tests import engines, scenario
from tests.conftest import NO_LIMITS, make_site
from tests.servers import ROOT as ROOT_DIR

pytestmark = pytest.mark.postgresql

RATELIMIT = NO_LIMITS


def _pg_app(tmp_path, url: str, **extra):
    return create_app({"INSTANCE": str(tmp_path / "pg"), "DB": url, "TESTING": True,
                       "SECRET_KEY": "test", "COUNT_IN_BACKGROUND": False,
                       "RATELIMIT": NO_LIMITS, **extra})


@pytest.fixture
def pg_url() -> str:
    url = engines.separate_database()
    yield url
    engines.drop_database(url)


def test_ids_follow_commit_order(pg_url):
    """A writer that takes its id later commits later: a reader paging by id (exports'
    last_hit_id) never sees a smaller id appear after a larger one."""
    first, second = db.connect(pg_url), db.connect(pg_url)
    insert = ("INSERT INTO hits (site_id, path_id, ref_id, first_visit, created_at)"
              " VALUES (1, 1, 1, 1, 0) RETURNING id")
    first.begin(True)
    early = first.execute(insert).fetchone()[0]
    late: list[int] = []

    def other() -> None:
        db.write(lambda c: late.append(c.execute(insert).fetchone()[0]), second)

    thread = threading.Thread(target=other)
    thread.start()
    # The second writer waits for the first one's lock: it has taken no id yet.
    deadline = time.monotonic() + 10
    reader = db.connect(pg_url)
    while time.monotonic() < deadline:
        waiting = reader.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()[0]
        if waiting:
            break
        time.sleep(0.02)
    assert waiting == 1 and late == []
    assert reader.execute("SELECT max(id) FROM hits").fetchone()[0] is None
    first.commit()
    thread.join(10)
    assert late and late[0] > early
    assert [r[0] for r in reader.execute("SELECT id FROM hits ORDER BY id")] == [early, late[0]]


def test_migrations_when_several_servers_start_at_once(tmp_path):
    url = engines.empty_database()
    try:
        errors: list[BaseException] = []

        def start() -> None:
            conn = db.connect(url)
            try:
                db.migrate(conn)
            except BaseException as exc:
                errors.append(exc)
            finally:
                conn.close()

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        conn = db.connect(url)
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations")]
        assert sorted(names) == sorted(set(names)) and names
        conn.close()
    finally:
        engines.drop_database(url)


@pytest.mark.parametrize("url", ["postgresql://nobody@127.0.0.1:1/nothing",
                                 "postgresql:///nothing?host=/nonexistent-socket-dir"])
def test_an_unreachable_database_is_one_line(tmp_path, url):
    env = {**os.environ, "GOATCOUNTER_DB": url, "GOATCOUNTER_INSTANCE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "goatcounter", "db", "migrate"], env=env,
                         capture_output=True, text=True, timeout=60, cwd=ROOT_DIR)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("goatcounter: can't connect to the PostgreSQL database")
    assert "Traceback" not in out.stderr


def test_the_schemas_of_both_engines_match(tmp_path, pg_url):
    lite = db.connect(str(tmp_path / "schema.sqlite3"))
    db.migrate(lite)
    pg = db.connect(pg_url)
    pg_tables = set(db._postgres().tables(pg))
    lite_tables = {r[0] for r in lite.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    assert pg_tables == lite_tables
    for table in sorted(lite_tables):
        assert db.columns(pg, table) == db.columns(lite, table), table


def test_a_connection_killed_mid_batch_stores_nothing(tmp_path, pg_url):
    """The batch's backend is ended while it waits on a row it must update (after its
    hit rows went in): the client gets a 503 and none of the batch is kept."""
    app = _pg_app(tmp_path, pg_url)
    site, token = make_site(app, cname="kill.example.com")
    api = scenario_api(app, token, site["cname"])
    hit = {"path": "/k", "created_at": "2026-11-20T10:00:00Z"}
    assert api.post("/api/v0/count", {"no_sessions": True, "hits": [hit]}).status_code == 202
    holder = db.connect(pg_url)
    holder.raw.execute("BEGIN")
    holder.raw.execute("SELECT * FROM hit_counts FOR UPDATE")
    result: list = []
    thread = threading.Thread(target=lambda: result.append(api.post(
        "/api/v0/count", {"no_sessions": True, "hits": [hit] * 50})))
    thread.start()
    watcher = db.connect(pg_url)
    victim = None
    deadline = time.monotonic() + 20
    while victim is None and time.monotonic() < deadline:
        row = watcher.raw.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE 'INSERT INTO hit_counts%%'").fetchone()
        victim = row[0] if row else None
        time.sleep(0.02)
    assert victim is not None
    # The batch's hit rows are written, uncommitted, when it is killed.
    watcher.raw.execute("SELECT pg_terminate_backend(%s)", (victim,))
    thread.join(30)
    holder.raw.execute("ROLLBACK")
    resp = result[0]
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.get_json() == {"error": "database is busy; try again"}
    assert watcher.execute("SELECT count(*) FROM hits").fetchone()[0] == 1
    assert watcher.execute("SELECT sum(pageviews) FROM hit_counts").fetchone()[0] == 1
    # The pool replaces the dead connection: the next batch is counted.
    assert api.post("/api/v0/count", {"no_sessions": True, "hits": [hit]}).status_code == 202
    assert watcher.execute("SELECT count(*) FROM hits").fetchone()[0] == 2
    app.extensions["goatcounter_db"].close()


def scenario_api(app, token, host):
    from tests.conftest import API
    return API(app.test_client(), token, host)


# db copy --------------------------------------------------------------------------------

STATS = ["/api/v0/stats/total", "/api/v0/stats/hits", "/api/v0/paths",
         "/api/v0/stats/toprefs", "/api/v0/stats/browsers", "/api/v0/stats/systems",
         "/api/v0/stats/locations", "/api/v0/stats/languages", "/api/v0/stats/sizes",
         "/api/v0/stats/campaigns", "/api/v0/stats/browsers/Firefox",
         "/api/v0/stats/sizes/desktop", "/api/v0/stats/locations/US"]
RANGE = "start=2026-11-01&end=2026-11-30"


def _answers(app, token, host) -> dict[str, object]:
    api = scenario_api(app, token, host)
    out = {}
    for path in STATS:
        resp = api.get(path if path.endswith("/paths") else f"{path}?{RANGE}")
        assert resp.status_code == 200, (path, resp.get_data(as_text=True))
        out[path] = resp.get_json()
    return out


def test_db_copy_moves_everything(tmp_path, pg_url):
    lite_app = create_app({"INSTANCE": str(tmp_path / "lite"), "TESTING": True,
                           "DB": str(tmp_path / "lite" / "goatcounter.sqlite3"),
                           "SECRET_KEY": "test", "COUNT_IN_BACKGROUND": False,
                           "RATELIMIT": NO_LIMITS})
    api = scenario.setup(lite_app)
    scenario.count_all(api)
    token = api.token
    # A pageview still in the spool is counted before the copy.
    lite_app.test_client().get("/count?p=/spooled", headers={"Host": api.host, "User-Agent":
                               "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101"
                               " Firefox/131.0"}, environ_base={"REMOTE_ADDR": "8.8.8.8"})
    source = lite_app.config["DB_PATH"]
    runner = lite_app.test_cli_runner()
    result = runner.invoke(args=["db", "copy", "--from", source, "--to", pg_url])
    assert result.exit_code == 0, result.output
    assert "copied" in result.output

    pg_app = _pg_app(tmp_path, pg_url)
    assert _answers(pg_app, token, api.host) == _answers(lite_app, token, api.host)
    lite = sqlite3.connect(source)
    pg = db.connect(pg_url)
    for table in ("sites", "users", "api_tokens", "paths", "refs", "hits", "sessions",
                  "hit_counts", "visitor_days", "path_months", "pending_files"):
        assert [tuple(r) for r in pg.execute(f"SELECT * FROM {table} ORDER BY 1, 2")] == \
            [tuple(r) for r in lite.execute(f"SELECT * FROM {table} ORDER BY 1, 2")], table
    # The sequences are past the copied ids.
    top = lite.execute("SELECT max(id) FROM sites").fetchone()[0]
    with pg_app.app_context():
        site, _ = make_site(pg_app, cname="new.example.com")
    assert site["id"] == top + 1
    pg.close()
    pg_app.extensions["goatcounter_db"].close()

    # The target now holds data: refused, unless --force.
    again = runner.invoke(args=["db", "copy", "--from", source, "--to", pg_url])
    assert again.exit_code != 0
    assert "not empty" in again.output and "--force" in again.output
    forced = runner.invoke(args=["db", "copy", "--from", source, "--to", pg_url, "--force"])
    assert forced.exit_code == 0, forced.output
    with contextlib.closing(db.connect(pg_url)) as conn:
        assert conn.execute("SELECT count(*) FROM sites").fetchone()[0] == top
