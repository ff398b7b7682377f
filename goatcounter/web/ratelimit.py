"""Rate limits: Flask-Limiter with named buckets chosen by path, keyed per API token
(its id, once the token is found), and counters that every gunicorn worker shares.
Requests whose credential can't be verified count per client address in a bucket of
their own (`auth`), so that made-up tokens are limited too. Sign-in attempts are limited
per IP and, with the same numbers, per email address (`login`).

The default storage is a small SQLite file beside the database, so a limit holds for
the whole server without running another service; `redis://` works too.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import sqlite3
import threading
from typing import Any, NamedTuple

from flask import Flask, Response, current_app, g, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from limits import RateLimitItem
from limits import parse as parse_limit
from limits.storage import Storage

from goatcounter import clock, server_config
from goatcounter.accounts import tokens
from goatcounter.counting import livelog
from goatcounter.errors import APIError
from goatcounter.responses import json_response
from goatcounter.web import counters, pages

# The buckets, as upstream names them (and `auth`, ours), and what they cover.
NAMES = ("api", "api-count", "export", "count", "auth", "login")
LOGIN_PATHS = frozenset({"/user/requestlogin", "/user/totplogin", "/user/change-password",
                         "/user/disable-totp"})
# What the headers say when a limit is turned off: clients that wait when few requests
# remain (goatpie sleeps Reset seconds below 2) go on at once.
UNLIMITED = 2**31 - 1


def parse(text: str) -> dict[str, tuple[int, int] | None]:
    """`name:requests/seconds,...` (or `name:none`) as {name: (requests, seconds)}."""
    out: dict[str, tuple[int, int] | None] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition(":")
        name, value = name.strip(), value.strip().lower()
        if not sep or name not in NAMES:
            raise ValueError(f"rate limit {part!r}: want name:requests/seconds with a name "
                             f"of {', '.join(NAMES)}")
        if value == "none":
            out[name] = None
            continue
        amount, _, seconds = value.partition("/")
        try:
            pair = (int(amount), int(seconds))
        except ValueError as exc:
            raise ValueError(f"rate limit {part!r}: want requests/seconds, e.g. 60/120") from exc
        if pair[0] < 1 or pair[1] < 1:
            raise ValueError(f"rate limit {part!r}: both numbers must be 1 or more")
        out[name] = pair
    return out


def bucket(path: str) -> str | None:
    """The bucket of an API request (or a sign-in), chosen by path alone (before routing),
    as upstream does. The public /count is limited by the pixel layer (check_count),
    before Flask."""
    if path == "/api/v0/count":
        return "api-count"
    if path == "/api/v0/export":
        return "export"
    if path.startswith("/api/"):
        return "api"
    if path in LOGIN_PATHS:
        return "login"
    return None


def client_net(ip: str) -> str:
    """The address a client is counted by: its IP, or for IPv6 its /64 (one client
    usually has a whole /64, and could otherwise use a new address for each request)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if addr.version == 6 and addr.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def identify() -> None:
    """Choose the bucket and key of an API request, before any check refuses it (so
    that its reply still has the bucket's headers; nothing is spent here).

    A valid token counts against its own id, whatever form the header has (Bearer,
    Basic with any user name). A credential that can't be verified counts per client
    address in the `auth` bucket (if that limit is on; else in the path's bucket). No
    credential: per client address in the path's bucket."""
    name = bucket(request.path)
    g.ratelimit_bucket = name
    if name is None:
        return
    net = client_net(request.remote_addr or "")
    g.ratelimit_key = "ip:" + net
    if name == "login" or not request.headers.get("Authorization", "").strip():
        # Whatever headers come along, a guesser at passwords is counted by address.
        return
    try:
        token = tokens.lookup()
    except APIError:
        if current_app.extensions["goatcounter_limits"].get("auth") is not None:
            g.ratelimit_bucket, g.ratelimit_key = "auth", "auth:" + net
        return
    g.ratelimit_key = f"token:{token['id']}"


def key() -> str:
    """Whom a request is counted against (see `identify`)."""
    return g.get("ratelimit_key") or "ip:" + client_net(request.remote_addr or "")


class SQLiteStorage(Storage):
    """Fixed-window counters in a SQLite file: one atomic upsert per request, so that
    every process of the server counts against the same numbers."""

    STORAGE_SCHEME = ["sqlite"]  # noqa: RUF012 (read by the limits registry)

    # Expired counters are deleted every this many increments (per process), so the
    # table holds about the clients of the longest window, not every client ever seen.
    PURGE_EVERY = 1000

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = uri.removeprefix("sqlite://")
        self._local = threading.local()
        self._increments = 0
        conn = self._conn()
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ratelimits (key TEXT PRIMARY KEY, count INTEGER NOT NULL,"
            " expires REAL NOT NULL) WITHOUT ROWID")
        conn.execute("CREATE INDEX IF NOT EXISTS ratelimits_expires ON ratelimits (expires)")

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=15,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 15000")
            conn.execute("PRAGMA journal_mode = WAL")
            # Counters are not worth an fsync: after a power cut they start over.
            conn.execute("PRAGMA synchronous = OFF")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = clock.now()
        count, expires = self._conn().execute(
            "INSERT INTO ratelimits (key, count, expires) VALUES (:key, :amount, :exp)"
            " ON CONFLICT (key) DO UPDATE SET"
            "  count = CASE WHEN expires <= :now THEN :amount ELSE count + :amount END,"
            "  expires = CASE WHEN expires <= :now THEN :exp ELSE expires END"
            " RETURNING count, expires",
            {"key": key, "amount": amount, "exp": now + expiry, "now": now}).fetchone()
        # The headers of this same request read these back; no need to ask again.
        self._local.last = (key, count, expires)
        self._increments += 1
        if self._increments % self.PURGE_EVERY == 0:
            self.purge()
        return int(count)

    def _row(self, key: str) -> tuple[int, float]:
        last = getattr(self._local, "last", None)
        if last and last[0] == key:
            return last[1], last[2]
        row = self._conn().execute("SELECT count, expires FROM ratelimits WHERE key = :key",
                                   {"key": key}).fetchone()
        if row is None or row[1] <= clock.now():
            return 0, clock.now()
        return int(row[0]), float(row[1])

    def get(self, key: str) -> int:
        return self._row(key)[0]

    def get_expiry(self, key: str) -> float:
        return self._row(key)[1]

    def check(self) -> bool:
        try:
            self._conn().execute("SELECT 1")
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        return self._conn().execute("DELETE FROM ratelimits").rowcount

    def clear(self, key: str) -> None:
        self._conn().execute("DELETE FROM ratelimits WHERE key = :key", {"key": key})
        self._local.last = None

    def forget_request(self) -> None:
        """Drop the value cached for the headers of the previous request."""
        self._local.last = None

    def purge(self) -> int:
        """Delete expired counters (live ones stay: deleting them would lift limits)."""
        return self._conn().execute("DELETE FROM ratelimits WHERE expires <= :now",
                                    {"now": clock.now()}).rowcount


def go_duration(seconds: float) -> str:
    """A duration the way Go prints one (`734.2ms`, `59m58.1s`), as upstream's 429 says."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:.6f}".rstrip("0").rstrip(".") + "ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.6f}".rstrip("0").rstrip(".") + "s"
    if minutes or hours:
        text = f"{int(minutes)}m" + text
    if hours:
        text = f"{int(hours)}h" + text
    return text


def _seconds_left(reset_time: float) -> int:
    return max(0, round(reset_time - clock.now()))


def get_limiter() -> Limiter:
    """The limiter of the current app."""
    return current_app.extensions["goatcounter_limiter"]


def _set_headers(response: Response) -> Response:
    """The three X-Rate-Limit headers on every API reply (and Retry-After on a 429):
    of the limit this request spent, of its bucket's window when a check refused it
    before the limiter (413, 415, a redirect), or 'no limit' when the limit is off."""
    name = g.get("ratelimit_bucket")
    if name is None:
        return response
    current = get_limiter().current_limit
    if current is not None:
        reset_time, remaining = current.window
        amount = current.limit.amount
        remaining = 0 if current.breached else remaining
    else:
        pair = current_app.extensions["goatcounter_limits"].get(name)
        if pair is None:
            amount, remaining, reset_time = UNLIMITED, UNLIMITED, clock.now()
        else:
            item = _item(*pair)
            reset_time, remaining = get_limiter().limiter.get_window_stats(
                item, "gc", key(), name)
            amount = item.amount
    response.headers["X-Rate-Limit-Limit"] = str(amount)
    response.headers["X-Rate-Limit-Remaining"] = str(remaining)
    response.headers["X-Rate-Limit-Reset"] = str(_seconds_left(reset_time))
    if response.status_code == 429:
        response.headers["Retry-After"] = response.headers["X-Rate-Limit-Reset"]
    return response


def _too_many(exc: RateLimitExceeded) -> Response:
    current = get_limiter().current_limit
    wait = current.window[0] - clock.now() if current else 0.0
    message = f"rate limited exceeded; try again in {go_duration(wait)}"
    _note_refused(message)
    if pages.is_page():
        return pages.error_page(429, message)
    return json_response({"error": message}, 429)


def _note_refused(message: str) -> None:
    """A live log entry for a batch of the site's own token that the limit refused (its
    hits are not read: one entry for the request)."""
    if request.path != "/api/v0/count" or not str(g.get("ratelimit_key")).startswith("token:"):
        return
    log = livelog.of()
    if not log.on:
        return
    try:
        site = tokens.current_site()
    except APIError:
        return
    log.note(livelog.raw_row(site["id"], clock.now(), "api", "ratelimited",
                             message + " (the batch was not read)"))


def _new_request() -> None:
    storage = get_limiter().storage
    if isinstance(storage, SQLiteStorage):
        storage.forget_request()


class Verdict(NamedTuple):
    """The outcome of a limit checked outside Flask-Limiter's hook."""

    allowed: bool
    headers: dict[str, str]
    message: str  # why it was refused; "" when allowed


LOOPBACK = ("127.0.0.1", "::1")


@functools.lru_cache(maxsize=16)
def _item(amount: int, seconds: int) -> RateLimitItem:
    return parse_limit(f"{amount} per {seconds} seconds")


def check_count(app: Flask, ip: str, user_agent: str) -> Verdict | None:
    """The `count` bucket for the pixel endpoint, which is served before Flask: the same
    limiter, storage and headers, keyed by IP and User-Agent. None when no limit applies
    (turned off, or the machine itself, as upstream)."""
    if ip in LOOPBACK:
        return None
    shared = app.extensions.get("goatcounter_counters")
    if shared is not None:
        pair = app.extensions["goatcounter_limits"].get("count")
        if pair is None:
            return None
        now = clock.now()
        count, ends = shared.incr(f"{ip}\x00{user_agent}", pair[1], now)
        return _verdict(pair[0], max(0, pair[0] - count), count <= pair[0], ends, now)
    # The user agent is hashed: it can be kilobytes long, and the store keeps the key.
    agent = hashlib.sha256(user_agent.encode("utf-8", "replace")).hexdigest()[:16]
    return _check(app, "count", f"ip:{ip}|{agent}")


def check_login_email(email: str) -> Verdict | None:
    """The `login` bucket kept per email address (the IP's is kept by the limiter's own
    hook): guesses at one account from many addresses run into it too. None when the
    limit is turned off."""
    digest = hashlib.sha256(email.strip().lower().encode("utf-8", "replace")).hexdigest()
    return _check(current_app, "login", "email:" + digest[:32])


def _check(app: Flask, name: str, key: str) -> Verdict | None:
    """Spend one request of bucket `name` for `key`, outside Flask-Limiter's hook."""
    pair = app.extensions["goatcounter_limits"].get(name)
    if pair is None:
        return None
    strategy = app.extensions["goatcounter_limiter"].limiter
    item = _item(*pair)
    ident = ("gc", key, name)
    allowed = strategy.hit(item, *ident)
    reset_time, remaining = strategy.get_window_stats(item, *ident)
    return _verdict(item.amount, remaining, allowed, reset_time, clock.now())


def _verdict(amount: int, remaining: int, allowed: bool, reset_time: float,
             now: float) -> Verdict:
    seconds = str(max(0, round(reset_time - now)))
    headers = {"X-Rate-Limit-Limit": str(amount),
               "X-Rate-Limit-Remaining": str(remaining if allowed else 0),
               "X-Rate-Limit-Reset": seconds}
    if allowed:
        # The pixel asks on every pageview: the refusal's text only when it is one.
        return Verdict(allowed, headers, "")
    headers["Retry-After"] = seconds
    wait = go_duration(reset_time - now)
    return Verdict(allowed, headers, f"rate limited exceeded; try again in {wait}")


def _unlimited() -> bool:
    """Requests no limit applies to (not the API, or a limit turned off) skip the
    limiter's work: a request filter, which it asks before looking at any limit."""
    name = g.get("ratelimit_bucket")
    return name is None or current_app.extensions["goatcounter_limits"].get(name) is None


def _make_limit(name: str, amount: int, seconds: int) -> ApplicationLimit:
    return ApplicationLimit(limit_provider=f"{amount} per {seconds} seconds", scope=name,
                            exempt_when=lambda: g.get("ratelimit_bucket") != name)


def storage_uri(app: Flask) -> str:
    """The limits storage URI for the configured RATELIMIT_STORAGE."""
    setting = app.config["RATELIMIT_STORAGE"]
    if setting == "sqlite":
        base, _ = os.path.splitext(app.config["DB_PATH"])
        return "sqlite://" + base + "-ratelimit.sqlite3"
    if setting == "memory":
        return "memory://"
    return setting


def init_app(app: Flask, stage: str) -> None:
    """Stage `identify`: choose each request's bucket and key, ahead of every other
    check. Stage `limit`: create the app's limiter with the buckets of the RATELIMIT
    setting, which checks them after the body checks.

    One limiter per app (not one per module), because its storage and limits come
    from the app's settings.
    """
    if stage == "identify":
        app.before_request(_new_request)
        app.before_request(identify)
        return
    try:
        limits = parse(server_config.DEFAULTS["RATELIMIT"])
        limits.update(parse(app.config["RATELIMIT"]))
    except ValueError as exc:
        raise SystemExit(f"GOATCOUNTER_RATELIMIT: {exc}") from exc
    app.extensions["goatcounter_limits"] = limits
    limiter = Limiter(
        key_func=key, headers_enabled=False, strategy="fixed-window", key_prefix="gc",
        # Unrouted requests (404s) count too: the bucket comes from the path alone.
        request_identifier=lambda: request.endpoint or "unrouted",
        storage_uri=storage_uri(app),
        application_limits=[_make_limit(name, *pair)
                            for name, pair in limits.items() if pair is not None])
    limiter.request_filter(_unlimited)
    limiter.init_app(app)
    app.extensions["goatcounter_limiter"] = limiter
    if app.config["RATELIMIT_STORAGE"] == "sqlite":
        # The pixel's counters, checked on every pageview, live in memory that every
        # worker maps (counters.py); the API's few requests per client stay in SQLite.
        base, _ = os.path.splitext(app.config["DB_PATH"])
        app.extensions["goatcounter_counters"] = counters.SharedCounters(
            base + "-ratelimit.counters")
    app.after_request(_set_headers)
    app.register_error_handler(RateLimitExceeded, _too_many)
