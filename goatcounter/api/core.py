"""The API's shared behaviour (CORS, content types, trailing slashes, unknown routes) and
its diagnostic endpoints, /api/v0/test and /api/v0/me."""
from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, Flask, Response, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from goatcounter import decoding
from goatcounter.accounts import tokens, users
from goatcounter.errors import BadRequest, MethodNotAllowed, PayloadTooLarge, UnsupportedMediaType
from goatcounter.responses import json_response
from goatcounter.storage import db

bp = Blueprint("api", __name__, url_prefix="/api/v0")

CORS_METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"


def is_api() -> bool:
    return request.path.startswith("/api/")


def _has_body() -> bool:
    length = request.content_length
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return chunked or (length is not None and length != 0)


def redirect_slash() -> BaseResponse | None:
    """`/api/v0/me/` → 301 to `/api/v0/me`, keeping the query string."""
    path = request.path
    if len(path) > 1 and path.endswith("/"):
        target = path.rstrip("/") or "/"
        query = request.query_string.decode("latin-1")
        return redirect(target + ("?" + query if query else ""), 301)
    return None


def check_body() -> None:
    """Before the rate limiter, as upstream: bodies that are too large (413) or not JSON
    (415) are refused on every API route."""
    if not is_api() or not _has_body():
        return
    from flask import current_app
    limit = current_app.config["MAX_BODY"]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    if request.content_length is None and request.environ.get("wsgi.input_terminated"):
        _read_unsized_body(limit)
    mime = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if mime != "application/json":
        raise UnsupportedMediaType(
            f'unable to handle Content-Type "{request.headers.get("Content-Type", "")}"')


def _read_unsized_body(limit: int) -> None:
    """Read a body sent without a Content-Length (chunked) up to one byte past the limit.
    Werkzeug's own limit on such a stream stops reading at the limit without a word,
    so a body over it would reach the views cut short instead of being refused."""
    environ = request.environ
    stream = environ["wsgi.input"]
    data = b""
    while len(data) <= limit:
        chunk = stream.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
    if len(data) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    # From here on the body is an ordinary one of known length.
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))


def preflight() -> Response | None:
    """OPTIONS on any API path: 200 with an empty body, no auth (after the limiter)."""
    if is_api() and request.method == "OPTIONS":
        return Response(b"", 200, headers={"Allow": CORS_METHODS})
    if is_api() and request.method == "HEAD":
        # Upstream has no HEAD routes on the API.
        rule = request.url_rule
        allow = sorted(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS")) \
            if rule is not None else None
        raise MethodNotAllowed(allow=allow)
    return None


def api_headers(response: Response) -> Response:
    """Headers of every API reply: no caching, a strict CSP, and CORS when asked."""
    if not is_api():
        return response
    response.headers["Cache-Control"] = "no-store,no-cache"
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'none'; frame-ancestors 'none'")
    if request.headers.get("Origin"):
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Credentials"] = "true"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
            response.headers["Allow"] = CORS_METHODS
    return response


def init_hooks(app: Flask, stage: str) -> None:
    """Register the request hooks; `before` ones run ahead of the rate limiter."""
    if stage == "before":
        app.before_request(redirect_slash)
        app.before_request(check_body)
    else:
        app.before_request(preflight)
        app.after_request(api_headers)


# /api/v0/test --------------------------------------------------------------------------

def _validate_arg(value: Any, field: str) -> dict[str, Any]:
    """A validator object as upstream's: `{"errors": null}` when nothing was sent (Go's
    nil map), so the echo shows the same."""
    if value is None:
        return {"errors": None}
    if isinstance(value, str):
        import json
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise BadRequest(f"invalid query parameters: {field}: not JSON") from exc
    obj = decoding.j_object(value, field)
    errors = obj.get("errors", obj or None)
    if errors is None:
        return {"errors": None}
    if not isinstance(errors, dict) or not all(
            isinstance(v, list) and all(isinstance(m, str) for m in v) for v in errors.values()):
        raise BadRequest(f'invalid JSON: {field}: want {{"errors": {{"field": ["message"]}}}}')
    return {"errors": errors}


_TEST_JSON = {"perm": decoding.j_int, "status": decoding.j_int, "panic": decoding.j_bool,
              "validate": _validate_arg, "context": decoding.j_bool}
_TEST_QUERY = {"perm": decoding.q_int, "status": decoding.q_int, "panic": decoding.q_bool,
               "validate": _validate_arg, "context": decoding.q_bool}


@bp.route("/test", methods=["GET", "POST"])
def test() -> Response:
    """GET|POST /api/v0/test: check a token and how errors come back.

    Parameters (query for GET, JSON for POST): `perm` permission bits to require,
    `status` reply with this status, `panic` fail with a 500, `validate` reply 400 with
    this `{"errors": ...}` object, `context` reply with the site id and database version.
    Without any of them the decoded parameters are echoed back.
    """
    args = decoding.decode_query(_TEST_QUERY) if request.method == "GET" \
        else decoding.decode_body(_TEST_JSON)
    who = tokens.authenticate(args.get("perm", 0))
    if args.get("panic"):
        raise RuntimeError("panic requested through /api/v0/test")
    validate = args.get("validate") or {"errors": None}
    if validate["errors"]:
        return json_response(validate, 400)
    status = args.get("status", 0)
    if status:
        if not 200 <= status <= 599:
            raise BadRequest("status must be between 200 and 599")
        if status == 500:
            raise RuntimeError("status 500 requested through /api/v0/test")
        # A 2xx never carries an error (the API's promise), so those echo the status.
        body = {"status": status} if status < 400 else {"error": f"status {status}"}
        return json_response(body, status)
    if args.get("context"):
        return json_response({"site_id": who.site["id"], "serve": True,
                              "db": db.version(db.get_db())})
    return json_response({"perm": args.get("perm", 0), "status": status,
                          "panic": args.get("panic", False), "validate": validate,
                          "context": args.get("context", False)})


@bp.route("/me", methods=["GET"])
def me() -> Response:
    """GET /api/v0/me: the user and token of the request (any valid token).

    Reply: `{"user": User, "token": APIToken}`.
    """
    who = tokens.authenticate()
    return json_response({"user": users.to_api(who.user), "token": tokens.token_to_api(who.token)})
