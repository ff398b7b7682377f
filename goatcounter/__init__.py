"""A self-hosted web analytics server that speaks the GoatCounter API v0."""
from __future__ import annotations

import os
from typing import Any

from flask import Flask

from goatcounter import server_config


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings from defaults, `instance/config.py`, GOATCOUNTER_*
    environment variables, then `test_config`."""
    instance = (test_config or {}).get("INSTANCE") or server_config.instance_path()
    app = Flask(__name__, instance_path=instance, instance_relative_config=True,
                static_folder=None)
    app.config.update(server_config.DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.update(server_config.from_environ())
    if test_config:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)

    if app.config["DB"].startswith(("postgresql://", "postgres://")):
        app.config["DB_URL"] = app.config["DB"]
        # Files of this host alone (the pixel spool, rate-limit counters) are named after
        # this path, in the instance folder.
        app.config["DB_PATH"] = os.path.join(app.instance_path, "goatcounter")
    else:
        app.config["DB_URL"] = ""
        app.config["DB_PATH"] = server_config.resolve(app.instance_path, app.config["DB"])
    app.config["EXPORT_PATH"] = server_config.resolve(app.instance_path, app.config["EXPORT_DIR"])
    app.config["IMPORT_PATH"] = server_config.resolve(app.instance_path, app.config["IMPORT_DIR"])
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY"]
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = server_config.secret_key(app.instance_path)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = False

    from goatcounter import cli, upkeep
    from goatcounter.api import core
    from goatcounter.api import count as count_views
    from goatcounter.api import export as export_views
    from goatcounter.api import sites as sites_views
    from goatcounter.api import stats as stats_views
    from goatcounter.counting import livelog, pending
    from goatcounter.dashboard import home, layout, live, signin
    from goatcounter.dashboard import settings as settings_pages
    from goatcounter.exports import uploads
    from goatcounter.public import counter, countjs, pixel
    from goatcounter.storage import db
    from goatcounter.web import csrf, error_replies, pages, proxies, ratelimit, session_cookie

    db.init_app(app)
    error_replies.init_app(app)
    session_cookie.init_app(app)
    ratelimit.init_app(app, "identify")
    core.init_hooks(app, "before")
    ratelimit.init_app(app, "limit")
    core.init_hooks(app, "after")
    # After the limiter: a forged sign-in spends the bucket like any other.
    csrf.init_app(app)
    pages.init_app(app)
    livelog.init_app(app)
    pending.init_app(app)
    upkeep.init_app(app)
    uploads.init_app(app)
    app.register_blueprint(core.bp)
    app.register_blueprint(count_views.bp)
    app.register_blueprint(export_views.bp)
    app.register_blueprint(sites_views.bp)
    app.register_blueprint(stats_views.bp)
    app.register_blueprint(countjs.bp)
    counter.init_app(app)
    layout.init_app(app)
    app.register_blueprint(signin.bp)
    app.register_blueprint(home.bp)
    settings_pages.init_app(app)
    app.register_blueprint(live.bp)

    pixel.init_app(app)
    networks = proxies.parse(app.config["TRUSTED_PROXIES"])
    if networks:
        app.wsgi_app = proxies.TrustedProxies(app.wsgi_app, networks)  # type: ignore[method-assign]

    cli.init_app(app)
    return app
