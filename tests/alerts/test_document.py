from __future__ import annotations

from dataclasses import dataclass, field

from auditimds.alerts.document import alert_id, build_alert
from auditimds.ecs.event import EcsEvent, LazyArgs


@dataclass
class R:
    rule_id: str = "r-1"
    name: str = "Test rule"
    severity: str = "medium"
    risk_score: int = 47
    description: str = ""
    threat: list = field(default_factory=lambda: [{"framework": "MITRE ATT&CK"}])


def ev(ts, serial, **fields):
    d = {"host.id": "h1", "host.os.type": "linux", "auditd.sequence": serial}
    d.update(fields)
    return EcsEvent(d, ts_ms=ts, args=LazyArgs.of(["curl", "-s", "http://169.254.169.254/"]))


def test_alert_id_is_deterministic_and_depends_on_rule_and_events():
    a = [ev(1000, 1), ev(2000, 2)]
    assert alert_id("r-1", a) == alert_id("r-1", [ev(1000, 1), ev(2000, 2)])
    assert alert_id("r-1", a) != alert_id("r-2", a)
    assert alert_id("r-1", a) != alert_id("r-1", [ev(1000, 1), ev(2000, 3)])
    assert len(alert_id("r-1", a)) == 32


def test_alert_shape():
    e1 = ev(1000, 1, **{"event.action": "exec", "process.name": "curl", "process.entity_id": "E",
                        "process.working_directory": "/root", "user.id": "0"})
    e2 = EcsEvent({"host.id": "h1", "host.name": "web-3", "auditd.sequence": 2, "event.action": "connection_attempted",
                   "process.name": "curl", "process.pid": 5, "process.entity_id": "E",
                   "destination.ip": "169.254.169.254", "destination.port": 80}, ts_ms=2500)
    a = build_alert(R(), [e1, e2])
    assert a["event"]["kind"] == "signal"
    assert a["rule"] == {"id": "r-1", "name": "Test rule", "severity": "medium", "risk_score": 47}
    assert a["threat"] == [{"framework": "MITRE ATT&CK"}]
    assert a["@timestamp"] == "1970-01-01T00:00:02.500Z"
    assert a["host"]["name"] == "web-3" and a["destination"] == {"ip": "169.254.169.254", "port": 80}
    assert a["process"]["command_line"] == "curl -s http://169.254.169.254/"  # from the exec stage
    assert a["process"]["working_directory"] == "/root"
    assert len(a["events"]) == 2 and a["events"][0]["process"]["args"][0] == "curl"
    assert a["message"] == "Test rule: curl (pid 5) -> 169.254.169.254:80 on web-3"
    assert a["user"] == {"id": "0"}
