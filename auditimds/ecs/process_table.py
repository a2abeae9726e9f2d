"""Process table: what we know about each pid, from the audit events seen so far.

* An exec event gives a process its executable, name, argv, cwd and parent.  Any other syscall record of
  a pid shows its current executable too (a shell's failed PATH lookups, a connect), which fills parents
  whose exec happened before the log starts.
* `entity_id` identifies one process (not one image): like Elastic Defend it stays the same across exec and
  changes on pid reuse.  Without fork/exit auditing pid reuse is inferred: the same pid with a different
  parent (other than a re-parent to init) or a different audit session is a new process.  The id is a
  hash of (host id, pid, first time seen), so the same log always gives the same ids.
* Unknown parents may be filled by a resolver (the live daemon reads /proc for its own host); otherwise a
  placeholder with no executable is created, so `process.parent.executable` is missing, not guessed.
* Memory is bounded: least-recently-touched entries beyond `max_entries` are dropped.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from collections import OrderedDict
from typing import Callable, Optional

from .event import LazyArgs

UNSET_SESSION = 4294967295
CONTAINER_RUNTIMES = frozenset({"containerd-shim", "containerd-shim-runc-v2", "runc", "conmon", "crun"})


def entity_id_of(host_id: str, pid: int, start_key: Optional[str], start_ms: int) -> str:
    """A process's entity id: base64(blake2b(host id, pid, start)); the start is `start_key` (from /proc) when
    known, else the time the process was first seen.  The compiled core's processes use it too."""
    key = start_key if start_key is not None else str(start_ms)
    h = hashlib.blake2b(f"{host_id}\x00{pid}\x00{key}".encode(), digest_size=15)
    return base64.urlsafe_b64encode(h.digest()).decode("ascii")


class Proc:
    __slots__ = (
        "pid", "ppid", "executable", "name", "args", "cwd", "start_ms", "start_key", "host_id", "_entity_id",
        "uid", "ses", "tty", "leader", "leader_type", "exec_seen", "parent_proc",
    )

    def __init__(self, pid: int, host_id: str, start_key: Optional[str], start_ms: int) -> None:
        self.pid = pid
        self.ppid: Optional[int] = None
        self.executable: Optional[str] = None
        self.name: Optional[str] = None
        self.args: Optional[LazyArgs] = None
        self.cwd: Optional[str] = None
        self.start_ms = start_ms
        self.start_key = start_key  # None: the first time seen (start_ms) identifies the process
        self.host_id = host_id
        self._entity_id: Optional[str] = None
        self.uid: Optional[int] = None
        self.ses: Optional[int] = None
        self.tty: Optional[str] = None
        self.leader: Optional[Proc] = None  # entry leader, when derivable
        self.leader_type: Optional[str] = None
        self.exec_seen = False
        # the parent when the process was first seen (its fork-time parent, as Elastic Defend reports it);
        # stays the same when the process is re-parented to init or a subreaper after its parent exits
        self.parent_proc: Optional[Proc] = None

    @property
    def entity_id(self) -> str:
        """Hash of (host id, pid, start); computed on first use (most are never read)."""
        eid = self._entity_id
        if eid is None:
            eid = self._entity_id = entity_id_of(self.host_id, self.pid, self.start_key, self.start_ms)
        return eid

    def __repr__(self) -> str:
        return f"Proc({self.pid}, ppid={self.ppid}, exe={self.executable!r}, start={self.start_key})"


# A resolver returns facts about a live pid (executable, ppid, start time...) or None.
Resolver = Callable[[int], Optional[dict]]


def basename(path: Optional[str]) -> Optional[str]:
    if not path:
        return None
    return sys.intern(path.rsplit("/", 1)[-1]) or None


def _intern(s: Optional[str]) -> Optional[str]:
    """Executables, directories and ttys repeat across thousands of processes: keep one copy of each."""
    return sys.intern(s) if s is not None else None


class ProcessTable:
    def __init__(self, host_id: str, max_entries: int = 16384, resolver: Optional[Resolver] = None) -> None:
        self.host_id = host_id
        self.max_entries = max_entries
        self.resolver = resolver
        self._procs: "OrderedDict[int, Proc]" = OrderedDict()
        self.dropped = 0
        self.pid_reuse = 0

    def __len__(self) -> int:
        return len(self._procs)

    def get(self, pid: int) -> Optional[Proc]:
        return self._procs.get(pid)

    def _new(self, pid: int, ts_ms: int, start_key: Optional[str] = None) -> Proc:
        p = Proc(pid, self.host_id, start_key, ts_ms)
        procs = self._procs
        procs[pid] = p
        if len(procs) > self.max_entries:
            procs.popitem(last=False)
            self.dropped += 1
        return p

    def _touch(self, pid: int) -> None:
        self._procs.move_to_end(pid)

    @staticmethod
    def _same_process(p: Proc, ppid: int, ses: Optional[int], reparent_ok: bool) -> bool:
        if not reparent_ok and p.ppid is not None and p.ppid != ppid and ppid != 1:
            return False
        if p.ses is not None and ses is not None and p.ses != ses:
            return False
        return True

    def _current(self, pid: int, ppid: int, ses: Optional[int], ts_ms: int, reparent_ok: bool = False) -> Proc:
        """The process `pid` is now.  At exec, another parent means another process (pid reuse); on any
        other syscall it means the process was re-parented (its parent exited): the same process."""
        p = self._procs.get(pid)
        if p is None:
            return self._new(pid, ts_ms)
        if not self._same_process(p, ppid, ses, reparent_ok):
            self.pid_reuse += 1
            return self._new(pid, ts_ms)
        self._touch(pid)
        return p

    def parent_of(self, p: Proc, ts_ms: int) -> Optional[Proc]:
        """The parent to report for a non-exec event of `p`: the one it had when first seen, else the
        current one."""
        if p.parent_proc is not None:
            return p.parent_proc
        return self.parent(p.ppid, ts_ms) if p.ppid is not None else None

    def parent(self, ppid: int, ts_ms: int) -> Proc:
        """The process `ppid` as known now; created (from the resolver, or as a placeholder) if unknown."""
        p = self._procs.get(ppid)
        if p is not None:
            self._touch(ppid)
            return p
        info = self.resolver(ppid) if self.resolver is not None else None
        if info:
            p = self._new(ppid, ts_ms, start_key=info.get("start_key"))
            p.executable = info.get("executable")
            p.name = basename(p.executable)
            p.ppid = info.get("ppid")
            if info.get("args") is not None:
                p.args = LazyArgs.of(list(info["args"]))
            p.cwd = info.get("cwd")
            return p
        return self._new(ppid, ts_ms)

    def observe(self, pid: int, ppid: int, executable: Optional[str], ts_ms: int,
                uid: Optional[int] = None, ses: Optional[int] = None) -> Proc:
        """Any syscall record of `pid` (not a successful exec): learn its current executable."""
        p = self._current(pid, ppid, ses, ts_ms, reparent_ok=True)
        if p.parent_proc is None and p.ppid is None:
            p.parent_proc = self._procs.get(ppid)
        p.ppid = ppid
        if executable and p.executable != executable:
            p.executable = _intern(executable)
            p.name = basename(executable)
            p.args = None  # argv of another image would be wrong
        if uid is not None:
            p.uid = uid
        if ses is not None:
            p.ses = ses
        return p

    def exec(self, pid: int, ppid: int, executable: Optional[str], args: Optional[LazyArgs],
             cwd: Optional[str], ts_ms: int, uid: Optional[int] = None, ses: Optional[int] = None,
             tty: Optional[str] = None, parent: Optional[Proc] = None) -> Proc:
        """A successful execve/execveat: the process keeps its entity id and takes a new image."""
        p = self._current(pid, ppid, ses, ts_ms)
        if p.parent_proc is None or p.ppid != ppid:
            p.parent_proc = parent if parent is not None else self._procs.get(ppid)
        p.ppid = ppid
        p.executable = _intern(executable)
        p.name = basename(executable)
        p.args = args
        if cwd is not None:
            p.cwd = _intern(cwd)
        p.uid = uid
        if ses is not None:
            p.ses = ses
        p.tty = _intern(tty)
        p.exec_seen = True
        self._entry_leader(p)
        return p

    def _entry_leader(self, p: Proc) -> None:
        """ECS entry leader, following Elastic's open algorithm as far as audit data allows."""
        if p.pid <= 2 or p.ppid in (0, 2) or p.ppid is None:
            p.leader, p.leader_type = None, None
            return
        if p.leader is p:  # an entry leader that execs stays the entry leader
            return
        parent = self._procs.get(p.ppid)
        if parent is not None and parent.leader is not None and parent.ses == p.ses:
            p.leader, p.leader_type = parent.leader, parent.leader_type
        elif p.ppid == 1:
            p.leader, p.leader_type = p, "init"
        elif parent is not None and parent.name == "sshd" and p.name != "sshd":
            p.leader, p.leader_type = p, "sshd"
        elif parent is not None and parent.name in CONTAINER_RUNTIMES:
            p.leader, p.leader_type = p, "container"
        elif (p.ses not in (None, UNSET_SESSION) and parent is not None and parent.ses is not None
              and parent.ses != p.ses):
            p.leader, p.leader_type = p, ("terminal" if p.tty and p.tty != "(none)" else "unknown")
        else:
            p.leader, p.leader_type = None, None
