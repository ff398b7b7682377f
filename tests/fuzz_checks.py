"""Checks that schemathesis runs on every reply of the fuzzing in test_fuzz.py, loaded
through SCHEMATHESIS_HOOKS (beside its own not_a_server_error)."""
from __future__ import annotations

import json
from typing import Any

import schemathesis

# Requests that gunicorn refuses before they reach the app, with its own HTML page: a
# request line over limit_request_line (8190 bytes, the most gunicorn allows, and about
# what nginx allows in front of it), or too many or too large headers.
SERVER_REFUSALS = {414: b"Request Line is too large", 431: b"Error parsing headers"}


@schemathesis.check
def error_replies_are_json(ctx: Any, response: Any, case: Any) -> None:
    """An error reply is JSON with exactly one of `error` (a string) or `errors` (an
    object), as the API promises for every error."""
    if response.status_code < 400:
        return
    ctype = (response.headers.get("content-type") or [""])[0]
    if response.status_code in SERVER_REFUSALS and SERVER_REFUSALS[response.status_code] in \
            response.content:
        return
    if not ctype.startswith("application/json"):
        raise AssertionError(f"{response.status_code} reply is {ctype!r}, not JSON")
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"{response.status_code} reply is not valid JSON: {exc}") from exc
    if not isinstance(body, dict) or len(body) != 1:
        raise AssertionError(f"error reply must be one key, error or errors: {body!r}")
    if "error" in body:
        if not isinstance(body["error"], str) or not body["error"]:
            raise AssertionError(f"`error` must be a non-empty string: {body!r}")
    elif "errors" in body:
        if not isinstance(body["errors"], dict) or not body["errors"]:
            raise AssertionError(f"`errors` must be a non-empty object: {body!r}")
    else:
        raise AssertionError(f"error reply without error or errors: {body!r}")
