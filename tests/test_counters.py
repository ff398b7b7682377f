"""The pixel's shared counters (web/counters.py): fixed windows, shared by every process
that maps the file, bounded in size."""
from __future__ import annotations

import multiprocessing
import os

from goatcounter.web import counters

NOW = 1_800_000_000.0


def test_a_window_counts_then_starts_over(tmp_path):
    c = counters.SharedCounters(str(tmp_path / "c"))
    assert c.incr("a", 10, NOW) == (1, NOW + 10)
    assert c.incr("a", 10, NOW + 9.9) == (2, NOW + 10)
    assert c.incr("b", 10, NOW + 1) == (1, NOW + 11)
    # The window ends exactly at its end, as the SQLite store's.
    assert c.incr("a", 10, NOW + 10) == (1, NOW + 20)


def test_two_openers_share_the_counts(tmp_path):
    one = counters.SharedCounters(str(tmp_path / "c"))
    two = counters.SharedCounters(str(tmp_path / "c"))
    one.incr("k", 5, NOW)
    assert two.incr("k", 5, NOW) == (2, NOW + 5)
    two.clear()
    assert one.incr("k", 5, NOW) == (1, NOW + 5)


def test_a_full_neighbourhood_gives_up_the_window_that_ends_first(tmp_path):
    c = counters.SharedCounters(str(tmp_path / "c"), slots=counters.PROBES)
    for i in range(counters.PROBES):
        c.incr(f"k{i}", 10 + i, NOW)
        c.incr(f"k{i}", 10 + i, NOW)
    assert c.incr("new", 10, NOW) == (1, NOW + 10)
    # k0's window ended first: it was given up, the others count on.
    assert c.incr("k0", 10, NOW) == (1, NOW + 10)
    assert c.incr("k3", 13, NOW) == (3, NOW + 13)
    assert os.path.getsize(c.path) == c.size


def _hammer(path: str, n: int) -> None:
    c = counters.SharedCounters(path)
    for _ in range(n):
        c.incr("shared", 100, NOW)


def test_processes_never_lose_a_count(tmp_path):
    path = str(tmp_path / "c")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(path, 2000)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert counters.SharedCounters(path).incr("shared", 100, NOW) == (6001, NOW + 100)
