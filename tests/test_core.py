"""core.py: which core make_core gives, and the interface both cores share (the differential test,
tests/test_core_differential.py, shows they behave the same)."""

from __future__ import annotations

import os
from typing import Any, List

import pytest

from auditimds import core
from auditimds.core import PyCore, core_info, make_core
from tests.conftest import lines_of

EXEC = lines_of("""
type=SYSCALL msg=audit(1700000000.001:5): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=2 ppid=1 pid=42 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="curl" exe="/usr/bin/curl" key="k"
type=EXECVE msg=audit(1700000000.001:5): argc=2 a0="curl" a1="http://169.254.169.254/"
type=CWD msg=audit(1700000000.001:5): cwd="/root"
type=PROCTITLE msg=audit(1700000000.001:5): proctitle=6375726C
""")


def compiled_or_skip() -> None:
    if core_info()[0] != "compiled":
        if os.environ.get("AUDITIMDS_REQUIRE_COMPILED") == "1" and os.environ.get("AUDITIMDS_PURE", "") in ("", "0"):
            pytest.fail(f"compiled core required: {core_info()[1]}")
        pytest.skip(core_info()[1])


def test_pure_env_forces_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITIMDS_PURE", "1")
    assert core_info() == ("pure-Python", "AUDITIMDS_PURE=1 is set")
    assert isinstance(make_core(lambda ev: None, "h", "h"), PyCore)
    monkeypatch.setenv("AUDITIMDS_PURE", "0")  # 0 and empty mean "not forced"
    assert core_info()[1] != "AUDITIMDS_PURE=0 is set"


def test_a_missing_compiled_module_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_core(name: str, *args: Any, **kw: Any) -> Any:
        if name == "_core" or name.endswith("._core") or (args and args[2] and "_core" in (args[2] or ())):
            raise ImportError("No module named 'auditimds._core'")
        return real_import(name, *args, **kw)

    monkeypatch.delenv("AUDITIMDS_PURE", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_core)
    name, why = core_info()
    assert name == "pure-Python" and "not installed" in why and "auditimds._core" in why
    assert isinstance(make_core(lambda ev: None, "h", "h"), PyCore)


@pytest.mark.parametrize("pure", [True, False])
def test_both_cores_take_lines_or_one_buffer_and_emit_in_order(pure: bool) -> None:
    if not pure:
        compiled_or_skip()
    for data in (EXEC, b"\n".join(EXEC), memoryview(b"\n".join(EXEC))):
        out: List[Any] = []
        c = make_core(out.append, "h", "h", pure=pure, reorder_ms=0)
        c.feed(data, 0.0)
        (ev,) = out
        assert ev.seq == 1 and ev["process.name"] == "curl" and ev["process.working_directory"] == "/root"
        assert ev["process.command_line"] == "curl http://169.254.169.254/"
        k = c.counters()
        assert (k["lines"], k["records"], k["events"], k["exec"], k["processes"]) == (4, 4, 1, 1, 2)
        assert c.process(42).executable == "/usr/bin/curl" and c.process(42).entity_id == ev["process.entity_id"]
        assert c.process(99) is None and c.pending == 0 and c.frontier == 1700000000001 and c.node_tables == 0


@pytest.mark.parametrize("pure", [True, False])
def test_bad_settings_are_refused(pure: bool) -> None:
    if not pure:
        compiled_or_skip()
    with pytest.raises(ValueError):
        make_core(lambda ev: None, "h", "h", pure=pure, max_in_flight=0)
    with pytest.raises(ValueError):
        make_core(lambda ev: None, "h", "h", pure=pure, max_procs=0)


def test_the_compiled_core_refuses_what_is_not_lines() -> None:
    compiled_or_skip()
    c = make_core(lambda ev: None, "h", "h")
    with pytest.raises(TypeError):
        c.feed("a str", 0.0)
    with pytest.raises(TypeError):
        c.feed([b"ok", "not bytes"], 0.0)
    with pytest.raises(TypeError):
        core._load_compiled()[0].Core(lambda ev: None, object(), "h", "h")  # helpers lacking everything


def test_an_error_in_the_consumer_stops_the_feed_and_reaches_the_caller() -> None:
    compiled_or_skip()

    def boom(ev: Any) -> None:
        raise RuntimeError("consumer failed")

    c = make_core(boom, "h", "h", reorder_ms=0)
    with pytest.raises(RuntimeError, match="consumer failed"):
        c.feed(b"\n".join(EXEC), 0.0)
    # the core is still usable afterwards
    out: List[Any] = []
    c2 = make_core(out.append, "h", "h", reorder_ms=0)
    c2.feed(EXEC, 0.0)
    assert len(out) == 1


def test_the_compiled_core_s_memory_is_seen_by_tracemalloc() -> None:
    compiled_or_skip()
    import tracemalloc

    c = make_core(lambda ev: None, "h", "h")
    open_events = [line for i in range(2000) for line in (
        f'type=SYSCALL msg=audit(1700000000.001:{i}): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 '
        f'a3=4 items=2 ppid=1 pid={i} auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 '
        f'ses=3 comm="x" exe="/usr/bin/{"x" * 500}"'.encode(),)]
    tracemalloc.start()
    c.feed(open_events, 0.0)  # 2,000 events in flight, each with a copy of its ~600-byte SYSCALL record
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert c.pending == 2000 and current > 2000 * 600


def test_the_compiled_core_refuses_to_be_fed_from_its_own_callback() -> None:
    compiled_or_skip()
    box: List[Any] = []

    def again(ev: Any) -> None:
        box[0].feed(EXEC, 0.0)

    c = make_core(again, "h", "h", reorder_ms=0)
    box.append(c)
    with pytest.raises(RuntimeError, match="called again from its own emit callback"):
        c.feed(EXEC, 0.0)
    c.flush()  # usable again once the call that failed has returned
