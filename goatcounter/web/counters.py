"""Fixed-window counters in a small file that every worker maps into memory: the `count`
limit of the pixel, checked on every pageview.

A counter in SQLite costs a write transaction per pageview (an upsert, 30-40 µs, and
the workers queue for the file's write lock); here it is a few reads and writes of
memory. The file is a fixed table of slots, each a key's fingerprint, the end of its
window and its count; a key lives in one of a few slots picked by its fingerprint. When
all of those hold other live keys, the one whose window ends first makes room: with far
more slots than clients inside one window that only happens under a flood of new keys,
and then it only lets that key start again at 0. Nothing in it is needed after a
restart (the SQLite counters start over after a power cut too), so it is never synced.

Each process writes only to a region of its own, claimed with an flock on that region's
lock file for as long as it runs, and reads everyone's: a key's count is the sum of its
live slots in all regions, so no lock is taken per request. Under load a lock per
request made the workers queue for it and wake each other (about 10 µs of CPU per
pageview, bench/ingest.py). The regions are interleaved, so that the slots of one key
in every region lie side by side and are read in one slice. A process that finds every
region taken shares the last one with the others like it, under its lock. No count is
lost this way; only when two processes count one key at the same instant, each reads the
other's count of a moment before, so that at the very edge of the limit one more request
per such process may pass (a client would need that many connections answered at once).
"""
from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading

# fingerprint (never 0, which marks a free slot), window end (seconds), count
_SLOT = struct.Struct("<QdQ")
# Slots per region: a region holds the keys its process saw inside one window (a second
# by default), far fewer than this even at the pixel's full speed.
SLOTS = 1 << 13
PROBES = 4
# Processes with a region of their own: more than the workers of any one server here
# (gunicorn's advice is 2-4 per core); the last region is shared by the rest.
REGIONS = 16


def fingerprint(key: str) -> int:
    """64 bits of a hash of the key; 0 is kept for free slots."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class SharedCounters:
    """The counters file of one database, shared by every process that opens it."""

    def __init__(self, path: str, slots: int = SLOTS) -> None:
        self.path = path
        self.slots = slots
        self.row = REGIONS * _SLOT.size  # one slot of every region
        self.size = slots * self.row
        self._thread = threading.Lock()
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._pid = 0
        self.region = -1
        self._claim: int | None = None
        self._shared = False

    def _open(self) -> mmap.mmap:
        # A forked process maps the file anew and claims a region of its own: the claim
        # it inherited is its parent's.
        if self._map is None or self._pid != os.getpid():
            self._forget()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(fd).st_size < self.size:
                os.ftruncate(fd, self.size)  # a new file reads as zeros: every slot free
            self._fd, self._map = fd, mmap.mmap(fd, self.size)
            self.region, self._claim, self._shared = self._claim_region()
            self._pid = os.getpid()
        return self._map

    def _forget(self) -> None:
        """Close what an earlier process (or an earlier open) left here."""
        for fd in (self._fd, self._claim):
            if fd is not None:
                os.close(fd)
        if self._map is not None:
            self._map.close()
        self._fd = self._claim = self._map = None

    def _claim_region(self) -> tuple[int, int, bool]:
        """A region that no other process holds, its lock file, and whether it is the
        shared last one (locked for each count)."""
        for region in range(REGIONS - 1):
            fd = os.open(f"{self.path}.{region}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return region, fd, False
        last = REGIONS - 1
        return last, os.open(f"{self.path}.{last}.lock", os.O_RDWR | os.O_CREAT, 0o600), True

    def incr(self, key: str, seconds: float, now: float) -> tuple[int, float]:
        """Count one request of `key` in its window (a new window of `seconds` starts
        when none is open); returns the count in the window and when it ends."""
        fp = fingerprint(key)
        first = fp % self.slots
        with self._thread:
            table = self._open()
            if not self._shared:
                return self._count(table, fp, first, seconds, now)
            assert self._claim is not None
            fcntl.flock(self._claim, fcntl.LOCK_EX)
            try:
                return self._count(table, fp, first, seconds, now)
            finally:
                fcntl.flock(self._claim, fcntl.LOCK_UN)

    def _count(self, table: mmap.mmap, fp: int, first: int, seconds: float,
               now: float) -> tuple[int, float]:
        """incr's work on the table: this process writes its own slot only."""
        row, width = self.row, _SLOT.size
        start, end = first * row, (first + PROBES) * row
        chunk = table[start:end] if end <= self.size else \
            table[start:] + table[:end - self.size]
        own = self.region * width
        chosen = -1
        mine = 0.0, 0  # the end and count of this process's live slot of the key
        soonest = (float("inf"), -1)
        for i in range(PROBES):
            found, ends, count = _SLOT.unpack_from(chunk, i * row + own)
            if found == fp:
                chosen = i
                if ends > now:
                    mine = ends, count
                break
            if found == 0 or ends <= now:
                if chosen < 0:
                    chosen = i
            elif ends < soonest[0]:
                soonest = (ends, i)
        if chosen < 0:
            chosen = soonest[1]
        total, window = 0, float("inf")
        # The key's slots in every region: where its fingerprint starts a slot (most
        # keys are new, and it is nowhere in the slice).
        mark = fp.to_bytes(8, "little")
        at = chunk.find(mark)
        while at >= 0:
            if at % width == 0:
                _, ends, count = _SLOT.unpack_from(chunk, at)
                if ends > now:
                    total += count
                    window = min(window, ends)
            at = chunk.find(mark, at + 1)
        if not total:
            window = now + seconds
        offset = ((first + chosen) % self.slots) * row + own
        _SLOT.pack_into(table, offset, fp, mine[0] if mine[1] else window, mine[1] + 1)
        return total + 1, window

    def clear(self) -> None:
        """Forget every counter."""
        with self._thread:
            table = self._open()
            table[:] = bytes(self.size)
