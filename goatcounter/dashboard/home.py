"""GET /: the dashboard of the site chosen by the Host header."""
from __future__ import annotations

from flask import Blueprint

from goatcounter.dashboard import access, overview
from goatcounter.dashboard.access import current_site, viewer_required

bp = Blueprint("dashboard", __name__)


@bp.route("/", methods=["GET"])
@viewer_required
def home() -> tuple[str, int]:
    """GET /: the dashboard (overview.py reads its parameters); signed out, a 303 to the
    sign-in form, unless the site shows its dashboard without an account (read-only, in
    the site's settings for new users); a user of another site gets 403."""
    seen = access.viewer()
    user = seen.user if seen is not None and seen.user is not None else {
        "settings": access.view_settings()}
    return overview.render_dashboard(current_site(), user)
