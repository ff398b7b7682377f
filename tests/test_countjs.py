"""GET /count.js: the tracking script as a cacheable, embeddable file."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

SCRIPT = Path(__file__).resolve().parent.parent / "goatcounter" / "public" / "static" / "count.js"


def test_serves_the_script(client: FlaskClient) -> None:
    resp = client.get("/count.js")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/javascript; charset=utf-8"
    assert resp.data == SCRIPT.read_bytes()
    assert b"goatcounter" in resp.data


def test_any_site_may_embed_it(client: FlaskClient) -> None:
    resp = client.get("/count.js", headers={"Origin": "https://blog.example.org"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Cross-Origin-Resource-Policy"] == "cross-origin"


def test_cacheable_for_a_day(client: FlaskClient) -> None:
    resp = client.get("/count.js")
    assert resp.headers["Cache-Control"] == "public, max-age=86400"
    assert resp.headers["ETag"]
    assert resp.headers["Last-Modified"]


def test_conditional_get_is_not_modified(client: FlaskClient) -> None:
    etag = client.get("/count.js").headers["ETag"]
    resp = client.get("/count.js", headers={"If-None-Match": etag})
    assert resp.status_code == 304
    assert resp.data == b""
    assert resp.headers["ETag"] == etag
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_if_modified_since_is_not_modified(client: FlaskClient) -> None:
    modified = client.get("/count.js").headers["Last-Modified"]
    resp = client.get("/count.js", headers={"If-Modified-Since": modified})
    assert resp.status_code == 304


def test_stale_etag_gets_the_script(client: FlaskClient) -> None:
    resp = client.get("/count.js", headers={"If-None-Match": '"something-else"'})
    assert resp.status_code == 200
    assert resp.data == SCRIPT.read_bytes()


def test_head(client: FlaskClient) -> None:
    resp = client.head("/count.js")
    assert resp.status_code == 200
    assert resp.data == b""
    assert int(resp.headers["Content-Length"]) == len(SCRIPT.read_bytes())


def test_no_site_or_token_needed(client: FlaskClient, site_token: tuple[dict, str]) -> None:
    # Pages load it from any host name the server answers on, with no credentials.
    resp = client.get("/count.js", headers={"Host": "unknown.example.net"})
    assert resp.status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods(client: FlaskClient, method: str) -> None:
    assert client.open("/count.js", method=method).status_code == 405


@pytest.mark.parametrize("name", [
    "count", "url", "filter", "bind_events", "get_query", "get_data", "visit_count",
])
def test_script_has_the_public_api(name: str) -> None:
    # The behaviour is checked in a real browser (test_browser.py); this only guards
    # against a file that lost a function that pages call on window.goatcounter.
    assert re.search(rf"\.{name} = function\(", SCRIPT.read_text())


@pytest.mark.parametrize("text", [
    "script[data-goatcounter]", "goatcounterSettings", "[data-goatcounter-click]",
    "sendBeacon", "skipgc", "#toggle-goatcounter", "visibilitychange",
])
def test_script_reads_what_pages_set(text: str) -> None:
    assert text in SCRIPT.read_text()
