"""The ECS fields auditd-derived events can supply (what normalize.py, event.py and process_table.py build).

`rules check` uses this catalogue to tell a user which fields of an upstream rule can never be present here
(Elastic Defend has file, DNS, hash, code-signature... fields that audit records of exec and connect do not
carry), which event categories and which values of a few enumerated fields never occur, so that the user
knows whether an upstream rule is meaningful on auditd data.

Keep it in step with the normalizer: tests/ecs/test_fields.py checks that every field of every event built
from the real fixtures is in the catalogue.
"""

from __future__ import annotations

from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple

__all__ = [
    "SUPPLIED",
    "PREFIXES",
    "CATEGORIES",
    "VALUES",
    "is_supplied",
    "unsupplied",
    "never_produced_value",
]

# field -> when it is present (empty string: on every event of the categories that carry it)
SUPPLIED: Dict[str, str] = {
    "@timestamp": "",
    "event.category": "process, network",
    "event.type": "start; info (io_uring_setup)",
    "event.action": "exec, connection_attempted, connection_accepted (accept/accept4 audited), io_uring_setup "
                    "(io_uring_setup audited)",
    "event.kind": "",
    "event.module": "",
    "event.outcome": "",
    "host.id": "",
    "host.name": "",
    "host.os.type": "",
    "process.pid": "",
    "process.entity_id": "",
    "process.executable": "SYSCALL exe=",
    "process.name": "basename of process.executable",
    "process.args": "exec events; network and io_uring_setup events of processes whose exec was seen",
    "process.args_count": "as process.args",
    "process.command_line": "as process.args",
    "process.working_directory": "exec events; network events of processes whose exec was seen",
    "process.tty.name": "exec events with a tty",
    "process.parent.pid": "",
    "process.parent.entity_id": "",
    "process.parent.executable": "when the parent was seen (or read from /proc by the daemon)",
    "process.parent.name": "as process.parent.executable",
    "process.parent.args": "when the parent's exec was seen",
    "process.parent.args_count": "as process.parent.args",
    "process.parent.command_line": "as process.parent.args",
    "process.entry_leader.pid": "when derivable (see docs/design.md)",
    "process.entry_leader.entity_id": "when derivable",
    "process.entry_leader.executable": "when derivable",
    "process.entry_leader.name": "when derivable",
    "process.entry_leader.entry_meta.type": "when derivable",
    "destination.ip": "connection_attempted",
    "destination.port": "connection_attempted",
    "destination.address": "connection_attempted, IPv4-mapped IPv6",
    "source.ip": "connection_accepted (the peer)",
    "source.port": "connection_accepted",
    "source.address": "connection_accepted, IPv4-mapped IPv6",
    "network.type": "network events",
    "user.id": "",
    "user.name": "ENRICHED logs",
    "user.effective.id": "",
    "user.audit.id": "after a login (auid set)",
    "group.id": "",
    "tags": "audit rule keys",
}

# whole families of fields the normalizer fills (our own namespaces)
PREFIXES: Tuple[str, ...] = ("auditd.", "auditimds.")

CATEGORIES: FrozenSet[str] = frozenset({"process", "network"})

# enumerated fields: every value the normalizer produces
VALUES: Dict[str, FrozenSet[str]] = {
    "event.category": CATEGORIES,
    "event.type": frozenset({"start", "info"}),
    "event.action": frozenset({"exec", "connection_attempted", "connection_accepted", "io_uring_setup"}),
    "event.kind": frozenset({"event"}),
    "event.module": frozenset({"auditd"}),
    "event.outcome": frozenset({"success", "failure", "unknown"}),
    "host.os.type": frozenset({"linux"}),
    "network.type": frozenset({"ipv4", "ipv6"}),
    "process.entry_leader.entry_meta.type": frozenset({"init", "sshd", "container", "terminal", "unknown"}),
}


def is_supplied(field: str) -> bool:
    """True if auditd-derived events can carry `field`."""
    return field in SUPPLIED or field.startswith(PREFIXES)


def unsupplied(fields: Iterable[str]) -> List[str]:
    """The fields among `fields` that auditd-derived events never carry, sorted."""
    return sorted({f for f in fields if not is_supplied(f)})


def never_produced_value(field: str, value: str, insensitive: bool = False,
                         matcher: Optional[Callable[[str], bool]] = None) -> bool:
    """True if `field` is enumerated here and `value` (or, with `matcher(s) -> bool`, a pattern) matches
    none of the values the normalizer produces."""
    known = VALUES.get(field)
    if known is None:
        return False
    if matcher is not None:
        return not any(matcher(v) for v in known)
    if insensitive:
        return value.lower() not in {v.lower() for v in known}
    return value not in known
