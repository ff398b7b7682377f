"""Shared API behaviour: error shapes (spec 5), content types (4), routing (8), CORS (7),
and the diagnostic endpoint /api/v0/test (10.1)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import assert_error, assert_errors


def test_415_for_a_body_that_is_not_json(api):
    resp = api.post("/api/v0/test", '{"perm": 0}', headers={"Content-Type": "text/plain"})
    assert_error(resp, 415, 'unable to handle Content-Type "text/plain"')


def test_415_for_a_body_without_content_type(api, client):
    resp = client.post("/api/v0/test", data=b'{"perm": 0}',
                       headers={"Authorization": f"Bearer {api.token}", "Host": api.host})
    assert_error(resp, 415)


def test_415_needs_the_exact_media_type_on_body_endpoints(api):
    # The middleware lower-cases the type; the body decoder does not (upstream).
    resp = api.post("/api/v0/test", "", headers={"Content-Type": "Application/JSON"})
    assert_error(resp, 415, 'unable to handle Content-Type "Application/JSON"')


def test_charset_parameter_is_fine(api):
    resp = api.post("/api/v0/test", {}, headers={"Content-Type":
                                                 "application/json; charset=utf-8"})
    assert resp.status_code == 200


def test_413_for_a_body_over_the_limit(app_config, tmp_path):
    from goatcounter import create_app
    from tests.conftest import API, make_site
    app_config["MAX_BODY"] = 1000
    app = create_app(app_config)
    site, token = make_site(app)
    api = API(app.test_client(), token, site["cname"])
    resp = api.post("/api/v0/test", {"validate": {"errors": {"x": ["y" * 2000]}}})
    assert_error(resp, 413, "request body is larger than 1000 bytes")


@pytest.mark.parametrize(("raw", "start"), [
    ('{"perm": 0', "invalid JSON: unexpected EOF"),
    ("{perm: 0}", "invalid JSON: "),
    ('{"perm": NaN}', "invalid JSON: "),
    ("[1, 2]", "invalid JSON: expected an object, got array"),
    ('"text"', "invalid JSON: expected an object, got string"),
    (b'{"perm": "\xff"}', "invalid JSON: body is not valid UTF-8"),
    ('{"perm": "x"}', "invalid JSON: "),
    ('{"perm": 1.5}', "invalid JSON: "),
    ('{"panic": "yes"}', "invalid JSON: "),
])
def test_400_for_malformed_json(api, raw, start):
    resp = api.post("/api/v0/test", raw)
    body = assert_error(resp, 400)
    assert body["error"].startswith(start), body


def test_deeply_nested_json_is_a_clean_400(api):
    resp = api.post("/api/v0/test", '{"validate": ' + "[" * 100000 + "]" * 100000 + "}")
    assert_error(resp, 400)


def test_unknown_json_key(api):
    resp = api.post("/api/v0/test", {"perm": 0, "bogus": 1})
    assert_error(resp, 400, 'unknown parameter: "bogus"')


def test_unknown_query_parameter(api):
    resp = api.get("/api/v0/test?perm=0&bogus=1")
    assert_error(resp, 400, 'unknown parameter: "bogus"')


def test_keys_match_ignoring_case_like_go(api):
    resp = api.post("/api/v0/test", {"Context": True})
    assert resp.status_code == 200
    assert resp.get_json()["site_id"] >= 1


def test_get_ignores_a_json_body(api):
    # Real clients (goatpie) send {} with their GETs.
    resp = api.request("GET", "/api/v0/me", body={})
    assert resp.status_code == 200
    resp = api.request("GET", "/api/v0/me", body={"anything": [1, 2]})
    assert resp.status_code == 200


def test_empty_post_body_is_an_empty_object(api):
    resp = api.post("/api/v0/test", "")
    assert resp.status_code == 200
    # As GoatCounter 2.7.0: the validator is an object with no errors, not null.
    assert resp.get_json() == {"perm": 0, "status": 0, "panic": False,
                               "validate": {"errors": None}, "context": False}


@pytest.mark.parametrize(("sent", "echoed"), [
    (None, {"errors": None}), ({}, {"errors": None}), ({"errors": None}, {"errors": None}),
    ({"errors": {}}, {"errors": {}}),
])
def test_validate_is_echoed_as_a_validator(api, sent, echoed):
    body = {} if sent is None else {"validate": sent}
    assert api.post("/api/v0/test", body).get_json()["validate"] == echoed
    query = "" if sent is None else "?validate=" + json.dumps(sent)
    assert api.get("/api/v0/test" + query).get_json()["validate"] == echoed


def test_validate_gives_errors_shape(api):
    errs = {"e": ["must be a valid email address"], "r": ["must be set"]}
    resp = api.post("/api/v0/test", {"validate": {"errors": errs}})
    assert_errors(resp, 400, errs)


def test_status_gives_error_shape(api):
    resp = api.post("/api/v0/test", {"status": 418})
    assert_error(resp, 418, "status 418")


def test_status_2xx_has_no_error(api):
    resp = api.post("/api/v0/test", {"status": 201})
    assert resp.status_code == 201
    assert "error" not in resp.get_json()


def test_panic_gives_generic_500(api, app):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    resp = api.post("/api/v0/test", {"panic": True})
    body = assert_error(resp, 500)
    assert body["error"].startswith("unexpected error code ‘")
    assert body["error"].endswith("’; this has been reported for investigation")


def test_status_500_is_generic(api, app):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    resp = api.post("/api/v0/test", {"status": 500})
    assert assert_error(resp, 500)["error"].startswith("unexpected error code")


def test_test_decodes_before_auth(client):
    # Bad JSON gives 400 even without a token (spec 9: body decoding before auth).
    resp = client.post("/api/v0/test", data="{", headers={"Content-Type": "application/json"})
    assert_error(resp, 400)


def test_unknown_route_is_json_404(api):
    assert_error(api.get("/api/v0/doesnt-exist"), 404, "not found")
    assert_error(api.post("/api/v0/doesnt-exist"), 404, "not found")


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/v0/me"),
    ("HEAD", "/api/v0/me"),
    ("DELETE", "/api/v0/me"),
    ("PATCH", "/api/v0/test"),
])
def test_wrong_method_is_json_405(api, method, path):
    resp = api.request(method, path)
    assert resp.status_code == 405
    # HTTP wants the methods that would work.
    assert "GET" in resp.headers["Allow"] or "POST" in resp.headers["Allow"]
    if method != "HEAD":
        assert_error(resp, 405, "method not allowed")


def test_trailing_slash_redirects_keeping_the_query(api):
    resp = api.get("/api/v0/me/?x=1")
    assert resp.status_code == 301
    assert resp.headers["Location"] == "/api/v0/me?x=1"
    # Before the limiter, as upstream: it shows the bucket but spends nothing.
    assert resp.headers["X-Rate-Limit-Remaining"] == resp.headers["X-Rate-Limit-Limit"]


def test_options_preflight(api, client):
    resp = client.options("/api/v0/count", headers={"Origin": "https://example.com",
                                                     "Access-Control-Request-Method": "POST"})
    assert resp.status_code == 200
    assert resp.get_data() == b""
    h = resp.headers
    assert h["Access-Control-Allow-Origin"] == "*"
    assert h["Access-Control-Allow-Credentials"] == "true"
    assert h["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert h["Access-Control-Allow-Methods"] == "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
    assert h["Allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
    # It goes through the limiter of its path.
    assert h["X-Rate-Limit-Limit"] == "60"


def test_cors_on_normal_requests_with_origin(api):
    resp = api.get("/api/v0/me", headers={"Origin": "https://example.com"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Methods" not in resp.headers
    resp = api.get("/api/v0/me")
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_api_replies_are_not_cached(api):
    resp = api.get("/api/v0/me")
    assert resp.headers["Cache-Control"] == "no-store,no-cache"
    assert "Content-Security-Policy" in resp.headers
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"


def test_errors_are_json_whatever_the_request_content_type(client, site_token):
    # Upstream sends HTML or text/plain here; we always send JSON (DECISIONS: error bodies).
    for ctype in (None, "text/plain", "text/html"):
        headers = {"Content-Type": ctype} if ctype else {}
        resp = client.get("/api/v0/me", headers=headers)
        assert_error(resp, 401, "no Authorization header")


def test_success_body_is_indented_json_with_newline(api):
    text = api.get("/api/v0/me").get_data(as_text=True)
    assert text.endswith("}\n")
    assert text.startswith('{\n  "user"')
    json.loads(text)
