"""Wire the stages: lines -> (the core: records, audit events, time order, ECS events) -> rules -> alerts.

The per-line hot path is the core (core.py: compiled, or the Python reference); the pipeline gets each ECS
event from it and hands it to the rules that can use it (one dict lookup by category).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .alerts.document import build_alert
from .alerts.exceptions import ExceptionFilter
from .audit.reassembly import ReassemblyStats
from .audit.records import parse_event_id, split_header
from .core import PyCore, core_info, make_core
from .ecs.event import EcsEvent
from .ecs.process_table import Resolver
from .rules.loader import Rule

log = logging.getLogger("auditimds")

class Counters:
    __slots__ = ("alerts", "rule_errors", "excepted")

    def __init__(self) -> None:
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
        self_pid: Optional[int] = None,
        exceptions: Optional[ExceptionFilter] = None,
        pure: Optional[bool] = None,
    ) -> None:
        """`self_pid`: the agent's own pid (its events and its children's are ignored); `pure`: the
        reference core even when the compiled one is available (see core.py)."""
        self.rules = list(rules)
        self.on_alert = on_alert
        self.on_event = on_event
        self.counters = Counters()
        self.exceptions = exceptions
        self.core = make_core(self._event, host_id, host_name, resolver=resolver, self_pid=self_pid,
                              reorder_ms=reorder_ms, max_in_flight=max_in_flight, log_timeout=log_timeout,
                              wall_timeout=wall_timeout, pure=pure)
        self._warned: set = set()
        self._multi_node = False
        self.set_rules(rules)

    @property
    def core_note(self) -> str:
        """"" with the compiled core; otherwise why the pure-Python core runs, for the agent's log."""
        if not isinstance(self.core, PyCore):
            return ""
        why = core_info()[1] or "asked for"
        return (f"running the pure-Python core ({why}): detection is the same at several times the CPU; "
                "`auditimds doctor` says how to get the compiled one")

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
        return int(self.core.frontier)

    @property
    def max_maxspan_ms(self) -> int:
        """The longest sequence window of the loaded rules (how far back a restart must re-read)."""
        spans = [r.compiled.maxspan or 0 for r in self.rules]
        return max(spans, default=0) // 1_000_000

    @property
    def pending(self) -> int:
        """Events still held by reassembly or ordering."""
        return int(self.core.pending)

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

    def feed(self, lines: Union[bytes, memoryview, List[bytes]], now: float) -> None:
        """Process a batch of complete lines: a list (without newline characters), or one buffer (bytes,
        memoryview) of lines separated by b"\n" (the last without one)."""
        self.core.feed(lines, now)

    def tick(self, now: float) -> None:
        """Wall-clock housekeeping for a live stream: complete events that stopped receiving records and
        release everything held for ordering."""
        self.core.expire(now)
        self.core.release_all()

    def finish(self) -> None:
        """End of input: complete and evaluate everything still held."""
        self.core.flush()
        self.core.release_all()

    # -- events -----------------------------------------------------------------------------------------

    def _event(self, ev: EcsEvent) -> None:
        """An ECS event from the core, in time order (its `seq` set): the rules that can use it."""
        if not self._multi_node and self.core.node_tables > 1:
            self._multi_node = True  # an aggregated log: hosts' clocks differ, let sequences tolerate it
            self._apply_skew()
        if self.on_event is not None:
            self.on_event(ev)
        cats = ev["event.category"]
        targets = self._dispatch.get(cats[0] if cats else "", self._dispatch_other)
        if not targets:
            return
        seq = ev.seq
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
        k = self.core.counters()
        return {
            "lines": k["lines"],
            "malformed_lines": k["malformed"],
            "records": k["records"],
            "events": k["events"],
            "exec_events": k["exec"],
            "network_events": k["network"],
            "alerts": c.alerts,
            "reassembly": {name: k[name] for name in ReassemblyStats.__slots__},
            "late_events": k["late_events"],
            "rule_errors": c.rule_errors,
            "alerts_silenced_by_exceptions": c.excepted,
            "processes_tracked": k["processes"],
        }
