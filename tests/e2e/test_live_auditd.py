"""End to end with the real kernel audit subsystem and auditd: `auditimds run` sees real curl and python
processes fetch credentials from a fake metadata service, across an auditd rotation and a kill -9.

Network safety: 169.254.169.254 exists only on the loopback of a network namespace this test creates, with
its own small HTTP server; nothing leaves the host.  Audit state is global to the machine: rules are added
one by one (an existing identical rule is left alone and kept at the end), the backlog is only raised, and
auditd is started only if it is not running (and stopped again only if this test started it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import pytest

from tests.conftest import REPO
from tests.e2e.realaudit import IMDS, AuditUnavailable, audit_status, imds_namespace, sh, wait_for


@pytest.fixture(scope="module")
def auditd(audit_daemon) -> Dict[str, object]:
    """The shared real auditd (tests/e2e/conftest.py), plus the kernel's lost-event count before this module."""
    return {**audit_daemon, "lost_before": int(audit_status().get("lost", "0"))}


@pytest.fixture(scope="module")
def imds_ns(tmp_path_factory) -> Iterator[str]:
    """A network namespace whose loopback carries 169.254.169.254, with a fake metadata server on port 80."""
    try:
        with imds_namespace(tmp_path_factory.mktemp("fake-imds")) as ns:
            yield ns
    except AuditUnavailable as e:
        pytest.skip(str(e))


class Agent:
    def __init__(self, tmp: Path, log: Path) -> None:
        self.tmp, self.log = tmp, log
        self.alerts = tmp / "alerts.jsonl"
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.err = self.tmp / f"stderr-{self.starts}.txt"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "auditimds", "run", "--log", str(self.log), "--state-dir", str(self.tmp / "state"),
             "--alerts-jsonl", str(self.alerts), "--no-stdout", "--config", str(self.tmp / "auditimds.toml")],
            stdout=subprocess.DEVNULL, stderr=open(self.err, "w"), env=env)
        wait_for("auditimds to follow the log", lambda: "following" in self.err.read_text()
                 or self.proc.poll() is not None)
        assert self.proc.poll() is None, self.err.read_text()

    def alerts_list(self) -> List[dict]:
        if not self.alerts.exists():
            return []
        return [json.loads(ln) for ln in self.alerts.read_text().splitlines() if ln.strip()]


def marker_of(alert: dict) -> Optional[str]:
    text = json.dumps(alert)
    m = re.search(r"case=(e2e-[0-9a-f]+-[a-z0-9]+)", text)
    return m.group(1) if m else None


def fetch_with_curl(ns: str, marker: str) -> None:
    r = sh("ip", "netns", "exec", ns, "curl", "-s", "-m", "3",
           f"http://{IMDS}/latest/meta-data/iam/security-credentials/role?case={marker}")
    assert "ASIAEXAMPLE" in r.stdout


def fetch_with_python(ns: str, marker: str) -> None:
    code = ("import urllib.request as u; print(u.urlopen('http://169.254.169.254/latest/meta-data/instance-id"
            f"?case={marker}', timeout=3).read().decode())")
    r = sh("ip", "netns", "exec", ns, sys.executable, "-c", code)
    assert r.stdout.startswith("i-0123")


def test_live_detection_across_rotation_and_kill9(auditd, imds_ns, tmp_path):
    log = auditd["log"]
    (tmp_path / "auditimds.toml").write_text('[input]\nstart = "end"\n')
    agent = Agent(tmp_path, log)
    agent.start()
    run = uuid.uuid4().hex[:8]
    m = {k: f"e2e-{run}-{k}" for k in ("curl", "python", "rotated", "whiledown")}

    def alerted(*markers: str) -> Callable[[], bool]:
        return lambda: {marker_of(a) for a in agent.alerts_list()} >= set(markers)

    try:
        # 1. curl and python, each fetching from the metadata address
        fetch_with_curl(imds_ns, m["curl"])
        fetch_with_python(imds_ns, m["python"])
        wait_for("alerts for curl and python", alerted(m["curl"], m["python"]))
        names = {marker_of(a): a["process"]["name"] for a in agent.alerts_list()}
        assert names[m["curl"]] == "curl" and names[m["python"]].startswith("python")

        # 2. auditd rotates its log (SIGUSR1): audit.log -> audit.log.1, new audit.log
        inode = log.stat().st_ino
        os.kill(int(audit_status()["pid"]), signal.SIGUSR1)
        wait_for("auditd to rotate", lambda: log.exists() and log.stat().st_ino != inode)
        fetch_with_curl(imds_ns, m["rotated"])
        wait_for("an alert after the rotation", alerted(m["rotated"]))

        # 3. kill -9 auditimds, fetch while it is down, restart: the alert arrives, nothing twice
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(timeout=10)
        before = log.read_bytes().count(b"saddr=02000050A9FEA9FE")
        fetch_with_curl(imds_ns, m["whiledown"])
        wait_for("auditd to write the connect", lambda: log.read_bytes().count(b"saddr=02000050A9FEA9FE") > before)
        agent.start()
        wait_for("the alert for the access made while auditimds was down", alerted(m["whiledown"]))

        # 4. SIGTERM: clean exit 0
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(timeout=20) == 0, agent.err.read_text()
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.proc.kill()

    alerts = agent.alerts_list()
    ids = [a["alert"]["id"] for a in alerts]
    assert len(ids) == len(set(ids)), "an alert was emitted twice"
    per_marker: Dict[str, int] = {}
    for a in alerts:
        mk = marker_of(a)
        if mk:
            per_marker[mk] = per_marker.get(mk, 0) + 1
    assert per_marker == {v: 1 for v in m.values()}
    for a in alerts:
        assert a["rule"]["id"] == "ecc0cd54-608e-11ef-ab6d-f661ea17fbce"
        assert a["destination"]["ip"] == IMDS
    lost = int(audit_status().get("lost", "0")) - int(auditd["lost_before"])
    assert lost == 0, f"the kernel lost {lost} audit events during the test (backlog too small?)"


def test_live_notifications_once_per_window(auditd, imds_ns, tmp_path):
    """[notify] json:// on loopback with real auditd: one POST for six identical accesses within the window."""
    from tests.alerts.receivers import HttpReceiver

    with HttpReceiver() as hook:
        cfg = tmp_path / "auditimds.toml"
        cfg.write_text(f'[input]\nstart = "end"\n[notify]\nurls = ["json://127.0.0.1:{hook.port}/"]\n'
                       'window = "10m"\n')
        cfg.chmod(0o600)
        agent = Agent(tmp_path, auditd["log"])
        agent.start()
        run = uuid.uuid4().hex[:8]
        markers = [f"e2e-{run}-n{i}" for i in range(6)]
        try:
            fetch_with_curl(imds_ns, markers[0])
            wait_for("the first notification", lambda: hook.count >= 1)
            bodies = hook.json_bodies()
            assert len(bodies) == 1
            message = json.dumps(bodies[0])
            assert f"case={markers[0]}" in message and "curl" in message  # the command line is in it
            for mk in markers[1:]:
                fetch_with_curl(imds_ns, mk)
            wait_for("all six alerts in the JSON lines file",
                     lambda: {marker_of(a) for a in agent.alerts_list()} >= set(markers))
            # the same rule, host, executable and parent within the window: suppressed, counted for the digest
            time.sleep(1.0)  # give a wrong extra POST the chance to arrive before asserting there is none
            assert hook.count == 1
            agent.proc.send_signal(signal.SIGTERM)
            assert agent.proc.wait(timeout=20) == 0, agent.err.read_text()
        finally:
            if agent.proc is not None and agent.proc.poll() is None:
                agent.proc.kill()
        assert hook.count == 1
        state = json.loads((tmp_path / "state" / "state.json").read_text())["state"]
        notify = state["counters"].get("notify", {})
        assert notify.get("sent") == 1 and notify.get("suppressed") == 5, notify
