from __future__ import annotations

import pytest

from auditimds.audit import syscalls as sc


@pytest.mark.parametrize(
    "arch,num,name",
    [
        (0xC000003E, 59, "execve"), (0xC000003E, 322, "execveat"), (0xC000003E, 42, "connect"),
        (0x40000003, 11, "execve"), (0x40000003, 358, "execveat"), (0x40000003, 362, "connect"),
        (0x40000003, 102, "socketcall"),
        (0xC00000B7, 221, "execve"), (0xC00000B7, 281, "execveat"), (0xC00000B7, 203, "connect"),
        (0xC00000F3, 221, "execve"),
        (0x40000028, 387, "execveat"), (0x40000028, 283, "connect"),
        (0x80000015, 328, "connect"), (0x80000016, 354, "execveat"),
    ],
)
def test_syscall_numbers(arch, num, name):
    assert sc.syscall_name(arch, num) == name


def test_numbers_are_per_arch():
    # 59 is execve on x86_64 but not on i386 or aarch64
    assert sc.syscall_name(0x40000003, 59) is None
    assert sc.syscall_name(0xC00000B7, 59) is None
    assert sc.syscall_name(0xC000003E, 221) is None
    assert sc.syscall_name(0x12345678, 59) is None


def test_socketcall_connect_and_errno_names():
    assert sc.SOCKETCALL_CALLS[3] == "connect"
    assert sc.errno_name(-115) == "EINPROGRESS"
    assert sc.errno_name(0) == "success"
    assert sc.errno_name(-999) == "E999"
