"""The pixel spool under faults: other processes that can't see the writers, a full disk,
a file truncated under its writer. An accepted pageview is counted once, whatever happens."""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from goatcounter.counting import pending, spool
from tests.conftest import NO_LIMITS, UA, make_site, query
from tests.servers import ROOT

RATELIMIT = NO_LIMITS


@pytest.fixture
def quiet(app):
    """No counting right after the reply: as a worker that counted a moment ago."""
    app.extensions["goatcounter_pending"].last = time.monotonic() + 3600
    return app


def pixel(app, site, path: str):
    return app.test_client().get(f"/count?p={path}", headers={"Host": site["cname"],
                                                              "User-Agent": UA},
                                 environ_base={"REMOTE_ADDR": "8.8.8.8"})


def stored(app) -> list[str]:
    """Paths of the stored hits, in the order they were stored (after counting)."""
    return [r[0] for r in query(app, "SELECT p.path FROM hits h JOIN paths p"
                                     " ON p.id = h.path_id ORDER BY h.id")]


def failed(app) -> list[str]:
    return [r[0] for r in query(app, "SELECT error FROM failed_hits", drain=False)]


def spool_files(app) -> list[Path]:
    with app.app_context():
        return [Path(path) for _, path in pending.queue().files()]


def drain(app) -> int:
    with app.app_context():
        return pending.drain()


# Item: ownership by lock, never by pid ---------------------------------------------------

def _invisible_pids_command(args: list[str]) -> list[str]:
    """`goatcounter ARGS` in a process that can't see this one's pid: a new PID namespace
    when we may make one, else a process in which every other pid looks gone."""
    if os.geteuid() == 0 and shutil.which("unshare"):
        probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True)
        if probe.returncode == 0:
            return ["unshare", "--pid", "--fork", sys.executable, "-m", "goatcounter", *args]
    blind = ("import os, sys\n"
             "real = os.kill\n"
             "def kill(pid, sig):\n"
             "    if pid != os.getpid():\n"
             "        raise ProcessLookupError(pid)\n"
             "    return real(pid, sig)\n"
             "os.kill = kill\n"
             "from goatcounter.cli import main\n"
             "sys.argv[0] = 'goatcounter'\n"
             "main()\n")
    return [sys.executable, "-c", blind, *args]


def _cli_env(app) -> dict[str, str]:
    return {**os.environ, "GOATCOUNTER_INSTANCE": app.instance_path,
            "GOATCOUNTER_SECRET_KEY": "test-secret", "GOATCOUNTER_COUNT_IN_BACKGROUND": "0",
            "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("command", [
    pytest.param(["db", "backup", "{tmp}/copy.sqlite3"],
                 marks=pytest.mark.sqlite_only("db backup copies the SQLite file")),
    ["db", "retry-failed"]])
def test_another_pid_namespace_removes_no_file_still_written(quiet, tmp_path, command):
    """A backup (or retry-failed) run where the workers' pids aren't visible, such as
    `unshare --pid --fork` or a second container, must leave their open files alone:
    the pageviews appended afterwards are all counted."""
    site, _ = make_site(quiet)
    assert pixel(quiet, site, "/before").status_code == 200
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    run = subprocess.run(_invisible_pids_command(args), env=_cli_env(quiet),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert len(spool_files(quiet)) == 1
    for i in range(30):
        assert pixel(quiet, site, f"/after/{i}").status_code == 200
    assert len(stored(quiet)) == 31
    assert failed(quiet) == []


def test_a_file_of_a_process_that_ended_is_counted_and_removed(quiet):
    """A file's writer holds a lock on it; once the writer is gone, whoever counts the
    file removes it, whatever its name says."""
    site, _ = make_site(quiet)
    with quiet.app_context():
        directory = pending.queue().directory
    line = pending.encode(site["id"], _hit(quiet, site, "/orphan")).decode()
    script = ("import sys; from goatcounter.counting import spool\n"
              f"spool.Spool({directory!r}).append({line!r}.encode())\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=60)
    assert drain(quiet) == 1
    assert spool_files(quiet) == []
    assert query(quiet, "SELECT count(*) FROM pending_files")[0][0] == 0
    assert stored(quiet) == ["/orphan"]


def test_a_file_still_held_is_never_removed(quiet):
    """Even when the pid in its name is of a process that is gone, a file whose writer
    still holds it is kept: pageviews appended to it later are counted."""
    site, _ = make_site(quiet)
    pixel(quiet, site, "/one")
    with quiet.app_context():
        where = pending.queue()
        old = os.path.join(where.directory, where.current)
        # The pid of a process that has ended, in the name the tidier reads.
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
        renamed = os.path.join(where.directory, f"{gone}-{'0' * 16}{spool.SUFFIX}")
        os.rename(old, renamed)
        assert pending.drain() == 1
        assert os.path.exists(renamed)
    pixel(quiet, site, "/two")
    assert stored(quiet) == ["/one", "/two"]


def _hit(app, site, path: str):
    from goatcounter.counting.pipeline.process import Incoming, process
    hit = process(Incoming(path=path, user_agent=UA, ip="8.8.8.8"), site["settings"],
                  time.time(), "k")
    assert not isinstance(hit, str)
    return hit


# Item: a full disk ----------------------------------------------------------------------

def _spool_fd(fd: int, directory: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith(directory)
    except OSError:
        return False


@contextlib.contextmanager
def disk_full(monkeypatch, directory: str) -> Iterator[None]:
    """Writes to the spool get half of a line out, then fail with ENOSPC."""
    real_write, real_pwrite = os.write, os.pwrite

    def half(real, fd, data, *rest):
        if not _spool_fd(fd, directory):
            return real(fd, data, *rest)
        data = bytes(data)
        if len(data) > 1:
            return real(fd, data[: len(data) // 2], *rest)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", lambda fd, data: half(real_write, fd, data))
        patch.setattr(os, "pwrite", lambda fd, data, at: half(real_pwrite, fd, data, at))
        yield


def _whole(path: Path) -> list[str]:
    """The lines of a spool file, which must all be whole pageviews."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), data[-80:]
    return [pending.decode(line)[1].path for line in data.splitlines()]


def test_a_full_disk_refuses_the_pageview_and_keeps_the_file_whole(quiet, monkeypatch):
    site, _ = make_site(quiet)
    assert pixel(quiet, site, "/before").status_code == 200
    with quiet.app_context():
        directory = pending.queue().directory
    with disk_full(monkeypatch, directory):
        resp = pixel(quiet, site, "/refused")
    assert resp.status_code == 503
    assert resp.headers["Content-Type"].startswith("application/json")
    assert "No space left on device" in resp.get_json()["error"]
    [path] = spool_files(quiet)
    assert _whole(path) == ["/before"]
    assert pixel(quiet, site, "/after").status_code == 200
    assert _whole(path) == ["/before", "/after"]
    assert stored(quiet) == ["/before", "/after"]
    assert failed(quiet) == []


def _as_root() -> list[str]:
    """What runs a command as root here: nothing for root, else `sudo -n` when it may."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"],
                                               capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    pytest.skip("mounting a file system needs root (or sudo without a password)")


@pytest.fixture
def small_disk(app) -> Iterator[Path]:
    """The spool folder on a file system of 64 KiB, owned by this process's user."""
    root = _as_root()
    directory = Path(app.config["DB_PATH"] + "-pending")
    directory.mkdir(parents=True, exist_ok=True)
    options = f"size=64k,mode=0700,uid={os.getuid()},gid={os.getgid()}"
    mount = subprocess.run([*root, "mount", "-t", "tmpfs", "-o", options, "tmpfs",
                            str(directory)], capture_output=True, text=True)
    if mount.returncode:
        pytest.skip(f"can't mount a tmpfs: {mount.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run([*root, "umount", "-l", str(directory)], check=False)


def test_a_full_file_system_refuses_pageviews_until_there_is_room(quiet, small_disk):
    site, _ = make_site(quiet)
    assert pixel(quiet, site, "/first").status_code == 200
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"x" * 512)
    finally:
        os.close(fd)
    answers = [pixel(quiet, site, f"/p/{i}").status_code for i in range(40)]
    assert 503 in answers, answers
    accepted = ["/first"] + [f"/p/{i}" for i, status in enumerate(answers) if status == 200]
    [path] = [p for p in spool_files(quiet)]
    assert _whole(path) == accepted
    filler.unlink()
    assert pixel(quiet, site, "/room").status_code == 200
    assert stored(quiet) == [*accepted, "/room"]
    assert failed(quiet) == []


# Item: a file truncated under its writer ---------------------------------------------------

def _truncate_after(path: Path, lines: int) -> None:
    """Cut a spool file after its first `lines` lines (-1: in the middle of the next one)."""
    data = path.read_bytes()
    ends = [i + 1 for i, b in enumerate(data) if b == 0x0A]
    keep = ends[lines - 1] if lines > 0 else 0
    if lines < 0:
        keep = ends[0] + (ends[1] - ends[0]) // 2
    os.truncate(path, keep)


@pytest.mark.parametrize("cut", [0, 1, -1], ids=["to-nothing", "after-a-line", "mid-line"])
@pytest.mark.parametrize("looked", [True, False], ids=["seen-short", "written-before-seen"])
def test_pageviews_written_after_a_truncation_are_counted(quiet, caplog, cut, looked):
    """Pageviews that were cut off are gone; every one written afterwards is counted,
    whether or not the counter saw the file while it was short."""
    site, _ = make_site(quiet)
    for path in ("/a", "/b", "/c"):
        pixel(quiet, site, path)
    assert len(stored(quiet)) == 3
    [path] = spool_files(quiet)
    _truncate_after(path, cut)
    if looked:
        with caplog.at_level(logging.WARNING, logger="goatcounter.counting.pending"):
            assert drain(quiet) == 0
        assert any("truncated" in r.getMessage() for r in caplog.records), caplog.text
    for p in ("/d", "/e"):
        assert pixel(quiet, site, p).status_code == 200
    assert stored(quiet) == ["/a", "/b", "/c", "/d", "/e"]
    assert failed(quiet) == []


def test_a_truncated_file_with_uncounted_lines_keeps_them(quiet):
    """Cut above the counted part: what is left of the uncounted lines is counted."""
    site, _ = make_site(quiet)
    pixel(quiet, site, "/a")
    assert stored(quiet) == ["/a"]
    for p in ("/b", "/c", "/d"):
        pixel(quiet, site, p)
    [path] = spool_files(quiet)
    _truncate_after(path, 3)
    pixel(quiet, site, "/e")
    assert stored(quiet) == ["/a", "/b", "/c", "/e"]
    assert failed(quiet) == []


def test_a_finished_file_cut_short_is_removed_with_a_warning(quiet, caplog):
    site, _ = make_site(quiet)
    with quiet.app_context():
        directory = pending.queue().directory
    lines = "".join(pending.encode(site["id"], _hit(quiet, site, p)).decode()
                    for p in ("/a", "/b"))
    # A writer that keeps its file until told to stop.
    script = ("import sys; from goatcounter.counting import spool\n"
              f"spool.Spool({directory!r}).append({lines!r}.encode())\n"
              "print('written', flush=True); sys.stdin.read()\n")
    writer = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert writer.stdout is not None and writer.stdout.readline() == "written\n"
    [path] = spool_files(quiet)
    assert drain(quiet) == 2
    os.truncate(path, 10)
    writer.communicate("", timeout=60)
    with caplog.at_level(logging.WARNING, logger="goatcounter.counting.pending"):
        assert drain(quiet) == 0
    assert "truncated" in caplog.text
    assert spool_files(quiet) == []
    assert stored(quiet) == ["/a", "/b"]


def test_a_line_cut_by_a_writer_that_died_is_dropped(quiet, caplog):
    """A writer killed in the middle of a line never answered for it: the piece is
    dropped (with a warning) once the file is finished, and the file removed."""
    site, _ = make_site(quiet)
    with quiet.app_context():
        directory = pending.queue().directory
    line = pending.encode(site["id"], _hit(quiet, site, "/whole")).decode()
    torn = json.dumps([site["id"], "/torn"])[:-3]
    script = ("from goatcounter.counting import spool\n"
              f"spool.Spool({directory!r}).append({(line + torn)!r}.encode())\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=60)
    with caplog.at_level(logging.WARNING, logger="goatcounter.counting.pending"):
        assert drain(quiet) == 1
    assert "never finished" in caplog.text
    assert spool_files(quiet) == []
    assert stored(quiet) == ["/whole"]


def test_files_of_writers_that_took_no_lock_keep_the_pid_rule(quiet):
    """Files named as before writers took a lock (a rolling upgrade): counted, and removed
    only once the process in their name is gone."""
    site, _ = make_site(quiet)
    with quiet.app_context():
        directory = Path(pending.queue().directory)
    directory.mkdir(parents=True, exist_ok=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for pid, path in ((os.getpid(), "/alive"), (gone, "/gone")):
        line = pending.encode(site["id"], _hit(quiet, site, path))
        (directory / f"{pid}-0000abcd{spool.SUFFIX}").write_bytes(line)
    assert drain(quiet) == 2
    assert [p.name for p in spool_files(quiet)] == [f"{os.getpid()}-0000abcd{spool.SUFFIX}"]
    assert sorted(stored(quiet)) == ["/alive", "/gone"]
