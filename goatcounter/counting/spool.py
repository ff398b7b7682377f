"""Append-only files of accepted pageviews: one per worker process, beside the database.

Appending a line is one write to a file this process alone writes to: no lock, no
transaction. Like a commit of the database (WAL, synchronous=NORMAL), it survives the
process dying at once; only a power cut can take the last moments with it. Which part
of each file has been counted is recorded in the database (pending_files), in the
transaction that counts it, so every line is counted exactly once, whoever counts it
and whatever dies in between.
"""
from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

SUFFIX = ".jsonl"
# A worker starts a new file past this size; the old one goes once it is counted.
ROTATE_BYTES = 16 * 1024 * 1024


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
        """Add one line (ending in a newline) to this process's file."""
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                self._open()
            assert self._fd is not None
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]
            self._size += len(line)
            if self._size > ROTATE_BYTES:
                os.close(self._fd)
                self._fd = None

    def _open(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        # The random part keeps a reused pid from ever writing into an old file.
        self.current = f"{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
        self._fd = os.open(os.path.join(self.directory, self.current),
                           os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._pid = os.getpid()
        self._size = 0

    def files(self) -> Iterator[tuple[str, str]]:
        """(name, path) of every file, oldest first."""
        try:
            entries = sorted(os.scandir(self.directory), key=lambda e: e.stat().st_mtime)
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
                yield entry.name, entry.path

    def finished(self, name: str) -> bool:
        """Whether nobody will append to this file again: its process has ended, or it
        is one of ours that we have moved on from."""
        if self._pid == os.getpid() and name == self.current:
            return False
        try:
            pid = int(name.split("-", 1)[0])
        except ValueError:
            return True
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def read_lines(path: str, offset: int, max_bytes: int) -> tuple[list[bytes], int]:
    """Whole lines of a file from `offset` (a line still being written is left for next
    time), and the offset after them."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(max_bytes)
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    if not end:
        return [], offset
    return data[:end].splitlines(), offset + end


def size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:
        return 0
