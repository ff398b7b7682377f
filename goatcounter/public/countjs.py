"""The tracking script, GET /count.js, which pages load beside the /count endpoint."""
from __future__ import annotations

import functools
import hashlib
import os
from datetime import UTC, datetime

from flask import Blueprint, Response, request
from werkzeug.wrappers import Response as BaseResponse

bp = Blueprint("countjs", __name__)

CONTENT_TYPE = "application/javascript; charset=utf-8"
# A day: pages load the script on every view, and a changed script may reach
# visitors a day late without harm (the requests it sends don't change).
MAX_AGE = 24 * 60 * 60


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int) -> tuple[bytes, str]:
    """The script and its ETag, read again only when the file changes. The ETag
    comes from the content, so every worker and every machine agrees on it."""
    with open(path, "rb") as f:
        data = f.read()
    return data, hashlib.sha256(data).hexdigest()[:32]


@bp.route("/count.js", methods=["GET"])
def count_js() -> BaseResponse:
    """GET /count.js: the script that sends pageviews and click events to /count.

    Reply: the script as `application/javascript; charset=utf-8`, cacheable for a day,
    with an ETag and Last-Modified for conditional requests (304).
    """
    path = os.path.join(os.path.dirname(__file__), "static", "count.js")
    stat = os.stat(path)
    data, etag = _load(path, stat.st_mtime_ns, stat.st_size)
    response = Response(data, content_type=CONTENT_TYPE)
    response.set_etag(etag)
    response.last_modified = datetime.fromtimestamp(int(stat.st_mtime), UTC)
    response.cache_control.public = True
    response.cache_control.max_age = MAX_AGE
    # Any site may embed it, including pages that require CORS or CORP for every
    # subresource (crossorigin attribute, Cross-Origin-Embedder-Policy).
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response.make_conditional(request)
