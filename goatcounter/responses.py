"""JSON replies the way the API writes them."""
from __future__ import annotations

import json
from typing import Any

from flask import Response

JSON_TYPE = "application/json; charset=utf-8"


def dumps(data: Any) -> str:
    """Two-space indented JSON ending in a newline, as upstream prints objects."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON reply with the API's content type."""
    return Response(dumps(data), status=status, headers=headers, content_type=JSON_TYPE)


def compact_response(text: str, status: int) -> Response:
    """A reply whose JSON text is already written (e.g. the count endpoint's exact body)."""
    return Response(text, status=status, content_type=JSON_TYPE)
