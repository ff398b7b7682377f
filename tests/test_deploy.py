"""The deployment examples: gunicorn.conf.py, deploy/nginx.conf, deploy/goatcounter.service
and the commands of deploy/README.md, each checked as far as this machine allows."""
from __future__ import annotations

import contextlib
import http.client
import multiprocessing
import os
import pwd
import re
import runpy
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common import stop
from goatcounter import create_app
from goatcounter.storage import db
from tests.conftest import make_site, query
from tests.servers import ROOT, free_port, gunicorn

GUNICORN_CONF = ROOT / "gunicorn.conf.py"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
UNIT = ROOT / "deploy" / "goatcounter.service"
README = ROOT / "deploy" / "README.md"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"


# gunicorn.conf.py -----------------------------------------------------------------------

def test_gunicorn_config_values(monkeypatch):
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    # Run afresh each time (gunicorn reads it once per start).
    conf = runpy.run_module("goatcounter.gunicorn_conf")
    assert conf["bind"] == "127.0.0.1:8081"
    assert conf["worker_class"] == "sync"
    assert conf["workers"] == multiprocessing.cpu_count() * 2 + 1
    assert set(conf["forwarded_allow_ips"].split(",")) <= {"127.0.0.1", "::1"}
    assert conf["preload_app"] is False
    assert conf["accesslog"]
    # A writer gives up after the busy timeout plus its retries; the worker must live
    # longer than that to answer with its 503.
    assert conf["timeout"] > db.BUSY_TIMEOUT_MS / 1000 + db.RETRY_SECONDS
    assert conf["graceful_timeout"] < conf["timeout"]
    # The access log has the path, never the query string.
    assert "%(U)s" in conf["access_log_format"]
    assert not re.search(r"%\((r|q|u|\{[^}]*\}i)\)s", conf["access_log_format"])
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert runpy.run_module("goatcounter.gunicorn_conf")["workers"] == 3


def test_gunicorn_check_config(tmp_path):
    env = dict(os.environ, GOATCOUNTER_INSTANCE=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "gunicorn", "--check-config", "-c",
                             str(GUNICORN_CONF), "wsgi:app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_gunicorn_starts_with_the_config(tmp_path):
    instance = str(tmp_path)
    app = create_app({"INSTANCE": instance})
    make_site(app)
    with gunicorn(instance, workers=2, config=GUNICORN_CONF) as base:
        status, body = get(base, "/count?p=/from-config&t=secret-title",
                           {"Host": "stats.example.com", "User-Agent": UA})
        assert status == 200
        status, body = get(base, "/count.js")
        assert status == 200 and b"goatcounter" in body
    log = next(tmp_path.glob("gunicorn-*.log")).read_text()
    assert '"GET /count HTTP/1.1" 200' in log
    assert "secret-title" not in log and "p=/from-config" not in log


# deploy/goatcounter.service -------------------------------------------------------------

def unit_entries(text: str) -> dict[str, list[tuple[str, str]]]:
    """The unit's sections as lists of (key, value); keys may repeat, as systemd allows."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"entry outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=value: {line}"
        current.append((key.strip(), value.strip()))
    return sections


def test_systemd_unit_contents():
    sections = unit_entries(UNIT.read_text())
    assert set(sections) == {"Unit", "Service", "Install"}
    service = sections["Service"]
    one = dict(service)
    assert one["ExecStart"].endswith("/gunicorn -c gunicorn.conf.py wsgi:app")
    assert one["User"] not in ("", "root") and one["Group"] not in ("", "root")
    envs = [value for key, value in service if key == "Environment"]
    assert "GOATCOUNTER_INSTANCE=/var/lib/goatcounter" in envs
    assert "GOATCOUNTER_TRUSTED_PROXIES=127.0.0.1" in envs
    assert one["StateDirectory"] == "goatcounter"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
                       "RestrictSUIDSGID": "yes"}.items():
        assert one.get(key) == value, key
    assert "AF_INET" in one["RestrictAddressFamilies"]
    # Stopping lets gunicorn's graceful timeout run out first.
    conf = runpy.run_path(str(GUNICORN_CONF))
    assert int(one["TimeoutStopSec"]) > conf["graceful_timeout"]
    assert dict(sections["Install"])["WantedBy"] == "multi-user.target"


def test_systemd_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the unit was parsed above)")
    # The unit as installed on this machine: the code here instead of /opt/goatcounter.
    venv_bin = Path(sys.executable).parent
    text = UNIT.read_text().replace("/opt/goatcounter/.venv/bin", str(venv_bin))
    text = text.replace("/opt/goatcounter", str(ROOT))
    unit = tmp_path / "goatcounter.service"
    unit.write_text(text)
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                            text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if "goatcounter.service" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


# deploy/nginx.conf ----------------------------------------------------------------------

def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    if found is None:
        pytest.skip("nginx is not installed (.ci/run installs nginx-light)")
    return found


def self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=stats.example.com", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def nginx_setup(tmp: Path, ports: dict[str, int] | None = None) -> Path:
    """deploy/nginx.conf with a self-signed certificate and every path under `tmp`,
    inside a minimal main configuration; returns the main configuration file."""
    cert, key = self_signed(tmp)
    for name in ("log", "www", "cache", "temp"):
        (tmp / name).mkdir(exist_ok=True)
    text = NGINX_CONF.read_text()
    for old, new in {
        "/etc/letsencrypt/live/stats.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/stats.example.com/privkey.pem": str(key),
        "/var/log/nginx/": f"{tmp}/log/",
        "/var/cache/nginx/": f"{tmp}/cache/",
        "/var/www/html": f"{tmp}/www",
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    # Anything else outside the temporary folder would make the check depend on this
    # machine: the replacements above must cover every path in the file.
    directives = re.sub(r"#[^\n]*", "", text)
    assert not re.search(r"\s/(etc|var|srv|opt|usr)/", directives)
    if ports:
        text = text.replace("127.0.0.1:8081", f"127.0.0.1:{ports['app']}")
        text = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", text)
        text = text.replace("listen 80;", f"listen 127.0.0.1:{ports['http']};")
        text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{ports['https']} ssl;")
    site = tmp / "goatcounter.conf"
    site.write_text(text)
    temp = tmp / "temp"
    main = tmp / "nginx.conf"
    # Run as root (as CI is), nginx's workers would drop to an unprivileged user that
    # can't enter pytest's private temporary folder; they keep this user instead.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    main.write_text(f"""
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/log/error.log;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/log/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {site};
}}
""")
    return main


def test_nginx_config_passes_nginx_t(tmp_path):
    nginx = nginx_binary()
    main = nginx_setup(tmp_path)
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", f"{tmp_path}/log/error.log",
                             "-c", str(main)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@contextlib.contextmanager
def nginx_running(nginx: str, tmp: Path, main: Path, port: int) -> Iterator[None]:
    log = tmp / "log" / "error.log"
    proc = subprocess.Popen([nginx, "-p", str(tmp), "-e", str(log), "-c", str(main), "-g",
                             "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError("nginx exited: " + log.read_text())
            with contextlib.suppress(OSError), socket_to(port):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not start")
            time.sleep(0.05)
        yield
    finally:
        stop(proc, signal.SIGQUIT, 10)


def socket_to(port: int):
    import socket
    return socket.create_connection(("127.0.0.1", port), timeout=1)


def https(port: int, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    conn.request("GET", path, headers={"Host": "stats.example.com", **headers})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_nginx_in_front_of_gunicorn(tmp_path):
    """The whole chain on loopback ports: nginx with the example configuration, gunicorn
    with gunicorn.conf.py and the unit's GOATCOUNTER_TRUSTED_PROXIES."""
    nginx = nginx_binary()
    instance = tmp_path / "instance"
    app = create_app({"INSTANCE": str(instance)})
    make_site(app, settings={"ignore_ips": "8.8.8.8"})
    env = {"GOATCOUNTER_TRUSTED_PROXIES": "127.0.0.1"}
    with gunicorn(str(instance), workers=2, env=env, config=GUNICORN_CONF) as base:
        ports = {"app": int(base.rsplit(":", 1)[1]), "http": free_port(), "https": free_port()}
        main = nginx_setup(tmp_path, ports)
        with nginx_running(nginx, tmp_path, main, ports["https"]):
            # A visitor who claims to be an ignored address is counted all the same:
            # nginx replaces the header with the address it sees.
            resp = https(ports["https"], "/count?p=/via-nginx&t=private-title",
                         {"User-Agent": UA, "X-Forwarded-For": "8.8.8.8"})
            assert resp.status == 200 and resp.getheader("X-Goatcounter") is None
            first = https(ports["https"], "/count.js", {})
            second = https(ports["https"], "/count.js", {})
            assert first.status == second.status == 200
            assert second.getheader("X-Cache-Status") == "HIT"
            assert second.getheader("Strict-Transport-Security")
            api = https(ports["https"], "/api/v0/nothing-here", {})
            assert api.status == 404
            assert api.getheader("Content-Type").startswith("application/json")
            conn = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=10)
            conn.request("GET", "/api/v0/me", headers={"Host": "stats.example.com"})
            plain = conn.getresponse()
            assert plain.status == 301
            assert plain.getheader("Location") == "https://stats.example.com/api/v0/me"
            conn.close()
    rows = query(app, "SELECT p.path, h.location FROM hits h JOIN paths p ON p.id = h.path_id")
    # 127.0.0.1, the address nginx saw, has no country; 8.8.8.8 would be US.
    assert [tuple(r) for r in rows] == [("/via-nginx", "")]
    access = (tmp_path / "log" / "goatcounter.access.log").read_text()
    assert "GET /count HTTP/1.1" in access
    assert "private-title" not in access and "via-nginx" not in access


# deploy/README.md -----------------------------------------------------------------------

def test_readme_names_the_files_it_installs():
    text = README.read_text()
    for name in ("gunicorn.conf.py", "deploy/goatcounter.service", "deploy/nginx.conf",
                 "GOATCOUNTER_TRUSTED_PROXIES=127.0.0.1", "nginx -t"):
        assert name in text, name
    assert 'data-goatcounter="https://stats.example.com/count"' in text


@pytest.mark.sqlite_only("the README's commands include db backup, which copies the SQLite file")
def test_readme_goatcounter_commands_work(tmp_path):
    """Every `goatcounter ...` command of the README, in order, on an empty instance."""
    text = README.read_text()
    commands = re.findall(r"/opt/goatcounter/\.venv/bin/goatcounter (db [^\n&|]+)", text)
    assert len(commands) >= 3
    env = dict(os.environ, GOATCOUNTER_INSTANCE=str(tmp_path / "instance"))
    outputs = []
    for line in commands:
        args = shlex.split(line.replace("$(date +\\%F)", "2026-01-01").replace(
            "/var/backups/goatcounter", str(tmp_path)))
        result = subprocess.run([sys.executable, "-m", "goatcounter", *args], env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (line, result.stdout, result.stderr)
        outputs.append(result.stdout)
    token = next(out.strip() for out in outputs if out.strip().isalnum())
    app = create_app({"INSTANCE": str(tmp_path / "instance")})
    resp = app.test_client().get("/api/v0/me", headers={"Host": "stats.example.com",
                                                        "Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert list(tmp_path.glob("goatcounter-2026-01-01.sqlite3"))


# goatcounter serve ----------------------------------------------------------------------

def test_serve_uses_the_project_gunicorn_settings(tmp_path):
    """`goatcounter serve` runs gunicorn with goatcounter/gunicorn_conf.py: a /count with
    a 2,000-byte UTF-8 path (inside our own limit) fits its request line, the access log
    has no query strings, and no control socket appears in the home folder."""
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = dict(os.environ, GOATCOUNTER_INSTANCE=str(tmp_path / "instance"), HOME=str(home),
               GOATCOUNTER_COUNT_IN_BACKGROUND="0", PYTHONUNBUFFERED="1")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "goatcounter", "serve", "--listen",
                                 f"127.0.0.1:{port}", "--workers", "1"], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if get(base, "/count.js")[0] == 200:
                        break
                except OSError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            path = "/" + "é" * 999  # 1,999 bytes of UTF-8, 5,995 characters escaped
            status, body = get(base, "/count?p=" + urllib.parse.quote(path) + "&t=secret-title",
                               {"Host": "127.0.0.1", "User-Agent": UA})
            assert status == 200, body[:300]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text()
    assert '"GET /count HTTP/1.1" 200' in text, text
    assert "secret-title" not in text and "%C3%A9" not in text
    assert not (home / ".gunicorn").exists()
    app = create_app({"INSTANCE": str(tmp_path / "instance")})
    assert query(app, "SELECT length(path) FROM paths")[0][0] == 1000


def test_one_definition_of_the_gunicorn_settings():
    from goatcounter import gunicorn_conf
    conf = runpy.run_path(str(GUNICORN_CONF))
    names = {k for k in vars(gunicorn_conf) if not k.startswith("_") and k.islower()}
    assert {"limit_request_line", "access_log_format", "control_socket_disable"} <= names
    assert all(conf[k] == getattr(gunicorn_conf, k) for k in names)
    assert "python:goatcounter.gunicorn_conf" in (ROOT / "goatcounter" / "cli" / "serve.py") \
        .read_text()
