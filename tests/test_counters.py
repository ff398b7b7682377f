"""The pixel's shared counters (web/counters.py): fixed windows, shared by every process
that maps the file, bounded in size, each process writing to a region of its own."""
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


def test_a_window_started_by_one_opener_is_the_others_window(tmp_path):
    one = counters.SharedCounters(str(tmp_path / "c"))
    two = counters.SharedCounters(str(tmp_path / "c"))
    assert one.incr("k", 10, NOW) == (1, NOW + 10)
    assert two.incr("k", 10, NOW + 5) == (2, NOW + 10)
    assert one.incr("k", 10, NOW + 9) == (3, NOW + 10)
    # Both windows end together, and the next starts from the first count after.
    assert two.incr("k", 10, NOW + 10) == (1, NOW + 20)
    assert one.incr("k", 10, NOW + 11) == (2, NOW + 20)
    assert {one.region, two.region} == {0, 1}


def _region_of_child(c: counters.SharedCounters, out) -> None:
    c.incr("k", 100, NOW)
    out.send(c.region)


def test_a_forked_process_claims_a_region_of_its_own(tmp_path):
    parent = counters.SharedCounters(str(tmp_path / "c"))
    parent.incr("k", 100, NOW)
    ctx = multiprocessing.get_context("fork")
    mine, theirs = ctx.Pipe()
    p = ctx.Process(target=_region_of_child, args=(parent, theirs))
    p.start()
    assert mine.poll(30), "the child did not answer"
    child_region = mine.recv()
    p.join(30)
    assert p.exitcode == 0
    assert child_region != parent.region
    assert parent.incr("k", 100, NOW) == (3, NOW + 100)


def test_a_region_left_by_a_process_that_ended_is_claimed_again_with_its_counts(tmp_path):
    path = str(tmp_path / "c")
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_hammer, args=(path, 5))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    c = counters.SharedCounters(path)
    assert c.incr("shared", 100, NOW) == (6, NOW + 100)
    assert c.region == 0


def _crowd(path: str, n: int, ready, done) -> None:
    c = counters.SharedCounters(path)
    c.incr("warm", 100, NOW)  # claims a region while the others hold theirs
    ready.wait(30)
    for _ in range(n):
        c.incr("shared", 100, NOW)
    done.send((c.region, c._shared))


def test_more_processes_than_regions_share_the_last_one_and_lose_nothing(tmp_path):
    path = str(tmp_path / "c")
    ctx = multiprocessing.get_context("fork")
    count = counters.REGIONS + 3
    ready = ctx.Barrier(count)
    pipes = [ctx.Pipe() for _ in range(count)]
    procs = [ctx.Process(target=_crowd, args=(path, 300, ready, theirs))
             for _, theirs in pipes]
    for p in procs:
        p.start()
    assert all(mine.poll(30) for mine, _ in pipes), "a process did not answer"
    claims = [mine.recv() for mine, _ in pipes]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    owned = [region for region, shared in claims if not shared]
    assert sorted(owned) == list(range(counters.REGIONS - 1))
    assert [region for region, shared in claims if shared] == [counters.REGIONS - 1] * 4
    assert counters.SharedCounters(path).incr("shared", 100, NOW) == (300 * count + 1,
                                                                      NOW + 100)
