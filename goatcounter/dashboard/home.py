"""GET /: the dashboard of the site chosen by the Host header."""
from __future__ import annotations

from flask import Blueprint

from goatcounter.dashboard import overview
from goatcounter.dashboard.access import current_site, current_user, login_required

bp = Blueprint("dashboard", __name__)


@bp.route("/", methods=["GET"])
@login_required
def home() -> tuple[str, int]:
    """GET /: the dashboard (overview.py reads its parameters); signed out, a 303 to the
    sign-in form; a user of another site gets 403."""
    return overview.render_dashboard(current_site(), current_user())
