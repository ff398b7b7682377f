"""Waiting, in a test, for what another thread or process does."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(check: Callable[[], Any], what: str, timeout: float = 20.0,
               every: float = 0.05) -> Any:
    """The first true value of `check()`, asked every `every` seconds; fails the test,
    naming `what`, when none came within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
