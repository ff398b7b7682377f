"""Settings: defaults, then `instance/config.py`, then GOATCOUNTER_* environment variables."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

# Every setting the server reads, with its default. The environment variable for a
# setting is GOATCOUNTER_<NAME>; its type is the type of the default.
DEFAULTS: dict[str, Any] = {
    # SQLite database file (relative paths are taken from the instance folder), or a
    # postgresql:// URL (libpq's form, socket folders included).
    "DB": "goatcounter.sqlite3",
    # Named rate limits, "name:requests/seconds" joined with commas; "name:none" turns
    # one off. Names as upstream: api, api-count, export, count; auth (API requests whose
    # token can't be verified, per client address) and login (sign-in attempts, per IP
    # and per email).
    "RATELIMIT": "api:60/120,api-count:60/120,export:10/3600,count:4/1,auth:30/120,login:20/60",
    # Where rate-limit counters live: "sqlite" (a file beside the database, shared by
    # every worker), "memory" (per process: tests only) or a redis:// URL.
    "RATELIMIT_STORAGE": "sqlite",
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: addresses or
    # networks, comma-separated. Empty: the socket address is the client.
    "TRUSTED_PROXIES": "",
    # Largest request body accepted, in bytes (413 above it).
    "MAX_BODY": 10 * 1024 * 1024,
    # Folder for export files; relative paths are taken from the instance folder.
    "EXPORT_DIR": "exports",
    # Folder for CSV exports uploaded to be imported (kept until their import is done).
    "IMPORT_DIR": "imports",
    # Largest upload on the import page, in bytes (gzipped as sent).
    "IMPORT_MAX_BYTES": 256 * 1024 * 1024,
    # Seconds a worker's hold on an import lasts without news; after a worker's restart
    # another takes the import over after this long.
    "IMPORT_LEASE_SECONDS": 60,
    # Hours an export file is kept before it is deleted.
    "EXPORT_RETENTION_HOURS": 24,
    # Days raw hits (the rows exports read) are kept; 0 keeps them forever.
    "HIT_RETENTION_DAYS": 0,
    # Days bot hits are kept (upstream keeps them 30 days).
    "BOT_RETENTION_DAYS": 30,
    # Secret for signing; generated and kept in the instance folder when unset.
    "SECRET_KEY": "",
    # Hours of inactivity after which a visitor session ends.
    "SESSION_HOURS": 8,
    # Count pending /count pageviews from a background thread of each worker when
    # traffic stops (else they wait for the next request or stats read).
    "COUNT_IN_BACKGROUND": True,
    # The dashboard answers filters that no aggregate can (two of browser, system, size,
    # location, language, campaign and referrer at once; visitors under a filter) from
    # the raw hits, when the range holds at most this many pageviews.
    "DASHBOARD_RAW_HITS": 100_000,
    # Keep the live log (`goatcounter tail`, /live): what was decided about each
    # pageview sent to /count or /api/v0/count, and why.
    "LIVE_LOG": True,
}


def _coerce(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError as exc:
            raise SystemExit(f"GOATCOUNTER_{name}: not a whole number: {raw!r}") from exc
    return raw


def from_environ(environ: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, Any]:
    """The settings given as GOATCOUNTER_* environment variables, typed like their defaults."""
    out: dict[str, Any] = {}
    for name, default in DEFAULTS.items():
        raw = environ.get(f"GOATCOUNTER_{name}")
        if raw is not None:
            out[name] = _coerce(name, raw, default)
    return out


def instance_path(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The instance folder: GOATCOUNTER_INSTANCE, or `instance/` in the working directory."""
    return os.path.abspath(environ.get("GOATCOUNTER_INSTANCE") or "instance")


def secret_key(instance: str) -> str:
    """The secret kept in the instance folder, created on first use."""
    path = Path(instance) / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(key + "\n")
    tmp.chmod(0o600)
    # Several workers may start at once: the first rename wins, and everybody reads it back.
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def resolve(instance: str, value: str) -> str:
    """A path setting made absolute against the instance folder."""
    return value if os.path.isabs(value) else os.path.join(instance, value)
