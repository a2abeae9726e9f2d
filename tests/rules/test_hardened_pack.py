"""The hardened rule pack (config/rules/hardened/) on hand-built audit logs: what each rule catches and misses,
and that the seed rule alone behaves as before."""

from __future__ import annotations

import ipaddress
from typing import Dict, List, Optional, Sequence, Set

import pytest

from auditimds.pipeline import Pipeline
from auditimds.rules.builtin import builtin_rules_dir
from auditimds.rules.loader import load_rules
from tests.conftest import REPO

HARDENED = REPO / "config" / "rules" / "hardened"
SEED_ID = "ecc0cd54-608e-11ef-ab6d-f661ea17fbce"
ALL_ENDPOINTS = "c5d868a2-829b-4a80-9738-1bd567f2b66c"
NEW_TERMS = "687b4d6c-2af0-4434-b3ab-bb5712b17831"
CMDLINE = "28876f0c-b43e-41ff-9643-32258698ba53"
URING = "cf47880a-2aa7-4e66-b60a-c2ae7d870041"
PACK = {ALL_ENDPOINTS, NEW_TERMS, CMDLINE, URING}

X86_64, I386 = "c000003e", "40000003"


def sockaddr_hex(ip: str, port: int = 80) -> str:
    a = ipaddress.ip_address(ip)
    if a.version == 4:
        return f"0200{port:04X}{a.packed.hex().upper()}" + "00" * 8
    return f"0A00{port:04X}00000000{a.packed.hex().upper()}00000000"


class LogBuilder:
    """Audit records as the kernel writes them (exec: SYSCALL EXECVE CWD PROCTITLE; connect: SYSCALL SOCKADDR
    PROCTITLE; i386 connect through socketcall: SYSCALL SOCKETCALL SOCKADDR PROCTITLE)."""

    def __init__(self, t0: float = 1795976400.0) -> None:
        self.t = t0
        self.serial = 1000
        self.lines: List[bytes] = []

    def _hdr(self, typ: str) -> str:
        sec = int(self.t)
        ms = int(round((self.t - sec) * 1000))
        return f"type={typ} msg=audit({sec}.{ms:03d}:{self.serial}): "

    def _syscall(self, arch: str, nr: int, ok: bool, exit_: int, a0: str, ppid: int, pid: int, exe: str,
                 key: str) -> None:
        comm = exe.rsplit("/", 1)[-1][:15]
        self.lines.append((self._hdr("SYSCALL") + f"arch={arch} syscall={nr} success={'yes' if ok else 'no'} "
                           f"exit={exit_} a0={a0} a1=2 a2=3 a3=4 items=2 ppid={ppid} pid={pid} auid=1000 uid=1000 "
                           f"gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts1 ses=3 "
                           f'comm="{comm}" exe="{exe}" key="{key}"').encode())

    def _end(self, step: float) -> None:
        self.lines.append((self._hdr("PROCTITLE") + "proctitle=78").encode())
        self.serial += 1
        self.t += step

    def exec(self, pid: int, ppid: int, exe: str, argv: Sequence[str], cwd: str = "/home/u",
             arch: str = X86_64, step: float = 0.05) -> "LogBuilder":
        self._syscall(arch, 59 if arch == X86_64 else 11, True, 0, "1", ppid, pid, exe, "auditimds_exec")
        args = " ".join(f'a{i}="{a}"' for i, a in enumerate(argv))
        self.lines.append((self._hdr("EXECVE") + f"argc={len(argv)} {args}").encode())
        self.lines.append((self._hdr("CWD") + f'cwd="{cwd}"').encode())
        self._end(step)
        return self

    def connect(self, pid: int, ppid: int, exe: str, ip: str, port: int = 80, arch: str = X86_64,
                socketcall: bool = False, step: float = 0.05) -> "LogBuilder":
        if socketcall:
            self._syscall(arch, 102, False, -115, "3", ppid, pid, exe, "auditimds_net")
            self.lines.append((self._hdr("SOCKETCALL") + "nargs=3 a0=3 a1=ffd1c2bc a2=10").encode())
        else:
            self._syscall(arch, 42 if arch == X86_64 else 362, False, -115, "3", ppid, pid, exe, "auditimds_net")
        self.lines.append((self._hdr("SOCKADDR") + f"saddr={sockaddr_hex(ip, port)}").encode())
        self._end(step)
        return self

    def uring(self, pid: int, ppid: int, exe: str, arch: str = X86_64, step: float = 0.05) -> "LogBuilder":
        self._syscall(arch, 425, True, 3, "8", ppid, pid, exe, "auditimds_uring")
        self._end(step)
        return self

    def wait(self, s: float) -> "LogBuilder":
        self.t += s
        return self


def fresh_rules(pack: bool = True, builtin: bool = True) -> list:
    paths = ([builtin_rules_dir()] if builtin else []) + ([HARDENED] if pack else [])
    rules, errors = load_rules(paths)
    assert errors == []
    return rules


def run(lines: List[bytes], rules: Optional[list] = None) -> List[dict]:
    out: List[dict] = []
    p = Pipeline(fresh_rules() if rules is None else rules, "host-1", "host-1", on_alert=out.append)
    p.feed(lines, 0.0)
    p.finish()
    return out


def rule_ids(alerts: List[dict]) -> Set[str]:
    return {a["rule"]["id"] for a in alerts}


SHELL = (100, 1, "/usr/bin/bash", ["bash"])


def scenario(exe: str, argv: Sequence[str], ip: str, port: int = 80, arch: str = X86_64,
             socketcall: bool = False) -> List[bytes]:
    b = LogBuilder().exec(*SHELL)
    b.exec(200, 100, exe, argv, arch=arch)
    b.connect(200, 100, exe, ip, port, arch=arch, socketcall=socketcall)
    return b.lines


CASES: Dict[str, List[bytes]] = {
    "curl-v6": scenario("/usr/bin/curl", ["curl", "-s", "http://[fd00:ec2::254]/latest/meta-data/"], "fd00:ec2::254"),
    "python-mapped": scenario("/usr/bin/python3.11", ["python3", "-c", "x"], "::ffff:169.254.169.254"),
    "curl-ecs": scenario("/usr/bin/curl", ["curl", "http://169.254.170.2/v2/credentials/abc"], "169.254.170.2"),
    "curl-eks": scenario("/usr/bin/curl", ["curl", "http://169.254.170.23/v1/credentials"], "169.254.170.23"),
    "curl-alibaba": scenario("/usr/bin/curl", ["curl", "http://100.100.100.200/latest/meta-data/"],
                             "100.100.100.200"),
    "i386-socketcall": scenario("/tmp/c32", ["/tmp/c32"], "169.254.169.254", arch=I386, socketcall=True),
    "curl-v4": scenario("/usr/bin/curl", ["curl", "http://169.254.169.254/latest/meta-data/"], "169.254.169.254"),
}
NEGATIVES: Dict[str, List[bytes]] = {
    "curl-v6-loopback": scenario("/usr/bin/curl", ["curl", "http://[::1]/"], "::1"),
    "curl-other-link-local": scenario("/usr/bin/curl", ["curl", "http://169.254.10.10/"], "169.254.10.10"),
    "curl-mapped-other": scenario("/usr/bin/curl", ["curl", "http://x/"], "::ffff:169.254.10.10"),
}


def test_pack_loads_with_own_ids_and_types():
    rules = fresh_rules(builtin=False)
    by_id = {r.rule_id: r for r in rules}
    assert set(by_id) == PACK and SEED_ID not in by_id
    assert by_id[NEW_TERMS].type == "new_terms"
    assert by_id[NEW_TERMS].new_terms_fields == ["host.id", "process.executable"]
    assert by_id[NEW_TERMS].history_window_ms == 7 * 86_400_000
    for r in rules:
        assert "auditimds hardened" in r.name
        text = r.source_path.read_text()
        assert "Elastic License 2.0" in text or "ELv2" in text
    assert (HARDENED / "README.md").exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_blind_spot_alerts_with_the_pack(case):
    got = rule_ids(run(CASES[case]))
    assert {ALL_ENDPOINTS, NEW_TERMS} <= got, got


@pytest.mark.parametrize("case", sorted(NEGATIVES))
def test_loopback_and_other_link_local_do_not_alert(case):
    assert run(NEGATIVES[case]) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_seed_rule_alone_is_unchanged(case):
    """Without the pack: the seed rule sees 169.254.169.254 (also written IPv4-mapped, as in Elasticsearch),
    never the other endpoints."""
    got = rule_ids(run(CASES[case], fresh_rules(pack=False)))
    assert got == ({SEED_ID} if case in ("python-mapped", "i386-socketcall", "curl-v4") else set())


def test_new_terms_port_80_only_and_once_per_executable():
    b = LogBuilder().exec(*SHELL)
    b.exec(200, 100, "/usr/bin/curl", ["curl", "http://169.254.169.254:8080/"]).connect(
        200, 100, "/usr/bin/curl", "169.254.169.254", 8080)
    assert NEW_TERMS not in rule_ids(run(b.lines))
    b = LogBuilder().exec(*SHELL)
    for pid, ip in ((201, "169.254.169.254"), (202, "fd00:ec2::254"), (203, "100.100.100.200")):
        b.exec(pid, 100, "/usr/bin/curl", ["curl", "x"]).connect(pid, 100, "/usr/bin/curl", ip).wait(10)
    got = run(b.lines)
    assert [a["rule"]["id"] for a in got].count(NEW_TERMS) == 1
    assert [a["rule"]["id"] for a in got].count(ALL_ENDPOINTS) == 3


def test_new_terms_needs_no_exec_event():
    """A long-lived python (its exec long gone from the log) connecting: only the new_terms rule can see it."""
    b = LogBuilder().connect(300, 1, "/usr/bin/python3.11", "169.254.169.254")
    assert rule_ids(run(b.lines)) == {NEW_TERMS}


def test_command_line_rule_on_credential_paths_only():
    b = LogBuilder().exec(*SHELL).exec(
        200, 100, "/usr/bin/wget", ["wget", "-qO-", "http://169.254.169.254/latest/meta-data/iam/security-credentials/r"])
    assert rule_ids(run(b.lines)) == {CMDLINE}
    b = LogBuilder().exec(*SHELL).exec(200, 100, "/usr/bin/curl", ["curl", "http://169.254.170.2/v2/credentials/x"])
    assert rule_ids(run(b.lines)) == {CMDLINE}
    # the bare directory listing (no role name) and a non-suspicious program do not match
    b = LogBuilder().exec(*SHELL).exec(
        200, 100, "/usr/bin/curl", ["curl", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"])
    assert CMDLINE not in rule_ids(run(b.lines))
    b = LogBuilder().exec(*SHELL).exec(
        200, 100, "/usr/bin/aws", ["aws", "http://169.254.169.254/latest/meta-data/iam/security-credentials/r"])
    assert CMDLINE not in rule_ids(run(b.lines))


def test_io_uring_setup_event_and_rule():
    b = LogBuilder().exec(*SHELL).exec(200, 100, "/usr/bin/python3.11", ["python3", "ring.py"]).uring(
        200, 100, "/usr/bin/python3.11")
    b.exec(201, 100, "/usr/sbin/nginx", ["nginx"]).uring(201, 100, "/usr/sbin/nginx")
    b.uring(202, 100, "/tmp/.x", arch=I386)
    got = run(b.lines)
    urings = [a for a in got if a["rule"]["id"] == URING]
    assert sorted(a["events"][0]["process"]["pid"] for a in urings) == [200, 202]
    ev = urings[0]["events"][0]
    assert ev["event"]["action"] == "io_uring_setup" and ev["event"]["type"] == ["info"]
    assert ev["event"]["category"] == ["process"] and ev["process"]["parent"]["executable"] == "/usr/bin/bash"
    assert ev["process"]["command_line"] == "python3 ring.py"
    assert ev["auditd"]["data"]["syscall"] == "io_uring_setup" and ev["event"]["outcome"] == "success"
    # the seed rule never treats io_uring_setup as an exec
    assert SEED_ID not in rule_ids(got)


def test_io_uring_setup_event_is_in_the_field_catalogue():
    from auditimds.ecs import fields

    events: list = []
    b = LogBuilder().exec(*SHELL).exec(200, 100, "/usr/bin/python3.11", ["python3"])
    b.uring(200, 100, "/usr/bin/python3.11")
    p = Pipeline([], "host-1", "host-1", on_event=events.append)
    p.feed(b.lines, 0.0)
    p.finish()
    (ev,) = [e for e in events if e["event.action"] == "io_uring_setup"]
    keys = set(ev.materialize())
    assert {"process.executable", "process.parent.executable", "process.args", "event.outcome"} <= keys
    assert fields.unsupplied(keys) == []
    for k, allowed in fields.VALUES.items():
        v = ev[k]
        for x in (v if isinstance(v, list) else [v]):
            assert x is None or x in allowed, (k, x)
