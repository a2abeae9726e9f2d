"""Helpers for tests that drive the real kernel audit subsystem and auditd (see conftest.py for the rules
these tests follow)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, Tuple

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
