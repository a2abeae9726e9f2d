"""ProcResolver on a mock /proc tree (laurel's way: a fake procfs beside the real one), and once on the real
/proc for this test's own process."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

from auditimds.ecs.procfs import ProcResolver


def stat_line(pid: int, comm: str, ppid: int, start: int) -> bytes:
    # fields 3.. of proc_pid_stat(5): state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    # cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime(22) vsize ...
    rest = ["S", str(ppid)] + ["0"] * 17 + [str(start), "1000", "10"]
    return f"{pid} ({comm}) {' '.join(rest)}\n".encode()


def make_proc(root: Path, pid: int, *, comm: str = "curl", ppid: int = 1, start: int = 4242,
              exe: Optional[str] = "/usr/bin/curl", cwd: Optional[str] = "/root",
              cmdline: Optional[bytes] = b"curl\x00-s\x00http://x/\x00", stat: Optional[bytes] = None) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "stat").write_bytes(stat if stat is not None else stat_line(pid, comm, ppid, start))
    if exe is not None:
        os.symlink(exe, d / "exe")  # readlink works whether or not the target exists, as for a deleted exe
    if cwd is not None:
        os.symlink(cwd, d / "cwd")
    if cmdline is not None:
        (d / "cmdline").write_bytes(cmdline)


def test_a_process_gives_every_field(tmp_path: Path) -> None:
    make_proc(tmp_path, 1234, ppid=77, start=987654)
    r = ProcResolver(str(tmp_path))
    assert r(1234) == {"ppid": 77, "start_key": "proc:987654", "executable": "/usr/bin/curl",
                       "args": ["curl", "-s", "http://x/"], "cwd": "/root"}
    assert (r.lookups, r.found) == (1, 1)


def test_comm_with_spaces_and_parentheses_is_skipped_by_the_last_paren(tmp_path: Path) -> None:
    # a process may name itself anything (prctl PR_SET_NAME): "a) b) S 9" must not shift the fields
    make_proc(tmp_path, 50, comm="a) b) S 9", ppid=3, start=11)
    info = ProcResolver(str(tmp_path))(50)
    assert info is not None and info["ppid"] == 3 and info["start_key"] == "proc:11"


def test_the_start_time_tells_a_reused_pid_apart(tmp_path: Path) -> None:
    make_proc(tmp_path / "before", 9, start=100)
    make_proc(tmp_path / "after", 9, start=200)
    a = ProcResolver(str(tmp_path / "before"))(9)
    b = ProcResolver(str(tmp_path / "after"))(9)
    assert a is not None and b is not None and a["start_key"] != b["start_key"]


def test_argv_bytes_that_are_not_utf8_are_escaped_and_kept(tmp_path: Path) -> None:
    make_proc(tmp_path, 7, cmdline=b"/tmp/.x\x00\xff\xfe\x00caf\xc3\xa9\x00\x00")
    info = ProcResolver(str(tmp_path))(7)
    assert info is not None and info["args"] == ["/tmp/.x", "\\xff\\xfe", "café"]


def test_a_kernel_thread_has_no_exe_and_no_args(tmp_path: Path) -> None:
    make_proc(tmp_path, 2, comm="kthreadd", ppid=0, exe=None, cmdline=b"", cwd="/")
    info = ProcResolver(str(tmp_path))(2)
    assert info == {"ppid": 0, "start_key": "proc:4242", "executable": None, "cwd": "/"}


def test_unreadable_parts_are_left_out(tmp_path: Path) -> None:
    # no permission (another user's process without CAP_SYS_PTRACE) looks like absent links/files
    make_proc(tmp_path, 8, exe=None, cwd=None, cmdline=None)
    info = ProcResolver(str(tmp_path))(8)
    assert info == {"ppid": 1, "start_key": "proc:4242", "executable": None}


def test_a_gone_process_or_a_malformed_stat_is_none_and_counted(tmp_path: Path) -> None:
    make_proc(tmp_path, 5, stat=b"5 (short) S\n")
    make_proc(tmp_path, 6, stat=b"6 (x) S notanumber " + b"0 " * 30 + b"\n")
    r = ProcResolver(str(tmp_path))
    assert r(4) is None  # exited: no /proc/4
    assert r(5) is None  # too few fields
    assert r(6) is None  # ppid not a number
    assert (r.lookups, r.found) == (3, 0)


def test_the_real_proc_for_this_process() -> None:
    info = ProcResolver()(os.getpid())
    assert info is not None
    assert info["ppid"] == os.getppid()
    assert info["executable"] == os.path.realpath(sys.executable)
    assert info["cwd"] == os.getcwd()
    assert info["args"][0] == sys.argv[0] or Path(info["args"][0]).name.startswith("python")
    assert info["start_key"].startswith("proc:") and int(info["start_key"][5:]) > 0
