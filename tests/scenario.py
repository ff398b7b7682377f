"""The golden scenario: GoatCounter 2.7.0's recorded replies for known hits
(tests/fixtures/, copied from the fixture set), and a site set up the way they were made."""
from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

from flask import Flask

from goatcounter import clock
from goatcounter.accounts import sites, tokens, users
from goatcounter.storage import db
from tests.conftest import API, make_site

FIXTURES = Path(__file__).parent / "fixtures"
# The machine clock when the fixtures were recorded.
RECORDED_AT = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
SETTINGS = {"collect": 446, "ignore_ips": "203.0.113.7"}
# The fixed token of the recorded scenario (a test value, not a secret).
ORACLE_TOKEN = "oracle0token0k3z9qv7x2m5n8p1r4t6w0y3b5d7f9h2j4l6n8"


def reply(name: str) -> dict[str, Any]:
    """A recorded request and reply, by file name prefix (e.g. "72")."""
    found = sorted((FIXTURES / "replies").glob(f"{name}-*.json"))
    assert found, name
    return json.loads(found[0].read_text())


def hit_bodies() -> list[dict[str, Any]]:
    """The three POST /api/v0/count bodies of the scenario."""
    return [r["body"] for r in json.loads((FIXTURES / "hits.json").read_text())["requests"]]


def export_rows() -> list[dict[str, str]]:
    """The CSV GoatCounter exported for the scenario's hits."""
    with open(FIXTURES / "export.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def oracle_site(app: Flask, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The site, user and token the fixtures were recorded with (fixtures README): a
    superuser and a token named "oracle" with every permission, limited to the site."""
    with app.app_context():
        def run(conn):
            site = sites.create(conn, cname="127.0.0.1",
                                settings=settings if settings is not None else SETTINGS)
            user = users.create(conn, site_id=site["id"], email="test@example.com",
                                access="*")
            tokens.create_token(conn, user=user, name="oracle", permissions=126,
                              site_ids=[site["id"]], token=ORACLE_TOKEN)
            return site
        return db.write(run)


def setup(app: Flask) -> API:
    """A site like the recorded one, with the clock stopped at the recording time."""
    _site, token = make_site(app, cname="127.0.0.1", settings=dict(SETTINGS))
    clock.freeze(RECORDED_AT)
    return API(app.test_client(), token, "127.0.0.1:8084")


def count_all(api: API) -> list:
    """Send the scenario's hits; returns the replies."""
    return [api.post("/api/v0/count", body) for body in hit_bodies()]
