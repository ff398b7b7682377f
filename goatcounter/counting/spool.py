"""Append-only files of accepted pageviews: one per worker process, beside the database.

Appending a line is one write to a file this process alone writes to: no database lock,
no transaction. Like a commit of the database (WAL, synchronous=NORMAL), it survives the
process dying at once; only a power cut can take the last moments with it. Which part
of each file has been counted is recorded in the database (pending_files), in the
transaction that counts it, so every line is counted exactly once, whoever counts it
and whatever dies in between.

A writer holds an exclusive flock on its file for as long as it may write to it, and
nobody opens an old file for writing again. So a file whose lock can be taken is
finished, and that is true for every process that looks: one in another PID namespace
or container can't see the writer's pid, but it sees the lock. A file is removed only
by a process holding its lock.

Each line is written at the offset where the writer's previous line ended (not simply
at the end of the file), and a failed write is cut off again, so the file only ever
holds whole lines. If somebody truncates a file under its writer, the next line still
lands where the counter expects it; the bytes in between read as zeros, which no line
holds, and the reader skips them.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

SUFFIX = ".jsonl"
# The process that counts a directory's files after its replies (see pending.Drainer)
# holds an flock on this file for as long as it runs. A process that doesn't hold it
# tries again every LEAD_RETRY seconds, so that another takes over when that one ends.
COUNTER_LOCK = "counting.lock"
LEAD_RETRY = 1.0
# A worker starts a new file past this size; the old one goes once it is counted.
ROTATE_BYTES = 16 * 1024 * 1024
# Files named like this were written before writers took a lock: for those the pid in the
# name still decides (and, to be safe, also the lock), until they are gone.
_UNLOCKED_NAME = re.compile(r"(\d+)-[0-9a-f]{8}" + re.escape(SUFFIX) + r"\Z")

log = logging.getLogger(__name__)


class WriteError(OSError):
    """A line could not be written (a full disk, say); the file is as it was before."""


class Piece(NamedTuple):
    """A line read from a file (empty when only unreadable bytes were skipped), the offset
    just after it, and how many bytes before it were skipped as not part of any line."""

    line: bytes
    end: int
    lost: int


# directory -> (pid, the lock's descriptor or None, when it was last tried); one entry
# per process, whatever number of apps it runs on the directory.
_counters: dict[str, tuple[int, int | None, float]] = {}
_counters_lock = threading.Lock()


class Spool:
    """The files of one database: this process appends to its own, anybody reads all."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self.current: str | None = None
        self._size = 0

    def append(self, line: bytes) -> None:
        """Add one line (ending in a newline) to this process's file. Raises WriteError,
        after which the file holds what it held before."""
        with self._lock:
            try:
                if self._fd is None or self._pid != os.getpid() or _unlinked(self._fd):
                    self._open()
            except OSError as exc:
                raise WriteError(exc.errno, f"pageview not stored: {exc.strerror}") from exc
            assert self._fd is not None
            start = self._size
            try:
                _write_at(self._fd, line, start)
            except OSError as exc:
                self._cut(start)
                raise WriteError(exc.errno, f"pageview not stored: {exc.strerror}") from exc
            self._size = start + len(line)
            if self._size > ROTATE_BYTES:
                self._close()

    def _cut(self, size: int) -> None:
        """Take a partly written line off again; when even that fails, leave the file
        (the piece is dropped once it is counted) and write to a new one."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, size)
        except OSError as exc:
            log.error("spool file %s: can't remove a partly written line (%s); starting a"
                      " new file", self.current, exc)
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # which lets go of its lock: the file is finished
        self._fd = None

    def _open(self) -> None:
        if self._fd is not None:
            if self._pid == os.getpid():
                log.warning("spool file %s was removed while in use; starting a new one",
                            self.current)
            # After a fork this is the parent's file: closing our copy leaves its lock.
            os.close(self._fd)
            self._fd = None
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        while True:
            # The random part keeps a reused pid from ever writing into an old file.
            name = f"{os.getpid()}-{secrets.token_hex(8)}{SUFFIX}"
            fd = os.open(os.path.join(self.directory, name),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # Someone saw the new, empty file before we locked it and is removing it.
                os.close(fd)
                continue
            if _unlinked(fd):
                os.close(fd)
                continue
            break
        self._fd, self._pid, self.current, self._size = fd, os.getpid(), name, 0

    def counts(self) -> bool:
        """Whether this process is the one that counts the directory's files after its
        replies: the holder of COUNTER_LOCK."""
        with _counters_lock:
            pid, now = os.getpid(), time.monotonic()
            held = _counters.get(self.directory)
            if held is not None and held[0] == pid:
                if held[1] is not None:
                    return True
                if now - held[2] < LEAD_RETRY:
                    return False
            elif held is not None and held[1] is not None:
                # Inherited from the process this one was forked from, whose lock it is:
                # our copy must go, or the lock would outlive that process.
                os.close(held[1])
            fd = _try_lock(os.path.join(self.directory, COUNTER_LOCK))
            _counters[self.directory] = (pid, fd, now)
            return fd is not None

    def files(self) -> Iterator[tuple[str, str]]:
        """(name, path) of every file, oldest first."""
        entries = []
        try:
            with os.scandir(self.directory) as found:
                for entry in found:
                    if not entry.name.endswith(SUFFIX):
                        continue
                    # One removed meanwhile (counted by another process) is simply left out.
                    with contextlib.suppress(FileNotFoundError):
                        if entry.is_file(follow_symlinks=False):
                            entries.append((entry.stat().st_mtime, entry.name, entry.path))
        except FileNotFoundError:
            return
        for _, name, path in sorted(entries):
            yield name, path

    @contextlib.contextmanager
    def claim(self, path: str) -> Iterator[bool]:
        """Whether nobody will append to this file again. While it is True, this process
        holds the file's lock, so that it may remove the file."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield not _unlocked_writer_alive(os.path.basename(path))
        finally:
            os.close(fd)


def _try_lock(path: str) -> int | None:
    """An open descriptor holding the flock of `path`, or None when another has it."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _write_at(fd: int, line: bytes, offset: int) -> None:
    written = os.pwrite(fd, line, offset)
    if written == len(line):
        return
    view = memoryview(line)[written:]
    while view:
        offset += written
        written = os.pwrite(fd, view, offset)
        view = view[written:]


def _unlinked(fd: int) -> bool:
    return os.fstat(fd).st_nlink == 0


def _unlocked_writer_alive(name: str) -> bool:
    """For a file of a writer that took no lock: whether its process may still run."""
    match = _UNLOCKED_NAME.match(name)
    if not match:
        return False
    try:
        os.kill(int(match[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lines(path: str, offset: int, max_bytes: int) -> list[Piece]:
    """The whole lines of a file from `offset` (a line still being written is left for
    next time). Zero bytes (a hole left where a file was truncated under its writer) and
    the piece of a line before them belong to no line: they are skipped, and counted in
    `lost`."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(max_bytes)
    except FileNotFoundError:
        return []
    pieces: list[Piece] = []
    start = 0
    while True:
        end = data.find(b"\n", start) + 1
        if not end:
            break
        line = data[start:end - 1]
        cut = line.rfind(b"\0") + 1
        pieces.append(Piece(line[cut:], offset + end, cut))
        start = end
    # A run of zeros not yet followed by a line: skip it now, as it may be longer than
    # what one read takes.
    cut = data.rfind(b"\0", start) + 1
    if cut:
        pieces.append(Piece(b"", offset + cut, cut - start))
    return pieces


def size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:
        return 0
