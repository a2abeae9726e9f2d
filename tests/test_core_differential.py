"""The compiled core against the Python reference: the same input must give the same ECS events (as JSON,
byte for byte), the same alerts and the same counters.

* every log of the corpora (`../shared/corpus/real`, `../shared/corpus/public`, `tests/fixtures`), through
  every shipped and upstream rule, lazily (as `scan`) and eagerly (as the agent) evaluated;
* Hypothesis-generated streams: interleaved events, records split and duplicated, hex and quoted values,
  ENRICHED tails, node= and syslog prefixes, garbage, huge lines, clocks that step back, fed in random
  chunks (bytes or lists of lines) with wall-clock expiries in between;
* real lines with random bytes changed.

Without the compiled module the tests skip, unless AUDITIMDS_REQUIRE_COMPILED=1 (as in .ci/run), where its
absence is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditimds.alerts.sinks import dumps
from auditimds.core import core_info, make_core
from auditimds.pipeline import Pipeline
from auditimds.rules.builtin import builtin_rules_dir
from auditimds.rules.loader import load_rules
from auditimds.source.reader import open_log, read_batches
from tests.conftest import CORPUS_PUBLIC, CORPUS_REAL, REPO, UPSTREAM_RULES

if os.environ.get("AUDITIMDS_PURE", "") not in ("", "0"):
    pytest.skip("AUDITIMDS_PURE=1: the differential test runs in the compiled-core pass", allow_module_level=True)
if core_info()[0] != "compiled":
    if os.environ.get("AUDITIMDS_REQUIRE_COMPILED") == "1":
        pytest.fail(f"the compiled core is required here: {core_info()[1]}", pytrace=False)
    pytest.skip(f"no compiled core: {core_info()[1]}", allow_module_level=True)

pytestmark = pytest.mark.once
RULE_PATHS = [builtin_rules_dir(), builtin_rules_dir() / "hardened", UPSTREAM_RULES]
LOG_SUFFIXES = (".log", ".log.gz", ".txt")


def corpus_logs() -> List[Path]:
    found = []
    for root in (CORPUS_REAL, CORPUS_PUBLIC, REPO / "tests" / "fixtures"):
        for p in sorted(root.rglob("*")):
            if p.is_file() and (p.name.endswith(LOG_SUFFIXES) or p.name.startswith("audit.log")):
                found.append(p)
    return found


Feed = List[Tuple[Any, float]]  # (bytes or list of lines, now); a None batch is a tick(now)


def fake_proc(pid: int) -> Any:
    """A /proc resolver as procfs.ProcResolver answers: some pids alive (with or without an executable, argv,
    a working directory), the rest gone."""
    if pid % 3 == 0:
        return None
    if pid % 3 == 1:
        return {"ppid": pid // 2, "start_key": f"proc:{pid * 7}", "executable": f"/usr/bin/p{pid}",
                "args": [f"p{pid}", "--flag", "\u00e9"], "cwd": "/srv"}
    return {"ppid": None, "start_key": None, "executable": None}


def run(feed: Feed, pure: bool, lazy: bool = True, rules: bool = True, resolver: Any = None) -> Dict[str, Any]:
    """Everything observable of one pass: the events (JSON documents), the alerts, the statistics."""
    loaded, errors = load_rules(list(RULE_PATHS), lazy_first=lazy) if rules else ([], [])
    assert not errors
    events: List[str] = []
    alerts: List[str] = []
    # serialized as `auditimds events` and `scan` write them
    p = Pipeline(loaded, "host-id", "host-name", on_alert=lambda a: alerts.append(dumps(a)),
                 on_event=lambda ev: events.append(dumps(ev.to_document())), pure=pure, resolver=resolver)
    assert (type(p.core).__name__ == "PyCore") == pure
    for batch, now in feed:
        if batch is None:
            p.tick(now)
        else:
            p.feed(batch, now)
    p.finish()
    return {"events": events, "alerts": alerts, "stats": p.stats(), "pending": p.pending,
            "newest": p.newest_ts_ms}


def assert_same(feed: Feed, lazy: bool = True, rules: bool = True, resolver: Any = None) -> Dict[str, Any]:
    ref = run(feed, pure=True, lazy=lazy, rules=rules, resolver=resolver)
    got = run(feed, pure=False, lazy=lazy, rules=rules, resolver=resolver)
    assert got["stats"] == ref["stats"]
    assert len(got["events"]) == len(ref["events"])
    for i, (g, r) in enumerate(zip(got["events"], ref["events"])):
        assert g == r, f"event {i} differs"
    assert got["alerts"] == ref["alerts"]
    assert (got["pending"], got["newest"]) == (ref["pending"], ref["newest"])
    return ref


@pytest.mark.parametrize("log", corpus_logs(), ids=lambda p: str(p.relative_to(p.parents[2])))
def test_every_corpus_log_gives_the_same_events_alerts_and_counters(log: Path) -> None:
    with open_log(str(log)) as f:
        batches = list(read_batches(f))
    # the reference reads the lines as the `scan` reader gives them, the compiled core the same bytes as
    # one buffer per batch, the way `scan` hands them to it
    ref = run([(b, 0.0) for b in batches], pure=True)
    got = run([(b"\n".join(b), 0.0) for b in batches], pure=False)
    assert got == ref
    if log.name == "host-a.log.gz":
        assert len(ref["alerts"]) >= 6 and ref["stats"]["events"] == 36927


def test_the_agent_s_eager_first_stages_and_ticks_give_the_same_alerts() -> None:
    with open_log(str(CORPUS_REAL / "host-a.log.gz")) as f:
        batches = list(read_batches(f, 1 << 16))
    feed: Feed = []
    for i, b in enumerate(batches):
        feed.append((b, float(i)))
        if i % 7 == 0:
            feed.append((None, float(i) + 2.5))  # the agent's tick: wall-clock expiry, release everything
    ref = assert_same(feed, lazy=False)
    assert ref["alerts"]


# ---- generated streams ------------------------------------------------------------------------------
# Mostly what the kernel writes (so events get built, processes get parents and leaders, the rules fire),
# with every odd form mixed in at a low rate: the fast paths and their fallbacks both run.

G = b"\x1d"
PIDS = list(range(2, 14))
EXES = [b"/usr/bin/curl", b"/usr/bin/bash", b"/usr/sbin/sshd", b"/usr/bin/containerd-shim", b"/tmp/.x/updater",
        b"/usr/bin/python3.11", b"/usr/bin/cloud-init", b"/opt/rapid7/bin/agent", b"/tmp/x y", "/caf\u00e9".encode(),
        b"/", b"\xff\xfe"]
# (arch, exec numbers, connect numbers, socketcall)
ARCHS = [(b"c000003e", [b"59", b"322"], [b"42", b"43", b"288"]), (b"40000003", [b"11", b"358"], [b"102", b"362"]),
         (b"c00000b7", [b"221", b"281"], [b"203", b"202"]), (b"80000015", [b"11"], [b"102", b"328"])]
ODD_ARCH = [b"deadbeef", b"C000003E", b"0", b"fffffffffffffffff", b"x86_64"]
ODD_NR = [b"059", b"9" * 20, b"execve", b"connect", b"1", b"425"]
URLS = [b"http://169.254.169.254/latest/meta-data/iam/security-credentials/r",
        b"169.254.169.254/latest/api/token", b"http://127.0.0.1:8080/", b"-X", b"PUT",
        b"X-aws-ec2-metadata-token-ttl-seconds: 21600", b"--version"]


def hexs(b: bytes) -> bytes:
    return b.hex().upper().encode()


def pct(draw: Any, p: int) -> bool:
    return bool(draw(st.integers(0, 99)) < p)


@st.composite
def a_value(draw: Any, text: bytes) -> bytes:
    """A value as auditd writes it (quoted, or hex when it has a space or a non-ASCII byte), or broken."""
    if pct(draw, 85):
        plain = text and all(0x21 <= c < 0x7F and c != 0x22 for c in text)
        return b'"' + text + b'"' if plain else hexs(text) if text else b'""'
    return draw(st.sampled_from([b"(null)", text.replace(b" ", b"_") or b"x", b'"' + text.replace(b" ", b""),
                                 hexs(text)[:-1] or b"A", hexs(text), b'"' + text.replace(b" ", b"") + b'"']))


@st.composite
def syscall_record(draw: Any, kind: str, pid: int, ppid: int) -> Tuple[bytes, bytes]:
    arch, execs, conns = draw(st.sampled_from(ARCHS))
    nr = draw(st.sampled_from(execs if kind == "exec" else conns if kind == "net" else [b"2", b"425", b"57"]))
    a0 = b"3" if nr == b"102" else draw(st.sampled_from([b"3", b"5", b"7ffc0", b"1_0", b"0", b"ffffffffffffffff"]))
    if pct(draw, 5):
        arch = draw(st.sampled_from(ODD_ARCH))
    if pct(draw, 5):
        nr = draw(st.sampled_from(ODD_NR))
    exe = draw(st.sampled_from(EXES))
    fields = [b"arch=" + arch, b"syscall=" + nr]
    if pct(draw, 5):
        fields.append(b"per=400000")
    fields += [
        b"success=" + (b"yes" if pct(draw, 85) else draw(st.sampled_from([b"no", b"maybe"]))),
        b"exit=" + draw(st.sampled_from([b"0", b"0", b"-115", b"-111", b"3", b"-" + b"9" * 19])),
        b"a0=" + a0, b"a1=7ffc", b"a2=10", b"a3=0", b"items=2",
        b"ppid=" + str(ppid).encode(), b"pid=" + str(pid).encode(), b"auid=1000",
        b"uid=" + (b"0" if pct(draw, 90) else b"9" * 19), b"gid=0", b"euid=0", b"suid=0", b"fsuid=0", b"egid=0",
        b"sgid=0", b"fsgid=0", b"tty=" + draw(st.sampled_from([b"(none)", b"pts0", b"pts\xff"])),
        b"ses=" + draw(st.sampled_from([b"1", b"2", b"4294967295"])), b'comm="x"', b"exe=" + draw(a_value(exe)),
    ]
    if pct(draw, 70):
        fields.append(b'key="imds"' if pct(draw, 80) else b"key=(null)")
    if pct(draw, 8):
        shape = draw(st.sampled_from(["shuffled", "dropped", "spaced", "tab"]))
        if shape == "shuffled":
            fields = draw(st.permutations(fields))
        elif shape == "dropped":
            del fields[draw(st.integers(0, len(fields) - 1))]
    else:
        shape = "kernel"
    body = b" ".join(fields)
    if shape == "spaced":
        body = body.replace(b" ", b"  ", 1)
    elif shape == "tab":
        body = body.replace(b" exe=", b"\texe=")
    if pct(draw, 40):
        body += G + b'ARCH=x86_64 SYSCALL=execve AUID="alice" UID=' + draw(st.sampled_from(
            [b'"root"', b"726F6F74", b'"unset"', b'"unknown(5)"']))
    return b"SYSCALL", body


@st.composite
def execve_records(draw: Any) -> List[Tuple[bytes, bytes]]:
    args = [draw(st.sampled_from([b"curl", b"wget", b"python3", b"sh"]))] + draw(
        st.lists(st.sampled_from(URLS + [b"a b", b"", "\u00e9".encode(), b"x" * 300]), max_size=4))
    toks = [b"argc=" + str(len(args) + (0 if pct(draw, 90) else draw(st.sampled_from([1, -1])))).encode()]
    for i, a in enumerate(args):
        if len(a) > 2 and pct(draw, 15):  # split as aI_len / aI[j]
            h = hexs(a)
            half = len(h) // 2
            toks += [b"a%d_len=%d" % (i, len(h)), b"a%d[0]=" % i + h[:half], b"a%d[1]=" % i + h[half:]]
        else:
            toks.append(b"a%d=" % i + draw(a_value(a)))
    if pct(draw, 80):
        return [(b"EXECVE", b" ".join(toks))]
    cut = draw(st.integers(1, len(toks)))
    return [(b"EXECVE", b" ".join(toks[:cut])), (b"EXECVE", b" ".join(toks[cut:]))]


@st.composite
def a_sockaddr(draw: Any) -> bytes:
    port = draw(st.sampled_from([80, 443, 8080, 0, 53]))
    ip4 = draw(st.sampled_from([bytes([169, 254, 169, 254]), bytes([127, 0, 0, 1]), bytes([10, 1, 2, 3])]))
    forms = [
        hexs(b"\x02\x00" + port.to_bytes(2, "big") + ip4 + b"\x00" * 8),
        hexs(b"\x0a\x00" + port.to_bytes(2, "big") + b"\x00" * 4 + b"\x00" * 10 + b"\xff\xff" + ip4 + b"\x00" * 4),
        hexs(b"\x0a\x00" + port.to_bytes(2, "big") + b"\x00" * 4 + bytes.fromhex("20010db8" + "00" * 11 + "01")
             + b"\x00" * 4),
        hexs(b"\x00\x02" + port.to_bytes(2, "big") + ip4),  # a big-endian family
        b"01002F746D702F736F636B00DEAD", b"10000000D2040000", b"0200", b"020000", b"0A0000500000",
        b"(null)", b'"AB"', b"ZZ", b"",
    ]
    v = forms[0] if pct(draw, 60) else draw(st.sampled_from(forms))
    if pct(draw, 30):
        v += G + b"SADDR={ saddr_fam=inet laddr=169.254.169.254 lport=80 }"
    return b"saddr=" + v


@st.composite
def an_event(draw: Any, serial: int, sec: int, pid: int, ppid: int) -> List[Tuple[bytes, bytes, bytes]]:
    """(eid, type, body) of one event's records, in the kernel's order or disturbed."""
    kind = draw(st.sampled_from(["exec", "exec", "exec", "net", "net", "other"]))
    recs = [draw(syscall_record(kind, pid, ppid))]
    if kind == "exec":
        recs += draw(execve_records())
        cwd = draw(st.sampled_from([b"/home/u", b"/opt/rapid7/bin", b"/tmp/a b", b"<too_long>", b"/"]))
        recs.append((b"CWD", b"cwd=" + draw(a_value(cwd)) + (b"" if pct(draw, 90) else
                                                             draw(st.sampled_from([G + b"X=1", b" extra=1"])))))
    elif kind == "net":
        recs.append((b"SOCKADDR", draw(a_sockaddr())))
    recs.append((b"PATH", b'item=0 name="/bin/x" inode=1'))
    if pct(draw, 10):
        recs.append((b"SOCKETCALL", b"nargs=3 a0=3"))
    recs.append((b"PROCTITLE", b"proctitle=6375726C"))
    if pct(draw, 10):
        recs.append((b"EOE", b""))
    if pct(draw, 10):
        recs = draw(st.permutations(recs))
    if pct(draw, 5):
        recs.append(recs[0])  # a late duplicate
    ms = draw(st.integers(0, 999))
    eid = b"%d.%03d:%d" % (sec, ms, serial)
    if pct(draw, 5):
        eid = draw(st.sampled_from([b"%d.%d:%d" % (sec, ms, serial), b"+%d.%03d:%d" % (sec, ms, serial),
                                    b"%d.%03d:%d_0" % (sec, ms, serial), b"bad", b"%d:%d" % (sec, serial),
                                    b"1" * 17 + b".000:1", b" %d.%03d:%d" % (sec, ms, serial)]))
    return [(eid, t, b) for t, b in recs]


@st.composite
def a_stream(draw: Any) -> Feed:
    sec = 1_700_000_000
    events = []
    parents = {p: draw(st.sampled_from([1, 1, 2] + PIDS)) for p in PIDS}
    for serial in range(draw(st.integers(1, 16))):
        if pct(draw, 8):
            sec += draw(st.sampled_from([-5, 3, 300]))  # the clock steps, or the log pauses
        pid = draw(st.sampled_from(PIDS))
        ppid = parents[pid] if pct(draw, 90) else draw(st.sampled_from(PIDS))  # or the pid was reused
        events.append(draw(an_event(serial + 100, sec, pid, ppid)))
    # interleave: records of up to three events in flight at once
    pending = [list(e) for e in events]
    records = []
    while any(pending):
        live = [i for i, e in enumerate(pending) if e]
        records.append(pending[draw(st.sampled_from(live[:3]))].pop(0))
    node = draw(st.sampled_from([b"", b"", b"node=web-1 ", b"node=db "]))
    lines = []
    for eid, t, body in records:
        prefix = node if pct(draw, 90) else draw(st.sampled_from([b"node=web-1 ", b"Jan  1 host audispd: ", b"  ",
                                                                  b"node= ", b"\tnode=x type=y "]))
        lines.append(prefix + b"type=" + t + b" msg=audit(" + eid + b"): " + body)
        if pct(draw, 4):
            lines.append(draw(st.sampled_from([b"", b"   ", b"garbage", b"type=SYSCALL", b"type=CWD msg=audit(1.2:3",
                                               b"x" * 70000, b"type=EXECVE msg=audit(1.000:7): argc=1 a0=" +
                                               b"41" * 40000])))
    feed: Feed = []
    now = 1000.0
    i = 0
    while i < len(lines):
        n = draw(st.integers(1, 6))
        chunk = lines[i:i + n]
        i += n
        feed.append((b"\n".join(chunk) if draw(st.booleans()) else chunk, now))
        now += draw(st.sampled_from([0.0, 0.1, 2.5]))
        if pct(draw, 15):
            feed.append((None, now))
    return feed


@settings(max_examples=int(os.environ.get("AUDITIMDS_DIFF_EXAMPLES", "400")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(a_stream(), st.booleans(), st.booleans())
def test_generated_streams_give_the_same_events_alerts_and_counters(feed: Feed, lazy: bool, proc: bool) -> None:
    # with a /proc resolver (the live agent's) for parents the log has not shown, or without (scan)
    assert_same(feed, lazy=lazy, resolver=fake_proc if proc else None)


def _real_lines() -> Sequence[bytes]:
    with open_log(str(REPO / "tests" / "fixtures" / "host-a-three-scenarios.log")) as f:
        return [ln for b in read_batches(f) for ln in b]


REAL = _real_lines()


@settings(max_examples=int(os.environ.get("AUDITIMDS_DIFF_EXAMPLES", "400")), deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(0, 400), st.binary(min_size=0, max_size=3)),
                min_size=1, max_size=12), st.integers(1, 60))
def test_real_lines_with_bytes_changed_give_the_same_events(edits: List[Tuple[int, int, bytes]], batch: int) -> None:
    lines = list(REAL)
    for i, pos, new in edits:
        ln = lines[i]
        pos = min(pos, len(ln))
        lines[i] = ln[:pos] + new + ln[pos + len(new):]
    feed: Feed = [(b"\n".join(lines[j:j + batch]), float(j)) for j in range(0, len(lines), batch)]
    assert_same(feed)


def test_a_bytes_chunk_is_split_like_bytes_split() -> None:
    # empty lines, a trailing newline (an empty last line) and a lone buffer all count as bytes.split counts
    for data in (b"", b"\n", b"a\n\nb", b"type=EOE msg=audit(1.000:1): \n"):
        ref = run([(data, 0.0)], pure=True, rules=False)
        got = run([(data, 0.0)], pure=False, rules=False)
        assert got == ref and ref["stats"]["lines"] == len(data.split(b"\n"))


@st.composite
def an_execve_record(draw: Any) -> bytes:
    """One EXECVE record as the kernel writes it, or off by a little (argc, indexes, quotes, hex, spaces)."""
    args = draw(st.lists(st.sampled_from(URLS + [b"curl", b"a b", b"", "\u00e9".encode(), b"\xff", b"x" * 40]),
                         max_size=5))
    toks = [b"argc=" + draw(st.sampled_from([str(len(args)).encode()] * 6 + [b"+1", b"0" + str(len(args)).encode(),
                                                                              b"x", b"", b"99"]))]
    for i, a in enumerate(args):
        name = b"a%d" % i if pct(draw, 90) else draw(st.sampled_from([b"b%d" % i, b"a%d" % (i + 1), b"a", b"a%d_len" % i]))
        toks.append(name + b"=" + draw(a_value(a)) if pct(draw, 95) else name)
    sep = draw(st.sampled_from([b" ", b" ", b"  ", b"\t"]))
    return draw(st.sampled_from([b"", b" "])) + sep.join(toks) + draw(st.sampled_from([b"", b" ", b"\x1dX=1"]))


@settings(max_examples=int(os.environ.get("AUDITIMDS_DIFF_EXAMPLES", "400")), deadline=None)
@given(st.lists(an_execve_record(), min_size=1, max_size=2))
def test_argv_is_rebuilt_the_same(bodies: List[bytes]) -> None:
    from auditimds import _core  # type: ignore[attr-defined]
    from auditimds.audit.execve import rebuild_argv

    make_core(lambda ev: None, "h", "h")  # a Core gives the module the reference to fall back on
    head = b"type=EXECVE msg=audit(1700000000.001:7):"
    records = [(head + b, len(head)) for b in bodies]
    assert _core.rebuild_argv(records) == rebuild_argv(records)
