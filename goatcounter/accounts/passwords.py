"""Passwords: hashed with scrypt (memory-hard), checked in constant time.

Hashes are werkzeug's `method$salt$hash` strings, so those stored by earlier versions
(werkzeug's defaults: scrypt, or pbkdf2 before that) keep working.
"""
from __future__ import annotations

import secrets

from werkzeug.security import check_password_hash, generate_password_hash

# werkzeug's scrypt: N=2**15, r=8, p=1 takes 32 MiB and a few hundred milliseconds a try.
METHOD = "scrypt:32768:8:1"
MIN_LENGTH = 8
# Long enough for any passphrase or password manager; short enough that nobody can make
# the server hash megabytes.
MAX_LENGTH = 1024


def hash_password(password: str) -> str:
    """The stored form of a password."""
    return generate_password_hash(password, method=METHOD)


# A hash made like real ones of a random password that was thrown away: checking against
# it costs what checking a real one does, and nothing matches it.
DECOY = ("scrypt:32768:8:1$HENMWI802CA6Hv9A$9fd5870144a56c6d4e3191ae38b6c0641047cb45ab481ba0"
         "28e9a8072f99924ecbf3a1ea0cbced82120ad3f9a0791f9f31ad5f5d50eb2c4cb3bef39b161f6809")


def check_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches the stored hash. A user without a password (or no user
    at all: pass None) costs the same time as a wrong password, and never matches."""
    if not stored or len(password) > MAX_LENGTH:
        check_password_hash(DECOY, password[:MAX_LENGTH])
        return False
    try:
        return check_password_hash(stored, password)
    except ValueError:
        # A hash in a format werkzeug doesn't know: nobody can sign in with it.
        check_password_hash(DECOY, password)
        return False


def password_error(password: str) -> str | None:
    """Why a new password can't be used, or None."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    return None


def generate() -> str:
    """A random password to hand out once (about 96 bits)."""
    return secrets.token_urlsafe(12)
