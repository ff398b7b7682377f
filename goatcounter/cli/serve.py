"""`goatcounter serve`: gunicorn with the project's settings, and a first site on an
empty database."""
from __future__ import annotations

import os
import sqlite3
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from goatcounter.accounts import passwords, sites, tokens, users
from goatcounter.storage import db


@click.command("serve")
@click.option("--listen", default="127.0.0.1:8081", show_default=True,
              help="Address and port to listen on.")
@click.option("--workers", default=3, show_default=True, type=click.IntRange(1, 64),
              help="Number of gunicorn worker processes.")
@click.option("--dev", is_flag=True, help="Run Flask's development server with the reloader.")
@with_appcontext
def serve_command(listen: str, workers: int, dev: bool) -> None:
    """Run the server (gunicorn with several workers; --dev for Flask's reloader).

    On an empty database it first creates a site, its admin user with a generated
    password and an API token with every permission, and prints the password and token
    once.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise click.BadParameter("want HOST:PORT, e.g. 127.0.0.1:8081", param_hint="--listen")
    first_run_setup(host, int(port))
    if dev:
        current_app.run(host=host, port=int(port), debug=True, use_reloader=True)
        return
    # The project's gunicorn settings (request line long enough for /count, an access
    # log without query strings, no control socket, timeouts for big exports), with the
    # address and workers given here; the app factory builds the same app from the same
    # environment.
    env = dict(os.environ)
    env.setdefault("GOATCOUNTER_INSTANCE", current_app.instance_path)
    args = [sys.executable, "-m", "gunicorn", "-c", "python:goatcounter.gunicorn_conf",
            "--bind", listen, "--workers", str(workers), "goatcounter:create_app()"]
    os.execvpe(args[0], args, env)


def first_run_setup(host: str, port: int) -> None:
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
            f"Count pageviews with: <script data-goatcounter=\"{base}/count\" async "
            f"src=\"{base}/count.js\"></script>\n")
