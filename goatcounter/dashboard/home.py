"""GET /: the dashboard of the site chosen by the Host header."""
from __future__ import annotations

from flask import Blueprint, render_template

from goatcounter.dashboard.access import login_required

bp = Blueprint("dashboard", __name__)


@bp.route("/", methods=["GET"])
@login_required
def home() -> str:
    """GET /: the dashboard; signed out, a 303 to the sign-in form."""
    return render_template("dashboard.html", active="dashboard")
