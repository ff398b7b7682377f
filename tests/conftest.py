from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from goatcounter import clock, create_app
from goatcounter.accounts import sites, tokens, users
from goatcounter.counting import pending
from goatcounter.counting.pipeline import referrers
from goatcounter.storage import db
from tests import engines


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--engine", choices=engines.ENGINES, default=None,
                     help="database engine of every test (default: sqlite, or"
                          " GOATCOUNTER_TEST_ENGINE); postgresql needs"
                          " GOATCOUNTER_TEST_POSTGRESQL=postgresql://... (a server where"
                          " databases may be created)")


def pytest_configure(config: pytest.Config) -> None:
    engines.configure(config.getoption("--engine") or os.environ.get("GOATCOUNTER_TEST_ENGINE"))


def pytest_report_header(config: pytest.Config) -> str:
    return engines.header()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    engines.select(items)


@pytest.fixture(scope="module", autouse=True)
def _engine_module() -> Iterator[None]:
    """On a PostgreSQL run, the run's database emptied before a module's own fixtures
    (a server shared by the module's tests, say) fill it, and named in GOATCOUNTER_DB so
    that every app, server and command started uses it."""
    if engines.ENGINE != "postgresql":
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GOATCOUNTER_DB", engines.fresh_database())
        yield


def _uses_module_fixture(request: pytest.FixtureRequest) -> bool:
    defs = request.node._fixtureinfo.name2fixturedefs  # type: ignore[attr-defined]
    return any(d.scope == "module" and d.baseid.startswith("tests") and d.argname
               != "_engine_module" for ds in defs.values() for d in ds)


@pytest.fixture(autouse=True)
def _engine(request: pytest.FixtureRequest) -> Iterator[None]:
    """On a PostgreSQL run, every test starts on an empty database (as on SQLite, where
    each has a file of its own), unless it shares its module's fixture, whose data must
    stay."""
    if engines.ENGINE == "postgresql" and not _uses_module_fixture(request):
        engines.fresh_database()
    yield

# The browser harness: Chromium through Playwright, live servers, screenshots.
pytest_plugins = ["tests.browser"]


# In CI a skipped test is a failed one ------------------------------------------------
#
# Tests skip where a tool they drive is missing (chromium, nginx, systemd-analyze, curl,
# jq). On a developer's machine that is a convenience; in CI it would be a green run that
# tested less, so there (CI=true or CI=1) every skip fails the run, naming the test and
# why it skipped. .ci/run installs what these tests need.

def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


# Module-level skips, which stay skips in the report.
CI_SKIPPED_MODULES: list[tuple[str, str]] = []


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _ci_message(reason: str) -> str:
    return (f"skipped: {reason}. With CI={os.environ.get('CI')} a skip fails the run; "
            ".ci/run installs what the tests need")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    # The tests about SQLite itself are left out of a PostgreSQL run on purpose.
    left_out = engines.ENGINE == "postgresql" and item.get_closest_marker("sqlite_only")
    if in_ci() and report.skipped and not hasattr(report, "wasxfail") and not left_out:
        # Reported as a failure (or an error, when the skip came from a fixture or a
        # skipif mark, i.e. during setup) with the skip's reason.
        report.outcome = "failed"
        report.longrepr = _ci_message(_skip_reason(report))
    return report


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # A whole module skipped when imported (pytest.skip(allow_module_level=True), or
    # importorskip at its top) has no test reports to turn into failures.
    if in_ci() and report.skipped:
        CI_SKIPPED_MODULES.append((report.nodeid, _skip_reason(report)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if CI_SKIPPED_MODULES and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CI_SKIPPED_MODULES:
        terminalreporter.section("skipped modules fail in CI", sep="=", red=True, bold=True)
        for nodeid, reason in CI_SKIPPED_MODULES:
            terminalreporter.line(f"{nodeid}: {_ci_message(reason)}", red=True)


@pytest.fixture(autouse=True)
def _no_background_thread_outlives_its_test(monkeypatch) -> Iterator[None]:
    """Stop the background threads of every app the test made. On PostgreSQL all tests
    share one database: a thread left running (its upkeep jobs, its spool) would work on
    the next tests' rows."""
    made: list[pending.Drainer] = []
    init = pending.Drainer.__init__

    def recording(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(pending.Drainer, "__init__", recording)
    yield
    for drainer in made:
        drainer.stop()
        # stop() waits 5 s; one that is still busy is given longer, then this test fails
        # rather than a later one finding the thread at work on its rows.
        if drainer.thread is not None:
            drainer.thread.join(30)
            assert not drainer.thread.is_alive(), "a background thread did not stop"


@pytest.fixture(autouse=True)
def _wall_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture
def refspam_file(tmp_path, monkeypatch):
    """GOATCOUNTER_REFSPAM_FILE naming a list of our own (read afresh for the test)."""
    path = tmp_path / "spammers.txt"
    path.write_text("# a comment\n\n  Spam-Host.example  \nother.example\ntest\n",
                    encoding="utf-8")
    monkeypatch.setenv("GOATCOUNTER_REFSPAM_FILE", str(path))
    referrers.spam_hosts.cache_clear()
    referrers.is_spam.cache_clear()
    yield path
    monkeypatch.delenv("GOATCOUNTER_REFSPAM_FILE")
    referrers.spam_hosts.cache_clear()
    referrers.is_spam.cache_clear()


# A test module may set RATELIMIT (e.g. to NO_LIMITS) for all its apps.
NO_LIMITS = "api:none,api-count:none,export:none,count:none,auth:none"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"


@pytest.fixture
def app_config(tmp_path, request) -> dict[str, Any]:
    """Settings of the test app; tests may change them before asking for `app`."""
    config = {"INSTANCE": str(tmp_path / "instance"), "TESTING": True,
              "SECRET_KEY": "test-secret", "COUNT_IN_BACKGROUND": False}
    limits = getattr(request.module, "RATELIMIT", None)
    if limits:
        config["RATELIMIT"] = limits
    return config


class Client(FlaskClient):
    """Closes every reply as a WSGI server does, so work done after the reply runs."""

    def open(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


@pytest.fixture
def app(app_config) -> Iterator[Flask]:
    app = create_app(app_config)
    app.test_client_class = Client
    yield app
    # PostgreSQL pools hold connections (and threads) until closed.
    if app.config.get("DB_URL"):
        app.extensions["goatcounter_db"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


def query(app: Flask, sql: str, args: dict[str, Any] | tuple = (), *,
          drain: bool = True) -> list[sqlite3.Row]:
    """Rows of `sql` (SQLite's dialect, as all our SQL) on the app's database, read on a
    connection of the test's own (after counting the pixel pageviews still in the spool,
    as the API's reads do)."""
    if drain:
        with app.app_context():
            pending.drain()
    return engines.query(app, sql, args)


def make_site(app: Flask, cname: str = "stats.example.com", perms: int = tokens.PERM_ALL,
              parent: int | None = None, settings: dict | None = None,
              email: str = "admin@example.com", access: str = "a",
              token_sites: list[int] | None = None) -> tuple[dict, str]:
    """A site with an admin user and a token; returns (site, token)."""
    with app.app_context():
        def run(conn):
            site = sites.create(conn, cname=cname, parent=parent, settings=settings)
            account = parent or site["id"]
            user = users.create(conn, site_id=account, email=email, access=access)
            token, _ = tokens.create_token(conn, user=user, name="test", permissions=perms,
                                         site_ids=token_sites)
            return site, token
        return db.write(run)


class API:
    """A test client that talks JSON with a token, like a real API client."""

    def __init__(self, client: FlaskClient, token: str | None, host: str) -> None:
        self.client, self.token, self.host = client, token, host

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Host": self.host}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(extra or {})
        return h

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, **kw: Any):
        data = None if body is None else (body if isinstance(body, str | bytes)
                                          else json.dumps(body))
        return self.client.open(path, method=method, data=data, headers=self.headers(headers),
                                **kw)

    def get(self, path: str, **kw: Any):
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any):
        return self.request("POST", path, body if body is not None else {}, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any):
        return self.request("PATCH", path, body if body is not None else {}, **kw)

    def put(self, path: str, body: Any = None, **kw: Any):
        return self.request("PUT", path, body if body is not None else {}, **kw)


@pytest.fixture
def site_token(app: Flask) -> tuple[dict, str]:
    return make_site(app)


@pytest.fixture
def api(client: FlaskClient, site_token) -> API:
    site, token = site_token
    return API(client, token, site["cname"])


def assert_error(resp, status: int, message: str | None = None) -> dict:
    """The reply is an API error: JSON, the status, `error` (and not `errors`)."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.get_json()
    assert "error" in body and "errors" not in body, body
    if message is not None:
        assert body["error"] == message
    return body


def assert_errors(resp, status: int, errors: dict | None = None) -> dict:
    """The reply is a validation error: JSON with `errors` (and not `error`)."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.get_json()
    assert "errors" in body and "error" not in body, body
    if errors is not None:
        assert body["errors"] == errors
    return body
