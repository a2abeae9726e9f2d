"""Alert documents: one ECS-shaped JSON object per rule match.

`alert.id` is a hash of the rule id and the identity of each matched event (host, time, audit serial), so
the same events always give the same id and a duplicate can be recognised later (by the live daemon after
a restart, or by anyone joining two scans).
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Mapping, Protocol, Sequence, Union


class RuleInfo(Protocol):
    rule_id: str
    name: str
    severity: str
    risk_score: Union[int, float, None]  # as the rule file gives it (absent: None)
    threat: list


def alert_id(rule_id: str, events: Sequence[Mapping[str, Any]]) -> str:
    h = hashlib.sha256(rule_id.encode())
    for ev in events:
        h.update(b"\x00")
        h.update(f"{ev['host.id']}|{getattr(ev, 'ts_ms', 0)}|{ev['auditd.sequence']}".encode())
    return h.hexdigest()[:32]


def build_alert(rule: RuleInfo, events: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    docs: List[Dict[str, Any]] = [ev.to_document() if hasattr(ev, "to_document") else dict(ev) for ev in events]
    last = docs[-1]
    proc_doc = dict(last.get("process", {}))
    # The connecting process of a network stage usually has no argv of its own in the event: take the
    # exec stage's when it is the same process.
    for d in reversed(docs):
        p = d.get("process", {})
        if p.get("entity_id") == proc_doc.get("entity_id") and "command_line" in p:
            proc_doc.setdefault("args", p.get("args"))
            proc_doc.setdefault("command_line", p.get("command_line"))
            proc_doc.setdefault("working_directory", p.get("working_directory"))
            break
    alert: Dict[str, Any] = {
        "@timestamp": last.get("@timestamp"),
        "event": {"kind": "signal", "module": "auditimds"},
        "alert": {"id": alert_id(rule.rule_id, events)},
        "rule": {
            "id": rule.rule_id,
            "name": rule.name,
            "severity": rule.severity,
            "risk_score": rule.risk_score,
        },
        "threat": rule.threat,
        "host": last.get("host", {}),
        "process": proc_doc,
        "message": _message(rule, docs),
        "events": docs,
    }
    for d in reversed(docs):
        if "destination" in d:
            alert["destination"] = d["destination"]
            break
    for d in docs:
        if "user" in d:
            alert["user"] = d["user"]
            break
    return alert


def _message(rule: RuleInfo, docs: List[Dict[str, Any]]) -> str:
    last = docs[-1]
    p = last.get("process", {})
    who = p.get("name") or p.get("executable") or "unknown process"
    msg = f"{rule.name}: {who} (pid {p.get('pid')})"
    dest = last.get("destination")
    if dest:
        msg += f" -> {dest.get('ip')}:{dest.get('port')}"
    host = last.get("host", {}).get("name")
    if host:
        msg += f" on {host}"
    return msg
