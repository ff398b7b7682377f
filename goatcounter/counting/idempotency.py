"""Retry safety for POST /api/v0/count: a request that repeats an Idempotency-Key already
accepted for the same site (within 24 hours) gets the first reply again and records
nothing new. The reply is saved in the transaction that stores the hits, so a retry can
never see the hits without the reply or the other way round."""
from __future__ import annotations

import json
import sqlite3
from typing import Any

from flask import Response

from goatcounter import clock
from goatcounter.errors import BadRequest

HEADER = "Idempotency-Key"
KEEP_SECONDS = 24 * 3600
MAX_LENGTH = 255


def key_of(value: str | None) -> str | None:
    """The key sent with a request, checked; None when there is none."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > MAX_LENGTH:
        raise BadRequest(f"{HEADER} is longer than {MAX_LENGTH} characters")
    return value


def saved(conn: sqlite3.Connection, site_id: int, key: str) -> Response | None:
    """The reply first given for this key, if it is recent enough."""
    row = conn.execute(
        "SELECT status, headers, body FROM idempotency_keys WHERE site_id = :s AND key = :k"
        " AND created_at >= :since",
        {"s": site_id, "k": key, "since": int(clock.now()) - KEEP_SECONDS}).fetchone()
    if row is None:
        return None
    headers = json.loads(row["headers"])
    headers["Idempotent-Replayed"] = "true"
    return Response(row["body"], status=row["status"], headers=headers)


def save(conn: sqlite3.Connection, site_id: int, key: str, response: Response) -> None:
    """Remember the reply for this key (inside the transaction that stores the hits)."""
    headers: dict[str, Any] = {k: v for k, v in response.headers.items()
                               if k in ("Content-Type", "X-Goatcounter-Filter")}
    conn.execute(
        "INSERT INTO idempotency_keys (site_id, key, created_at, status, headers, body)"
        " VALUES (:s, :k, :at, :status, :headers, :body)"
        " ON CONFLICT (site_id, key) DO UPDATE SET created_at = excluded.created_at,"
        " status = excluded.status, headers = excluded.headers, body = excluded.body",
        {"s": site_id, "k": key, "at": int(clock.now()), "status": response.status_code,
         "headers": json.dumps(headers), "body": response.get_data(as_text=True)})


def purge(conn: sqlite3.Connection) -> int:
    """Forget keys older than 24 hours."""
    return conn.execute("DELETE FROM idempotency_keys WHERE created_at < :since",
                        {"since": int(clock.now()) - KEEP_SECONDS}).rowcount
