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

This module only builds ECS: every audit field comes parsed from `audit.events` (`parse` once per event,
`details` for the deferred fields), the one way from audit/ into ecs/.  Only fields rules are likely to test
are built at once; the rest (user, group, auditd.*, tags, entity ids, argv) is deferred until a rule reads it
or the event is written out (see event.py).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Dict, List, Optional, Tuple

from ..audit import events as ae
from ..audit.events import AuditEvent, Raw, Syscall
from .event import EcsEvent, LazyArgs
from .process_table import UNSET_SESSION, Proc, ProcessTable

# Fields added by the deferred filler; reading any of them triggers it.
OUTPUT_KEYS = frozenset({
    "event.kind", "event.module", "event.outcome", "host.name", "user.id", "user.name", "user.effective.id",
    "user.audit.id", "group.id", "tags", "auditd.sequence", "auditd.session", "auditd.result",
    "auditd.data.syscall", "auditd.data.exit", "auditd.data.errno", "auditd.data.arch", "process.tty.name",
    "process.parent.args", "process.entry_leader.entity_id",
})

# argv bytes the process table keeps per process (events themselves keep up to MAX_EXECVE_BYTES)
TABLE_ARGV_BYTES = 4096

_EXEC = (ae.EXECVE, ae.EXECVEAT)
_NETWORK = (ae.CONNECT, ae.ACCEPT, ae.ACCEPT4)


class NormalizeStats:
    """The ECS events built, by kind (Pipeline.stats() reports them)."""

    __slots__ = ("exec", "network")

    def __init__(self) -> None:
        self.exec = 0
        self.network = 0


class Normalizer:
    def __init__(self, host_id: str, host_name: str, table: Optional[ProcessTable] = None,
                 self_pid: Optional[int] = None) -> None:
        """`self_pid`: events of this pid and of its children are ignored (the agent's own)."""
        self.host_id = host_id
        self.host_name = host_name
        self.table = table if table is not None else ProcessTable(host_id)
        self._node_tables: Dict[bytes, ProcessTable] = {}
        self.self_pid = self_pid
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
        s = ae.parse(ev)
        if s is None:  # no SYSCALL record, or one without pid/ppid
            return None
        pid, ppid = s.pid, s.ppid
        me = self.self_pid
        if me is not None and (pid == me or ppid == me):
            return None
        name = s.name
        node = s.node
        table = self.table if not node else self._table_for(node)
        if name in _EXEC and s.success:
            return self._exec(s, table)
        proc = table.observe(pid, ppid, s.exe, s.ts_ms, s.uid, s.ses)
        if name in _NETWORK:
            sa = s.sockaddr
            if sa is not None and sa.ip is not None and (sa.family == ae.AF_INET or sa.family == ae.AF_INET6):
                return self._network(s, sa, table, proc)
        elif name == ae.IO_URING_SETUP:
            return self._uring(s, table, proc)
        return None

    # -- shared fields ---------------------------------------------------------------------------------

    def _host(self, node: bytes) -> Tuple[str, str]:
        if node:
            n = node.decode("utf-8", "backslashreplace")
            return n, n
        return self.host_id, self.host_name

    @staticmethod
    def _event(s: Syscall, d: Dict[str, Any], host_name: str, p: Proc, parent: Optional[Proc],
               args: Optional[LazyArgs], cwd: bool) -> EcsEvent:
        """Add the process and parent block (the table's interned strings, shared by held events) to the
        eager fields `d` of any event, and wrap them.  The filler of the deferred output fields keeps only
        what it needs — the SYSCALL record, parsed again when the fields are read, and the serial — not the
        whole audit event: rules may hold events for a while."""
        d["process.pid"] = p.pid
        if s.exe:
            d["process.executable"] = p.executable  # == s.exe (exec/observe just set it)
            d["process.name"] = p.name
        if cwd:
            d["process.working_directory"] = p.cwd
        if parent is not None:
            d["process.parent.pid"] = parent.pid
            if parent.executable:
                d["process.parent.executable"] = parent.executable
                d["process.parent.name"] = parent.name
            parent_args = parent.args
        else:
            parent_args = None
        lead = p.leader
        if lead is not None:
            d["process.entry_leader.pid"] = lead.pid
            if lead.executable:
                d["process.entry_leader.executable"] = lead.executable
                d["process.entry_leader.name"] = lead.name
            if p.leader_type:
                d["process.entry_leader.entry_meta.type"] = p.leader_type
        record = s.record
        assert record is not None  # parse() returned the event: it has its SYSCALL record
        filler = partial(fill_output, record, s.serial, s.name, host_name, p)
        return EcsEvent(d, s.ts_ms, 0, args, parent_args, filler, OUTPUT_KEYS, p, parent)

    # -- exec -------------------------------------------------------------------------------------------

    def _exec(self, s: Syscall, table: ProcessTable) -> EcsEvent:
        self.stats.exec += 1
        records = s.execve
        args = LazyArgs(ae.rebuild_cut if s.execve_cut else ae.rebuild_argv, records) if records else None
        table_args = args
        if records and s.execve_bytes > TABLE_ARGV_BYTES:
            table_args = table_argv(records)
        ts_ms, ppid, cwd, node = s.ts_ms, s.ppid, s.cwd, s.node
        parent = table.parent(ppid, ts_ms)
        p = table.exec(s.pid, ppid, s.exe, table_args, cwd, ts_ms, s.uid, s.ses, s.tty, parent)
        if node:
            host_id, host_name = self._host(node)
        else:
            host_id, host_name = self.host_id, self.host_name
        d: Dict[str, Any] = {
            "event.category": ["process"],
            "event.type": ["start"],
            "event.action": "exec",
            "host.id": host_id,
            "host.os.type": "linux",
        }
        return self._event(s, d, host_name, p, parent, args, cwd is not None)

    # -- network ----------------------------------------------------------------------------------------

    def _network(self, s: Syscall, sa: ae.SockAddr, table: ProcessTable, proc: Proc) -> EcsEvent:
        self.stats.network += 1
        host_id, host_name = self._host(s.node)
        accepted = s.name != ae.CONNECT
        side = "source" if accepted else "destination"
        d: Dict[str, Any] = {
            "event.category": ["network"],
            "event.type": ["start"],
            "event.action": "connection_accepted" if accepted else "connection_attempted",
            "host.id": host_id,
            "host.os.type": "linux",
            f"{side}.ip": sa.ip,
            "network.type": "ipv6" if sa.family == ae.AF_INET6 else "ipv4",
        }
        if sa.address != sa.ip:
            d[f"{side}.address"] = sa.address
        if sa.port is not None:
            d[f"{side}.port"] = sa.port
        parent = table.parent_of(proc, s.ts_ms)
        return self._event(s, d, host_name, proc, parent, proc.args, proc.cwd is not None and proc.exec_seen)

    # -- io_uring_setup ---------------------------------------------------------------------------------

    def _uring(self, s: Syscall, table: ProcessTable, proc: Proc) -> EcsEvent:
        """A process setting up an io_uring instance: the only io_uring step syscall rules can see."""
        host_id, host_name = self._host(s.node)
        d: Dict[str, Any] = {
            "event.category": ["process"],
            "event.type": ["info"],
            "event.action": "io_uring_setup",
            "host.id": host_id,
            "host.os.type": "linux",
        }
        parent = table.parent_of(proc, s.ts_ms)
        return self._event(s, d, host_name, proc, parent, proc.args, proc.cwd is not None and proc.exec_seen)


def table_argv(records: List[Raw]) -> LazyArgs:
    """The argv the process table keeps of a large exec: a process's argv serves its later events and its
    children's, so it is capped at TABLE_ARGV_BYTES."""
    return LazyArgs.of(ae.capped_argv(records, TABLE_ARGV_BYTES), truncated=True)


def fill_output(record: Raw, serial: int, name: Optional[str], host_name: str, proc: Proc, d: EcsEvent) -> None:
    f = ae.details(record)
    exit_code = f.exit
    d["event.kind"] = "event"
    d["event.module"] = "auditd"
    d["host.name"] = host_name
    d["auditd.sequence"] = serial
    d["auditd.data.syscall"] = name
    d["auditd.data.exit"] = exit_code
    if f.arch is not None:
        d["auditd.data.arch"] = ae.arch_name(f.arch)
    if f.uid is not None:
        d["user.id"] = f.uid
    if f.euid is not None:
        d["user.effective.id"] = f.euid
    if f.gid is not None:
        d["group.id"] = f.gid
    if f.auid is not None and f.auid != UNSET_SESSION:
        d["user.audit.id"] = str(f.auid)
    if f.ses is not None and f.ses != UNSET_SESSION:
        d["auditd.session"] = str(f.ses)
    if f.tags is not None:
        d["tags"] = f.tags
    if f.user_name is not None:
        d["user.name"] = f.user_name
    if d["event.category"] == ["network"] or name == ae.IO_URING_SETUP:
        d["auditd.result"] = "success" if f.success else "fail"
        d["auditd.data.errno"] = ae.errno_name(exit_code)
        d["event.outcome"] = "success" if exit_code is not None and exit_code >= 0 else (
            "unknown" if exit_code == -115 else "failure")
    else:
        d["event.outcome"] = "success"
        if f.tty is not None:
            d["process.tty.name"] = f.tty
    lead = proc.leader
    if lead is not None and "process.entry_leader.pid" in d:
        d["process.entry_leader.entity_id"] = lead.entity_id
