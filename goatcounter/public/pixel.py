"""GET|POST /count: the pixel that count.js (or an <img>) requests for each pageview.

It is the busiest endpoint by far, so it is answered by a small WSGI layer in front of
Flask instead of a view: a Flask request, with every hook the API needs, costs more
than the pageview itself. What it decides is in `decide`, a plain function; the layer
only reads the request and writes the reply. Every reply is the same 1x1 GIF (errors
before a site is known are JSON, as on the API).
"""
from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, overload

from flask import Flask

from goatcounter import clock
from goatcounter.accounts import sites
from goatcounter.counting import livelog, pending, sessions, spool
from goatcounter.counting.pipeline import bots, languages, sizes, urls
from goatcounter.counting.pipeline.process import Hit, Incoming, classify, process
from goatcounter.errors import APIError
from goatcounter.storage import db
from goatcounter.web import error_replies, ratelimit

GIF = bytes.fromhex("47494638396101000100800100000000ffffff21f90401"
                    "0a0001002c00000000010001000002024c01003b")
GIF_HEADERS = {
    "Content-Type": "image/gif",
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Connection": "close",
    "Cache-Control": "no-store,no-cache",
    "Strict-Transport-Security": "max-age=7776000",
    "X-Frame-Options": "deny",
    "X-Content-Type-Options": "nosniff",
}
_STATUS = {200: "200 OK", 202: "202 Accepted", 400: "400 Bad Request",
           405: "405 Method Not Allowed", 429: "429 Too Many Requests",
           500: "500 Internal Server Error", 503: "503 Service Unavailable"}
log = logging.getLogger(__name__)
# Seconds a client is asked to wait when a pageview could not be written (a full disk).
STORE_RETRY_AFTER = "60"


class Reply(NamedTuple):
    """What to answer: a status, an explanation (X-Goatcounter) and the hit to keep; for
    a pageview not kept, the live log's decision and reason, and what the pipeline made
    of it (if it got that far)."""

    status: int
    explain: str | None = None
    hit: Hit | None = None
    refused: tuple[str, str] | None = None
    seen: Hit | None = None


class _Decode(ValueError):
    pass


class RequestHeaders:
    """The request headers the pixel reads, straight from the WSGI environ: werkzeug's
    EnvironHeaders does the same at a few times the cost of each look-up, and a
    pageview makes seven."""

    __slots__ = ("environ",)

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self.environ = environ

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, default: str, /) -> str: ...

    def get(self, name: str, default: str | None = None, /) -> str | None:
        key = _ENVIRON_KEYS.get(name)
        if key is None:
            key = "HTTP_" + name.upper().replace("-", "_")
            if len(_ENVIRON_KEYS) < 64:  # the names are the code's own; bounded all the same
                _ENVIRON_KEYS[name] = key
        return self.environ.get(key, default)


_ENVIRON_KEYS: dict[str, str] = {}


def _bool(value: str, name: str) -> bool:
    low = value.strip().lower()
    if low in ("true", "1", "on", "t", "yes"):
        return True
    if low in ("false", "0", "off", "f", "no", ""):
        return False
    raise _Decode(f"{name}: invalid boolean {sizes.shown(value)}")


def _int(value: str, name: str) -> int:
    try:
        num = int(value.strip() or "0")
    except ValueError as exc:
        raise _Decode(f"{name}: not a number: {sizes.shown(value)}") from exc
    # Go's int is 64 bits: anything larger is a decoding error upstream too.
    if not -(2**63) <= num < 2**63:
        raise _Decode(f"{name}: value out of range: {sizes.shown(value)}")
    return num


def parse_args(query: bytes) -> dict[str, str]:
    """The parameters of a query string; the first value of a name wins (as Go's Get).
    Invalid UTF-8 is kept visible, so that validation can refuse it."""
    out: dict[str, str] = {}
    raw = query.decode("utf-8", "surrogateescape")
    for k, v in urls.parse_query(raw, errors="surrogateescape"):
        out.setdefault(k, v)
    return out


def decide(args: Mapping[str, str], headers: bots.HeaderLookup, ip: str,
           site: dict[str, Any], uri_length: int, session_key: Callable[[str], str],
           now: float) -> Reply:
    """Upstream's checks, in upstream's order, for one pageview of `site`."""
    if bots.is_prefetch(headers):
        return Reply(200, refused=("ignored", "a prefetch: the visitor may never see the page"))
    settings = site["settings"]
    if ip in sites.ignored_ips(settings):
        return _refuse(202, "ignored", f'ignored because "{ip}" is in the IP ignore list')
    try:
        event = _bool(args.get("e", ""), "e")
        no_session = _bool(args.get("ns", ""), "ns")
        bot = _int(args.get("b", ""), "b")
        width = sizes.width(args.get("s", ""))
    except (_Decode, sizes.SizeError) as exc:
        return _refuse(400, "invalid", f"error decoding parameters: {exc}")
    if 0 < bot < 150:
        return _refuse(400, "invalid", f"wrong value: b={bot}")
    path = args.get("p", "")
    if len(path.encode("utf-8", "surrogateescape")) > 2048:
        return _refuse(400, "invalid", "ignored because path is longer than 2048 bytes"
                                       f" ({uri_length} bytes)")
    ua = headers.get("User-Agent", "")
    hit = Incoming(path=path, title=args.get("t", ""), event=event, ref=args.get("r", ""),
                   query=args.get("q", ""), width=width, bot=bot, user_agent=ua, ip=ip,
                   language=languages.from_accept_language(headers.get("Accept-Language", "")))
    # Bot, browser and system are found when the pageview is counted (classify): the
    # reply is the same either way, and they cost more than the rest of the pageview.
    result = process(hit, settings, now, None if no_session else session_key(f"u:{ua}-{ip}"),
                     classify_later=True)
    if isinstance(result, str):
        return _refuse(400, "invalid", "not valid: " + result.replace("\n", " ").strip())
    if result.dropped:
        # Never counted, so classified here: the live log's entry says what counting
        # would have (a bot before referrer spam).
        classify(result, settings)
        return Reply(200, refused=livelog.judge(result, "count", 0), seen=result)
    return Reply(200, None, result)


def _refuse(status: int, decision: str, explain: str) -> Reply:
    return Reply(status, explain, refused=(decision, explain))


def live_row(site_id: int, args: Mapping[str, str], reply: Reply, now: float) -> livelog.Row:
    """The live log's entry for a pageview that was not kept."""
    decision, reason = reply.refused or ("invalid", reply.explain or "")
    if reply.seen is not None:
        return livelog.hit_row(site_id, reply.seen, "count", decision, reason,
                               livelog.worker_name(), at=now)
    return livelog.raw_row(site_id, now, "count", decision, reason, path=args.get("p", ""),
                           title=args.get("t", ""), event=args.get("e", "") in ("true", "1"),
                           ref=args.get("r", ""))


def _gif(status: int, explain: str | None, extra: dict[str, str]) -> tuple[str, list, bytes]:
    headers = list(GIF_HEADERS.items()) + list(extra.items())
    if explain:
        headers.append(("X-Goatcounter", explain.encode("utf-8", "replace").decode("latin-1")))
    return _STATUS[status], headers, GIF


def _json(status: int, body: dict[str, Any], extra: dict[str, str]) -> tuple[str, list, bytes]:
    data = (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode()
    headers = [("Content-Type", "application/json; charset=utf-8"), *extra.items()]
    return _STATUS.get(status, f"{status} Error"), headers, data


class _ThenCall(list[bytes]):
    """A reply body whose `close` (which the server calls once the reply is sent) runs
    `then`: werkzeug's ClosingIterator does the same with more layers."""

    __slots__ = ("then",)

    def __init__(self, body: bytes, then: Callable[[], None]) -> None:
        super().__init__((body,))
        self.then = then

    def close(self) -> None:
        self.then()


class PixelEndpoint:
    """WSGI layer: /count here, everything else on to Flask."""

    def __init__(self, app: Flask, wrapped: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.wrapped = wrapped
        self.secret = app.config["SECRET_KEY"]
        self.live = livelog.of(app)

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/count":
            return self.wrapped(environ, start_response)
        keep: list[tuple[int, Hit]] = []
        try:
            if environ.get("REQUEST_METHOD") in ("GET", "POST"):
                status, headers, body = self._handle(environ, keep)
            else:
                status, headers, body = _json(405, {"error": "method not allowed"},
                                              {"Allow": "GET, POST"})
        except Exception as exc:  # the reply must still be JSON, and the cause logged
            status, headers, body = self._crash(environ, exc)
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        drainer = self.app.extensions["goatcounter_pending"]
        if keep:
            return _ThenCall(body, drainer.soon)
        if self.live.waiting():
            return _ThenCall(body, drainer.noted)
        return [body]

    def _handle(self, environ: dict[str, Any],
                keep: list[tuple[int, Hit]]) -> tuple[str, list, bytes]:
        pool = self.app.extensions["goatcounter_db"]
        conn = pool.get()
        try:
            headers = RequestHeaders(environ)
            host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
            try:
                site = self.app.extensions["goatcounter_hosts"].get(conn, host)
            except APIError as exc:
                return _json(exc.status, exc.body(), {})
            ip = environ.get("REMOTE_ADDR", "")
            now = clock.now()
            query = environ.get("QUERY_STRING", "").encode("latin-1")
            limited = ratelimit.check_count(self.app, ip, headers.get("User-Agent", ""))
            extra = limited.headers if limited else {}
            if limited and not limited.allowed:
                if self.live.on:
                    self.live.note(live_row(site["id"], parse_args(query), Reply(
                        429, refused=("ratelimited", limited.message)), now))
                return _json(429, {"error": limited.message}, extra)
            uri = len(environ.get("PATH_INFO", "").encode("latin-1")) + 1 + len(query)
            args = parse_args(query)
            reply = decide(args, headers, ip, site, uri,
                           lambda key: sessions.client_key(self.secret, key), now)
            if reply.hit is not None:
                pending.add(site["id"], reply.hit, self.app.extensions["goatcounter_spool"])
                keep.append((site["id"], reply.hit))
            elif self.live.on:
                self.live.note(live_row(site["id"], args, reply, now))
            return _gif(reply.status, reply.explain, extra)
        finally:
            pool.put(conn)

    def _crash(self, environ: dict[str, Any], exc: Exception) -> tuple[str, list, bytes]:
        if isinstance(exc, spool.WriteError):
            # Not kept, so not acknowledged: the client is told to come back.
            log.error("pageview on %s /count not stored: %s", environ.get("REQUEST_METHOD"),
                      exc.strerror)
            return _json(503, {"error": f"{exc.strerror}; try again later"},
                         {"Retry-After": STORE_RETRY_AFTER})
        if db.is_busy(exc):
            log.warning("database busy on %s /count: %s", environ.get("REQUEST_METHOD"), exc)
            body, headers = error_replies.busy_body()
            return _json(503, body, headers)
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        code = error_replies.error_code(f"{type(exc).__name__}: {exc}")
        log.error("unexpected error %s on %s /count\n%s", code, environ.get("REQUEST_METHOD"),
                  detail)
        return _json(500, {"error": f"unexpected error code ‘{code}’; this has been "
                                    "reported for investigation"}, {})


def init_app(app: Flask) -> None:
    """Put the pixel in front of the app."""
    app.extensions.setdefault("goatcounter_hosts", sites.HostCache())
    app.wsgi_app = PixelEndpoint(app, app.wsgi_app)  # type: ignore[method-assign]
