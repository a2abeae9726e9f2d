"""Exceptions: silence known-good activity without editing a rule (like Elastic's rule exceptions).

    [[exceptions]]
    rule_id = "ecc0cd54-608e-11ef-ab6d-f661ea17fbce"   # optional: every rule when absent
    parent_executable = ["/opt/myagent/bin/*"]          # wildcards * and ?, case-sensitive
    comment = "our inventory agent reads the instance id"

An alert is dropped when an exception's rule matches and, for one event of the alert, every field the
exception lists matches one of its patterns (AND across fields, OR within a field's list).  Dropped alerts are
counted, never silently lost: the count is in the statistics and the health line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..rules.eql.wildcard import GlobSet

# exception key -> dotted ECS field of the alert's events
FIELDS: Dict[str, str] = {
    "process_executable": "process.executable",
    "process_name": "process.name",
    "command_line": "process.command_line",
    "working_directory": "process.working_directory",
    "parent_executable": "process.parent.executable",
    "parent_name": "process.parent.name",
    "parent_command_line": "process.parent.command_line",
    "user_id": "user.id",
    "user_name": "user.name",
    "destination_ip": "destination.ip",
    "host_name": "host.name",
    "host_id": "host.id",
}


class ExceptionConfigError(ValueError):
    """One line naming the file, the exception (by position) and the key."""


@dataclass(frozen=True)
class RuleException:
    rule_id: Optional[str]
    fields: Tuple[Tuple[str, Tuple[str, ...]], ...]  # (dotted field, patterns)
    comment: str = ""

    def describe(self) -> List[str]:
        out = ["[[exceptions]]"]
        if self.rule_id:
            out.append(f'rule_id = "{self.rule_id}"')
        inverse = {v: k for k, v in FIELDS.items()}
        for field, pats in self.fields:
            out.append(f"{inverse[field]} = [" + ", ".join(f'"{p}"' for p in pats) + "]")
        if self.comment:
            out.append(f'comment = "{self.comment}"')
        return out


def parse_exceptions(items: Any, source: str) -> Tuple[RuleException, ...]:
    if not isinstance(items, list):
        raise ExceptionConfigError(f"{source}: exceptions must be an array of tables ([[exceptions]])")
    out: List[RuleException] = []
    for n, item in enumerate(items, 1):
        where = f"{source}: [[exceptions]] #{n}"
        if not isinstance(item, dict):
            raise ExceptionConfigError(f"{where}: must be a table")
        rule_id = item.get("rule_id")
        if rule_id is not None and (not isinstance(rule_id, str) or not rule_id):
            raise ExceptionConfigError(f"{where} rule_id: must be a non-empty string")
        comment = item.get("comment", "")
        if not isinstance(comment, str):
            raise ExceptionConfigError(f"{where} comment: must be a string")
        fields: List[Tuple[str, Tuple[str, ...]]] = []
        for key, value in item.items():
            if key in ("rule_id", "comment"):
                continue
            if key not in FIELDS:
                known = ", ".join(["rule_id", "comment", *FIELDS])
                raise ExceptionConfigError(f"{where}: unknown key '{key}' (known: {known})")
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
                raise ExceptionConfigError(f"{where} {key}: must be a non-empty list of non-empty strings")
            fields.append((FIELDS[key], tuple(value)))
        if not fields:
            raise ExceptionConfigError(f"{where}: lists no field to match (it would silence every alert"
                                       f"{' of its rule' if rule_id else ''})")
        out.append(RuleException(rule_id, tuple(fields), comment))
    return tuple(out)


class ExceptionFilter:
    """Compiled exceptions; `matches(rule_id, events)` is True when an alert must be dropped."""

    def __init__(self, exceptions: Sequence[RuleException]) -> None:
        self._compiled: List[Tuple[Optional[str], List[Tuple[str, GlobSet]]]] = [
            (e.rule_id, [(f, GlobSet(p)) for f, p in e.fields]) for e in exceptions]

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def matches(self, rule_id: str, events: Sequence[Mapping[str, Any]]) -> bool:
        for rid, tests in self._compiled:
            if rid is not None and rid != rule_id:
                continue
            for ev in events:
                if all(_value_matches(ev[f], g) for f, g in tests):
                    return True
        return False


def _value_matches(value: Any, g: GlobSet) -> bool:
    if isinstance(value, str):
        return bool(g(value))
    if isinstance(value, list):
        return any(isinstance(v, str) and g(v) for v in value)
    if value is None:
        return False
    return bool(g(str(value)))
