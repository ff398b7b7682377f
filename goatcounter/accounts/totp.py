"""Two-factor sign-in with time-based one-time codes (RFC 6238) as upstream: six digits,
SHA-1, a 30-second step and one step of clock drift either way.

A code is accepted once: the step it was made for is recorded, and a code of that step
or an earlier one is refused after it.
"""
from __future__ import annotations

import sqlite3
from typing import Any

import pyotp

from goatcounter import clock

ISSUER = "GoatCounter"
STEP = 30
DIGITS = 6
WRONG_CODE = "The code did not match; perhaps it expired? Try the next one."


def new_secret() -> str:
    """A random secret of 160 bits, in base32 (what authenticator apps are given)."""
    return pyotp.random_base32(32)


def uri(secret: str, email: str) -> str:
    """The otpauth:// address that the QR code holds."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(
        name=email, issuer_name=ISSUER)


def matching_step(secret: str, code: str, last_step: int, now: float | None = None) -> int | None:
    """The time step `code` was made for, when it is right for now (give or take a step)
    and newer than `last_step`; else None."""
    code = "".join(code.split())
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = clock.now() if now is None else now
    otp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
    current = int(now) // STEP
    for step in (current - 1, current, current + 1):
        if step > last_step and otp.verify(code, for_time=step * STEP):
            return step
    return None


def pending_secret(conn: sqlite3.Connection, user: dict[str, Any]) -> str:
    """The user's secret for turning two-factor sign-in on, made now if there is none
    (inside the caller's write transaction)."""
    row = conn.execute("SELECT totp_secret FROM users WHERE id = :id",
                       {"id": user["id"]}).fetchone()
    if row is not None and row["totp_secret"]:
        return str(row["totp_secret"])
    secret = new_secret()
    conn.execute("UPDATE users SET totp_secret = :s WHERE id = :id",
                 {"s": secret, "id": user["id"]})
    return secret


def secret_of(conn: sqlite3.Connection, user_id: int) -> tuple[str | None, int]:
    """The user's secret (or None) and the step of the last code accepted."""
    row = conn.execute("SELECT totp_secret, totp_step FROM users WHERE id = :id",
                       {"id": user_id}).fetchone()
    if row is None:
        return None, 0
    return row["totp_secret"], int(row["totp_step"])


def accept(conn: sqlite3.Connection, user_id: int, code: str) -> bool:
    """Check a code against the user's secret and, when right, record its step so it
    can't be used again (inside the caller's write transaction)."""
    secret, last = secret_of(conn, user_id)
    if not secret:
        return False
    step = matching_step(secret, code, last)
    if step is None:
        return False
    # Only moves forward: a second request with the same code at the same moment loses.
    return conn.execute("UPDATE users SET totp_step = :step WHERE id = :id AND totp_step < :step",
                        {"step": step, "id": user_id}).rowcount > 0


def enable(conn: sqlite3.Connection, user_id: int, code: str) -> bool:
    """Turn two-factor sign-in on after a right code from the pending secret."""
    if not accept(conn, user_id, code):
        return False
    conn.execute("UPDATE users SET totp_enabled = 1, updated_at = :now WHERE id = :id",
                 {"now": clock.now_text(), "id": user_id})
    return True


def disable(conn: sqlite3.Connection, user_id: int) -> None:
    """Turn it off and forget the secret: turning it on again makes a new one."""
    conn.execute("UPDATE users SET totp_enabled = 0, totp_secret = NULL, updated_at = :now"
                 " WHERE id = :id", {"now": clock.now_text(), "id": user_id})


def code_now(secret: str, at: float | None = None) -> str:
    """The code an authenticator app shows now (for tests and the command line)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).at(
        int(clock.now() if at is None else at))
