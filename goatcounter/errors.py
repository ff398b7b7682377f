"""The exception tree: every error a view or model raises for the client, with its status.

Views raise; web/error_replies.py turns these into replies.
"""
from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error with a status and a message for the client."""

    status = 500

    def __init__(self, message: str, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.message}


class BadRequest(APIError):
    status = 400


class Unauthorized(APIError):
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Basic realm=GoatCounter"})


class Forbidden(APIError):
    status = 403


class NotFound(APIError):
    status = 404

    def __init__(self, message: str = "not found") -> None:
        super().__init__(message)


class MethodNotAllowed(APIError):
    status = 405

    def __init__(self, message: str = "method not allowed",
                 allow: list[str] | None = None) -> None:
        super().__init__(message, headers={"Allow": ", ".join(allow)} if allow else None)


class Gone(APIError):
    status = 410


class PayloadTooLarge(APIError):
    status = 413


class UnsupportedMediaType(APIError):
    status = 415


class ValidationError(APIError):
    """Field errors: `{"errors": {"field": ["message", ...]}}`."""

    status = 400

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return {"errors": self.errors}
