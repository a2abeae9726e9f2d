"""The per-line hot path: audit.log lines in, ECS events out in time order, one behaviour in two cores.

* `PyCore`, the reference: `audit/reassembly` (Reassembler, Reorder) then `ecs/normalize` (Normalizer and
  its process table), in Python.
* `CCore`: the compiled extension `auditimds._core` (sources in `auditimds/csrc/`), which does the same in C:
  line splitting, headers, the type filter, reassembly with its timeouts, ordering, SYSCALL/CWD/SOCKADDR
  parsing, the process table, and the ECS events themselves — built from the reference's own types
  (`EcsEvent`, `LazyArgs`) and helpers, passed in from here.  Rare forms (another SYSCALL layout, hex paths,
  IPv6 addresses, argv) are handed to the reference's functions, so the two agree by construction;
  `tests/test_core_differential.py` holds them to it, byte for byte.

`make_core` picks the compiled core when it was built and `AUDITIMDS_PURE` is not set to 1; `core_info()`
says which is in use and why (for `auditimds --version` and `doctor`).

Both take `feed(data, now)` with `data` either one buffer (bytes, memoryview) of whole lines separated by
b"\\n" (split as `bytes.split` does) or a list of lines, and call `emit(ev)` for every ECS event, in order,
its `seq` set.
"""

from __future__ import annotations

import os
from functools import partial
from types import ModuleType, SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .audit.reassembly import AuditEvent, Reassembler, Reorder
from .ecs.event import EcsEvent
from .ecs.normalize import Normalizer
from .ecs.process_table import ProcessTable, Resolver

PURE_ENV = "AUDITIMDS_PURE"

Data = Union[bytes, memoryview, List[bytes]]
Emit = Callable[[EcsEvent], None]


def _load_compiled() -> Tuple[Optional[ModuleType], str]:
    """The compiled module, or None and why not."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return None, f"{PURE_ENV}={os.environ[PURE_ENV]} is set"
    try:
        from . import _core  # type: ignore[attr-defined]  # built by setup.py, absent from a pure install
    except ImportError as e:
        return None, f"the compiled module is not installed ({e})"
    return _core, ""


def core_info() -> Tuple[str, str]:
    """("compiled", "") or ("pure-Python", why): which core `make_core` gives in this process."""
    mod, why = _load_compiled()
    return ("compiled", "") if mod is not None else ("pure-Python", why)


class PyCore:
    """The reference core (see the module docstring)."""

    def __init__(self, emit: Emit, host_id: str, host_name: str, *, resolver: Optional[Resolver] = None,
                 self_pid: Optional[int] = None, reorder_ms: int = 2000, max_in_flight: int = 4096,
                 log_timeout: int = 2, wall_timeout: float = 2.0, max_procs: int = 16384) -> None:
        if max_in_flight < 1 or max_procs < 1:
            raise ValueError("max_in_flight and max_procs must be >= 1")
        self._emit = emit
        self.table = ProcessTable(host_id, max_procs, resolver=resolver)
        self.normalizer = Normalizer(host_id, host_name, self.table, self_pid=self_pid)
        self.reorder = Reorder(self._ordered, reorder_ms)
        self.reassembler = Reassembler(self.reorder.push, max_in_flight=max_in_flight, log_timeout=log_timeout,
                                       wall_timeout=wall_timeout)
        self._lines = self._malformed = self._records = 0

    def feed(self, data: Data, now: float) -> None:
        lines = data if isinstance(data, list) else bytes(data).split(b"\n")
        records, malformed = self.reassembler.feed(lines, now)
        self._lines += len(lines)
        self._malformed += malformed
        self._records += records

    def _ordered(self, aev: AuditEvent, seq: int) -> None:
        ev = self.normalizer.normalize(aev)
        # Rules may hold events for a while (sequence windows): keep only the raw records that deferred
        # fields still read (SYSCALL for the output fields, EXECVE for argv); the others are already parsed.
        aev.cwd_record = aev.sockaddr_record = None
        if ev is not None:
            ev.seq = seq
            self._emit(ev)

    def expire(self, now: float) -> None:
        self.reassembler.expire(now)

    def flush(self) -> None:
        self.reassembler.flush()

    def release_all(self) -> None:
        self.reorder.release_all()

    def process(self, pid: int) -> Any:
        return self.table.get(pid)

    @property
    def pending(self) -> int:
        return len(self.reassembler) + len(self.reorder)

    @property
    def frontier(self) -> int:
        return self.reorder.frontier

    @property
    def node_tables(self) -> int:
        return len(self.normalizer.node_tables)

    def counters(self) -> Dict[str, int]:
        return {
            "lines": self._lines, "malformed": self._malformed, "records": self._records,
            **self.reassembler.stats.as_dict(), "late_events": self.reorder.late,
            "exec": self.normalizer.stats.exec, "network": self.normalizer.stats.network,
            "processes": len(self.table), "pid_reuse": self.table.pid_reuse, "dropped": self.table.dropped,
        }


_HELPERS: Optional[SimpleNamespace] = None


def _helpers() -> SimpleNamespace:
    """The reference's types and functions the compiled core builds events with and falls back on."""
    global _HELPERS
    if _HELPERS is None:
        from .audit import events as ae
        from .audit import syscalls as sc
        from .ecs import normalize
        from .ecs.event import LazyArgs
        from .ecs.process_table import CONTAINER_RUNTIMES, entity_id_of

        _HELPERS = SimpleNamespace(
            EcsEvent=EcsEvent, LazyArgs=LazyArgs, OUTPUT_KEYS=normalize.OUTPUT_KEYS,
            fill_output=normalize.fill_output, partial=partial, rebuild_argv=ae.rebuild_argv,
            rebuild_cut=ae.rebuild_cut, table_argv=normalize.table_argv, lazyargs_of=LazyArgs.of,
            generic_syscall=ae.generic_syscall, syscall_name=ae.syscall_name, decode_path=ae.decode_path,
            cwd_slow=ae.cwd_slow, decode_sockaddr=ae.decode_sockaddr, entity_id_of=entity_id_of,
            CONTAINER_RUNTIMES=CONTAINER_RUNTIMES, SYSCALLS=sc.SYSCALLS, SOCKETCALL_CALLS=sc.SOCKETCALL_CALLS,
        )
    return _HELPERS


def _seed() -> Tuple[int, int]:
    """The key of the compiled core's hash tables (SipHash): random, so crafted event ids cannot collide."""
    b = os.urandom(16)
    return int.from_bytes(b[:8], "little", signed=True), int.from_bytes(b[8:], "little", signed=True)


def make_core(emit: Emit, host_id: str, host_name: str, *, resolver: Optional[Resolver] = None,
              self_pid: Optional[int] = None, reorder_ms: int = 2000, max_in_flight: int = 4096,
              log_timeout: int = 2, wall_timeout: float = 2.0, max_procs: int = 16384,
              pure: Optional[bool] = None) -> Any:
    """The compiled core if available (unless `pure`), else the reference."""
    mod = None if pure else _load_compiled()[0]
    if mod is None:
        return PyCore(emit, host_id, host_name, resolver=resolver, self_pid=self_pid, reorder_ms=reorder_ms,
                      max_in_flight=max_in_flight, log_timeout=log_timeout, wall_timeout=wall_timeout,
                      max_procs=max_procs)
    return mod.Core(emit, _helpers(), host_id, host_name, resolver=resolver, self_pid=self_pid,
                    reorder_ms=reorder_ms, max_in_flight=max_in_flight, log_timeout=log_timeout,
                    wall_timeout=float(wall_timeout), max_procs=max_procs, seed=_seed())
