"""The settings pages, at upstream's paths: the user's own (/user/pref, /user/dashboard,
/user/auth, /user/api) and the site's (/settings/main, /settings/users, /settings/sites,
/settings/export, /settings/purge, and /settings/share, ours), each behind its access
level."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register every settings page."""
    from goatcounter.dashboard.settings import (
        api_keys,
        auth,
        export,
        prefs,
        purge,
        share,
        site,
        sites_admin,
        users_admin,
    )

    for module in (site, prefs, auth, api_keys, users_admin, sites_admin, purge,
                   export, share):
        app.register_blueprint(module.bp)
    export.init_app(app)
