"""Syscall numbers that matter to the detector, per audit arch (`arch=` in SYSCALL records).

Sources: the kernels' syscall tables as reproduced by laurel and go-libaudit (see the shared auditd-format
spec, section 5).  i386/arm/s390x programs may connect through socketcall(2) with a0 = SYS_CONNECT (3).
io_uring_setup (425 everywhere) is decoded for the hardened rule pack: io_uring's own operations (connect
included) bypass syscall audit rules.
"""

from __future__ import annotations

from typing import Dict, Optional

EXECVE = "execve"
EXECVEAT = "execveat"
CONNECT = "connect"
SOCKETCALL = "socketcall"
ACCEPT = "accept"
ACCEPT4 = "accept4"
IO_URING_SETUP = "io_uring_setup"

ARCH_X86_64 = 0xC000003E
ARCH_I386 = 0x40000003
ARCH_AARCH64 = 0xC00000B7
ARCH_ARM = 0x40000028
ARCH_PPC64 = 0x80000015
ARCH_PPC64LE = 0xC0000015
ARCH_S390X = 0x80000016
ARCH_RISCV64 = 0xC00000F3

ARCH_NAMES: Dict[int, str] = {
    ARCH_X86_64: "x86_64",
    ARCH_I386: "i386",
    ARCH_AARCH64: "aarch64",
    ARCH_ARM: "arm",
    ARCH_PPC64: "ppc64",
    ARCH_PPC64LE: "ppc64le",
    ARCH_S390X: "s390x",
    ARCH_RISCV64: "riscv64",
}

# io_uring_setup is 425 on every architecture (the unified syscall numbering of Linux 5.1+).
_GENERIC = {221: EXECVE, 281: EXECVEAT, 203: CONNECT, 202: ACCEPT, 242: ACCEPT4, 425: IO_URING_SETUP}

_PPC64 = {11: EXECVE, 362: EXECVEAT, 328: CONNECT, 102: SOCKETCALL, 330: ACCEPT, 344: ACCEPT4, 425: IO_URING_SETUP}

SYSCALLS: Dict[int, Dict[int, str]] = {
    ARCH_X86_64: {59: EXECVE, 322: EXECVEAT, 42: CONNECT, 43: ACCEPT, 288: ACCEPT4, 425: IO_URING_SETUP},
    ARCH_I386: {11: EXECVE, 358: EXECVEAT, 362: CONNECT, 102: SOCKETCALL, 364: ACCEPT4, 425: IO_URING_SETUP},
    ARCH_AARCH64: _GENERIC,
    ARCH_RISCV64: _GENERIC,
    ARCH_ARM: {11: EXECVE, 387: EXECVEAT, 283: CONNECT, 285: ACCEPT, 366: ACCEPT4, 425: IO_URING_SETUP},
    ARCH_PPC64: _PPC64,
    ARCH_PPC64LE: _PPC64,
    ARCH_S390X: {11: EXECVE, 354: EXECVEAT, 362: CONNECT, 102: SOCKETCALL, 364: ACCEPT4, 425: IO_URING_SETUP},
}

# socketcall(2) call numbers (a0), from linux/net.h.
SOCKETCALL_CALLS = {3: CONNECT, 5: ACCEPT, 18: ACCEPT4}

# Names written by ENRICHED `SYSCALL=` or `ausearch -i` (`syscall=execve`), accepted when the number is absent.
_BY_NAME = {EXECVE, EXECVEAT, CONNECT, SOCKETCALL, ACCEPT, ACCEPT4, IO_URING_SETUP}


def syscall_name(arch: Optional[int], number: Optional[int]) -> Optional[str]:
    """Name of the syscall if it is one the detector uses, else None."""
    if number is None:
        return None
    table = SYSCALLS.get(arch if arch is not None else ARCH_X86_64)
    if table is None:
        return None
    return table.get(number)


def name_from_text(text: bytes) -> Optional[str]:
    """For interpreted logs: `syscall=execve`."""
    s = text.decode("ascii", "replace")
    return s if s in _BY_NAME else None


ERRNO_NAMES = {
    0: "success", 1: "EPERM", 2: "ENOENT", 4: "EINTR", 11: "EAGAIN", 13: "EACCES", 22: "EINVAL",
    97: "EAFNOSUPPORT", 98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 101: "ENETUNREACH", 103: "ECONNABORTED",
    104: "ECONNRESET", 106: "EISCONN", 110: "ETIMEDOUT", 111: "ECONNREFUSED", 113: "EHOSTUNREACH",
    114: "EALREADY", 115: "EINPROGRESS",
}


def errno_name(exit_code: Optional[int]) -> Optional[str]:
    if exit_code is None:
        return None
    if exit_code >= 0:
        return "success"
    return ERRNO_NAMES.get(-exit_code, f"E{-exit_code}")
