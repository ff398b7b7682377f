"""GET /: the dashboard of the site chosen by the Host header."""
from __future__ import annotations

from flask import Blueprint, render_template

from goatcounter.dashboard.access import viewer_required

bp = Blueprint("dashboard", __name__)


@bp.route("/", methods=["GET"])
@viewer_required
def home() -> str:
    """GET /: the dashboard; signed out (on a site that is not public), a 303 to the
    sign-in form."""
    return render_template("dashboard.html", active="dashboard")
