from __future__ import annotations

from typing import List

from auditimds.audit.reassembly import AuditEvent, Reassembler
from auditimds.ecs.event import EcsEvent
from auditimds.ecs.normalize import Normalizer
from tests.conftest import REPO, lines_of

FIXTURE = REPO / "tests" / "fixtures" / "host-a-dev_curl_creds.log"


def run(lines: List[bytes], norm: Normalizer = None) -> List[EcsEvent]:
    norm = norm or Normalizer("hid", "hname")
    aevs: List[AuditEvent] = []
    r = Reassembler(aevs.append)
    r.feed(lines, 0.0)
    r.flush()
    out = []
    for a in sorted(aevs, key=lambda e: (e.ts_ms, e.serial)):
        ev = norm.normalize(a)
        if ev is not None:
            out.append(ev)
    return out


def test_real_exec_then_connect_chain():
    evs = run(FIXTURE.read_bytes().splitlines())
    execs = [e for e in evs if e["event.action"] == "exec"]
    nets = [e for e in evs if e["event.action"] == "connection_attempted"]
    assert [e["process.name"] for e in execs] == ["ip", "bash", "curl"]
    ip, bash, curl = execs
    # exec keeps the entity id (ip netns exec -> bash is one process)
    assert ip["process.entity_id"] == bash["process.entity_id"]
    assert curl["process.parent.entity_id"] == bash["process.entity_id"]
    assert curl["process.parent.executable"] == "/usr/bin/bash" and curl["process.parent.name"] == "bash"
    assert curl["process.args"] == [
        "curl", "-s", "http://169.254.169.254/latest/meta-data/iam/security-credentials/role?case=dev_curl_creds"]
    assert curl["process.args_count"] == 3
    assert curl["process.command_line"] == " ".join(curl["process.args"])
    assert curl["process.working_directory"] == "/srv/gen"
    assert curl["event.category"] == ["process"] and curl["event.type"] == ["start"]
    assert curl["host.id"] == "hid" and curl["host.os.type"] == "linux"
    assert curl["user.id"] == "0" and curl["user.name"] == "root"
    assert bash["process.command_line"].startswith("bash -c curl -s 'http://169.254.169.254/")
    # the nscd unix connect is not a network event; the IMDS one is, with the curl process and its parent
    assert len(nets) == 1
    n = nets[0]
    assert (n["destination.ip"], n["destination.port"]) == ("169.254.169.254", 80)
    assert n["event.category"] == ["network"] and n["event.type"] == ["start"]
    assert n["process.entity_id"] == curl["process.entity_id"]
    assert n["process.parent.entity_id"] == curl["process.parent.entity_id"]
    assert n["process.executable"] == "/usr/bin/curl"
    assert n["process.command_line"] == curl["process.command_line"]  # the table knows its argv
    assert n["auditd.data.exit"] == -115 and n["auditd.data.errno"] == "EINPROGRESS"
    assert n["event.outcome"] == "unknown" and n["auditd.result"] == "fail"
    doc = n.to_document()
    assert doc["destination"] == {"ip": "169.254.169.254", "port": 80}
    assert doc["@timestamp"].endswith("Z") and doc["process"]["parent"]["name"] == "bash"


PY_CONNECT = """
type=SYSCALL msg=audit(1795976294.920:267): arch=c000003e syscall=42 success=no exit=-115 a0=3 a1=7ffe9d185f00 a2=10 a3=19 items=0 ppid=2341 pid=2364 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3" exe="/usr/local/bin/python3.11" key="conn"^]ARCH=x86_64 SYSCALL=connect AUID="unset" UID="root"
type=SOCKADDR msg=audit(1795976294.920:267): saddr=02000050A9FEA9FE0000000000000000^]SADDR={ saddr_fam=inet laddr=169.254.169.254 lport=80 }
type=PROCTITLE msg=audit(1795976294.920:267): proctitle=6970006E65746E73
"""


def test_every_connect_result_is_an_attempt():
    for exit_code, outcome in (("0", "success"), ("-111", "failure"), ("-101", "failure"), ("-115", "unknown")):
        text = PY_CONNECT.replace("exit=-115", f"exit={exit_code}")
        (ev,) = run(lines_of(text))
        assert ev["event.action"] == "connection_attempted"
        assert ev["auditd.data.exit"] == int(exit_code) and ev["event.outcome"] == outcome
        assert ev["tags"] == ["conn"]


def test_connect_without_sockaddr_or_to_unix_is_not_a_network_event():
    assert run(lines_of(PY_CONNECT.split("\n")[1] + "\n" + PY_CONNECT.split("\n")[3])) == []


def test_ipv6_mapped_and_v6_destinations():
    mapped = PY_CONNECT.replace("02000050A9FEA9FE0000000000000000",
                                "0A0000500000000000000000000000000000FFFFA9FEA9FE00000000")
    (ev,) = run(lines_of(mapped))
    assert ev["destination.ip"] == "169.254.169.254"
    assert ev["destination.address"] == "::ffff:169.254.169.254" and ev["network.type"] == "ipv6"
    v6 = PY_CONNECT.replace("02000050A9FEA9FE0000000000000000",
                            "0A00005000000000FD000EC200000000000000000000025400000000")
    (ev,) = run(lines_of(v6))
    assert ev["destination.ip"] == "fd00:ec2::254" and ev["destination.address"] is None


def test_i386_socketcall_connect():
    text = """
type=SYSCALL msg=audit(1795976490.848:18831): arch=40000003 syscall=102 success=no exit=-115 a0=3 a1=ffd1c2a0 a2=0 a3=0 items=0 ppid=1 pid=77 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="c32" exe="/tmp/c32" key="net"
type=SOCKETCALL msg=audit(1795976490.848:18831): nargs=3 a0=3 a1=ffd1c2bc a2=10
type=SOCKADDR msg=audit(1795976490.848:18831): saddr=02000050A9FEA9FE0000000000000000
type=PROCTITLE msg=audit(1795976490.848:18831): proctitle="/tmp/c32"
"""
    (ev,) = run(lines_of(text))
    assert ev["event.action"] == "connection_attempted" and ev["destination.ip"] == "169.254.169.254"
    assert ev["auditd.data.arch"] == "i386" and ev["auditd.data.syscall"] == "connect"
    # socketcall with another call number (e.g. SYS_SOCKET=1) is not a connect
    assert run(lines_of(text.replace("a0=3 a1=ffd1c2a0", "a0=1 a1=ffd1c2a0"))) == []


def test_i386_connect_and_aarch64_execve_by_number():
    i386 = PY_CONNECT.replace("arch=c000003e syscall=42", "arch=40000003 syscall=362")
    assert run(lines_of(i386))[0]["destination.port"] == 80
    # 42 on i386 is not connect
    assert run(lines_of(PY_CONNECT.replace("arch=c000003e", "arch=40000003"))) == []
    arm = """
type=SYSCALL msg=audit(1741983195.885:240): arch=c00000b7 syscall=221 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=2 ppid=6099 pid=15200 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts1 ses=3 comm="curl" exe="/usr/bin/curl" key=(null)
type=EXECVE msg=audit(1741983195.885:240): argc=2 a0="curl" a1="x"
type=CWD msg=audit(1741983195.885:240): cwd="/home/ubuntu"
type=PROCTITLE msg=audit(1741983195.885:240): proctitle=6375726C0078
"""
    (ev,) = run(lines_of(arm))
    assert ev["event.action"] == "exec" and ev["process.command_line"] == "curl x"
    assert ev["process.tty.name"] == "pts1" and ev["tags"] is None and ev["auditd.data.arch"] == "aarch64"


def test_big_endian_sockaddr_uses_the_event_arch():
    text = PY_CONNECT.replace("arch=c000003e syscall=42", "arch=80000015 syscall=328").replace(
        "02000050A9FEA9FE0000000000000000", "00020050A9FEA9FE0000000000000000")
    (ev,) = run(lines_of(text))
    assert ev["destination.ip"] == "169.254.169.254" and ev["auditd.data.arch"] == "ppc64"


def test_failed_execve_is_no_event_but_teaches_the_table():
    norm = Normalizer("h", "h")
    fail = """
type=SYSCALL msg=audit(100.000:1): arch=c000003e syscall=59 success=no exit=-2 a0=1 a1=2 a2=3 a3=0 items=1 ppid=10 pid=11 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="bash" exe="/usr/bin/bash" key="exec"
type=PROCTITLE msg=audit(100.000:1): proctitle="bash"
"""
    assert run(lines_of(fail), norm) == []
    assert norm.table.get(11).executable == "/usr/bin/bash"


def test_node_prefix_sets_host_and_separates_process_tables():
    text = "\n".join("node=web-3 " + ln for ln in PY_CONNECT.strip().split("\n"))
    (ev,) = run(lines_of(text))
    assert ev["host.id"] == "web-3" and ev["host.name"] == "web-3"


def test_hex_executable_with_space_and_deleted():
    text = """
type=SYSCALL msg=audit(100.000:1): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=1 ppid=10 pid=11 auid=0 uid=1000 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="delbash" exe=2F746D702F617567656E2F64656C62617368202864656C6574656429 key="exec"
type=EXECVE msg=audit(100.000:1): argc=1 a0="delbash"
type=CWD msg=audit(100.000:1): cwd=2F746D702F6469722077697468207370616365
type=PROCTITLE msg=audit(100.000:1): proctitle="delbash"
"""
    (ev,) = run(lines_of(text))
    assert ev["process.executable"] == "/tmp/augen/delbash (deleted)"
    assert ev["process.name"] == "delbash (deleted)"
    assert ev["process.working_directory"] == "/tmp/dir with space"
    assert ev["user.id"] == "1000" and ev["user.name"] is None


def test_interpreted_ausearch_line_falls_back_to_generic_parsing():
    text = ('type=SYSCALL msg=audit(03/07/2021 18:27:12.000:1): arch=x86_64 syscall=execve success=yes exit=0 '
            'ppid=1 pid=2 auid=vagrant uid=root comm=top exe=/usr/bin/top')
    assert run(lines_of(text)) == []  # a non-numeric event id is not an event
    text = ('type=SYSCALL msg=audit(100.000:1): arch=x86_64 syscall=execve success=yes exit=0 '
            'ppid=1 pid=2 auid=vagrant uid=root comm=top exe=/usr/bin/top')
    (ev,) = run(lines_of(text))
    assert ev["process.executable"] == "/usr/bin/top" and ev["event.action"] == "exec"


def test_lazy_fields_are_computed_once_and_materialized_for_output():
    (ev,) = [e for e in run(FIXTURE.read_bytes().splitlines()) if e["process.name"] == "curl"
             and e["event.action"] == "exec"]
    assert "process.command_line" not in dict.keys(ev)  # not computed until read
    assert ev["process.command_line"].startswith("curl -s ")
    assert "process.command_line" in dict.keys(ev)
    doc = ev.to_document()
    assert doc["event"]["kind"] == "event" and doc["auditd"]["sequence"] == 141886
    assert doc["process"]["parent"]["args"][0] == "bash"
    assert ev["no.such.field"] is None


def _alerts_for(lines):
    from auditimds.pipeline import Pipeline
    from auditimds.rules.builtin import builtin_rules_dir
    from auditimds.rules.loader import load_rules

    out = []
    for lazy in (True, False):
        rules, _ = load_rules([builtin_rules_dir()], lazy_first=lazy)
        alerts = []
        p = Pipeline(rules, "h", "h", on_alert=alerts.append)
        p.feed(lines, 0.0)
        p.finish()
        out.append(alerts)
    assert len(out[0]) == len(out[1])
    return out[0]


def test_reparenting_before_the_connect_does_not_evade_detection():
    """`sh -c 'curl ... & exit'`: the shell exits, curl is re-parented to init (or a subreaper) and connects.
    The connect keeps the parent curl had when it started (as Elastic Defend reports it)."""
    lines = FIXTURE.read_bytes().splitlines()
    assert len(_alerts_for(lines)) == 1
    for new_ppid in (b"1", b"77"):
        changed = [ln.replace(b" ppid=20097 pid=20098 ", b" ppid=" + new_ppid + b" pid=20098 ")
                   if b"syscall=42" in ln else ln for ln in lines]
        assert changed != lines
        alerts = _alerts_for(changed)
        assert len(alerts) == 1, new_ppid
        exec_ev, net_ev = alerts[0]["events"]
        assert net_ev["process"]["entity_id"] == exec_ev["process"]["entity_id"]  # still the same process
        assert net_ev["process"]["parent"]["executable"] == "/usr/bin/bash"
        assert alerts[0]["process"]["command_line"].startswith("curl -s ")
