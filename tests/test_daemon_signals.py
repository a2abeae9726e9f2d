"""The real `auditimds run` process: SIGHUP reloads (a bad file keeps the old configuration), SIGTERM exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

FIXTURE = (REPO / "tests" / "fixtures" / "host-a-three-scenarios.log").read_bytes()


def wait_for(cond, what, deadline=20.0):
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.05)


def test_sighup_reload_and_sigterm(tmp_path: Path):
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    cfg = tmp_path / "auditimds.toml"
    cfg.write_text('[input]\nstart = "beginning"\n')
    alerts = tmp_path / "alerts.jsonl"
    err = tmp_path / "err.txt"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(err, "w") as ferr:
        p = subprocess.Popen([sys.executable, "-m", "auditimds", "run", "--config", str(cfg), "--log", str(log),
                              "--state-dir", str(tmp_path / "state"), "--alerts-jsonl", str(alerts), "--no-stdout"],
                             stderr=ferr, env=env)
    try:
        wait_for(lambda: "following" in err.read_text(), "start")
        # a broken file: refused with one line, the agent keeps running with the old configuration
        cfg.write_text("[input]\nstart = 1\n")
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in err.read_text(),
                 lambda: f"the refusal (agent exit code {p.poll()}, stderr: {err.read_text()!r})")
        assert p.poll() is None
        line = [ln for ln in err.read_text().splitlines() if "reload refused" in ln][0]
        assert "[input] start: must be a string" in line
        # a good file with an exception for wget: applied; then only the python alert is emitted
        cfg.write_text('[input]\nstart = "beginning"\n[[exceptions]]\nprocess_executable = ["/usr/bin/wget"]\n')
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in err.read_text(), "the reload")
        with open(log, "ab") as f:
            f.write(FIXTURE)
        wait_for(lambda: alerts.exists() and alerts.read_text().count("\n") >= 1, "an alert")
        time.sleep(0.5)
        names = [json.loads(ln)["process"]["name"] for ln in alerts.read_text().splitlines()]
        assert names == ["python3.11"]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
    text = err.read_text()
    assert "Traceback" not in text and "stopped:" in text
    state = json.loads((tmp_path / "state" / "state.json").read_text())["state"]
    assert state["counters"]["alerts_silenced_by_exceptions"] == 1


@pytest.mark.parametrize("mode", ["file", "stdin"])
def test_signal_handlers_are_in_place_before_start_up_work(tmp_path: Path, mode: str):
    """A SIGTERM or SIGHUP while the agent loads its rules or catches up must not kill it the default way
    (SIGHUP's default action terminates): the handlers are installed before any start-up work."""
    from auditimds.config import Config
    from auditimds.daemon import run_daemon, run_stdin

    seen = {}

    class Abort(Exception):
        pass

    def load_rules(_cfg):
        seen["term"] = signal.getsignal(signal.SIGTERM)
        seen["hup"] = signal.getsignal(signal.SIGHUP)
        raise Abort

    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    old_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(old_fd)
    cfg = Config(input_path=str(tmp_path / "audit.log"), state_dir=str(tmp_path / "state"))
    try:
        with pytest.raises(Abort):
            if mode == "file":
                run_daemon(cfg, None, {}, load_rules, lambda _c: ("h", "h"))
            else:
                run_stdin(cfg, load_rules, lambda _c: ("h", "h"))
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(old_fd)
    assert callable(seen["term"]) and seen["term"] not in (signal.SIG_DFL, signal.SIG_IGN)
    assert seen["hup"] is not signal.SIG_DFL


class NotifySocket:
    """The receiving end of sd_notify(3), as systemd holds it for a `Type=notify` service."""

    def __init__(self, path: Path) -> None:
        import socket

        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list = []

    def wait(self, key: str, deadline: float = 20.0) -> list:
        """Collect datagrams until one holds `key` (e.g. "READY=1"); returns its lines."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                lines = self.sock.recv(4096).decode().split("\n")
            except OSError:
                continue
            self.messages.append(lines)
            if key in lines:
                return lines
        raise AssertionError(f"no {key} from the agent within {deadline} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


def test_systemd_is_told_ready_only_once_signals_are_safe(tmp_path: Path):
    """`Type=notify`: READY=1 comes after the handlers are in place and the state is loaded, so a reload sent
    the instant `systemctl start` returns reloads instead of ending the agent (SIGHUP's default action, which
    systemd counts as a clean exit: the service was simply gone).  A reload is framed by RELOADING=1 and
    READY=1, also when refused; the stop says STOPPING=1."""
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    cfg = tmp_path / "auditimds.toml"
    cfg.write_text('[input]\nstart = "beginning"\n')
    err = tmp_path / "err.txt"
    sock = NotifySocket(tmp_path / "notify")
    env = dict(os.environ, PYTHONPATH=str(REPO), NOTIFY_SOCKET=str(sock.path))
    with open(err, "w") as ferr:
        p = subprocess.Popen([sys.executable, "-m", "auditimds", "run", "--config", str(cfg), "--log", str(log),
                              "--state-dir", str(tmp_path / "state"), "--no-stdout"], stderr=ferr, env=env)
    try:
        ready = sock.wait("READY=1")
        assert "STATUS=1 rule(s)" in ready, ready
        assert (tmp_path / "state" / "state.json").exists()  # the state was loaded and the start recorded
        p.send_signal(signal.SIGHUP)  # at once, as systemd would when a reload job waited for the start
        sock.wait("RELOADING=1")
        assert "STATUS=1 rule(s), configuration reloaded" in sock.wait("READY=1")
        assert p.poll() is None and "configuration reloaded" in err.read_text()
        cfg.write_text("[input]\nstart = 1\n")
        p.send_signal(signal.SIGHUP)
        sock.wait("RELOADING=1")
        refused = sock.wait("READY=1")
        assert any(x.startswith("STATUS=reload refused") for x in refused), refused
        p.send_signal(signal.SIGTERM)
        sock.wait("STOPPING=1")
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
        sock.close()
    assert "Traceback" not in err.read_text()
