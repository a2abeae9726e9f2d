"""audit/events.py: the one way from reassembled audit events to the typed `Syscall` ECS is built from."""

from __future__ import annotations

from typing import List, Optional

from hypothesis import given, settings
from hypothesis import strategies as st

from auditimds.audit import events as ae
from auditimds.audit.reassembly import AuditEvent, Reassembler
from tests.conftest import REPO, lines_of

FIXTURE = REPO / "tests" / "fixtures" / "host-a-dev_curl_creds.log"

EXEC = lines_of("""
type=SYSCALL msg=audit(1795976746.244:141883): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=2 ppid=20088 pid=20097 auid=1000 uid=0 gid=5 euid=7 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="ip" exe="/usr/bin/ip" key="auditimds_exec"^]ARCH=x86_64 SYSCALL=execve AUID="alice" UID="root" GID="root"
type=EXECVE msg=audit(1795976746.244:141883): argc=3 a0="ip" a1="netns" a2=6869207468657265
type=CWD msg=audit(1795976746.244:141883): cwd="/srv/gen"
type=PROCTITLE msg=audit(1795976746.244:141883): proctitle=6970
""")

CONNECT = lines_of("""
type=SYSCALL msg=audit(1795976294.920:267): arch=c000003e syscall=42 success=no exit=-115 a0=3 a1=7ffe9d185f00 a2=10 a3=19 items=0 ppid=2341 pid=2364 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3" exe="/usr/local/bin/python3.11" key="conn"^]ARCH=x86_64 SYSCALL=connect AUID="unset" UID="root"
type=SOCKADDR msg=audit(1795976294.920:267): saddr=02000050A9FEA9FE0000000000000000^]SADDR={ saddr_fam=inet laddr=169.254.169.254 lport=80 }
type=PROCTITLE msg=audit(1795976294.920:267): proctitle=707974686F6E33
""")


def events_of(lines: List[bytes]) -> List[AuditEvent]:
    out: List[AuditEvent] = []
    r = Reassembler(out.append)
    r.feed(lines, 0.0)
    r.flush()
    return out


def one(lines: List[bytes]) -> ae.Syscall:
    (ev,) = events_of(lines)
    s = ae.parse(ev)
    assert s is not None
    return s


def test_exec_fields():
    s = one(EXEC)
    assert (s.node, s.ts_ms, s.serial) == (b"", 1795976746244, 141883)
    assert (s.arch, s.name, s.success, s.exit) == (0xC000003E, "execve", True, 0)
    assert (s.pid, s.ppid, s.uid, s.ses, s.tty) == (20097, 20088, 0, 3, "pts0")
    assert (s.exe, s.cwd, s.sockaddr) == ("/usr/bin/ip", "/srv/gen", None)
    assert ae.rebuild_argv(s.execve) == (["ip", "netns", "hi there"], False)
    assert ae.rebuild_cut(s.execve) == (["ip", "netns", "hi there"], True)
    assert not s.execve_cut and s.execve_bytes > 0
    assert s.record[0].startswith(b"type=SYSCALL")


def test_details_of_the_syscall_record():
    d = ae.details(one(EXEC).record)
    assert (d.arch, d.exit, d.success) == (0xC000003E, 0, True)
    assert (d.uid, d.euid, d.gid, d.auid, d.ses) == ("0", "7", "5", 1000, 3)
    assert (d.tags, d.tty, d.user_name) == (["auditimds_exec"], "pts0", "root")
    assert ae.arch_name(d.arch) == "x86_64" and ae.arch_name(0x1234) == "1234"


def test_connect_decodes_the_sockaddr_only_for_network_syscalls():
    s = one(CONNECT)
    assert (s.name, s.success, s.exit) == ("connect", False, -115)
    assert s.sockaddr is not None
    assert (s.sockaddr.family, s.sockaddr.ip, s.sockaddr.port) == (ae.AF_INET, "169.254.169.254", 80)
    assert s.tty is None and s.cwd is None  # read for execs only
    d = ae.details(s.record)
    assert d.tty is None and d.user_name == "root" and d.auid == 4294967295
    assert ae.errno_name(s.exit) == "EINPROGRESS"
    # the same SOCKADDR after another syscall is not decoded
    other = [CONNECT[0].replace(b"syscall=42", b"syscall=1")] + CONNECT[1:]
    s2 = one(other)
    assert s2.name is None and s2.sockaddr is None


def test_socketcall_is_resolved_through_a0():
    i386 = [CONNECT[0].replace(b"arch=c000003e syscall=42", b"arch=40000003 syscall=102")] + CONNECT[1:]
    s = one(i386)
    assert s.name == "connect" and s.arch == 0x40000003
    assert s.sockaddr is not None and s.sockaddr.ip == "169.254.169.254"
    assert ae.syscall_name(0x40000003, b"102", b"5") == "accept"
    assert ae.syscall_name(0x40000003, b"102", b"zz") is None
    assert ae.syscall_name(None, b"59", None) == "execve"  # unknown arch: x86_64's numbers
    assert ae.syscall_name(None, b"execve", None) == "execve"  # ausearch -i
    assert ae.syscall_name(None, None, None) is None


def test_generic_layout_fallback():
    lines = lines_of("""
type=SYSCALL msg=audit(1700000000.001:5): arch=x86_64 syscall=execve success=yes exit=0 ppid=1 pid=42 uid=root ses=unset tty=(none) exe=/bin/sh cwd-not-here
type=CWD msg=audit(1700000000.001:5): cwd=<too_long>
type=PROCTITLE msg=audit(1700000000.001:5): proctitle=7368
""")
    s = one(lines)
    assert (s.arch, s.name, s.pid, s.ppid, s.uid, s.ses) == (0xC000003E, "execve", 42, 1, None, None)
    assert s.exe == "/bin/sh" and s.cwd is None and s.tty == "(none)"


def test_no_syscall_or_no_pid_is_none():
    (ev,) = events_of(EXEC[1:])
    assert ev.record is None and ae.parse(ev) is None
    bad = lines_of("""
type=SYSCALL msg=audit(1700000000.001:6): arch=c000003e syscall=59 success=yes
type=PROCTITLE msg=audit(1700000000.001:6): proctitle=7368
""")
    (ev,) = events_of(bad)
    assert ae.parse(ev) is None


def test_decode_path_and_capped_argv():
    assert ae.decode_path(None) is None
    assert ae.decode_path(b'"/usr/bin/x"') == "/usr/bin/x"
    assert ae.decode_path(b"2F746D702F612062") == "/tmp/a b"
    assert ae.decode_path(b'"/caf\xc3\xa9"') == "/caf\u00e9"
    (ev,) = events_of(EXEC)
    assert ae.capped_argv(ev.execve, 5) == ["ip", "net"]
    assert ae.capped_argv(ev.execve, 1000) == ["ip", "netns", "hi there"]


def test_the_real_fixture_parses_every_event():
    evs = events_of(FIXTURE.read_bytes().splitlines())
    parsed = [ae.parse(e) for e in evs]
    assert all(p is not None for p in parsed)
    names = [p.name for p in parsed if p is not None]
    assert names.count("execve") == 4 and "connect" in names  # one exec failed (a PATH lookup)


# -- property: whatever the values, parsing never raises, and known values come back -----------------------

FIELDS = ["arch", "syscall", "success", "exit", "a0", "a1", "a2", "a3", "items", "ppid", "pid", "auid", "uid", "gid",
          "euid", "suid", "fsuid", "egid", "sgid", "fsgid", "tty", "ses", "comm", "exe", "key"]

garbage = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b" ", b"").replace(b"\n", b"")),
    st.binary(max_size=20).map(lambda b: b.hex().upper().encode()),  # hex-encoded bytes
    st.text(alphabet="0123456789-", max_size=30).map(str.encode),
    st.sampled_from([b"", b"(null)", b"(none)", b"?", b'"', b'""', b"\x1d", b"a\x1dUID=x", b"#035UID=", b"-",
                     b"99999999999999999999999", b"0x10", b"c000003e", b"execve", b"socketcall"]),
)


@settings(max_examples=300, deadline=None)
@given(values=st.dictionaries(st.sampled_from(FIELDS), garbage, max_size=len(FIELDS)),
       cwd=garbage, saddr=garbage, tail=st.one_of(st.just(b""), garbage.map(lambda b: b"\x1d" + b)))
def test_garbage_never_raises(values, cwd, saddr, tail):
    body = b" ".join(k.encode() + b"=" + v for k, v in values.items())
    ev = AuditEvent(b"", 1700000000, 1, 7)
    ev.record = (b"type=SYSCALL msg=audit(1700000000.001:7): " + body + tail, 42)
    ev.cwd_record = (b"type=CWD msg=audit(1700000000.001:7): cwd=" + cwd, 38)
    ev.sockaddr_record = (b"type=SOCKADDR msg=audit(1700000000.001:7): saddr=" + saddr, 43)
    s = ae.parse(ev)
    if s is not None:
        ae.details(s.record)
        if s.exit is not None:
            ae.errno_name(s.exit)
        if s.arch is not None:
            ae.arch_name(s.arch)


def _syscall_line(arch: str, num: int, success: bool, exit_code: int, ppid: int, pid: int, uid: int, ses: int,
                  exe: bytes, key: Optional[bytes]) -> bytes:
    k = b"(null)" if key is None else b'"' + key + b'"'
    return (b"type=SYSCALL msg=audit(1700000000.001:9): arch=%s syscall=%d success=%s exit=%d a0=3 a1=0 a2=0 a3=0"
            b" items=0 ppid=%d pid=%d auid=4294967295 uid=%d gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0"
            b" tty=(none) ses=%d comm=\"x\" exe=%s key=%s\x1dARCH=x86_64"
            % (arch.encode(), num, b"yes" if success else b"no", exit_code, ppid, pid, uid, ses, exe, k))


@settings(max_examples=200, deadline=None)
@given(arch=st.sampled_from(["c000003e", "40000003", "c00000b7"]), num=st.integers(0, 500), success=st.booleans(),
       exit_code=st.integers(-4095, 2**31), ppid=st.integers(0, 2**22), pid=st.integers(0, 2**22),
       uid=st.integers(0, 2**32 - 1), ses=st.integers(0, 2**32 - 1),
       exe=st.binary(min_size=1, max_size=30), key=st.one_of(st.none(), st.text("abc_", min_size=1, max_size=8)))
def test_known_fields_round_trip(arch, num, success, exit_code, ppid, pid, uid, ses, exe, key):
    line = _syscall_line(arch, num, success, exit_code, ppid, pid, uid, ses, exe.hex().upper().encode(),
                         key.encode() if key is not None else None)
    ev = AuditEvent(b"", 1700000000, 1, 9)
    ev.record = (line, line.find(b"): ") + 2)
    s = ae.parse(ev)
    assert s is not None
    assert (s.arch, s.success, s.exit, s.ppid, s.pid, s.uid, s.ses) == (
        int(arch, 16), success, exit_code, ppid, pid, uid, ses)
    assert s.exe == exe.decode("utf-8", "backslashreplace")
    d = ae.details(s.record)
    assert (d.exit, d.success, d.uid) == (exit_code, success, str(uid))
    assert d.tags == ([key] if key is not None else None)
