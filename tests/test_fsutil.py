"""atomic_write: whole or not at all, its mode whatever the umask, the directory fsynced; no temporary file left."""

from __future__ import annotations

import ast
import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from auditimds import fsutil
from auditimds.fsutil import atomic_write, fsync_dir

OLD = b'{"old": true}\n'


def names(d: Path):
    return sorted(x.name for x in d.iterdir())


def test_writes_the_bytes_and_replaces_the_old_file(tmp_path: Path):
    p = tmp_path / "state.json"
    atomic_write(p, OLD)
    assert p.read_bytes() == OLD
    atomic_write(str(p), b"new\n" * 10_000)  # a str path as well as a Path; more than one write() may be needed
    assert p.read_bytes() == b"new\n" * 10_000
    atomic_write(p, b"")
    assert p.read_bytes() == b""
    assert names(tmp_path) == ["state.json"]


def test_relative_path_in_the_current_directory(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atomic_write("x.json", OLD)
    assert (tmp_path / "x.json").read_bytes() == OLD and names(tmp_path) == ["x.json"]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644])
@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_mode_whatever_the_umask_and_the_old_mode(tmp_path: Path, mode: int, umask: int):
    p = tmp_path / "f"
    p.write_bytes(OLD)
    os.chmod(p, 0o666)
    old = os.umask(umask)
    try:
        atomic_write(p, b"x", mode=mode)
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == mode


def test_default_mode_is_0600(tmp_path: Path):
    p = tmp_path / "f"
    atomic_write(p, b"secret")
    assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_failure_midway_keeps_the_old_file_intact(tmp_path: Path, monkeypatch):
    p = tmp_path / "state.json"
    atomic_write(p, OLD)
    real_write = os.write
    calls = []

    def half_then_eio(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fsutil.os, "write", half_then_eio)
    with pytest.raises(OSError) as ei:
        atomic_write(p, b"n" * 4096)
    monkeypatch.undo()
    assert ei.value.errno == 5 and len(calls) == 2
    assert p.read_bytes() == OLD and names(tmp_path) == ["state.json"]


def test_file_size_limit_midway_keeps_the_old_file_intact(tmp_path: Path):
    """A real failure in the middle of the data (EFBIG from RLIMIT_FSIZE, like a disk filling up), in a child."""
    p = tmp_path / "state.json"
    atomic_write(p, OLD)
    code = (
        "import resource, signal, sys\n"
        "from auditimds.fsutil import atomic_write\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n"
        "    atomic_write(sys.argv[1], b'n' * 100_000)\n"
        "except OSError as e:\n"
        "    print(e.errno)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    r = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, env=env, check=True)
    assert r.stdout.strip() == str(errno.EFBIG), r.stderr
    assert p.read_bytes() == OLD and names(tmp_path) == ["state.json"]


def test_fsync_failure_keeps_the_old_file(tmp_path: Path, monkeypatch):
    p = tmp_path / "state.json"
    atomic_write(p, OLD)

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "fsync", fail)
    with pytest.raises(OSError):
        atomic_write(p, b"new")
    monkeypatch.undo()
    assert p.read_bytes() == OLD and names(tmp_path) == ["state.json"]


def test_rename_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path, monkeypatch):
    p = tmp_path / "state.json"
    atomic_write(p, OLD)

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write(p, b"new")
    monkeypatch.undo()
    assert p.read_bytes() == OLD and names(tmp_path) == ["state.json"]


def test_missing_directory_raises_and_creates_nothing(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing" / "f", b"x")
    assert names(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_unwritable_directory_raises_and_keeps_the_old_file(tmp_path: Path):
    d = tmp_path / "ro"
    d.mkdir()
    atomic_write(d / "f", OLD)
    d.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            atomic_write(d / "f", b"new")
    finally:
        d.chmod(0o700)
    assert (d / "f").read_bytes() == OLD and names(d) == ["f"]


def test_the_file_then_its_directory_are_fsynced(tmp_path: Path, monkeypatch):
    real = os.fsync
    synced = []

    def spy(fd):
        st = os.fstat(fd)
        synced.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        return real(fd)

    monkeypatch.setattr(fsutil.os, "fsync", spy)
    p = tmp_path / "f"
    atomic_write(p, b"data")
    assert synced == [("file", p.stat().st_ino), ("dir", tmp_path.stat().st_ino)]


def test_a_directory_that_cannot_be_fsynced_is_not_an_error(tmp_path: Path, monkeypatch):
    real = os.fsync

    def no_dir_fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        return real(fd)

    monkeypatch.setattr(fsutil.os, "fsync", no_dir_fsync)
    atomic_write(tmp_path / "f", b"data")
    assert (tmp_path / "f").read_bytes() == b"data"
    fsync_dir(tmp_path / "missing")  # nothing to fsync: ignored too


def test_fsutil_imports_nothing_from_the_package():
    tree = ast.parse(Path(fsutil.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("auditimds"), ast.dump(node)
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("auditimds") for a in node.names), ast.dump(node)
