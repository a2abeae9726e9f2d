"""Reassemble interleaved audit records into events.

Events are keyed by (node, "sec.msec:serial").  An event completes on:

* EOE (plugin streams; auditd never writes EOE to audit.log), or PROCTITLE, the last record of a syscall
  event;
* a timeout in log time: the log moved `log_timeout` seconds past the newest second seen when the event
  last received a record (auparse's end_of_event_timeout, made robust to events written late with an old
  stamp), checked whenever the log's second advances;
* a timeout in wall-clock time passed in by the caller (`expire(now)`): no record for it since
  `wall_timeout` seconds, so the last event of a quiet log is not held forever;
* eviction: more than `max_in_flight` events open; the oldest is flushed and counted;
* `flush()` at the end of input.

Records of an event that was already completed (a late EOE, a duplicate) are dropped and counted.  The
reassembler never reads the clock: "now" is always an argument.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from .records import RELEVANT_TYPES, parse_event_id, split_header
from .sockaddr import SockAddr

Raw = Tuple[bytes, int]  # (line, offset of the body)

COMPLETE_PROCTITLE = "proctitle"
COMPLETE_EOE = "eoe"
COMPLETE_TIMEOUT = "timeout"
COMPLETE_EVICTED = "evicted"
COMPLETE_FLUSH = "flush"


class AuditEvent:
    """One audit event: the records the detector reads, raw, then (after `events.parse`) its typed fields.

    The reassembler fills the first group of slots.  `events.parse(ev)` fills the second in place and
    returns the same object as a `Syscall`: one object per event whichever stage reads it (a second object
    per event cost ~1 % of a scan in allocation and copies).  Until then the parsed slots are unset.
    """

    __slots__ = (
        # set by the reassembler
        "node", "ts_ms", "serial", "record", "execve", "cwd_record", "sockaddr_record", "last_wall",
        "seen_sec", "completed_by", "execve_bytes", "execve_cut",
        # set by events.parse
        "arch", "name", "success", "exit", "pid", "ppid", "uid", "ses", "exe", "tty", "cwd", "sockaddr",
    )

    node: bytes  # node= of an aggregated log, b"" otherwise
    ts_ms: int
    serial: int
    record: Optional[Raw]  # the SYSCALL record (line, body offset)
    execve: List[Raw]  # the EXECVE records, raw (argv is rebuilt on first read)
    cwd_record: Optional[Raw]
    sockaddr_record: Optional[Raw]
    last_wall: float
    seen_sec: int  # newest log second when this event last received a record
    completed_by: str
    execve_bytes: int
    execve_cut: bool  # EXECVE data beyond MAX_EXECVE_BYTES was dropped
    # parsed (see events.py)
    arch: Optional[int]  # AUDIT_ARCH_* (e.g. 0xC000003E)
    name: Optional[str]  # the detector's name of the syscall (socketcall resolved), None for any other
    success: bool
    exit: Optional[int]
    pid: int
    ppid: int
    uid: Optional[int]
    ses: Optional[int]
    exe: Optional[str]
    tty: Optional[str]  # read for successful execs only (the process table keeps it), else None
    cwd: Optional[str]  # idem; None when absent or unknown to the kernel (<too_long>, <no_memory>)
    sockaddr: Optional[SockAddr]  # for connect/accept/accept4 with a SOCKADDR record whose address decodes

    def __init__(self, node: bytes, sec: int, msec: int, serial: int) -> None:
        self.node = node
        self.ts_ms = sec * 1000 + msec
        self.serial = serial
        self.record = None
        self.execve = []
        self.cwd_record = None
        self.sockaddr_record = None
        self.last_wall = 0.0
        self.seen_sec = sec
        self.completed_by = ""
        self.execve_bytes = 0
        self.execve_cut = False

    def __repr__(self) -> str:
        sec, msec = divmod(self.ts_ms, 1000)
        return f"AuditEvent({self.node!r}, {sec}.{msec:03d}:{self.serial}, by={self.completed_by})"


# EXECVE bytes kept per event: argv is attacker-controlled (up to ~2 MB per exec, hex-encoded twice that);
# beyond this the records are dropped (counted) and the argv is marked truncated.
MAX_EXECVE_BYTES = 64 * 1024


class ReassemblyStats:
    __slots__ = ("events", "evicted", "timed_out", "late_records", "bad_ids", "execve_dropped")

    def __init__(self) -> None:
        self.execve_dropped = 0
        self.events = 0
        self.evicted = 0
        self.timed_out = 0
        self.late_records = 0
        self.bad_ids = 0

    def as_dict(self) -> Dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class Reassembler:
    def __init__(
        self,
        emit: Callable[[AuditEvent], None],
        *,
        max_in_flight: int = 4096,
        log_timeout: int = 2,
        wall_timeout: float = 2.0,
        done_memory: int = 16384,
    ) -> None:
        self._emit = emit
        self.max_in_flight = max_in_flight
        self.log_timeout = log_timeout
        self.wall_timeout = wall_timeout
        self._inflight: Dict[bytes, AuditEvent] = {}
        # recently completed keys, oldest first (OrderedDict: popping the oldest is O(1); on a plain dict,
        # next(iter(d)) after many deletions at the front scans the dead slots every time)
        self._done: "OrderedDict[bytes, None]" = OrderedDict()
        self._done_memory = done_memory
        self._newest_sec = 0
        self.stats = ReassemblyStats()

    def __len__(self) -> int:
        return len(self._inflight)

    def feed(self, lines: Iterable[bytes], now: float) -> Tuple[int, int]:
        """Push a batch of lines; returns (relevant records, malformed lines).

        This is the per-line hot path: for the usual `type=T msg=audit(` form the type is read with one
        `find` and tested against RELEVANT_TYPES before anything else is built; only other forms (node=,
        syslog prefixes) go through `split_header`.
        """
        relevant = RELEVANT_TYPES
        msg = b" msg=audit("
        push = self.push
        records = malformed = 0
        for line in lines:
            if line[:5] == b"type=":
                m = line.find(msg, 5)
                if m < 0:
                    malformed += 1
                    continue
                rtype = line[5:m]
                if rtype not in relevant:
                    continue
                close = line.find(b"):", m + 11)
                if close < 0:
                    malformed += 1
                    continue
                records += 1
                push(b"", rtype, line[m + 11 : close], close + 2, line, now)
                continue
            if not line or line.isspace():
                continue
            h = split_header(line)
            if h is None:
                malformed += 1
            elif h.rtype in relevant:
                records += 1
                push(h.node, h.rtype, h.eid, h.body, line, now)
        return records, malformed

    def push(self, node: bytes, rtype: bytes, eid: bytes, body: int, line: bytes, now: float) -> None:
        """Add one record (already known to be of a relevant type)."""
        key = node + b"\x00" + eid if node else eid
        ev = self._inflight.get(key)
        if ev is None:
            if key in self._done:
                self.stats.late_records += 1
                return
            if rtype == b"EOE":  # EOE of an event we never saw a record of: nothing to complete
                return
            ids = parse_event_id(eid)
            if ids is None:
                self.stats.bad_ids += 1
                return
            sec = ids[0]
            ev = AuditEvent(node, sec, ids[1], ids[2])
            self._inflight[key] = ev
            if sec > self._newest_sec:
                advanced = self._newest_sec != 0
                self._newest_sec = sec
                if advanced:
                    self._expire_log_time(key)
            if len(self._inflight) > self.max_in_flight:
                self._evict_oldest()
        # most frequent first: every event has SYSCALL and PROCTITLE, execs add CWD and EXECVE
        if rtype == b"PROCTITLE":  # the event's last record: complete it, nothing of the record is kept
            self._complete(key, ev, COMPLETE_PROCTITLE)
            return
        ev.last_wall = now
        ev.seen_sec = self._newest_sec
        raw = (line, body)
        if rtype == b"SYSCALL":
            ev.record = raw
        elif rtype == b"CWD":
            ev.cwd_record = raw
        elif rtype == b"EXECVE":
            size = len(line) - body
            if ev.execve_bytes + size <= MAX_EXECVE_BYTES or not ev.execve:
                ev.execve_bytes += size
                if size > MAX_EXECVE_BYTES:
                    raw = (line[: body + MAX_EXECVE_BYTES], body)
                    ev.execve_cut = True
                ev.execve.append(raw)
            else:
                ev.execve_cut = True
                self.stats.execve_dropped += 1
        elif rtype == b"SOCKADDR":
            ev.sockaddr_record = raw
        elif rtype == b"EOE":
            self._complete(key, ev, COMPLETE_EOE)

    def _complete(self, key: bytes, ev: AuditEvent, why: str) -> None:
        del self._inflight[key]
        done = self._done
        done[key] = None
        if len(done) > self._done_memory:
            done.popitem(last=False)
        ev.completed_by = why
        self.stats.events += 1
        self._emit(ev)

    def _expire_log_time(self, keep: bytes) -> None:
        limit = self._newest_sec - self.log_timeout
        stale = [(k, e) for k, e in self._inflight.items() if e.seen_sec <= limit and k != keep]
        for k, e in stale:
            self.stats.timed_out += 1
            self._complete(k, e, COMPLETE_TIMEOUT)

    def _evict_oldest(self) -> None:
        k = next(iter(self._inflight))
        self.stats.evicted += 1
        self._complete(k, self._inflight[k], COMPLETE_EVICTED)

    def expire(self, now: float) -> None:
        """Complete events that received no record for `wall_timeout` seconds of wall-clock time."""
        limit = now - self.wall_timeout
        stale = [(k, e) for k, e in self._inflight.items() if e.last_wall <= limit]
        for k, e in stale:
            self.stats.timed_out += 1
            self._complete(k, e, COMPLETE_TIMEOUT)

    def flush(self) -> None:
        """End of input: complete everything still open, oldest first."""
        for k, e in list(self._inflight.items()):
            self._complete(k, e, COMPLETE_FLUSH)

class Reorder:
    """Release events in (time, serial) order, holding each at most `window_ms` of log time.

    Elasticsearch evaluates sequences over events sorted by timestamp; the kernel stamps an event at
    syscall entry but it is written at exit, so a blocking call's records come late with an old stamp.
    Events are held until the log has moved `window_ms` past them (or until `release_all`), and are
    released with a monotonically increasing arrival number used as the tiebreaker downstream.

    Memory stays bounded whatever the clock does: an event older than what was already released (a late
    event, or time going backwards after a clock step, a reboot or concatenated logs) is released at
    once and counted in `late`, and at most `max_held` events are held (the oldest go first).
    """

    def __init__(self, emit: Callable[[AuditEvent, int], None], window_ms: int = 2000,
                 max_held: int = 5000) -> None:
        self._emit = emit
        self.window_ms = window_ms
        self.max_held = max_held
        self._heap: List[Tuple[int, int, int, AuditEvent]] = []
        self._arrival = 0
        self._released = 0
        self._newest = 0
        self._frontier = -1  # newest time released so far
        self.late = 0

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def frontier(self) -> int:
        """Time (ms) of the newest event released so far; -1 before the first."""
        return self._frontier

    def push(self, ev: AuditEvent) -> None:
        ts = ev.ts_ms
        self._arrival += 1
        if self.window_ms <= 0 or ts < self._frontier:
            self._release(ev)
            return
        heap = self._heap
        heapq.heappush(heap, (ts, ev.serial, self._arrival, ev))
        if ts > self._newest:
            self._newest = ts
            self.release_until(ts - self.window_ms)
        if len(heap) > self.max_held:
            self._release(heapq.heappop(heap)[3])

    def release_until(self, ts_ms: int) -> None:
        heap = self._heap
        while heap and heap[0][0] <= ts_ms:
            self._release(heapq.heappop(heap)[3])

    def release_all(self) -> None:
        heap = self._heap
        while heap:
            self._release(heapq.heappop(heap)[3])

    def _release(self, ev: AuditEvent) -> None:
        self._released += 1
        ts = ev.ts_ms
        if ts < self._frontier:
            self.late += 1
        else:
            self._frontier = ts
        self._emit(ev, self._released)
