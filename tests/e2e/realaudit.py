"""Helpers for tests that drive the real kernel audit subsystem and auditd (see conftest.py for the rules
these tests follow)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from tests.conftest import REPO

RULES_FILE = REPO / "packaging" / "audit" / "auditimds.rules"


def sh(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def wait_for(what: str, cond: Callable[[], object], deadline_s: float = 20.0, every: float = 0.05) -> object:
    end = time.monotonic() + deadline_s
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        time.sleep(every)


def audit_status() -> Dict[str, str]:
    out = sh("auditctl", "-s").stdout
    return dict(line.split(None, 1) for line in out.splitlines() if len(line.split(None, 1)) == 2)


def is_auditd(pid: int) -> bool:
    """Whether `pid` is a live auditd (a killed one stays a zombie, with its name, until it is reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    name, _, rest = stat.partition("(")[2].rpartition(")")
    return name == "auditd" and rest.split()[0] not in ("Z", "X", "x")


def live_auditd_pid() -> int:
    """The pid of the auditd the kernel sends records to, if that process is alive; else 0."""
    pid = int(audit_status().get("pid", "0").split()[0])
    return pid if pid and is_auditd(pid) else 0


def auditd_log_file() -> Path:
    try:
        for line in Path("/etc/audit/auditd.conf").read_text().splitlines():
            m = re.match(r"\s*log_file\s*=\s*(\S+)", line)
            if m:
                return Path(m.group(1))
    except OSError:
        pass
    return Path("/var/log/audit/audit.log")


def read_log_since(log: Path, start: Tuple[int, int]) -> bytes:
    """The log from `start` (inode, offset) to now, also across one rotation (audit.log -> audit.log.1)."""
    inode, offset = start
    if log.stat().st_ino == inode:
        with open(log, "rb") as f:
            f.seek(offset)
            return f.read()
    old = log.with_name(log.name + ".1")
    head = b""
    if old.exists() and old.stat().st_ino == inode:
        with open(old, "rb") as f:
            f.seek(offset)
            head = f.read()
    return head + log.read_bytes()




def stop_auditd(pid: int) -> None:
    """SIGTERM an auditd and wait until the process is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    wait_for(f"auditd (pid {pid}) to exit", lambda: not is_auditd(pid), deadline_s=30)


class AuditUnavailable(Exception):
    """This machine cannot run the real-auditd tests (the reason is the message)."""


@contextmanager
def real_auditd() -> Iterator[Path]:
    """auditd running and writing, with packaging/audit/auditimds.rules loaded; yields the log's path.

    Raises AuditUnavailable (before changing anything) without root, auditd or kernel audit support.
    See tests/e2e/conftest.py for the care taken with the machine's global audit state."""
    if os.geteuid() != 0:
        raise AuditUnavailable("needs root (the kernel audit subsystem and network namespaces)")
    if not shutil.which("auditctl") or not shutil.which("auditd"):
        raise AuditUnavailable("auditd is not installed (apt-get install auditd; .ci/run installs it)")
    probe = subprocess.run(["auditctl", "-s"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise AuditUnavailable(f"the kernel has no usable audit support: {probe.stderr.strip() or probe.stdout.strip()}")
    started = 0
    if not live_auditd_pid():
        # a stale registration (dead auditd) is replaced: the new auditd registers itself with the kernel
        sh("auditd")  # daemonizes
        started = wait_for("a live auditd to register with the kernel", live_auditd_pid)  # type: ignore[assignment]
    old_backlog = int(audit_status().get("backlog_limit", "0"))
    if old_backlog < 8192:
        sh("auditctl", "-b", "8192")
    added: List[List[str]] = []
    log = auditd_log_file()
    try:
        for line in RULES_FILE.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            args = line.split()
            r = subprocess.run(["auditctl", *args], capture_output=True, text=True)
            if r.returncode == 0:
                added.append(args)
            elif "exists" not in (r.stderr + r.stdout):
                raise AssertionError(f"auditctl {line}: {r.stderr.strip()}")
        st = log.stat()
        start = (st.st_ino, st.st_size)
        canary = f"e2ecanary{uuid.uuid4().hex[:8]}"
        subprocess.run(["/bin/true", canary], check=True)
        wait_for(f"auditd (pid {live_auditd_pid()}) to write a canary exec to {log}",
                 lambda: canary.encode() in read_log_since(log, start))
        yield log
    finally:
        for args in added:
            subprocess.run(["auditctl", "-d", *args[1:]], capture_output=True)
        if old_backlog < 8192:
            subprocess.run(["auditctl", "-b", str(old_backlog)], capture_output=True)
        if started:
            stop_auditd(started)


IMDS = "169.254.169.254"


@contextmanager
def imds_namespace(root: Path) -> Iterator[str]:
    """A network namespace whose loopback carries 169.254.169.254, with a fake metadata server on port 80
    serving files from `root`; yields the namespace's name.  Nothing leaves the host."""
    if not shutil.which("ip") or not shutil.which("curl"):
        raise AuditUnavailable("needs iproute2 and curl (.ci/run installs them)")
    ns = f"aimds{os.getpid()}"
    creds = root / "latest" / "meta-data" / "iam" / "security-credentials"
    creds.mkdir(parents=True, exist_ok=True)
    (creds / "role").write_text('{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"example"}\n')
    (root / "latest" / "meta-data" / "instance-id").write_text("i-0123456789abcdef0\n")
    sh("ip", "netns", "add", ns)
    server: Optional[subprocess.Popen] = None
    try:
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{IMDS}/32", "dev", "lo")
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "http.server", "80", "--bind", IMDS,
                                   "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("the fake metadata server", lambda: subprocess.run(
            ["ip", "netns", "exec", ns, "curl", "-s", "-m", "1", f"http://{IMDS}/latest/meta-data/instance-id"],
            capture_output=True, text=True).stdout.startswith("i-0123"))
        yield ns
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
