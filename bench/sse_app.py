"""The server with a Server-Sent Events stream of the live log beside it, for
bench/livelog.py only: GET /live/stream holds its connection open and sends the site's
new entries as they come. It exists to measure what such a stream costs gunicorn's sync
workers (each open stream holds a whole worker); the server itself has no stream."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from goatcounter import create_app
from goatcounter.counting import livelog
from goatcounter.storage import db

# A stream ends after this long (the bench sets it to the length of a round).
STREAM_SECONDS = float(os.environ.get("BENCH_STREAM_SECONDS", "600"))


def _stream(app: Any) -> Iterator[bytes]:
    with app.app_context():
        conn = db.get_db()
        last = livelog.newest_id(conn, 1)
        end = time.monotonic() + STREAM_SECONDS
        yield b": open\n\n"
        while time.monotonic() < end:
            for entry in livelog.after(conn, last, 1):
                last = entry["id"]
                yield f"id: {entry['id']}\ndata: {entry['path']}\n\n".encode()
            yield b": keep-alive\n\n"
            time.sleep(0.5)


def _with_stream(app: Any) -> Callable[..., Iterable[bytes]]:
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/live/stream":
            return inner(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/event-stream"),
                                  ("Cache-Control", "no-store")])
        return _stream(app)
    return wsgi


_app = create_app()
app = _with_stream(_app)
