"""Audit events -> ECS events shaped like Elastic Defend's Linux process and network events.

* successful execve/execveat -> event.category ["process"], event.type ["start"], event.action "exec";
* connect (also socketcall(SYS_CONNECT) and accept/accept4 where audited) on an IPv4/IPv6 socket ->
  event.category ["network"], event.type ["start"], event.action "connection_attempted" (or
  "connection_accepted"), for every attempt whatever its result; the result is kept in `auditd.result`,
  `auditd.data.exit`, `auditd.data.errno` and `event.outcome`;
* io_uring_setup (where audited: io_uring's own connects are invisible to syscall audit rules) ->
  event.category ["process"], event.type ["info"], event.action "io_uring_setup", with the process fields of
  a network event and the result in `event.outcome`, `auditd.data.exit`, `auditd.data.errno`.

Every SYSCALL record also updates the process table (see process_table.py).

Speed: SYSCALL records are read with one precompiled regex for the kernel's fixed field order (generic
key=value parsing is the fallback for other layouts, e.g. `ausearch -i` output).  Only fields rules are
likely to test are built at once; the rest (user, group, auditd.*, tags, entity ids, argv) is deferred
until a rule reads it or the event is written out (see event.py).
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any, Callable, Dict, Optional, Tuple

from ..audit import syscalls as sc
from ..audit.execve import rebuild_argv
from ..audit.reassembly import AuditEvent
from ..audit.records import decode, decode_str, enrichment, kernel_part, parse_fields
from ..audit.sockaddr import AF_INET, AF_INET6, decode_sockaddr, is_little_endian
from .event import EcsEvent, LazyArgs
from .process_table import UNSET_SESSION, Proc, ProcessTable

_ARCH_BY_NAME = {v.encode(): k for k, v in sc.ARCH_NAMES.items()}
_ARCH_BY_NAME[b"x86-64"] = sc.ARCH_X86_64

# The kernel writes SYSCALL fields in this order (audit_log_exit / audit_log_task_info); `per=` is optional.
_SYSCALL_RE = re.compile(
    rb" ?arch=([0-9a-fA-F]+) syscall=(\d+) (?:per=\w+ )?success=(\w+) exit=(-?\d+) a0=(\w+) a1=\w+ a2=\w+"
    rb" a3=\w+ items=\d+ ppid=(\d+) pid=(\d+) auid=\d+ uid=(\d+) gid=\d+ euid=\d+ suid=\d+ fsuid=\d+"
    rb" egid=\d+ sgid=\d+ fsgid=\d+ tty=(\S+) ses=(\d+) comm=\S+ exe=(\S+)"
)

# Fields added by the deferred filler; reading any of them triggers it.
OUTPUT_KEYS = frozenset({
    "event.kind", "event.module", "event.outcome", "host.name", "user.id", "user.name", "user.effective.id",
    "user.audit.id", "group.id", "tags", "auditd.sequence", "auditd.session", "auditd.result",
    "auditd.data.syscall", "auditd.data.exit", "auditd.data.errno", "auditd.data.arch", "process.tty.name",
    "process.parent.args", "process.entry_leader.entity_id",
})

# argv bytes the process table keeps per process (events themselves keep up to MAX_EXECVE_BYTES)
TABLE_ARGV_BYTES = 4096

Syscall = Tuple[Optional[int], Optional[bytes], bool, Optional[int], Optional[bytes], int, int,
                Optional[int], Optional[bytes], Optional[int], Optional[bytes]]


def _int(v: Optional[bytes], base: int = 10) -> Optional[int]:
    if v is None:
        return None
    try:
        return int(v, base)
    except ValueError:
        return None


def _arch(v: Optional[bytes]) -> Optional[int]:
    if v is None:
        return None
    try:
        return int(v, 16)
    except ValueError:
        return _ARCH_BY_NAME.get(v)


def read_syscall(line: bytes, off: int) -> Optional[Syscall]:
    """(arch, syscall, success, exit, a0, ppid, pid, uid, tty, ses, exe raw) of a SYSCALL record."""
    m = _SYSCALL_RE.match(line, off)
    if m is not None:
        a, num, succ, ex, a0, ppid, pid, uid, tty, ses, exe = m.groups()
        return (int(a, 16), num, succ == b"yes", int(ex), a0, int(ppid), int(pid), int(uid), tty, int(ses), exe)
    f = parse_fields(kernel_part(line, off))
    pid = _int(f.get(b"pid"))
    ppid = _int(f.get(b"ppid"))
    if pid is None or ppid is None:
        return None
    return (_arch(f.get(b"arch")), f.get(b"syscall"), f.get(b"success") == b"yes", _int(f.get(b"exit")),
            f.get(b"a0"), ppid, pid, _int(f.get(b"uid")), f.get(b"tty"), _int(f.get(b"ses")), f.get(b"exe"))


def _decode_path(v: Optional[bytes]) -> Optional[str]:
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


class NormalizeStats:
    __slots__ = ("exec", "network", "uring", "other", "no_syscall", "bad_syscall")

    def __init__(self) -> None:
        self.exec = 0
        self.network = 0
        self.uring = 0
        self.other = 0
        self.no_syscall = 0
        self.bad_syscall = 0

    def as_dict(self) -> Dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class Normalizer:
    def __init__(self, host_id: str, host_name: str, table: Optional[ProcessTable] = None,
                 ignore_pid: Optional[Callable[[int, int], bool]] = None) -> None:
        self.host_id = host_id
        self.host_name = host_name
        self.table = table if table is not None else ProcessTable(host_id)
        self._node_tables: Dict[bytes, ProcessTable] = {}
        self.ignore_pid = ignore_pid
        self.stats = NormalizeStats()

    @property
    def node_tables(self) -> Dict[bytes, ProcessTable]:
        """Process tables of the hosts named by node= (aggregated logs)."""
        return self._node_tables

    def _table_for(self, node: bytes) -> ProcessTable:
        if not node:
            return self.table
        t = self._node_tables.get(node)
        if t is None:
            t = ProcessTable(node.decode("utf-8", "backslashreplace"), self.table.max_entries)
            self._node_tables[node] = t
        return t

    def normalize(self, ev: AuditEvent) -> Optional[EcsEvent]:
        raw = ev.syscall
        if raw is None:
            self.stats.no_syscall += 1
            return None
        s = read_syscall(raw[0], raw[1])
        if s is None:
            self.stats.bad_syscall += 1
            return None
        arch, num, success, _exit, a0, ppid, pid, uid, tty, ses, exe_raw = s
        if num is None:
            name = None
        elif num.isdigit():
            name = sc.syscall_name(arch, int(num))
        else:
            name = sc.name_from_text(num)
        if name is None and num is not None and not num.isdigit():
            name = None
        if self.ignore_pid is not None and self.ignore_pid(pid, ppid):
            return None
        if name == sc.SOCKETCALL:
            name = sc.SOCKETCALL_CALLS.get(_int(a0, 16) or -1)
        ts_ms = ev.sec * 1000 + ev.msec
        table = self._table_for(ev.node)
        exe = _decode_path(exe_raw)
        if success and (name == sc.EXECVE or name == sc.EXECVEAT):
            return self._exec(ev, s, table, pid, ppid, exe, uid, ses, tty, ts_ms, name)
        proc = table.observe(pid, ppid, exe, ts_ms, uid, ses)
        if ev.sockaddr is not None and (name == sc.CONNECT or name == sc.ACCEPT or name == sc.ACCEPT4):
            return self._network(ev, s, table, proc, exe, ts_ms, name)
        if name == sc.IO_URING_SETUP:
            return self._uring(ev, s, table, proc, exe, ts_ms, name)
        self.stats.other += 1
        return None

    # -- shared fields ---------------------------------------------------------------------------------

    def _host(self, ev: AuditEvent) -> Tuple[str, str]:
        if ev.node:
            node = ev.node.decode("utf-8", "backslashreplace")
            return node, node
        return self.host_id, self.host_name

    @staticmethod
    def _filler(aev: AuditEvent, name: str, host_name: str, proc: Proc) -> Callable[[EcsEvent], None]:
        """Deferred output fields of one event (see EcsEvent).  Rules may hold events for a while, so this
        keeps only what it needs — the SYSCALL record, parsed again when the fields are read, and the serial —
        not the whole audit event."""
        line, off = aev.syscall  # type: ignore[misc]
        return partial(_fill_output, line, off, aev.serial, name, host_name, proc)

    @staticmethod
    def _leader_fields(d: Dict[str, Any], p: Proc) -> None:
        lead = p.leader
        if lead is None:
            return
        d["process.entry_leader.pid"] = lead.pid
        if lead.executable:
            d["process.entry_leader.executable"] = lead.executable
            d["process.entry_leader.name"] = lead.name
        if p.leader_type:
            d["process.entry_leader.entry_meta.type"] = p.leader_type

    # -- exec -------------------------------------------------------------------------------------------

    def _exec(self, ev: AuditEvent, s: Syscall, table: ProcessTable, pid: int, ppid: int,
              exe: Optional[str], uid: Optional[int], ses: Optional[int], tty: Optional[bytes], ts_ms: int,
              name: str) -> EcsEvent:
        self.stats.exec += 1
        records = ev.execve
        args = LazyArgs(_rebuild_cut if ev.execve_cut else rebuild_argv, records) if records else None
        table_args = args
        if records and ev.execve_bytes > TABLE_ARGV_BYTES:
            # the process table keeps a process's argv for its later events and its children's: cap it
            argv, _trunc = rebuild_argv(records)
            capped, total = [], 0
            for a in argv:
                if total + len(a) > TABLE_ARGV_BYTES:
                    capped.append(a[: max(0, TABLE_ARGV_BYTES - total)])
                    break
                capped.append(a)
                total += len(a)
            table_args = LazyArgs.of(capped, truncated=True)
        cwd = None
        if ev.cwd is not None:
            cwd = _decode_path(_value_of(ev.cwd[0], ev.cwd[1], b"cwd="))
            if cwd in ("<too_long>", "<no_memory>"):
                cwd = None
        parent = table.parent(ppid, ts_ms)
        p = table.exec(pid, ppid, exe, table_args, cwd, ts_ms, uid, ses,
                       tty.decode("ascii", "replace") if tty is not None else None, parent)
        host_id, host_name = self._host(ev)
        d: Dict[str, Any] = {
            "event.category": ["process"],
            "event.type": ["start"],
            "event.action": "exec",
            "host.id": host_id,
            "host.os.type": "linux",
            "process.pid": pid,
            "process.parent.pid": ppid,
        }
        if exe:
            d["process.executable"] = p.executable  # the table's interned copy: held events share it
            d["process.name"] = p.name
        if cwd is not None:
            d["process.working_directory"] = p.cwd
        if parent.executable:
            d["process.parent.executable"] = parent.executable
            d["process.parent.name"] = parent.name
        if p.leader is not None:
            self._leader_fields(d, p)
        return EcsEvent(d, ts_ms, 0, args, parent.args, self._filler(ev, name, host_name, p),
                        OUTPUT_KEYS, p, parent)

    # -- network ----------------------------------------------------------------------------------------

    def _network(self, ev: AuditEvent, s: Syscall, table: ProcessTable, proc: Proc, exe: Optional[str],
                 ts_ms: int, name: str) -> Optional[EcsEvent]:
        sline, soff = ev.sockaddr  # type: ignore[misc]
        raw = decode(_value_of(sline, soff, b"saddr="))
        sa = decode_sockaddr(raw, is_little_endian(s[0])) if raw else None
        if sa is None or sa.ip is None or (sa.family != AF_INET and sa.family != AF_INET6):
            self.stats.other += 1
            return None
        self.stats.network += 1
        host_id, host_name = self._host(ev)
        accepted = name != sc.CONNECT
        side = "source" if accepted else "destination"
        d: Dict[str, Any] = {
            "event.category": ["network"],
            "event.type": ["start"],
            "event.action": "connection_accepted" if accepted else "connection_attempted",
            "host.id": host_id,
            "host.os.type": "linux",
            f"{side}.ip": sa.ip,
            "network.type": "ipv6" if sa.family == AF_INET6 else "ipv4",
            "process.pid": proc.pid,
        }
        if sa.address != sa.ip:
            d[f"{side}.address"] = sa.address
        if sa.port is not None:
            d[f"{side}.port"] = sa.port
        if exe:
            d["process.executable"] = proc.executable  # == exe (observe just set it), interned
            d["process.name"] = proc.name
        if proc.cwd is not None and proc.exec_seen:
            d["process.working_directory"] = proc.cwd
        parent = table.parent_of(proc, ts_ms)
        if parent is not None:
            d["process.parent.pid"] = parent.pid
            if parent.executable:
                d["process.parent.executable"] = parent.executable
                d["process.parent.name"] = parent.name
        if proc.leader is not None:
            self._leader_fields(d, proc)
        return EcsEvent(d, ts_ms, 0, proc.args, parent.args if parent is not None else None,
                        self._filler(ev, name, host_name, proc), OUTPUT_KEYS, proc, parent)


    # -- io_uring_setup ---------------------------------------------------------------------------------

    def _uring(self, ev: AuditEvent, s: Syscall, table: ProcessTable, proc: Proc, exe: Optional[str],
               ts_ms: int, name: str) -> EcsEvent:
        """A process setting up an io_uring instance: the only io_uring step syscall rules can see."""
        self.stats.uring += 1
        host_id, host_name = self._host(ev)
        d: Dict[str, Any] = {
            "event.category": ["process"],
            "event.type": ["info"],
            "event.action": "io_uring_setup",
            "host.id": host_id,
            "host.os.type": "linux",
            "process.pid": proc.pid,
        }
        if exe:
            d["process.executable"] = proc.executable  # == exe (observe just set it), interned
            d["process.name"] = proc.name
        if proc.cwd is not None and proc.exec_seen:
            d["process.working_directory"] = proc.cwd
        parent = table.parent_of(proc, ts_ms)
        if parent is not None:
            d["process.parent.pid"] = parent.pid
            if parent.executable:
                d["process.parent.executable"] = parent.executable
                d["process.parent.name"] = parent.name
        if proc.leader is not None:
            self._leader_fields(d, proc)
        return EcsEvent(d, ts_ms, 0, proc.args, parent.args if parent is not None else None,
                        self._filler(ev, name, host_name, proc), OUTPUT_KEYS, proc, parent)


def _rebuild_cut(records: Any) -> "Tuple[list, bool]":
    """argv of an event whose EXECVE data was cut at the reassembler's budget: always truncated."""
    argv, _ = rebuild_argv(records)
    return argv, True


def _fill_output(line: bytes, off: int, serial: int, name: str, host_name: str, proc: Proc, d: EcsEvent) -> None:
    f = parse_fields(kernel_part(line, off))
    arch = _arch(f.get(b"arch"))
    exit_code = _int(f.get(b"exit"))
    d["event.kind"] = "event"
    d["event.module"] = "auditd"
    d["host.name"] = host_name
    d["auditd.sequence"] = serial
    d["auditd.data.syscall"] = name
    d["auditd.data.exit"] = exit_code
    if arch is not None:
        d["auditd.data.arch"] = sc.ARCH_NAMES.get(arch, f"{arch:x}")
    for key, field in ((b"uid", "user.id"), (b"euid", "user.effective.id"), (b"gid", "group.id")):
        v = f.get(key)
        if v is not None:
            d[field] = v.decode("ascii", "replace")
    auid = _int(f.get(b"auid"))
    if auid is not None and auid != UNSET_SESSION:
        d["user.audit.id"] = str(auid)
    ses = _int(f.get(b"ses"))
    if ses is not None and ses != UNSET_SESSION:
        d["auditd.session"] = str(ses)
    key = decode(f.get(b"key"))
    if key:
        d["tags"] = [k.decode("utf-8", "backslashreplace") for k in key.split(b"\x01") if k]
    uname = _user_name(line, off)
    if uname is not None:
        d["user.name"] = uname
    if d["event.category"] == ["network"] or name == sc.IO_URING_SETUP:
        d["auditd.result"] = "success" if f.get(b"success") == b"yes" else "fail"
        d["auditd.data.errno"] = sc.errno_name(exit_code)
        d["event.outcome"] = "success" if exit_code is not None and exit_code >= 0 else (
            "unknown" if exit_code == -115 else "failure")
    else:
        d["event.outcome"] = "success"
        tty = f.get(b"tty")
        if tty and tty != b"(none)":
            d["process.tty.name"] = tty.decode("ascii", "replace")
    lead = proc.leader
    if lead is not None and "process.entry_leader.pid" in d:
        d["process.entry_leader.entity_id"] = lead.entity_id


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
