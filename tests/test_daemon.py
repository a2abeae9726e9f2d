"""The live daemon's logic, driven step by step (no threads, no sleeping): restarts, rotations, timeouts."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import List

import pytest

from auditimds.config import Config
from auditimds.daemon import Daemon, DaemonError
from auditimds.rules.builtin import builtin_rules_dir
from auditimds.rules.loader import load_rules
from tests.conftest import REPO

LOG_LINES = (REPO / "tests" / "fixtures" / "host-a-three-scenarios.log").read_bytes().splitlines(keepends=True)
def fresh_rules() -> list:
    """Compiled rules hold sequence state: every daemon gets its own, as every real process does."""
    rules, errors = load_rules([builtin_rules_dir()])
    assert errors == []
    return rules


def daemon(tmp: Path, out: io.StringIO, **kw) -> Daemon:
    cfg = Config(input_path=str(tmp / "audit.log"), state_dir=str(tmp / "state"), start="beginning")
    d = Daemon(cfg, fresh_rules(), host_id="h", host_name="h", stdout=out, resolver=None, self_pid=kw.pop("self_pid", 1),
               max_batch_bytes=kw.pop("max_batch_bytes", 64), checkpoint_interval=kw.pop("interval", 0.0))
    d.start()
    return d


def ids(out: io.StringIO) -> List[str]:
    return [json.loads(ln)["alert"]["id"] for ln in out.getvalue().splitlines()]


def crash(d: Daemon) -> None:
    """kill -9: nothing flushed, no final checkpoint; the end of the process releases the state dir's lock."""
    d.source.close()
    d.source = None
    d.release_lock()


@pytest.fixture(scope="module")
def expected() -> List[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        (tmp / "audit.log").write_bytes(b"".join(LOG_LINES))
        out = io.StringIO()
        d = daemon(tmp, out)
        d.step(0.0)
        d.close(0.0)
        got = ids(out)
    assert len(got) == 2
    return got


@pytest.mark.parametrize("interval", [0.0, 3600.0])
def test_crash_and_restart_at_every_line_boundary(tmp_path, expected, interval):
    for k in range(len(LOG_LINES) + 1):
        tmp = tmp_path / f"k{k}"
        tmp.mkdir()
        log = tmp / "audit.log"
        log.write_bytes(b"".join(LOG_LINES[:k]))
        out1 = io.StringIO()
        d1 = daemon(tmp, out1, interval=interval)
        d1.step(0.0)
        crash(d1)
        with open(log, "ab") as f:
            f.write(b"".join(LOG_LINES[k:]))
        out2 = io.StringIO()
        d2 = daemon(tmp, out2, interval=interval)
        d2.step(0.0)
        d2.close(0.0)
        got = ids(out1) + ids(out2)
        assert sorted(got) == sorted(expected), f"crash after line {k}"


@pytest.mark.parametrize("rotations", [1, 2])
def test_rotations_while_stopped(tmp_path, expected, rotations):
    for k in range(0, len(LOG_LINES) + 1, 7):
        tmp = tmp_path / f"k{k}"
        tmp.mkdir()
        log = tmp / "audit.log"
        log.write_bytes(b"".join(LOG_LINES[:k]))
        out1 = io.StringIO()
        d1 = daemon(tmp, out1)
        d1.step(0.0)
        crash(d1)
        rest = LOG_LINES[k:]
        parts = [rest[: len(rest) // 2], rest[len(rest) // 2:]] if rotations == 2 else [rest]
        for part in parts:  # auditd: audit.log.1 -> .2, audit.log -> .1, new audit.log
            for n in range(rotations, 0, -1):
                src = tmp / (f"audit.log.{n - 1}" if n > 1 else "audit.log")
                if src.exists():
                    os.rename(src, tmp / f"audit.log.{n}")
            log.write_bytes(b"".join(part))
        out2 = io.StringIO()
        d2 = daemon(tmp, out2)
        d2.step(0.0)
        d2.close(0.0)
        assert sorted(ids(out1) + ids(out2)) == sorted(expected), f"k={k}"


def test_graceful_stop_then_restart_emits_nothing_twice(tmp_path, expected):
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    out = io.StringIO()
    d = daemon(tmp_path, out)
    d.step(0.0)
    d.close(0.0)
    out2 = io.StringIO()
    d2 = daemon(tmp_path, out2)
    d2.step(0.0)
    d2.close(0.0)
    assert ids(out) == expected and ids(out2) == []
    state = json.loads((tmp_path / "state" / "state.json").read_text())["state"]
    assert {a for a, _ in state["alerts"]} == set(expected)
    # the restart re-read only the lookback window (longest maxspan + reassembly timeout + margin before the
    # newest event): the python alert lies in it and was recognised; the older wget alert was not re-read
    assert state["counters"]["alerts_emitted"] == 0 and state["counters"]["alerts_suppressed_duplicates"] == 1
    assert 0 < state["resume"]["offset"] < len(b"".join(LOG_LINES))


def test_busy_log_saves_the_state_once_per_interval_and_an_alert_at_once(tmp_path, monkeypatch, expected):
    """Under load the state file is written every CHECKPOINT_INTERVAL_S, not at every read; an alert's id is
    saved in the step that emitted it (a crash right after must not repeat it)."""
    import auditimds.agent.statedir as statedir_mod
    import auditimds.daemon as daemon_mod

    saves: List[tuple] = []
    real_save = statedir_mod.save_state

    def counting_save(path, state):
        saves.append((now[0], [a for a, _ in state["alerts"]]))
        return real_save(path, state)

    monkeypatch.setattr(statedir_mod, "save_state", counting_save)
    now = [1000.0]
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    out = io.StringIO()
    d = daemon(tmp_path, out, interval=daemon_mod.CHECKPOINT_INTERVAL_S)
    saves.clear()  # the one written at start
    emitted_at = {}
    for ln in LOG_LINES:  # one line per 100 ms poll: a log that never goes quiet
        with open(log, "ab") as f:
            f.write(ln)
        now[0] += 0.1
        d.step(now[0])
        for a in ids(out):
            emitted_at.setdefault(a, now[0])
    assert sorted(emitted_at) == sorted(expected)
    for alert_id, t in emitted_at.items():  # saved in the same step
        assert any(ts == t and alert_id in ids_ for ts, ids_ in saves), alert_id
    duration = len(LOG_LINES) * 0.1
    periodic = [ts for ts, _ in saves if ts not in emitted_at.values()]
    assert len(periodic) <= duration / daemon_mod.CHECKPOINT_INTERVAL_S + 1
    assert len(saves) < len(LOG_LINES) / 10  # not one per read
    d.close(now[0])


def test_quiet_log_completes_events_on_the_wall_clock(tmp_path):
    # everything but the last PROCTITLE of wget's IMDS connect
    last = max(i for i, ln in enumerate(LOG_LINES) if b"type=SOCKADDR" in ln and b"A9FEA9FE" in ln)
    cut = next(i for i in range(last, len(LOG_LINES)) if LOG_LINES[i].startswith(b"type=PROCTITLE"))
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES[:cut]))
    out = io.StringIO()
    d = daemon(tmp_path, out)
    d.step(100.0)
    before = len(ids(out))
    assert d.pipeline.pending > 0 and d.wait_timeout() == 0.5
    d.step(101.0)
    assert len(ids(out)) == before  # 1 s: still waiting for the rest of the event
    d.step(102.5)
    assert len(ids(out)) == before + 1  # 2.5 s without a record: completed and evaluated
    assert d.pipeline.pending == 0


def test_own_process_and_children_are_ignored(tmp_path):
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    out = io.StringIO()
    d = daemon(tmp_path, out, self_pid=20155)  # the bash that ran wget
    d.step(0.0)
    d.close(0.0)
    msgs = [json.loads(ln)["message"] for ln in out.getvalue().splitlines()]
    assert len(msgs) == 1 and "python3" in msgs[0]


def test_idle_daemon_has_no_timer(tmp_path):
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    cfg = Config(input_path=str(tmp_path / "audit.log"), state_dir=str(tmp_path / "state"), start="beginning",
                 health_interval=0)
    d = Daemon(cfg, fresh_rules(), host_id="h", host_name="h", stdout=io.StringIO(), self_pid=1)
    d.start()
    d.step(0.0)
    d.step(0.0)
    d.checkpoint(0.0, force=True)
    assert d.wait_timeout(0.0) is None


def test_idle_daemon_wakes_only_for_the_health_line(tmp_path, caplog):
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    d = daemon(tmp_path, io.StringIO())  # default health_interval: 300 s
    d.step(1000.0)
    d.checkpoint(1000.0, force=True)
    assert d.wait_timeout(1000.0) == 300.0
    with caplog.at_level("INFO", logger="auditimds"):
        d.step(1300.0)
    assert any("lines" in r.getMessage() for r in caplog.records if r.levelname == "INFO")
    assert d.wait_timeout(1300.0) == 300.0


def test_state_errors_are_one_line(tmp_path):
    (tmp_path / "audit.log").write_bytes(b"")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.json").write_text("{not json")
    with pytest.raises(DaemonError, match="state.json"):
        daemon(tmp_path, io.StringIO())


def test_state_of_another_log_is_not_used(tmp_path, expected, caplog):
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    d = daemon(tmp_path, io.StringIO())
    d.step(0.0)
    d.close(0.0)
    cfg = Config(input_path=str(tmp_path / "other.log"), state_dir=str(tmp_path / "state"), start="beginning")
    (tmp_path / "other.log").write_bytes(b"".join(LOG_LINES))
    out = io.StringIO()
    d2 = Daemon(cfg, fresh_rules(), host_id="h", host_name="h", stdout=out, self_pid=1)
    d2.start()
    d2.step(0.0)
    d2.close(0.0)
    assert "not" in caplog.text and sorted(ids(out)) == sorted(expected)


def test_alert_log_lines_cannot_be_forged_by_a_process_name():
    from auditimds.agent.outputs import _printable

    assert _printable("x\nauditimds: INFO: all good\r\x1b[2K") == "x\\x0aauditimds: INFO: all good\\x0d\\x1b[2K"


# -- outputs that fail ----------------------------------------------------------------------------------------


class BrokenPipeStream(io.StringIO):
    """A standard output whose reader went away."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    def write(self, s: str) -> int:
        if self.broken:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        return super().write(s)


class FakeNotifier:
    def __init__(self) -> None:
        self.alerts: List[dict] = []
        self.stopped = False

    def submit(self, alert: dict) -> None:
        self.alerts.append(alert)

    def stop(self, _timeout: float) -> None:
        self.stopped = True

    def counters(self) -> dict:
        return {"alerts": len(self.alerts), "sent": 3, "suppressed": 1, "failed": 2, "spooled": 1,
                "channels": {"json://***": {"sent": 3, "state": "ok"}}}


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_failing_outputs_neither_stop_the_agent_nor_repeat_alerts(tmp_path, expected, caplog):
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    cfg = Config(input_path=str(tmp_path / "audit.log"), state_dir=str(tmp_path / "state"), start="beginning",
                 output_jsonl="/dev/full")
    stdout = BrokenPipeStream()
    d = Daemon(cfg, fresh_rules(), host_id="h", host_name="h", stdout=stdout, self_pid=1, max_batch_bytes=64,
               checkpoint_interval=0.0)
    d.start()
    d.outputs.notifier = notifier = FakeNotifier()
    with caplog.at_level("INFO", logger="auditimds"):
        d.step(0.0)
        d.step(1.0)
    # the alerts still reach the notifications and are recorded as emitted
    assert [a["alert"]["id"] for a in notifier.alerts] == expected
    assert d.counters()["output_errors"] == 2 * len(expected)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2, errors  # one line per output, not one per alert
    assert any(m.startswith("cannot write alerts to /dev/full: No space left on device") for m in errors)
    assert any(m.startswith("cannot write alerts to stdout: Broken pipe") for m in errors)
    d.close(2.0)
    state = json.loads((tmp_path / "state" / "state.json").read_text())["state"]
    assert {a for a, _ in state["alerts"]} == set(expected)
    assert state["counters"]["output_errors"] == 2 * len(expected)
    # a restart does not repeat them
    out = io.StringIO()
    d2 = daemon(tmp_path, out)
    d2.step(0.0)
    d2.close(0.0)
    assert ids(out) == []


def test_an_output_that_works_again_is_reported_once(tmp_path, caplog):
    (tmp_path / "audit.log").write_bytes(b"")
    stdout = BrokenPipeStream()
    d = daemon(tmp_path, stdout)
    with caplog.at_level("INFO", logger="auditimds"):
        d.outputs.write(d.outputs.stdout_out, "a\n")
        d.outputs.write(d.outputs.stdout_out, "b\n")
        stdout.broken = False
        d.outputs.write(d.outputs.stdout_out, "c\n")
        d.outputs.write(d.outputs.stdout_out, "d\n")
    d.close(0.0)
    assert stdout.getvalue() == "c\nd\n"
    msgs = [r.getMessage() for r in caplog.records if "stdout" in r.getMessage()]
    assert len(msgs) == 2 and "again (2 alert(s) were not)" in msgs[1]


def test_error_throttle():
    from auditimds.metrics import ErrorThrottle

    t = ErrorThrottle(remind_every=60.0)
    assert t.failed("x", "ENOSPC", 0.0) == 0          # first: log it
    assert t.failed("x", "ENOSPC", 10.0) is None      # the same again: quiet
    assert t.failed("x", "ENOSPC", 20.0) is None
    assert t.failed("x", "EIO", 30.0) == 2            # another error: log it, 2 not logged since
    assert t.failed("x", "EIO", 95.0) == 0            # the reminder
    assert t.recovered("x") == 5 and t.recovered("x") is None
    assert t.failed("x", "EIO", 96.0) == 0            # failing again after a recovery: log it
    once = ErrorThrottle(None)
    assert once.failed("y", "e", 0.0) == 0 and once.failed("y", "e", 1e9) is None


def stdout_run(tmp_path: Path, *extra: str, stdout=None, stderr=None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "auditimds", "run", "--log", str(tmp_path / "audit.log"),
                             "--state-dir", str(tmp_path / "state"), "--start", "beginning", "--host-id", "h",
                             "--host-name", "h", *extra],
                            stdout=stdout, stderr=stderr, env=env, cwd=tmp_path)


def wait_for(cond, what, deadline=30.0):
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_the_agent_with_a_full_alerts_file_and_a_second_agent(tmp_path, expected):
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out, "w") as fout, open(err, "w") as ferr:
        p = stdout_run(tmp_path, "--alerts-jsonl", "/dev/full", stdout=fout, stderr=ferr)
    try:
        wait_for(lambda: out.read_text().count("\n") >= len(expected), "the alerts on stdout")
        # a second agent on the same state dir: one line naming the first one
        with open(tmp_path / "err2.txt", "w") as ferr2:
            q = stdout_run(tmp_path, stdout=subprocess.DEVNULL, stderr=ferr2)
            assert q.wait(timeout=60) == 2
        lines = (tmp_path / "err2.txt").read_text().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("auditimds: error: state dir ")
        assert f"in use by another auditimds (pid {p.pid})" in lines[0]
        # status only reads the state dir: the running agent does not block it
        env = dict(os.environ, PYTHONPATH=str(REPO))
        wait_for(lambda: "output errors:  2" in subprocess.run(
            [sys.executable, "-m", "auditimds", "status", "--state-dir", str(tmp_path / "state")],
            capture_output=True, text=True, env=env, timeout=60).stdout, "the output errors in status")
        assert p.poll() is None
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    text = err.read_text()
    assert "Traceback" not in text
    assert text.count("cannot write alerts to /dev/full") == 1
    assert sorted(json.loads(ln)["alert"]["id"] for ln in out.read_text().splitlines()) == sorted(expected)
    stopped = json.loads(text.split("stopped: ", 1)[1].splitlines()[0])
    assert stopped["output_errors"] == len(expected) and stopped["alerts_emitted"] == len(expected)
    # the lock went with the agent, and the restart repeats nothing
    with open(out, "w") as fout, open(err, "w") as ferr:
        p2 = stdout_run(tmp_path, stdout=fout, stderr=ferr)
    try:
        wait_for(lambda: "following" in err.read_text(), "the restart")
        p2.send_signal(signal.SIGTERM)
        assert p2.wait(timeout=30) == 0
    finally:
        if p2.poll() is None:
            p2.kill()
            p2.wait()
    assert out.read_text() == ""
    assert json.loads(err.read_text().split("stopped: ", 1)[1].splitlines()[0])["alerts_emitted"] == 0


def test_a_closed_stdout_does_not_stop_the_agent(tmp_path, expected):
    (tmp_path / "audit.log").write_bytes(b"")
    err, alerts = tmp_path / "err.txt", tmp_path / "alerts.jsonl"
    with open(err, "w") as ferr:
        p = stdout_run(tmp_path, "--alerts-jsonl", str(alerts), stdout=subprocess.PIPE, stderr=ferr)
    try:
        p.stdout.close()  # the reader goes away: every write to stdout is EPIPE
        wait_for(lambda: "following" in err.read_text(), "start")
        with open(tmp_path / "audit.log", "ab") as f:
            f.write(b"".join(LOG_LINES))
        wait_for(lambda: alerts.exists() and alerts.read_text().count("\n") >= len(expected), "the alerts")
        assert p.poll() is None
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    text = err.read_text()
    assert "Traceback" not in text and text.count("cannot write alerts to stdout: Broken pipe") == 1
    assert sorted(json.loads(ln)["alert"]["id"] for ln in alerts.read_text().splitlines()) == sorted(expected)


# -- the saved position, the state dir, the alerts file --------------------------------------------------------


def test_the_same_log_named_differently_keeps_its_position(tmp_path, expected, monkeypatch, caplog):
    from auditimds.source.checkpoint import load_state, save_state

    (tmp_path / "P").mkdir()
    log = tmp_path / "P" / "a.log"
    log.write_bytes(b"".join(LOG_LINES))
    os.symlink(tmp_path / "P", tmp_path / "link")
    monkeypatch.chdir(tmp_path)

    def run(spelling: str) -> List[str]:
        cfg = Config(input_path=spelling, state_dir=str(tmp_path / "state"), start="beginning")
        out = io.StringIO()
        d = Daemon(cfg, fresh_rules(), host_id="h", host_name="h", stdout=out, self_pid=1)
        d.start()
        d.step(0.0)
        d.close(0.0)
        return ids(out)

    assert run("P/a.log") == expected
    state_file = tmp_path / "state" / "state.json"
    assert load_state(state_file)["log"] == os.path.realpath(log)  # stored resolved
    with caplog.at_level("INFO", logger="auditimds"):
        for spelling in (str(log), "./P/a.log", "link/a.log", str(tmp_path / "link" / "a.log")):
            assert run(spelling) == [], spelling
        # a state written by an older version with the relative spelling
        st = load_state(state_file)
        save_state(state_file, dict(st, log="P/a.log"))
        assert run(str(log)) == []
    assert "starting without it" not in caplog.text
    assert "resuming" in caplog.text


def no_auditctl(*_a, **_k):
    raise FileNotFoundError("auditctl")


def test_one_agent_per_state_dir(tmp_path):
    from auditimds.daemon import StateDirInUse
    from auditimds.ops.status import status

    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    d1 = daemon(tmp_path, io.StringIO())
    with pytest.raises(StateDirInUse) as e:
        daemon(tmp_path, io.StringIO())
    assert str(e.value) == (f"state dir {tmp_path / 'state'} is in use by another auditimds (pid {os.getpid()}): "
                            "stop it, or give this one its own --state-dir ([state] dir)")
    cfg = Config(input_path=str(tmp_path / "audit.log"), state_dir=str(tmp_path / "state"))
    with pytest.raises(StateDirInUse):  # the plugin mode too
        Daemon(cfg, fresh_rules(), host_id="h", host_name="h", stdout=io.StringIO(), self_pid=1).start(stdin_fd=0)
    # status only reads: not blocked
    assert status(tmp_path / "state", io.StringIO(), run=no_auditctl) == 0
    d1.step(0.0)
    d1.close(0.0)  # releases the lock
    d2 = daemon(tmp_path, io.StringIO())
    d2.close(0.0)
    d3 = Daemon(cfg, fresh_rules(), host_id="h", host_name="h", stdout=io.StringIO(), self_pid=1)
    d3.start(stdin_fd=0)
    d3.close(0.0)
    daemon(tmp_path, io.StringIO()).close(0.0)


def test_the_stopped_line_has_the_notifier_counters(tmp_path):
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    d = daemon(tmp_path, io.StringIO())
    d.outputs.notifier = notifier = FakeNotifier()
    d.step(0.0)
    d.close(0.0)
    assert notifier.stopped and d.outputs.notifier is None
    line = d.stopped_line()
    doc = json.loads(line[len("stopped: "):])
    assert doc["notify"] == {"alerts": 2, "sent": 3, "suppressed": 1, "failed": 2, "spooled": 1}
    assert doc["alerts_emitted"] == 2


def test_a_metrics_textfile_error_is_logged_once(tmp_path, caplog):
    (tmp_path / "audit.log").write_bytes(b"")
    prom_dir = tmp_path / "missing"
    cfg = Config(input_path=str(tmp_path / "audit.log"), state_dir=str(tmp_path / "state"), health_interval=0,
                 metrics_textfile=str(prom_dir / "auditimds.prom"))
    d = Daemon(cfg, fresh_rules(), host_id="h", host_name="h", stdout=io.StringIO(), self_pid=1)
    d.start()

    def textfile_logs() -> List[str]:
        return [r.getMessage() for r in caplog.records if "metrics textfile" in r.getMessage()]

    with caplog.at_level("INFO", logger="auditimds"):
        for t in range(0, 300, 15):  # 20 attempts
            d.housekeeping(float(t))
        assert len(textfile_logs()) == 1 and "No such file or directory" in textfile_logs()[0]
        prom_dir.mkdir()
        d.housekeeping(300.0)
        assert (prom_dir / "auditimds.prom").exists() and "written again" in textfile_logs()[1]
        (prom_dir / "auditimds.prom").unlink()
        prom_dir.rmdir()
        d.housekeeping(315.0)
        d.housekeeping(330.0)
        assert len(textfile_logs()) == 3  # failed again after a recovery: said again, once
    d.close(0.0)


def test_the_alerts_file_directory_must_exist(tmp_path):
    (tmp_path / "audit.log").write_bytes(b"")
    target = tmp_path / "nonexistent" / "x.jsonl"
    cfg = Config(input_path=str(tmp_path / "audit.log"), state_dir=str(tmp_path / "state"), output_jsonl=str(target))
    d = Daemon(cfg, fresh_rules(), host_id="h", host_name="h", stdout=io.StringIO(), self_pid=1)
    with pytest.raises(DaemonError) as e:
        d.start()
    assert str(e.value) == (f"alerts file {target}: the directory {tmp_path / 'nonexistent'} does not exist "
                            "(create it, or choose another [output] jsonl / --alerts-jsonl)")
    assert not (tmp_path / "nonexistent").exists()
    assert (tmp_path / "state").is_dir()  # the state dir is ours to create
    daemon(tmp_path, io.StringIO()).close(0.0)  # the failed start released the state dir


def test_the_alerts_file_is_created_0640(tmp_path):
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    target = tmp_path / "alerts.jsonl"
    cfg = Config(input_path=str(tmp_path / "audit.log"), state_dir=str(tmp_path / "state"), start="beginning",
                 output_jsonl=str(target))
    old = os.umask(0o022)
    try:
        d = Daemon(cfg, fresh_rules(), host_id="h", host_name="h", stdout=io.StringIO(), self_pid=1)
        d.start()
    finally:
        os.umask(old)
    d.step(0.0)
    d.close(0.0)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert len(target.read_text().splitlines()) == 2


def test_a_state_dir_that_is_a_file(tmp_path):
    (tmp_path / "audit.log").write_bytes(b"")
    (tmp_path / "state").write_text("")
    with pytest.raises(DaemonError) as e:
        daemon(tmp_path, io.StringIO())
    assert str(e.value).startswith(f"state dir {tmp_path / 'state'}: is not a directory")


def test_a_reload_changes_or_removes_the_alerts_file_or_keeps_it_when_refused(tmp_path):
    (tmp_path / "audit.log").write_bytes(b"")
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    cfg = Config(input_path=str(tmp_path / "audit.log"), state_dir=str(tmp_path / "state"), output_jsonl=str(first))
    d = Daemon(cfg, fresh_rules(), host_id="h", host_name="h", stdout=io.StringIO(), self_pid=1)
    d.start()
    with pytest.raises(DaemonError, match="does not exist"):
        d.apply(cfg.with_overrides(output_jsonl=str(tmp_path / "nosuch" / "c.jsonl")), fresh_rules())
    assert d.cfg.output_jsonl == str(first) and d.outputs.jsonl is not None and d.outputs.jsonl.name == str(first)
    d.apply(cfg.with_overrides(output_jsonl=str(second)), fresh_rules())
    assert d.outputs.jsonl.name == str(second) and second.exists()
    d.apply(replace(cfg, output_jsonl=None), fresh_rules())
    assert d.outputs.jsonl is None and d.cfg.output_jsonl is None
    d.close(0.0)


# -- read cadence ---------------------------------------------------------------------------------------

def _feed(cadence, lines_per_step: int, step_s: float, steps: int, t0: float) -> float:
    t = t0
    for _ in range(steps):
        t += step_s
        cadence.observe(lines_per_step, t)
    return t


def test_cadence_keeps_watching_a_calm_log():
    """A calm log (an exec now and then: 25 lines every 50 ms, 500 lines/s) keeps inotify on, so an alert is
    written milliseconds after its record rather than at the next timed read."""
    from auditimds.agent.inputs import Cadence

    c = Cadence(busy_lines_per_s=2000, interval=0.1, quiet_windows=4)
    _feed(c, 25, 0.05, 200, 1000.0)
    assert not c.busy


def test_cadence_reads_a_busy_log_on_a_timer_and_goes_back_after_quiet_windows():
    from auditimds.agent.inputs import Cadence

    c = Cadence(busy_lines_per_s=2000, interval=0.1, quiet_windows=4)
    t = _feed(c, 60, 0.01, 15, 1000.0)  # 6,000 lines/s (1,000 execs/s), read at each inotify wake-up
    assert c.busy
    t = _feed(c, 600, 0.1, 20, t)  # timed reads while busy
    assert c.busy
    t = _feed(c, 0, 0.1, 3, t)  # three quiet windows: still busy (no flapping)
    assert c.busy
    t = _feed(c, 600, 0.1, 1, t)  # busy again: the quiet count starts over
    t = _feed(c, 10, 0.1, 3, t)
    assert c.busy
    _feed(c, 10, 0.1, 1, t)  # the fourth quiet window in a row
    assert not c.busy


def test_cadence_survives_the_clock_going_back():
    from auditimds.agent.inputs import Cadence

    c = Cadence(busy_lines_per_s=2000, interval=0.1, quiet_windows=4)
    _feed(c, 600, 0.1, 3, 1000.0)
    assert c.busy
    c.observe(600, 500.0)  # wall clock stepped back: a new window starts, nothing divides by a negative time
    _feed(c, 600, 0.1, 3, 500.0)
    assert c.busy


# -- exactly once across a kill at the alert write, and across a reload ---------------------------------------


class Killed(BaseException):
    """kill -9 in the middle of a step: nothing after it runs (BaseException: no handler catches it)."""


def jsonl_daemon(tmp: Path, **kw) -> Daemon:
    cfg = Config(input_path=str(tmp / "audit.log"), state_dir=str(tmp / "state"), start="beginning",
                 output_jsonl=str(tmp / "alerts.jsonl"), output_stdout=False)
    d = Daemon(cfg, kw.pop("rules", None) or fresh_rules(), host_id="h", host_name="h", stdout=io.StringIO(),
               self_pid=1, max_batch_bytes=64, checkpoint_interval=kw.pop("interval", 0.0))
    d.start()
    return d


def file_ids(tmp: Path) -> List[str]:
    return [json.loads(ln)["alert"]["id"] for ln in (tmp / "alerts.jsonl").read_text().splitlines()]


def kill_at_alert_write(d: Daemon, nth: int = 1, torn: bool = False) -> None:
    """Make `d` die (Killed) right after writing its nth alert line to the file, or, torn, half of it."""
    real_write = d.outputs.jsonl.write_line
    written = [0]

    def write_then_die(line: str) -> None:
        written[0] += 1
        if written[0] < nth:
            return real_write(line)
        if torn:
            os.write(d.outputs.jsonl.fd, line.encode()[: len(line) // 2])
        else:
            real_write(line)
        raise Killed

    d.outputs.jsonl.write_line = write_then_die


@pytest.mark.parametrize("torn", [False, True])
@pytest.mark.parametrize("nth", [1, 2])
def test_a_kill_at_the_instant_an_alert_line_is_written_repeats_nothing(tmp_path, expected, nth, torn, caplog):
    """The agent dies right after (or, torn: in the middle of) writing its nth alert line, before any
    checkpoint records it; the restart re-reads the log and finds the alert again.  The file must hold every
    alert exactly once and only whole lines."""
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    d = jsonl_daemon(tmp_path)
    kill_at_alert_write(d, nth, torn)
    with pytest.raises(Killed):
        d.step(0.0)
    state = json.loads((tmp_path / "state" / "state.json").read_text())["state"]
    saved = len(state["alerts"])
    assert saved < nth  # the checkpoint never heard of the nth alert
    crash(d)
    with caplog.at_level("INFO", logger="auditimds"):
        d2 = jsonl_daemon(tmp_path)
        d2.step(1.0)
        d2.close(1.0)
    assert sorted(file_ids(tmp_path)) == sorted(expected)  # whole lines only, each alert once
    if torn:
        aside = (tmp_path / "state" / "alerts-torn.jsonl").read_bytes()
        assert aside.startswith(b'{"@timestamp"') and aside.endswith(b"\n")
        assert "ended in a torn line" in caplog.text
    else:
        assert f"{nth - saved} alert(s) written after the last checkpoint" in caplog.text
        assert json.loads((tmp_path / "state" / "state.json").read_text())["state"]["counters"][
            "alerts_suppressed_duplicates"] >= 1


def test_a_kill_at_the_alert_write_still_notifies_once(tmp_path, expected):
    """The file had the alert, the notifier had not: after the restart the alert is not written again, and is
    handed to the notifier (which drops what it already took)."""
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    d = jsonl_daemon(tmp_path)
    d.outputs.notifier = first = FakeNotifier()
    kill_at_alert_write(d)
    with pytest.raises(Killed):
        d.step(0.0)
    crash(d)
    assert first.alerts == []
    d2 = jsonl_daemon(tmp_path)
    d2.outputs.notifier = second = FakeNotifier()
    d2.step(1.0)
    d2.close(1.0)
    # handed over from the file and again when found in the log: the notifier drops repeats by id
    # (tests/alerts/test_notify.py), so what counts is that every alert reached it
    assert sorted(set(a["alert"]["id"] for a in second.alerts)) == sorted(expected)
    assert sorted(file_ids(tmp_path)) == sorted(expected)


def test_a_second_kill_before_the_alert_is_found_again_still_repeats_nothing(tmp_path, expected):
    """Killed at the alert write; the next run reads the alert back from the file, checkpoints (at start) and
    is killed before it re-reads the log far enough to meet that alert again; the third run meets it.  The
    id must have survived the second run's checkpoint, although the file's mark moved past its line."""
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    d = jsonl_daemon(tmp_path)
    kill_at_alert_write(d)
    with pytest.raises(Killed):
        d.step(0.0)
    crash(d)
    assert len(file_ids(tmp_path)) == 1
    d2 = jsonl_daemon(tmp_path)  # reads the file back, checkpoints at start, reads no log line
    crash(d2)
    d3 = jsonl_daemon(tmp_path)
    d3.step(1.0)
    d3.close(1.0)
    assert sorted(file_ids(tmp_path)) == sorted(expected)


def test_a_kill_after_the_checkpoint_but_before_the_notifier_saved_still_notifies(tmp_path):
    """The checkpoint (ledger) is written by the main loop, the notifier's state by its worker: a kill between
    the two must not cost the notification.  The restart finds the alerts again (in the ledger: not written
    again) and still hands them to the notifier, which drops only the ids it took before."""
    # one scenario, seconds long: the restart's look-back (the rule's maxspan and more) covers all of it
    (tmp_path / "audit.log").write_bytes((REPO / "tests" / "fixtures" / "host-a-dev_curl_creds.log").read_bytes())
    d = jsonl_daemon(tmp_path)
    d.outputs.notifier = first = FakeNotifier()  # its worker never got to write its state down
    d.step(0.0)
    d.checkpoint(0.0, force=True)
    crash(d)
    ids = file_ids(tmp_path)
    assert len(ids) == 1 and [a["alert"]["id"] for a in first.alerts] == ids
    d2 = jsonl_daemon(tmp_path)
    d2.outputs.notifier = second = FakeNotifier()
    d2.step(1.0)
    d2.close(1.0)
    assert [a["alert"]["id"] for a in second.alerts] == ids
    assert file_ids(tmp_path) == ids  # and the file got nothing twice


def test_a_pending_signal_ends_a_long_read_after_the_current_batch_and_loses_nothing(tmp_path, expected):
    """SIGTERM/SIGHUP during a long catch-up is served after the batch being processed, not after the whole
    backlog (a stop that waits seconds would push an exec and its connect beyond the rule's maxspan); the
    next read goes on where this one stopped."""
    (tmp_path / "audit.log").write_bytes(b"".join(LOG_LINES))
    d = jsonl_daemon(tmp_path)  # 64-byte batches: the log is hundreds of them
    d.interrupted = lambda: True
    first = d.step(0.0)
    assert 0 < first < len(LOG_LINES)
    d.interrupted = lambda: False
    rest = d.step(0.0)
    assert first + rest == len(LOG_LINES)
    d.close(0.0)
    assert sorted(file_ids(tmp_path)) == sorted(expected)


def test_a_reload_between_any_two_lines_keeps_every_alert(tmp_path, expected):
    """SIGHUP with the same rules at every line boundary: the open sequences, held first stages and events
    being reassembled carry over, so the alerts are those of an uninterrupted run (each once)."""
    for k in range(len(LOG_LINES) + 1):
        tmp = tmp_path / f"k{k}"
        tmp.mkdir()
        log = tmp / "audit.log"
        log.write_bytes(b"".join(LOG_LINES[:k]))
        d = jsonl_daemon(tmp)
        d.step(0.0)
        d.apply(d.cfg, fresh_rules())
        with open(log, "ab") as f:
            f.write(b"".join(LOG_LINES[k:]))
        d.step(0.0)
        d.close(0.0)
        assert sorted(file_ids(tmp)) == sorted(expected), f"reload after line {k}"


def test_a_reload_with_a_changed_rule_starts_it_fresh_and_says_so(tmp_path, expected, caplog):
    """A rule whose query changed loses its open sequences (logged); one whose name alone changed keeps
    them."""
    (tmp_path / "audit.log").write_bytes(b"")
    d = jsonl_daemon(tmp_path)
    seed = d.pipeline.rules[0]
    renamed = fresh_rules()
    renamed[0].name = "renamed"
    with caplog.at_level("INFO", logger="auditimds"):
        d.apply(d.cfg, renamed)
    assert d.pipeline.rules[0].compiled is seed.compiled and d.pipeline.rules[0].name == "renamed"
    assert "changed" not in caplog.text
    changed = fresh_rules()
    changed[0].fingerprint = "another query"
    with caplog.at_level("INFO", logger="auditimds"):
        d.apply(d.cfg, changed)
    assert d.pipeline.rules[0].compiled is changed[0].compiled
    assert f"rule {seed.rule_id} ({seed.name}) changed: its open sequences and history start fresh" in caplog.text
    with caplog.at_level("INFO", logger="auditimds"):
        d.apply(d.cfg, [])
    assert f"rule {seed.rule_id} ({seed.name}) removed" in caplog.text
    d.close(0.0)
