"""Wire the stages: lines -> records -> audit events -> (time order) -> ECS events -> rules -> alerts.

The per-line loop is here because it is the hot path: one `find` for the record header, one set lookup for
the type, and nothing else for the ~2/3 of lines (PATH, BPRM_FCAPS, user records...) the rules cannot use.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Sequence

from .alerts.document import build_alert
from .alerts.exceptions import ExceptionFilter
from .audit.reassembly import AuditEvent, Reassembler, Reorder
from .audit.records import parse_event_id, split_header
from .ecs.event import EcsEvent
from .ecs.normalize import Normalizer
from .ecs.process_table import ProcessTable, Resolver
from .rules.loader import Rule

log = logging.getLogger("auditimds")

class Counters:
    __slots__ = ("lines", "malformed", "records", "alerts", "rule_errors", "excepted")

    def __init__(self) -> None:
        self.lines = 0
        self.malformed = 0
        self.records = 0
        self.alerts = 0
        self.rule_errors = 0
        self.excepted = 0


class Pipeline:
    """One instance per input stream (a host's log, possibly several rotated files in order)."""

    def __init__(
        self,
        rules: Sequence[Rule],
        host_id: str,
        host_name: str,
        on_alert: Optional[Callable[[Dict[str, Any]], None]] = None,
        on_event: Optional[Callable[[EcsEvent], None]] = None,
        *,
        reorder_ms: int = 2000,
        max_in_flight: int = 4096,
        log_timeout: int = 2,
        wall_timeout: float = 2.0,
        resolver: Optional[Resolver] = None,
        ignore_pid: Optional[Callable[[int, int], bool]] = None,
        exceptions: Optional[ExceptionFilter] = None,
    ) -> None:
        self.rules = list(rules)
        self.on_alert = on_alert
        self.on_event = on_event
        self.counters = Counters()
        self.exceptions = exceptions
        self.table = ProcessTable(host_id, resolver=resolver)
        self.normalizer = Normalizer(host_id, host_name, self.table, ignore_pid=ignore_pid)
        self.reorder = Reorder(self._ordered, reorder_ms)
        self.reassembler = Reassembler(
            self.reorder.push, max_in_flight=max_in_flight, log_timeout=log_timeout, wall_timeout=wall_timeout
        )
        self._warned: set = set()
        self._multi_node = False
        self.set_rules(rules)

    def set_rules(self, rules: Sequence[Rule]) -> None:
        """Replace the rule set (config reload).  Pending sequences of the old rules are dropped."""
        self.rules = list(rules)
        by_category: Dict[str, List[Rule]] = {}
        for r in self.rules:
            cats = r.compiled.categories or {"any"}
            for c in cats:
                by_category.setdefault(c, []).append(r)
        any_rules = by_category.pop("any", [])
        # category -> ((rule, its process function), ...), rules for any category included: one dict lookup
        # per event, and nothing else for an event no rule can use
        self._dispatch = {c: tuple((r, r.compiled.process) for r in rs + any_rules) for c, rs in by_category.items()}
        self._dispatch_other = tuple((r, r.compiled.process) for r in any_rules)
        if self._multi_node:
            self._apply_skew()

    MULTI_NODE_SKEW_NS = 120 * 1_000_000_000

    def _apply_skew(self) -> None:
        for r in self.rules:
            r.compiled.skew_ns = self.MULTI_NODE_SKEW_NS

    @property
    def newest_ts_ms(self) -> int:
        """Time of the newest event released to the rules (log time, ms); -1 before the first."""
        return self.reorder.frontier

    @property
    def max_maxspan_ms(self) -> int:
        """The longest sequence window of the loaded rules (how far back a restart must re-read)."""
        spans = [r.compiled.maxspan or 0 for r in self.rules]
        return max(spans, default=0) // 1_000_000

    @property
    def pending(self) -> int:
        """Events still held by reassembly or ordering."""
        return len(self.reassembler) + len(self.reorder)

    # -- input ------------------------------------------------------------------------------------------

    @staticmethod
    def first_event_ms(lines: List[bytes], look: int = 50) -> Optional[int]:
        """The time (ms) in the header of the first of `lines` (among the first `look`) that has one."""
        for line in lines[:look]:
            h = split_header(line)
            if h is not None:
                ids = parse_event_id(h.eid)
                if ids is not None:
                    return ids[0] * 1000 + ids[1]
        return None

    def feed(self, lines: List[bytes], now: float) -> None:
        """Process a batch of complete lines (without newline characters)."""
        records, malformed = self.reassembler.feed(lines, now)
        c = self.counters
        c.lines += len(lines)
        c.malformed += malformed
        c.records += records

    def tick(self, now: float) -> None:
        """Wall-clock housekeeping for a live stream: complete events that stopped receiving records and
        release everything held for ordering."""
        self.reassembler.expire(now)
        self.reorder.release_all()

    def finish(self) -> None:
        """End of input: complete and evaluate everything still held."""
        self.reassembler.flush()
        self.reorder.release_all()

    # -- events -----------------------------------------------------------------------------------------

    def _ordered(self, aev: AuditEvent, seq: int) -> None:
        ev = self.normalizer.normalize(aev)
        # Rules may hold events for a while (sequence windows): keep only the raw records that deferred
        # fields still read (SYSCALL for the output fields, EXECVE for argv); the others are already parsed.
        aev.cwd_record = aev.sockaddr_record = None
        if ev is None:
            return
        ev.seq = seq
        if not self._multi_node and len(self.normalizer.node_tables) > 1:
            self._multi_node = True  # an aggregated log: hosts' clocks differ, let sequences tolerate it
            self._apply_skew()
        if self.on_event is not None:
            self.on_event(ev)
        cats = ev["event.category"]
        targets = self._dispatch.get(cats[0] if cats else "", self._dispatch_other)
        if not targets:
            return
        ts_ns = ev.ts_ms * 1_000_000
        for rule, process in targets:
            try:
                matches = process(ev, ts_ns, seq)
            except Exception as e:  # a rule bug must not stop detection by the other rules
                self.counters.rule_errors += 1
                if rule.rule_id not in self._warned:
                    self._warned.add(rule.rule_id)
                    log.warning("rule %s (%s) failed on an event: %s", rule.rule_id, rule.name, e)
                continue
            if not matches:
                continue
            for events in matches:
                exc = self.exceptions
                if exc and exc.matches(rule.rule_id, events):
                    self.counters.excepted += 1
                    continue
                self.counters.alerts += 1
                if self.on_alert is not None:
                    self.on_alert(build_alert(rule, events))

    def stats(self) -> Dict[str, Any]:
        c = self.counters
        return {
            "lines": c.lines,
            "malformed_lines": c.malformed,
            "records": c.records,
            "events": self.reassembler.stats.events,
            "exec_events": self.normalizer.stats.exec,
            "network_events": self.normalizer.stats.network,
            "alerts": c.alerts,
            "reassembly": self.reassembler.stats.as_dict(),
            "late_events": self.reorder.late,
            "rule_errors": c.rule_errors,
            "alerts_silenced_by_exceptions": c.excepted,
            "processes_tracked": len(self.table),
        }
