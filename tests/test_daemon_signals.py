"""The real `auditimds run` process: SIGHUP reloads (a bad file keeps the old configuration), SIGTERM exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO

FIXTURE = (REPO / "tests" / "fixtures" / "host-a-three-scenarios.log").read_bytes()


def wait_for(cond, what, deadline=20.0):
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
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
        wait_for(lambda: "reload refused" in err.read_text(), "the refusal")
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
