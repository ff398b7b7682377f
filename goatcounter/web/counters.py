"""Fixed-window counters in a small file that every worker maps into memory: the `count`
limit of the pixel, checked on every pageview.

A counter in SQLite costs a write transaction per pageview (an upsert, 30-40 µs, and
the workers queue for the file's write lock); here it is a few reads and writes of
memory under an flock, about 5 µs. The file is a fixed table of slots, each a key's
fingerprint, the end of its window and its count; a key lives in one of a few slots
picked by its fingerprint. When all of those hold other live keys, the one whose window
ends first makes room: with far more slots than clients inside one window that only
happens under a flood of new keys, and then it only lets that key start again at 0.
Nothing in it is needed after a restart (the SQLite counters start over after a power
cut too), so it is never synced to disk.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import threading
from collections.abc import Iterator

# fingerprint (never 0, which marks a free slot), window end (seconds), count
_SLOT = struct.Struct("<QdQ")
SLOTS = 1 << 16
PROBES = 4


def fingerprint(key: str) -> int:
    """64 bits of a hash of the key; 0 is kept for free slots."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class SharedCounters:
    """The counters file of one database, shared by every process that opens it."""

    def __init__(self, path: str, slots: int = SLOTS) -> None:
        self.path = path
        self.slots = slots
        self.size = slots * _SLOT.size
        self._thread = threading.Lock()
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._pid = 0

    def _open(self) -> mmap.mmap:
        # A forked worker maps the file anew: the flock must be its own.
        if self._map is None or self._pid != os.getpid():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(fd).st_size < self.size:
                os.ftruncate(fd, self.size)  # a new file reads as zeros: every slot free
            self._fd, self._map, self._pid = fd, mmap.mmap(fd, self.size), os.getpid()
        return self._map

    @contextlib.contextmanager
    def _locked(self) -> Iterator[mmap.mmap]:
        with self._thread:
            table = self._open()
            assert self._fd is not None
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield table
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def incr(self, key: str, seconds: float, now: float) -> tuple[int, float]:
        """Count one request of `key` in its window (a new window of `seconds` starts
        when none is open); returns the count in the window and when it ends."""
        fp = fingerprint(key)
        first = fp % self.slots
        with self._locked() as table:
            return self._count(table, fp, first, seconds, now)

    def _count(self, table: mmap.mmap, fp: int, first: int, seconds: float,
               now: float) -> tuple[int, float]:
        """incr's work on the table, under the lock."""
        chosen = -1
        soonest = (float("inf"), -1)
        for i in range(PROBES):
            offset = ((first + i) % self.slots) * _SLOT.size
            found, ends, count = _SLOT.unpack_from(table, offset)
            if found == fp:
                if ends > now:
                    _SLOT.pack_into(table, offset, fp, ends, count + 1)
                    return count + 1, ends
                chosen = offset
                break
            if found == 0 or ends <= now:
                if chosen < 0:
                    chosen = offset
            elif ends < soonest[0]:
                soonest = (ends, offset)
        if chosen < 0:
            chosen = soonest[1]
        ends = now + seconds
        _SLOT.pack_into(table, chosen, fp, ends, 1)
        return 1, ends

    def clear(self) -> None:
        """Forget every counter."""
        with self._locked() as table:
            table[:] = bytes(self.size)
