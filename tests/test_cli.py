"""The goatcounter command: db create/list/delete, migrate, backup, serve's first run."""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest
import requests

from goatcounter.accounts import passwords, tokens
from tests.servers import ROOT, free_port


def test_create_site_and_token(app, runner):
    result = runner.invoke(args=["db", "create", "site", "--vhost", "stats.example.com",
                                 "--user-email", "me@example.com"])
    assert result.exit_code == 0, result.output
    assert "created site 1 (stats.example.com) with user 1" in result.output
    result = runner.invoke(args=["db", "create", "apitoken", "--user", "1", "--perm",
                                 "count,stats", "--name", "backend"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert len(token) >= 45 and token.isalnum()
    resp = app.test_client().get("/api/v0/me", headers={"Authorization": f"Bearer {token}",
                                                        "Host": "stats.example.com"})
    assert resp.get_json()["token"] == {"name": "backend", "sites": [-1],
                                        "permissions": tokens.PERM_COUNT | tokens.PERM_STATS}
    listing = runner.invoke(args=["db", "list", "apitokens"]).output
    assert "backend" in listing and "perm=count,stats" in listing and token not in listing
    assert runner.invoke(args=["db", "delete", "apitoken", "1"]).exit_code == 0
    resp = app.test_client().get("/api/v0/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401


@pytest.mark.parametrize(("args", "message"), [
    (["db", "create", "site", "--vhost", "a b", "--user-email", "x@y"], "not a valid host"),
    (["db", "create", "site", "--vhost", "a.example", "--user-email", "nope"],
     "not an email address"),
    (["db", "create", "apitoken", "--user", "1", "--perm", "fly", "--name", "x"],
     "unknown permission"),
    (["db", "create", "apitoken", "--user", "99", "--perm", "count", "--name", "x"],
     "no user with id 99"),
    (["db", "create", "apitoken", "--user", "x", "--perm", "count", "--name", "x"],
     "is not a valid integer"),
    (["db", "delete", "apitoken", "42"], "no API token with id 42"),
])
def test_bad_arguments_are_clear_errors(runner, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output


def test_duplicate_vhost(runner):
    args = ["db", "create", "site", "--vhost", "a.example.com", "--user-email", "x@example.com"]
    assert runner.invoke(args=args).exit_code == 0
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert "already exists" in result.output


def test_every_command_has_help(runner):
    for args in (["db"], ["db", "create", "site"], ["db", "create", "apitoken"],
                 ["db", "list", "apitokens"], ["db", "delete", "apitoken"], ["db", "migrate"],
                 ["db", "backup"], ["db", "maintain"], ["db", "update", "user"], ["serve"]):
        result = runner.invoke(args=[*args, "--help"])
        assert result.exit_code == 0, args
        assert "Usage:" in result.output


def test_migrate_is_idempotent(runner):
    assert "database is up to date" in runner.invoke(args=["db", "migrate"]).output


@pytest.mark.sqlite_only("db backup copies the SQLite file with SQLite's backup API")
def test_backup_copies_the_database(app, runner, tmp_path):
    runner.invoke(args=["db", "create", "site", "--vhost", "b.example.com",
                        "--user-email", "x@example.com"])
    target = tmp_path / "copy.sqlite3"
    result = runner.invoke(args=["db", "backup", str(target)])
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT cname FROM sites").fetchall() == [("b.example.com",)]
    assert runner.invoke(args=["db", "backup", str(target)]).exit_code != 0


def test_serve_creates_a_site_and_token_on_first_run(tmp_path):
    """`goatcounter serve` on an empty database prints a working token, and a password
    that signs in at the address it prints, and starts gunicorn."""
    port = free_port()
    env = dict(os.environ, GOATCOUNTER_INSTANCE=str(tmp_path / "inst"))
    proc = subprocess.Popen([sys.executable, "-m", "goatcounter", "serve", "--listen",
                             f"127.0.0.1:{port}", "--workers", "2"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        token = None
        while token is None:
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
            if line.startswith("    ") and line.strip().isalnum():
                token = line.strip()
        printed = "".join(lines)
        assert f"Sign in at http://127.0.0.1:{port}/user/new\n" in printed
        email = re.search(r"^    email: +(\S+)$", printed, re.M).group(1)
        password = re.search(r"^    password: +(\S+)$", printed, re.M).group(1)
        for _ in range(50):
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v0/me",
                                             headers={"Authorization": f"Bearer {token}"})
                with urllib.request.urlopen(req, timeout=2) as resp:
                    body = json.loads(resp.read())
                break
            except OSError:
                time.sleep(0.2)
        assert body["token"]["permissions"] == tokens.PERM_ALL
        assert body["user"]["email"] == email
        assert body["user"]["access"] == {"all": "*"}

        session = requests.Session()
        form = session.get(f"http://127.0.0.1:{port}/user/new", timeout=10)
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        resp = session.post(f"http://127.0.0.1:{port}/user/requestlogin", timeout=10,
                            data={"csrf": csrf, "email": email, "password": password})
        assert resp.status_code == 200 and resp.url == f"http://127.0.0.1:{port}/"
        assert "<h1>Dashboard</h1>" in resp.text
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        proc.stdout.close()


def test_first_user_of_a_site_is_a_superuser(app, runner):
    result = runner.invoke(args=["db", "create", "site", "--vhost", "stats.example.com",
                                 "--user-email", "me@example.com"])
    assert result.exit_code == 0, result.output
    token = runner.invoke(args=["db", "create", "apitoken", "--user", "1", "--perm", "all",
                                "--name", "x"]).output.strip()
    resp = app.test_client().get("/api/v0/me", headers={"Authorization": f"Bearer {token}",
                                                        "Host": "stats.example.com"})
    assert resp.status_code == 200
    assert resp.get_json()["user"]["access"] == {"all": "*"}


def _user(app, user_id=1):
    from tests.conftest import query
    return query(app, "SELECT email, password, login_key FROM users WHERE id = :id",
                 {"id": user_id})[0]


def test_update_user(app, runner):
    runner.invoke(args=["db", "create", "site", "--vhost", "stats.example.com",
                        "--user-email", "me@example.com", "--user-password", "first password"])
    before = _user(app)
    assert before["password"].startswith("scrypt:")
    result = runner.invoke(args=["db", "update", "user", "--id", "1",
                                 "--password", "second password"])
    assert result.exit_code == 0, result.output
    assert result.output == "updated the password of user 1\n"
    after = _user(app)
    assert after["password"] != before["password"]
    assert passwords.check_password(after["password"], "second password")
    assert "second password" not in after["password"]
    result = runner.invoke(args=["db", "update", "user", "--id", "1",
                                 "--email", " new@example.com "])
    assert result.exit_code == 0, result.output
    assert _user(app)["email"] == "new@example.com"


def test_old_werkzeug_hashes_still_verify():
    from werkzeug.security import generate_password_hash
    for method in ("scrypt", "pbkdf2:sha256"):
        stored = generate_password_hash("an old password", method=method)
        assert passwords.check_password(stored, "an old password")
        assert not passwords.check_password(stored, "another password")
    assert not passwords.check_password("md5$not$supported", "x")
    assert not passwords.check_password(None, "x")


@pytest.mark.parametrize(("args", "message"), [
    (["--id", "1"], "give --password, --email or both"),
    (["--id", "1", "--password", "short"], "must be at least 8 characters"),
    (["--id", "1", "--password", "x" * 1025], "must be at most 1024 characters"),
    (["--id", "1", "--email", "nope"], "not an email address"),
    (["--id", "9", "--password", "long enough"], "no user with id 9"),
    (["--id", "1", "--email", "Other@example.com"], "already has the email"),
    (["--password", "long enough"], "Missing option '--id'"),
])
def test_update_user_refuses(app, runner, args, message):
    runner.invoke(args=["db", "create", "site", "--vhost", "stats.example.com",
                        "--user-email", "me@example.com"])
    from tests.conftest import make_site
    make_site(app, cname="two.example.com", parent=1, email="other@example.com")
    before = _user(app)
    result = runner.invoke(args=["db", "update", "user", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert dict(_user(app)) == dict(before)


def test_create_site_refuses_a_short_password(runner):
    result = runner.invoke(args=["db", "create", "site", "--vhost", "stats.example.com",
                                 "--user-email", "me@example.com", "--user-password", "short"])
    assert result.exit_code != 0 and "must be at least 8 characters" in result.output
