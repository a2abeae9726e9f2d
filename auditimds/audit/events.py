"""The one way from audit/ into ecs/: a reassembled `AuditEvent` in, the same event typed (`Syscall`) out.

`parse(ev)` reads the event's SYSCALL record and, only where the syscall needs them, its other records:

* every event: the SYSCALL fields the process table and the ECS builder read at once (arch, the syscall's
  detector name, success, exit, pid/ppid, uid, ses, exe) and the event's identity (node, time, serial);
* execve/execveat that succeeded: the working directory (CWD record) and the tty; the EXECVE records stay
  raw in `Syscall.execve`, and argv is rebuilt from them only when read (`rebuild_argv`, `rebuild_cut`,
  `capped_argv`);
* connect/accept/accept4 (also through socketcall): the SOCKADDR record, decoded (`sockaddr.SockAddr`).

The fields few consumers read (euid, gid, auid, key, the ENRICHED user name...) are not parsed here:
`details(syscall.record)` parses them from the raw SYSCALL record when an event is written out or a rule
reads one of them.  Nothing else of `audit/` is needed to build ECS documents, so this module is the seam a
faster implementation of the parsing can replace.

Speed: SYSCALL records are read with one precompiled regex for the kernel's fixed field order (generic
key=value parsing is the fallback for other layouts, e.g. `ausearch -i` output).  The value rules are those
of records.py (docs/specs/ holds the auditd format spec).
"""

from __future__ import annotations

import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from . import syscalls as sc
from .execve import rebuild_argv
from .reassembly import AuditEvent, Raw
from .records import decode, decode_str, enrichment, kernel_part, parse_fields
from .sockaddr import AF_INET, AF_INET6, SockAddr, decode_sockaddr, is_little_endian

__all__ = [
    "ACCEPT", "ACCEPT4", "AF_INET", "AF_INET6", "CONNECT", "EXECVE", "EXECVEAT", "IO_URING_SETUP", "AuditEvent",
    "Details", "Raw", "SockAddr", "Syscall", "arch_name", "capped_argv", "decode_path", "details", "errno_name",
    "parse", "rebuild_argv", "rebuild_cut", "syscall_name",
]

# The detector's syscall names (see syscalls.py), for the consumers of `Syscall.name`.
EXECVE = sc.EXECVE
EXECVEAT = sc.EXECVEAT
CONNECT = sc.CONNECT
ACCEPT = sc.ACCEPT
ACCEPT4 = sc.ACCEPT4
IO_URING_SETUP = sc.IO_URING_SETUP

_ARCH_BY_NAME = {v.encode(): k for k, v in sc.ARCH_NAMES.items()}
_ARCH_BY_NAME[b"x86-64"] = sc.ARCH_X86_64

# The kernel writes SYSCALL fields in this order (audit_log_exit / audit_log_task_info); `per=` is optional.
# The numbers converted are bounded (16 hex digits, 18 decimal digits: they fit 64 bits); a record beyond the
# bounds takes the generic path, exactly like a record of another layout.  The compiled core
# (auditimds/csrc/core.c, ic_parse_syscall) matches this pattern and takes the same decisions.
SYSCALL_RE = re.compile(
    rb" ?arch=([0-9a-fA-F]{1,16}) syscall=(\d+) (?:per=\w+ )?success=(\w+) exit=(-?\d{1,18}) a0=(\w+) a1=\w+"
    rb" a2=\w+ a3=\w+ items=\d+ ppid=(\d{1,18}) pid=(\d{1,18}) auid=\d+ uid=(\d{1,18}) gid=\d+ euid=\d+"
    rb" suid=\d+ fsuid=\d+ egid=\d+ sgid=\d+ fsgid=\d+ tty=(\S+) ses=(\d{1,18}) comm=\S+ exe=(\S+)"
)

_NETWORK = frozenset({sc.CONNECT, sc.ACCEPT, sc.ACCEPT4})
# syscall= as written (decimal) -> name, per arch: no int() for the usual record
_NAMES_BY_ARCH: Dict[int, Dict[bytes, str]] = {
    arch: {str(n).encode(): name for n, name in table.items()} for arch, table in sc.SYSCALLS.items()}
_CWD_UNKNOWN = ("<too_long>", "<no_memory>")


# The typed event ECS is built from: the reassembled event itself, its parsed slots filled in by `parse`
# (see AuditEvent for the fields).
Syscall = AuditEvent


class Details(NamedTuple):
    """The SYSCALL fields only written out (`details`), parsed again from the raw record when needed."""

    arch: Optional[int]
    exit: Optional[int]
    success: bool
    uid: Optional[str]
    euid: Optional[str]
    gid: Optional[str]
    auid: Optional[int]
    ses: Optional[int]
    tags: Optional[List[str]]  # key=, split at \x01 (several -k of one rule); None without a key
    tty: Optional[str]  # None when absent or "(none)"
    user_name: Optional[str]  # UID="name" of the ENRICHED tail


_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__


_INT64 = 1 << 63


def _int(v: Optional[bytes], base: int = 10) -> Optional[int]:
    """A number field; None when absent, malformed or beyond 64 bits (signed), as the compiled core holds them."""
    if v is None:
        return None
    try:
        x = int(v, base)
    except ValueError:
        return None
    return x if -_INT64 <= x < _INT64 else None


def _arch(v: Optional[bytes]) -> Optional[int]:
    if v is None:
        return None
    try:
        return int(v, 16)
    except ValueError:
        return _ARCH_BY_NAME.get(v)


def syscall_name(arch: Optional[int], num: Optional[bytes], a0: Optional[bytes]) -> Optional[str]:
    """The detector's name of `syscall=` (a number, or a name in interpreted logs); socketcall resolved
    through its call number in a0."""
    if num is None:
        return None
    name = sc.syscall_name(arch, _int(num)) if num.isdigit() else sc.name_from_text(num)
    if name == sc.SOCKETCALL:
        return sc.SOCKETCALL_CALLS.get(_int(a0, 16) or -1)
    return name


def decode_path(v: Optional[bytes]) -> Optional[str]:
    """A path value (exe=, cwd=): quoted text, or hex of the raw bytes."""
    if v is None:
        return None
    if v[:1] == b'"' and v[-1:] == b'"':
        try:
            return v[1:-1].decode("ascii")
        except UnicodeDecodeError:
            return v[1:-1].decode("utf-8", "backslashreplace")
    return decode_str(v)


def _value_of(line: bytes, off: int, name: bytes) -> Optional[bytes]:
    """Raw value of field `name` (with its '=' e.g. b"cwd=") in a short record, without a full parse."""
    i = line.find(name, off)
    if i < 0:
        return None
    i += len(name)
    j = line.find(b" ", i)
    k = line.find(b"\x1d", i)
    if k >= 0 and (j < 0 or k < j):
        j = k
    return line[i:] if j < 0 else line[i:j]


GenericSyscall = Tuple[Optional[int], Optional[str], bool, Optional[int], int, int, Optional[int], Optional[int],
                       Optional[bytes], Optional[bytes]]


def generic_syscall(line: bytes, off: int) -> Optional[GenericSyscall]:
    """A SYSCALL record that SYSCALL_RE does not match, read as key=value pairs: (arch, name, success, exit,
    pid, ppid, uid, ses, exe, tty), the last two raw; None without pid or ppid.  The compiled core asks this
    function for every such record."""
    f = parse_fields(kernel_part(line, off))
    pid, ppid = _int(f.get(b"pid")), _int(f.get(b"ppid"))
    if pid is None or ppid is None:
        return None
    arch = _arch(f.get(b"arch"))
    return (arch, syscall_name(arch, f.get(b"syscall"), f.get(b"a0")), f.get(b"success") == b"yes",
            _int(f.get(b"exit")), pid, ppid, _int(f.get(b"uid")), _int(f.get(b"ses")), f.get(b"exe"), f.get(b"tty"))


def cwd_slow(line: bytes, off: int) -> Optional[str]:
    """The working directory of a CWD record in any form (the compiled core's fallback)."""
    cwd = decode_path(_value_of(line, off, b"cwd="))
    return None if cwd in _CWD_UNKNOWN else cwd


def parse(ev: AuditEvent) -> Optional[Syscall]:
    """The event's `Syscall`; None when it has no SYSCALL record or one without pid/ppid."""
    raw = ev.record
    if raw is None:
        return None
    line, off = raw
    m = SYSCALL_RE.match(line, off)
    if m is not None:
        a, num, succ, ex, a0, ppid_b, pid_b, uid_b, tty_b, ses_b, exe_b = m.groups()
        arch16 = int(a, 16)
        arch: Optional[int] = arch16
        success = succ == b"yes"
        exit_code: Optional[int] = int(ex)
        ppid, pid = int(ppid_b), int(pid_b)
        uid: Optional[int] = int(uid_b)
        ses: Optional[int] = int(ses_b)
        # syscall_name(), inlined: one dict lookup for the usual numeric syscall=
        names = _NAMES_BY_ARCH.get(arch16)
        if names is not None and num in names:
            name: Optional[str] = names[num]
            if name == sc.SOCKETCALL:
                name = sc.SOCKETCALL_CALLS.get(_int(a0, 16) or -1)
        else:
            name = syscall_name(arch, num, a0)
    else:  # another layout, or numbers beyond the pattern's bounds
        g = generic_syscall(line, off)
        if g is None:
            return None
        arch, name, success, exit_code, pid, ppid, uid, ses, exe_b, tty_b = g
    tty = cwd = None
    sa = None
    if name == sc.EXECVE or name == sc.EXECVEAT:
        if success:
            if tty_b is not None:
                tty = tty_b.decode("ascii", "replace")
            c = ev.cwd_record
            if c is not None:
                cline, coff = c
                # the usual record, ` cwd="/path"` and nothing after it: decode_path(_value_of(...)) inlined
                v = None
                # a slice compare, not startswith(): startswith's argument parsing cost 14 M instructions
                # over host-a's 26 k execs
                if cline[coff : coff + 6] == b' cwd="' and cline.find(b'"', coff + 6) == len(cline) - 1:
                    v = cline[coff + 6 : -1]
                # find(), not `in`: bytes.__contains__ first tries the operand as an int, and raising that
                # TypeError costs more than the search
                if v is not None and v.find(b" ") < 0 and v.find(b"\x1d") < 0:
                    cwd = v.decode("utf-8", "backslashreplace")
                else:
                    cwd = decode_path(_value_of(cline, coff, b"cwd="))
                if cwd in _CWD_UNKNOWN:
                    cwd = None
    elif name in _NETWORK and ev.sockaddr_record is not None:
        sline, soff = ev.sockaddr_record
        sraw = decode(_value_of(sline, soff, b"saddr="))
        if sraw:
            sa = decode_sockaddr(sraw, is_little_endian(arch))
    # decode_path(exe_b), its usual case inlined
    exe: Optional[str]
    if exe_b is not None and exe_b[:1] == b'"' and exe_b[-1:] == b'"':
        exe = exe_b[1:-1].decode("utf-8", "backslashreplace")  # == decode_path's ascii-then-utf-8
    else:
        exe = decode_path(exe_b)
    ev.arch = arch
    ev.name = name
    ev.success = success
    ev.exit = exit_code
    ev.pid = pid
    ev.ppid = ppid
    ev.uid = uid
    ev.ses = ses
    ev.exe = exe
    ev.tty = tty
    ev.cwd = cwd
    ev.sockaddr = sa
    return ev


def details(record: Raw) -> Details:
    """The fields of a SYSCALL record that `Syscall` leaves out (and arch, exit, success again)."""
    line, off = record
    f = parse_fields(kernel_part(line, off))
    uid, euid, gid = f.get(b"uid"), f.get(b"euid"), f.get(b"gid")
    key = decode(f.get(b"key"))
    tty = f.get(b"tty")
    return _new(Details, (
        _arch(f.get(b"arch")),
        _int(f.get(b"exit")),
        f.get(b"success") == b"yes",
        uid.decode("ascii", "replace") if uid is not None else None,
        euid.decode("ascii", "replace") if euid is not None else None,
        gid.decode("ascii", "replace") if gid is not None else None,
        _int(f.get(b"auid")),
        _int(f.get(b"ses")),
        [k.decode("utf-8", "backslashreplace") for k in key.split(b"\x01") if k] if key else None,
        tty.decode("ascii", "replace") if tty and tty != b"(none)" else None,
        _user_name(line, off),
    ))


def arch_name(arch: int) -> str:
    return sc.ARCH_NAMES.get(arch, f"{arch:x}")


def errno_name(exit_code: Optional[int]) -> Optional[str]:
    return sc.errno_name(exit_code)


def _user_name(line: bytes, off: int) -> Optional[str]:
    """UID="name" from the ENRICHED tail, if present (quoted or hex like every encoded name)."""
    tail = enrichment(line, off)
    if not tail:
        return None
    i = tail.find(b" UID=")
    if i < 0:
        if not tail.startswith(b"UID="):
            return None
        i = -1
    v = tail[i + 5 :].split(b" ", 1)[0]
    if not v or v == b'"unset"':
        return None
    name = decode_str(v)
    if name is None or name.startswith("unknown("):
        return None
    return name


def rebuild_cut(records: Sequence[Raw]) -> Tuple[List[str], bool]:
    """argv of an event whose EXECVE data was cut at the reassembler's budget: always truncated."""
    argv, _ = rebuild_argv(records)
    return argv, True


def capped_argv(records: Sequence[Raw], limit: int) -> List[str]:
    """argv with at most `limit` bytes of arguments (counted in characters of the decoded text): the last
    kept argument is cut to fit, the rest dropped."""
    argv, _trunc = rebuild_argv(records)
    capped: List[str] = []
    total = 0
    for a in argv:
        if total + len(a) > limit:
            capped.append(a[: max(0, limit - total)])
            break
        capped.append(a)
        total += len(a)
    return capped

