"""Real auditd for the end-to-end tests, shared by every module in tests/e2e.

Audit state is global to the machine, so this fixture is careful:
- auditd is started only when no live auditd is registered with the kernel.  `auditctl -s` alone is not
  enough: after auditd dies (killed, or a previous run's machine stopped it) the kernel keeps showing its pid
  until it next fails to send it a record, and every record in between goes to the kernel log, not audit.log.
  So the registered pid must also be a running process named auditd.
- The backlog is only raised, never lowered, and restored at the end.
- The rules of packaging/audit/auditimds.rules are added one by one; an identical rule already loaded is left
  alone, and only the rules added here are deleted at the end (never `auditctl -D`).
- Before any test runs, a canary exec must reach the log: a fixture that cannot prove auditd writes fails here
  with that message instead of a test timing out later.
- An auditd started here is stopped at the end, and the fixture waits until it is gone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from typing import Dict, Iterator, List

import pytest

from tests.e2e.realaudit import (
    RULES_FILE,
    audit_status,
    auditd_log_file,
    live_auditd_pid,
    read_log_since,
    sh,
    stop_auditd,
    wait_for,
)


@pytest.fixture(scope="package")  # set up once for tests/e2e, torn down after its last test
def audit_daemon() -> Iterator[Dict[str, object]]:
    """auditd running and writing, with packaging/audit/auditimds.rules loaded; yields {"log": Path}."""
    if os.geteuid() != 0:
        pytest.skip("needs root (the kernel audit subsystem and network namespaces)")
    if not shutil.which("auditctl") or not shutil.which("auditd"):
        pytest.skip("auditd is not installed (apt-get install auditd; .ci/run installs it)")
    probe = subprocess.run(["auditctl", "-s"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"the kernel has no usable audit support: {probe.stderr.strip() or probe.stdout.strip()}")
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
        yield {"log": log}
    finally:
        for args in added:
            subprocess.run(["auditctl", "-d", *args[1:]], capture_output=True)
        if old_backlog < 8192:
            subprocess.run(["auditctl", "-b", str(old_backlog)], capture_output=True)
        if started:
            stop_auditd(started)
