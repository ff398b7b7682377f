"""The `goatcounter` command, one module per command group: `serve`, `db ...`
(db, sites, tokens), `import` and `tail`."""
from __future__ import annotations

from flask import Flask
from flask.cli import FlaskGroup


def _create_app() -> Flask:
    from goatcounter import create_app
    return create_app()


def init_app(app: Flask) -> None:
    """Add every command to the app's command line."""
    from goatcounter.cli import (  # noqa: F401 (they add their commands)
        db,
        imports,
        serve,
        sites,
        tail,
        tokens,
        users,
    )
    app.cli.add_command(serve.serve_command)
    app.cli.add_command(db.db_cli)
    app.cli.add_command(imports.import_command)
    app.cli.add_command(tail.tail_command)


main = FlaskGroup(create_app=_create_app, add_default_commands=False, add_version_option=False,
                  load_dotenv=False, help="A self-hosted web analytics server that speaks "
                  "the GoatCounter API v0.")
