"""The seed rule (Unusual Instance Metadata Service (IMDS) API Request) end to end on hand-built
ECS events."""

from __future__ import annotations

import pytest

from auditimds.rules.loader import load_rule

from .rules_testpaths import SEED, VENDORED_SEED

S = 1_000_000_000


class Ev(dict):
    def __missing__(self, key):
        return None


def exec_event(**over):
    d = {
        "@timestamp": "2025-01-01T00:00:00Z",
        "event.category": ["process"],
        "event.type": ["start"],
        "event.action": "exec",
        "host.os.type": "linux",
        "host.id": "host-1",
        "process.entity_id": "curl-1",
        "process.pid": 4242,
        "process.name": "curl",
        "process.executable": "/usr/bin/curl",
        "process.args": ["curl", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"],
        "process.args_count": 2,
        "process.command_line": "curl http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "process.working_directory": "/home/ubuntu",
        "process.parent.entity_id": "bash-1",
        "process.parent.executable": "/usr/bin/bash",
        "process.parent.name": "bash",
    }
    d.update(over)
    return Ev({k: v for k, v in d.items() if v is not ...})


def connect_event(**over):
    d = {
        "event.category": ["network"],
        "event.type": ["start"],
        "event.action": "connection_attempted",
        "host.os.type": "linux",
        "host.id": "host-1",
        "process.entity_id": "curl-1",
        "process.name": "curl",
        "process.executable": "/usr/bin/curl",
        "process.parent.entity_id": "bash-1",
        "destination.ip": "169.254.169.254",
        "destination.port": 80,
    }
    d.update(over)
    return Ev({k: v for k, v in d.items() if v is not ...})


def alerts(exec_ev, conn_ev, gap_ns=500_000_000):
    rule = load_rule(SEED)
    cq = rule.compiled
    out = cq.process(exec_ev, 10 * S, 1)
    out += cq.process(conn_ev, 10 * S + gap_ns, 2)
    return out


@pytest.mark.skipif(not VENDORED_SEED.exists(), reason="no vendored copy in config/rules")
def test_vendored_seed_matches_upstream():
    a, b = load_rule(SEED), load_rule(VENDORED_SEED)
    assert (a.rule_id, " ".join(a.query.split())) == (b.rule_id, " ".join(b.query.split()))


def test_rule_metadata():
    rule = load_rule(SEED)
    assert rule.rule_id == "ecc0cd54-608e-11ef-ab6d-f661ea17fbce"
    assert rule.severity == "medium" and rule.risk_score == 47
    assert rule.type == rule.language == "eql"
    assert rule.threat[0]["tactic"]["id"] == "TA0006"
    assert "OS: Linux" in rule.tags


def test_curl_then_connect_alerts():
    e, c = exec_event(), connect_event()
    out = alerts(e, c)
    assert len(out) == 1 and out[0][0] is e and out[0][1] is c


@pytest.mark.parametrize("gap", [0, 1, 3 * S])
def test_within_maxspan_inclusive(gap):
    assert len(alerts(exec_event(), connect_event(), gap)) == 1


def test_slow_connect_does_not_alert():
    assert alerts(exec_event(), connect_event(), 3 * S + 1) == []
    assert alerts(exec_event(), connect_event(), 5 * S) == []


def test_other_triggers_alert():
    # python by name, a dropped binary in /tmp by path, and any tool hitting the IMDS credentials path
    for over in (
        {
            "process.name": "python3",
            "process.executable": "/usr/bin/python3.11",
            "process.command_line": "python3 x.py",
        },
        {"process.name": "fetch", "process.executable": "/tmp/fetch", "process.command_line": "/tmp/fetch"},
        {
            "process.name": "busybox",
            "process.executable": "/usr/bin/busybox",
            "process.command_line": "busybox wget -O- http://169.254.169.254/latest/user-data",
        },
        {"process.name": "CURL"},  # ':' is case-insensitive
    ):
        assert len(alerts(exec_event(**over), connect_event())) == 1, over


def test_uninteresting_process_does_not_alert():
    e = exec_event(
        **{"process.name": "apt", "process.executable": "/usr/bin/apt", "process.command_line": "apt update"}
    )
    assert alerts(e, connect_event()) == []


def test_event_type_list_and_os():
    assert alerts(exec_event(**{"event.type": ["end"]}), connect_event()) == []
    assert alerts(exec_event(**{"event.type": "start"}), connect_event()) != []
    assert alerts(exec_event(**{"host.os.type": "windows"}), connect_event()) == []
    assert alerts(exec_event(), connect_event(**{"host.os.type": "macos"})) == []
    assert alerts(exec_event(**{"event.action": "fork"}), connect_event()) == []


@pytest.mark.parametrize(
    "cwd", ["/opt/rapid7/bin", "/OPT/Nessus", "/var/log/amazon/ssm/x", "/snap/amazon-ssm-agent/1"]
)
def test_working_directory_exclusions(cwd):
    assert alerts(exec_event(**{"process.working_directory": cwd}), connect_event()) == []


def test_missing_working_directory_still_alerts():
    assert len(alerts(exec_event(**{"process.working_directory": ...}), connect_event())) == 1


@pytest.mark.parametrize(
    "parent",
    [
        "/usr/bin/cloud-init",
        "/usr/share/ec2-instance-connect/eic_run",
        "/usr/sbin/dhclient-script",
        "/usr/bin/runc",
    ],
)
def test_parent_exclusions(parent):
    assert alerts(exec_event(**{"process.parent.executable": parent}), connect_event()) == []


def test_parent_executable_required():
    assert alerts(exec_event(**{"process.parent.executable": ...}), connect_event()) == []
    assert alerts(exec_event(**{"process.parent.executable": []}), connect_event()) == []


def test_executable_and_entry_leader_exclusions():
    e = exec_event(**{"process.executable": "/opt/rumble/bin/rumble-agent-x", "process.name": "rumble-agent"})
    assert alerts(e, connect_event()) == []
    e = exec_event(
        **{"process.entry_leader.executable": "/opt/Elastic/Agent/data/elastic-agent-abc123/elastic-agent"}
    )
    assert alerts(e, connect_event()) == []
    # entry_leader missing (session data off) still alerts
    assert len(alerts(exec_event(**{"process.entry_leader.executable": ...}), connect_event())) == 1


def test_imdsv2_token_put_carve_out():
    argv = [
        "/usr/bin/curl",
        "-X",
        "PUT",
        "http://169.254.169.254/latest/api/token",
        "-H",
        "X-aws-ec2-metadata-token-ttl-seconds: 21600",
    ]
    e = exec_event(
        **{"process.args": argv, "process.args_count": len(argv), "process.command_line": " ".join(argv)}
    )
    assert e["process.command_line"] == (
        "/usr/bin/curl -X PUT http://169.254.169.254/latest/api/token "
        "-H X-aws-ec2-metadata-token-ttl-seconds: 21600"
    )
    assert alerts(e, connect_event()) == []
    # the same command through another curl binary path is not carved out (== is exact)
    e2 = exec_event(**{"process.executable": "/usr/local/bin/curl", "process.command_line": " ".join(argv)})
    assert len(alerts(e2, connect_event())) == 1
    # a token PUT without the ttl header is not carved out
    e3 = exec_event(
        **{"process.command_line": "/usr/bin/curl -X PUT http://169.254.169.254/latest/api/token"}
    )
    assert len(alerts(e3, connect_event())) == 1


def test_imdsv2_get_with_token_header_carve_out():
    cl = (
        "/usr/bin/curl -H X-aws-ec2-metadata-token: AQAEA http://169.254.169.254/latest/meta-data/instance-id"
    )
    assert alerts(exec_event(**{"process.command_line": cl}), connect_event()) == []


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "10.0.0.5", "169.254.169.253", None])
def test_other_destinations_do_not_alert(ip):
    assert alerts(exec_event(), connect_event(**{"destination.ip": ip})) == []


def test_join_requires_same_host_and_parent():
    assert alerts(exec_event(), connect_event(**{"process.parent.entity_id": "bash-2"})) == []
    assert alerts(exec_event(), connect_event(**{"host.id": "host-2"})) == []
    assert (
        alerts(
            exec_event(**{"process.parent.entity_id": ...}),
            connect_event(**{"process.parent.entity_id": ...}),
        )
        == []
    )


def test_accepted_connection_does_not_alert():
    assert alerts(exec_event(), connect_event(**{"event.action": "connection_accepted"})) == []


def test_connect_before_exec_does_not_alert():
    rule = load_rule(SEED)
    cq = rule.compiled
    assert cq.process(connect_event(), 10 * S, 1) == []
    assert cq.process(exec_event(), 10 * S, 2) == []
    assert cq.pending == 1
