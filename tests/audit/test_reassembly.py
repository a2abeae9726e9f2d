from __future__ import annotations

from auditimds.audit.reassembly import Reassembler, Reorder
from tests.conftest import lines_of

# The interleaving example from the spec (serial 342 finishes after 343 and 344).
INTERLEAVED = lines_of("""
type=SYSCALL msg=audit(1795976346.520:342): arch=c000003e syscall=59 success=no exit=-2 ppid=1 pid=2
type=CWD msg=audit(1795976346.520:342): cwd="/"
type=PATH msg=audit(1795976346.520:342): item=0 name="/usr/local/bin/cat" nametype=UNKNOWN
type=SYSCALL msg=audit(1795976346.520:343): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=3
type=EXECVE msg=audit(1795976346.520:343): argc=1 a0="cat"
type=PROCTITLE msg=audit(1795976346.520:343): proctitle="cat"
type=SYSCALL msg=audit(1795976346.520:344): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=4
type=PROCTITLE msg=audit(1795976346.520:344): proctitle="ls"
type=PROCTITLE msg=audit(1795976346.520:342): proctitle="sh"
""")


def collect(**kw):
    out = []
    r = Reassembler(out.append, **kw)
    return r, out


def test_interleaved_events_complete_on_their_own_proctitle():
    r, out = collect()
    records, malformed = r.feed(INTERLEAVED, now=100.0)
    assert (records, malformed) == (8, 0)  # PATH is not a record the detector reads
    assert [e.serial for e in out] == [343, 344, 342]
    e342 = out[2]
    assert e342.record is not None and e342.cwd_record is not None and e342.completed_by == "proctitle"
    assert len(r) == 0


def test_records_before_syscall_and_eoe_completion():
    r, out = collect()
    r.feed(lines_of("""
type=CWD msg=audit(10.000:7): cwd="/root"
type=SYSCALL msg=audit(10.000:7): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=9
type=EOE msg=audit(10.000:7):
type=EOE msg=audit(10.000:7):
type=EOE msg=audit(10.000:8):
"""), 0.0)
    assert len(out) == 1 and out[0].completed_by == "eoe" and out[0].cwd_record is not None
    assert r.stats.late_records == 1  # the second EOE of 7
    assert len(r) == 0  # a stray EOE opens nothing


def test_late_record_after_completion_is_dropped_and_counted():
    r, out = collect()
    r.feed(lines_of("""
type=SYSCALL msg=audit(10.000:7): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=9
type=PROCTITLE msg=audit(10.000:7): proctitle="x"
type=CWD msg=audit(10.000:7): cwd="/late"
"""), 0.0)
    assert len(out) == 1 and out[0].cwd_record is None
    assert r.stats.late_records == 1


def test_log_time_timeout_without_proctitle():
    r, out = collect(log_timeout=2)
    r.feed(lines_of("""
type=SYSCALL msg=audit(100.000:1): arch=c000003e syscall=42 success=yes exit=0 ppid=1 pid=9
type=SOCKADDR msg=audit(100.000:1): saddr=02000050A9FEA9FE0000000000000000
type=SYSCALL msg=audit(101.000:2): arch=c000003e syscall=42 success=yes exit=0 ppid=1 pid=9
"""), 0.0)
    assert out == []  # 1 s later: still open
    r.feed(lines_of("type=SYSCALL msg=audit(102.000:3): arch=c000003e syscall=42 ppid=1 pid=9"), 0.0)
    assert [e.serial for e in out] == [1]
    assert out[0].completed_by == "timeout" and out[0].sockaddr_record is not None
    assert r.stats.timed_out == 1


def test_late_written_event_is_not_cut_by_the_log_time_timeout():
    # A blocking connect stamped at 100 is written at 110: its records must stay together.
    r, out = collect(log_timeout=2)
    r.feed(lines_of("""
type=SYSCALL msg=audit(110.000:50): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=3
type=PROCTITLE msg=audit(110.000:50): proctitle="x"
type=SYSCALL msg=audit(100.000:40): arch=c000003e syscall=42 success=no exit=-110 ppid=1 pid=9
type=SOCKADDR msg=audit(100.000:40): saddr=02000050A9FEA9FE0000000000000000
type=PROCTITLE msg=audit(100.000:40): proctitle="x"
"""), 0.0)
    assert [(e.serial, e.completed_by) for e in out] == [(50, "proctitle"), (40, "proctitle")]
    assert out[1].sockaddr_record is not None


def test_wall_clock_timeout_uses_the_now_passed_in():
    r, out = collect(wall_timeout=2.0)
    r.feed(lines_of("type=SYSCALL msg=audit(100.000:1): arch=c000003e syscall=42 ppid=1 pid=9"), now=50.0)
    r.expire(now=51.9)
    assert out == []
    r.expire(now=52.0)
    assert len(out) == 1 and out[0].completed_by == "timeout"


def test_bounded_in_flight_evicts_oldest_and_counts():
    r, out = collect(max_in_flight=3)
    r.feed([f"type=SYSCALL msg=audit(100.000:{i}): arch=c000003e syscall=42 ppid=1 pid=9".encode()
            for i in range(1, 6)], 0.0)
    assert len(r) == 3
    assert [e.serial for e in out] == [1, 2]
    assert r.stats.evicted == 2 and all(e.completed_by == "evicted" for e in out)


def test_nodes_are_separate_events():
    r, out = collect()
    r.feed(lines_of("""
node=a type=SYSCALL msg=audit(100.000:1): arch=c000003e syscall=42 ppid=1 pid=9
node=b type=SYSCALL msg=audit(100.000:1): arch=c000003e syscall=42 ppid=1 pid=10
node=a type=PROCTITLE msg=audit(100.000:1): proctitle="a"
"""), 0.0)
    assert [e.node for e in out] == [b"a"]
    r.flush()
    assert [e.node for e in out] == [b"a", b"b"] and out[1].completed_by == "flush"


def test_malformed_and_irrelevant_lines():
    r, out = collect()
    records, malformed = r.feed(
        lines_of("""
type=UNKNOWN[1329] msg=g
type=PATH msg=audit(1.000:1): item=0
garbage line
type=SYSCALL msg=audit(bad): arch=c000003e
""") + [b"", b"   "], 0.0)
    assert records == 1 and malformed == 2
    assert r.stats.bad_ids == 1 and len(r) == 0


def test_reorder_releases_in_time_then_serial_order():
    got = []
    ro = Reorder(lambda ev, seq: got.append((ev.serial, seq)), window_ms=1000)
    r = Reassembler(ro.push)
    r.feed(lines_of("""
type=SYSCALL msg=audit(100.500:2): arch=c000003e syscall=42 ppid=1 pid=9
type=PROCTITLE msg=audit(100.500:2): proctitle="b"
type=SYSCALL msg=audit(100.000:1): arch=c000003e syscall=42 ppid=1 pid=9
type=PROCTITLE msg=audit(100.000:1): proctitle="a"
type=SYSCALL msg=audit(100.500:3): arch=c000003e syscall=42 ppid=1 pid=9
type=PROCTITLE msg=audit(100.500:3): proctitle="c"
"""), 0.0)
    assert got == []  # all within the window
    r.feed(lines_of("""
type=SYSCALL msg=audit(101.600:4): arch=c000003e syscall=42 ppid=1 pid=9
type=PROCTITLE msg=audit(101.600:4): proctitle="d"
"""), 0.0)
    assert got == [(1, 1), (2, 2), (3, 3)]
    ro.release_all()
    assert got[-1] == (4, 4) and ro.late == 0


def test_reorder_counts_events_later_than_the_window():
    got = []
    ro = Reorder(lambda ev, seq: got.append(ev.serial), window_ms=0)
    r = Reassembler(ro.push)
    r.feed(lines_of("""
type=SYSCALL msg=audit(105.000:2): arch=c000003e syscall=42 ppid=1 pid=9
type=PROCTITLE msg=audit(105.000:2): proctitle="b"
type=SYSCALL msg=audit(100.000:1): arch=c000003e syscall=42 ppid=1 pid=9
type=PROCTITLE msg=audit(100.000:1): proctitle="a"
"""), 0.0)
    assert got == [2, 1] and ro.late == 1


def test_reorder_memory_is_bounded_when_time_goes_backwards():
    """A clock step back (or concatenated logs) must not make the buffer hoard everything after it."""
    got = []
    ro = Reorder(lambda ev, seq: got.append(ev.serial), window_ms=1000, max_held=50)
    r = Reassembler(ro.push)
    serial = 0
    for base in (1000, 500):  # second half is 500 s *earlier*
        for i in range(300):
            serial += 1
            ts = f"{base + i // 10}.{(i % 10) * 100:03d}"
            r.feed([f"type=SYSCALL msg=audit({ts}:{serial}): arch=c000003e syscall=42 ppid=1 pid=9".encode(),
                    f"type=PROCTITLE msg=audit({ts}:{serial}): proctitle=\"x\"".encode()], 0.0)
            assert len(ro) <= 50
    # the first half was held at most 1 s of log time; the earlier half went out at once, counted late
    assert len(got) >= 550 and ro.late >= 290
    ro.release_all()
    assert sorted(got) == list(range(1, 601))


def test_reorder_cap_releases_oldest_first():
    got = []
    ro = Reorder(lambda ev, seq: got.append(ev.serial), window_ms=10**9, max_held=3)
    r = Reassembler(ro.push)
    for i in range(1, 6):
        r.feed([f"type=SYSCALL msg=audit(100.{i:03d}:{i}): arch=c000003e syscall=42 ppid=1 pid=9".encode(),
                f"type=PROCTITLE msg=audit(100.{i:03d}:{i}): proctitle=\"x\"".encode()], 0.0)
    assert got == [1, 2] and len(ro) == 3
