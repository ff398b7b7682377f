"""A self-hosted web analytics server that speaks the GoatCounter API v0."""
from __future__ import annotations

import os
from typing import Any

from flask import Flask

from . import config


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings from defaults, `instance/config.py`, GOATCOUNTER_*
    environment variables, then `test_config`."""
    instance = (test_config or {}).get("INSTANCE") or config.instance_path()
    app = Flask(__name__, instance_path=instance, instance_relative_config=True,
                static_folder=None)
    app.config.update(config.DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.update(config.from_environ())
    if test_config:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)

    app.config["DB_PATH"] = config.resolve(app.instance_path, app.config["DB"])
    app.config["EXPORT_PATH"] = config.resolve(app.instance_path, app.config["EXPORT_DIR"])
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY"]
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = config.secret_key(app.instance_path)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = False

    # auth and sites register their CLI commands when imported.
    from . import auth, db, errors, importer, pending, proxies, ratelimit, sites  # noqa: F401
    from .views import api, countjs, pixel
    from .views import count as count_views
    from .views import export as export_views
    from .views import sites as sites_views
    from .views import stats as stats_views

    db.init_app(app)
    errors.init_app(app)
    api.init_hooks(app, "before")
    ratelimit.init_app(app)
    api.init_hooks(app, "after")
    pending.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(count_views.bp)
    app.register_blueprint(export_views.bp)
    app.register_blueprint(sites_views.bp)
    app.register_blueprint(stats_views.bp)
    app.register_blueprint(countjs.bp)

    pixel.init_app(app)
    networks = proxies.parse(app.config["TRUSTED_PROXIES"])
    if networks:
        app.wsgi_app = proxies.TrustedProxies(app.wsgi_app, networks)  # type: ignore[method-assign]

    from . import cli
    cli.init_app(app)
    importer.init_app(app)
    return app
