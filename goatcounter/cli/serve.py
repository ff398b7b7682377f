"""`goatcounter serve`: gunicorn with the project's settings, and a first site on an
empty database."""
from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import click
from flask import current_app
from flask.cli import with_appcontext

from goatcounter.accounts import passwords, sites, tokens, users
from goatcounter.cli import tail
from goatcounter.counting import livelog
from goatcounter.storage import db


@click.command("serve")
@click.option("--listen", default="127.0.0.1:8081", show_default=True,
              help="Address and port to listen on.")
@click.option("--workers", default=3, show_default=True, type=click.IntRange(1, 64),
              help="Number of gunicorn worker processes.")
@click.option("--dev", is_flag=True,
              help="For developing tracking code: 127.0.0.1 only, no /count limit, the "
                   "snippet to paste, and the live log in this terminal.")
@click.option("--reload", is_flag=True,
              help="With --dev: restart the workers when the code changes.")
@with_appcontext
def serve_command(listen: str, workers: int, dev: bool, reload: bool) -> None:
    """Run the server (gunicorn with several workers).

    On an empty database it first creates a site, its admin user with a generated
    password and an API token with every permission, and prints the password and token
    once.

    With --dev it listens on 127.0.0.1 only, lifts the rate limits of /count and
    /api/v0/count (every client is this machine), prints the snippet to paste into a
    local page (with allow_local, without which count.js sends nothing from localhost)
    and the address of the live log, and then prints the live log (`goatcounter tail`)
    until interrupted.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise click.BadParameter("want HOST:PORT, e.g. 127.0.0.1:8081", param_hint="--listen")
    if dev and host != DEV_HOST:
        raise click.BadParameter(f"--dev listens on {DEV_HOST} only", param_hint="--listen")
    if reload and not dev:
        raise click.BadParameter("only with --dev", param_hint="--reload")
    first_run_setup(host, int(port), snippet=not dev)
    # The project's gunicorn settings (request line long enough for /count, an access
    # log without query strings, no control socket, timeouts for big exports), with the
    # address and workers given here; the app factory builds the same app from the same
    # environment.
    env = dict(os.environ)
    env.setdefault("GOATCOUNTER_INSTANCE", current_app.instance_path)
    args = [sys.executable, "-m", "gunicorn", "-c", "python:goatcounter.gunicorn_conf",
            "--bind", listen, "--workers", str(workers), "goatcounter:create_app()"]
    if not dev:
        os.execvpe(args[0], args, env)
    env["GOATCOUNTER_RATELIMIT"] = current_app.config["RATELIMIT"] + DEV_LIMITS
    # The live log takes the access log's place in the terminal; errors still show.
    args[-1:-1] = ["--access-logfile", os.devnull, "--log-level", "warning",
                   *(["--reload"] if reload else [])]
    run_dev(args, env, f"http://{host}:{port}")


DEV_HOST = "127.0.0.1"
# Later entries win: these on top of whatever the configuration says.
DEV_LIMITS = ",count:none,api-count:none"


def dev_intro(base: str) -> str:
    """What `serve --dev` prints before the live log."""
    conn = db.get_db()
    first = conn.execute("SELECT s.id, s.cname, u.email FROM sites s JOIN users u"
                         " ON u.site_id = s.id ORDER BY s.id, u.id LIMIT 1").fetchone()
    who = (f"Site {first['id']} ({first['cname']}); sign in at {base}/user/new as "
           f"{first['email']}.\n\n" if first else "")
    return who + (
        f"Paste this into the page you are working on (allow_local: count.js sends nothing"
        f" from localhost without it):\n\n"
        f'    <script data-goatcounter="{base}/count"\n'
        f"            data-goatcounter-settings='{{\"allow_local\": true}}'\n"
        f'            async src="{base}/count.js"></script>\n\n'
        f"No rate limit on /count or /api/v0/count while --dev runs.\n"
        f"Every pageview shows below as it arrives, and at {base}/live (signed in).\n"
        f"Stop with Ctrl-C.\n")


def run_dev(args: list[str], env: dict[str, str], base: str) -> None:
    """Run gunicorn beside this process and print the live log until either stops."""
    server = subprocess.Popen(args, env=env)
    try:
        if not _wait_for(server, base):
            raise click.ClickException(f"the server did not start (exit code {server.returncode})")
        # Where the log stands before the intro tells anyone to send a pageview: one
        # counted while the tail starts is shown all the same.
        conn = db.get_db()
        with db.read(conn):
            start = livelog.newest_id(conn)
        click.echo(dev_intro(base))
        stop = threading.Event()
        def watch() -> None:
            server.wait()
            stop.set()

        threading.Thread(target=watch, daemon=True).start()
        # Stopped by a signal as by Ctrl-C: the server goes down with it.
        signal.signal(signal.SIGTERM, _interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            tail.follow(conn, lambda e: click.echo(livelog.line(e)), stop=stop,
                        start_id=start)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_for(server: subprocess.Popen, base: str, seconds: float = 60) -> bool:
    """Whether the server answers within `seconds` (False once it has exited)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(base + "/count.js", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.1)
    return False


def first_run_setup(host: str, port: int, snippet: bool = True) -> None:
    """Create a default site, its superuser (with a generated password) and an
    all-permission token on an empty database, and print how to use them."""
    password = passwords.generate()

    def run(conn: sqlite3.Connection) -> tuple[str, dict, dict] | None:
        if conn.execute("SELECT 1 FROM sites LIMIT 1").fetchone():
            return None
        site = sites.create(conn, cname=host if host not in ("0.0.0.0", "::") else "localhost")
        user = users.create(conn, site_id=site["id"], email="admin@localhost",
                            password=password, access="*")
        token, _ = tokens.create_token(conn, user=user, name="default",
                                     permissions=tokens.PERM_ALL)
        return token, site, user

    made = db.write(run)
    if made:
        token, site, user = made
        base = f"http://{host}:{port}"
        click.echo(
            f"Created site {site['id']} ({site['cname']}), its user {user['email']} and an "
            f"API token with every permission.\nThe password and token are shown only now; "
            f"keep them.\n\n"
            f"Sign in at {base}/user/new\n"
            f"    email:    {user['email']}\n"
            f"    password: {password}\n\n"
            f"API token:\n\n    {token}\n\n"
            f"Try: curl -H 'Authorization: Bearer {token}' {base}/api/v0/me\n"
            + (f"Count pageviews with: <script data-goatcounter=\"{base}/count\" async "
               f"src=\"{base}/count.js\"></script>\n" if snippet else ""))
