"""Start a real gunicorn on a loopback port for tests that need several workers."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(instance: str, workers: int = 3, env: dict[str, str] | None = None,
             extra_args: list[str] | None = None) -> Iterator[str]:
    """Run `gunicorn wsgi:app` with `workers` workers; yields the base URL."""
    port = free_port()
    full_env = dict(os.environ)
    full_env.update({"GOATCOUNTER_INSTANCE": instance, "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    log = open(Path(instance) / f"gunicorn-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers",
         str(workers), "--graceful-timeout", "5", *(extra_args or []), "wsgi:app"],
        cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + Path(log.name).read_text())
            try:
                urllib.request.urlopen(base + "/api/v0/doesnt-exist", timeout=2)
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start:\n"
                                       + Path(log.name).read_text()) from None
                time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
