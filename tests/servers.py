"""A real gunicorn on a loopback port, for tests that need several workers (the same
launcher the benchmarks use)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bench.common import ROOT, free_port
from bench.common import gunicorn as _gunicorn

__all__ = ["ROOT", "free_port", "gunicorn"]


@contextlib.contextmanager
def gunicorn(instance: str, workers: int = 3, env: dict[str, str] | None = None,
             config: Path | str = ROOT / "gunicorn.conf.py",
             access_log: str | None = None) -> Iterator[str]:
    """Run `gunicorn wsgi:app` with the repository's gunicorn.conf.py (unless told
    otherwise) for `instance`; yields the base URL. The log is in the instance folder
    as gunicorn-<port>.log."""
    port = free_port()
    log = Path(instance) / f"gunicorn-{port}.log"
    with _gunicorn("wsgi:app", {"GOATCOUNTER_INSTANCE": str(instance), **(env or {})},
                   workers, config=str(config), log=str(log), access_log=access_log,
                   port=port) as server:
        yield f"http://{server.addr[0]}:{server.addr[1]}"
