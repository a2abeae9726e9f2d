"""The .deb and its systemd unit under a real systemd as PID 1, in a systemd-nspawn container.

What it proves, in one boot of a Debian container (same release as this machine, booted with systemd):

1. the .deb (the session fixture `deb` of conftest.py) installs with `apt-get install ./x.deb` offline: its
   dependencies are in the debootstrap set; its postinst enables and starts the service;
2. the service runs as user auditimds (uid from /proc/MAINPID/status and ps), with adm as a supplementary
   group, CAP_SYS_PTRACE as its only capability, no_new_privs and a seccomp filter: the sandbox is applied,
   not only accepted;
3. `systemctl reload` right after `systemctl restart` reloads (Type=notify: the restart returned after
   READY=1): "configuration reloaded" in the journal from the same main pid (the reload
   turns on `[output] jsonl = "/var/log/auditimds/alerts.jsonl"`, which step 4 then needs);
4. the real recorded lines of tests/fixtures/host-a-dev_curl_creds.log appended to the audit log give one
   alert, in the journal (stdout) and in the alerts file;
5. kill -9 of the main pid: systemd restarts it (Restart=on-failure) after RestartSec with a new main pid;
   the new agent re-reads its lookback window, finds the same alert and suppresses it (alert.id ledger):
   still exactly one alert in the journal and in the file;
6. `systemctl stop` returns 0 well within TimeoutStopSec and the service ends inactive with result success
   (the agent exits 0 on SIGTERM);
7. `systemd-analyze security auditimds` stays at or below MAX_EXPOSURE (measured);
8. `apt-get purge` of the running service leaves nothing: the container's file listing and account files are
   as before the install (the same comparison as test_deb.py on the host).

How: the root file system is made once by tests/packaging/make-nspawn-root.sh (debootstrap, minbase, in
/var/cache/auditimds-test; .ci/run makes it in its set-up, this test makes it if missing, which needs the
Debian mirror). It is booted with --volatile=overlay: every write goes to a tmpfs over the cached root, so a
run never changes the cache. The container has --private-network (no traffic leaves it; it has no network
to install from). auditd cannot run in a container (the kernel takes audit only from the initial PID
namespace), so a host temp directory (0750 root:adm, audit.log 0640 root:adm; adm is gid 4 on both sides:
no user namespace) is bind-mounted as its /var/log/audit and lines are appended from the host. Commands run
in the container with `nsenter -a` into its PID 1. Everything asynchronous is polled with a deadline.

Afterwards the machine is as before: the container is shut down (SIGTERM to systemd-nspawn, then SIGKILL)
and waited for, the tmpfs this test mounted on /run/systemd/nspawn (nspawn needs one there) is unmounted,
the temp directories are removed. The cached root stays. Needs root, systemd-nspawn (systemd-container),
nsenter and, without a cached root, debootstrap (about 90 s, once per machine): about 13 s with the root
cached and the .deb built (30 s more when this test builds it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, TypeVar

import pytest

from tests.conftest import REPO
from tests.packaging.test_deb import ACCOUNT_FILES, IGNORED_PREFIXES, PKG, WATCHED

MAKE_ROOT = REPO / "tests" / "packaging" / "make-nspawn-root.sh"
FIXTURE = REPO / "tests" / "fixtures" / "host-a-dev_curl_creds.log"
NSPAWN_RUN = Path("/run/systemd/nspawn")  # nspawn wants a tmpfs here; this machine's /run is not one
DEB_IN_CONTAINER = "/run/auditimds-deb"  # the .deb's directory, bind-mounted read-only
ALERTS_FILE = "/var/log/auditimds/alerts.jsonl"
CONFIG = "/etc/auditimds/auditimds.toml"
# `systemd-analyze security auditimds` measured in the container (systemd 252, Debian 12): 1.8 OK.
# A higher score means a sandbox directive was lost or weakened.
MAX_EXPOSURE = 1.8
CAP_SYS_PTRACE = 19
ADM_GID = 4
ENV = ["/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8",
       "TERM=dumb", "DEBIAN_FRONTEND=noninteractive", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"]

T = TypeVar("T")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (systemd-nspawn, mounts, debootstrap)"),
    pytest.mark.skipif(shutil.which("systemd-nspawn") is None,
                       reason="systemd-nspawn not found: apt-get install systemd-container (.ci/run installs it)"),
    pytest.mark.skipif(shutil.which("nsenter") is None, reason="nsenter not found (util-linux)"),
]


def wait_for(what: str, probe: Callable[[], Optional[T]], timeout: float,
             detail: Optional[Callable[[], str]] = None, interval: float = 0.2) -> T:
    """Poll `probe` until it returns something true; fail with `what` (and `detail()`) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f"\n{detail()}" if detail else ""))
        time.sleep(interval)


def seconds(value: str) -> float:
    """A systemd time span as `systemctl show` prints it ("5s", "1min 30s", "100ms") in seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
    parts = re.findall(r"([\d.]+)\s*(us|ms|min|s|h)", value)
    assert parts, f"not a time span: {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


class Container:
    """A booted systemd-nspawn container: its nspawn process and its PID 1 (systemd) as this machine sees it."""

    def __init__(self, proc: subprocess.Popen, pid1: int, log: Path) -> None:
        self.proc = proc
        self.pid1 = pid1
        self.log = log

    @property
    def root(self) -> str:
        """The container's root directory, seen from this machine (its mount namespace, through /proc)."""
        return f"/proc/{self.pid1}/root"

    def run(self, *cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        r = subprocess.run(["nsenter", "-t", str(self.pid1), "-a", *ENV, *cmd], capture_output=True,
                           encoding="utf-8", errors="replace", timeout=timeout)  # LC_ALL=C.UTF-8 inside
        if check and r.returncode != 0:
            raise AssertionError(f"in the container: {' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def show(self, *props: str) -> Dict[str, str]:
        out = self.run("systemctl", "show", "auditimds.service", *(f"--property={p}" for p in props)).stdout
        return dict(ln.split("=", 1) for ln in out.splitlines() if "=" in ln)

    def journal(self) -> List[Dict[str, Any]]:
        """The journal entries of auditimds.service (systemd's own lines about the unit and the agent's)."""
        # --all: without it, journalctl's JSON gives fields over 4096 bytes (an alert line) as null
        out = self.run("journalctl", "--unit=auditimds.service", "--output=json", "--all", "--no-pager",
                       "--output-fields=MESSAGE,_PID,_COMM").stdout
        entries = []
        for ln in out.splitlines():
            e = json.loads(ln)
            msg = e.get("MESSAGE")
            if isinstance(msg, list):  # not valid UTF-8: journalctl gives the bytes
                e["MESSAGE"] = bytes(msg).decode("utf-8", "replace")
            elif msg is None:
                e["MESSAGE"] = ""
            entries.append(e)
        return entries

    def journal_text(self) -> str:
        return "\n".join(str(e["MESSAGE"])[:300] for e in self.journal()[-40:])

    def read(self, path: str) -> Optional[str]:
        try:
            return Path(self.root + path).read_text()
        except FileNotFoundError:
            return None


def journal_alerts(c: Container) -> List[Dict[str, Any]]:
    """The alerts the agent wrote on stdout: journal lines that are JSON documents with an alert.id."""
    alerts = []
    for e in c.journal():
        msg = str(e["MESSAGE"])
        if msg.startswith("{"):
            doc = json.loads(msg)
            if "alert" in doc:
                alerts.append(doc)
    return alerts


def file_alerts(c: Container) -> List[Dict[str, Any]]:
    text = c.read(ALERTS_FILE) or ""
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def listing(c: Container) -> Set[str]:
    """The container's files under test_deb.WATCHED, less test_deb.IGNORED_PREFIXES, as paths in the container."""
    out: Set[str] = set()
    strip = len(c.root)
    for top in WATCHED:
        for root, dirs, files in os.walk(c.root + top):
            croot = root[strip:]
            if croot.startswith(IGNORED_PREFIXES):
                dirs[:] = []
                continue
            for n in dirs + files:
                p = os.path.join(croot, n)
                if not p.startswith(IGNORED_PREFIXES):
                    out.add(p)
    return out


def accounts(c: Container) -> Dict[str, Optional[str]]:
    return {p: c.read(p) for p in ACCOUNT_FILES}


def main_pid(c: Container) -> int:
    return int(c.show("MainPID")["MainPID"])


def wait_running(c: Container, timeout: float, not_pid: int = 0) -> int:
    """Wait until the service is active/running with a main pid other than `not_pid`; return that pid."""
    def probe() -> Optional[int]:
        st = c.show("ActiveState", "SubState", "MainPID")
        pid = int(st["MainPID"])
        if st["ActiveState"] == "active" and st["SubState"] == "running" and pid not in (0, not_pid):
            return pid
        return None
    return wait_for("auditimds.service active (running)", probe, timeout,
                    detail=lambda: f"{c.show('ActiveState', 'SubState', 'MainPID', 'Result')}\n{c.journal_text()}")


def proc_status(c: Container, pid: int) -> Dict[str, str]:
    out = c.run("cat", f"/proc/{pid}/status").stdout
    return {k: v.strip() for k, v in (ln.split(":", 1) for ln in out.splitlines() if ":" in ln)}


def state_counters(c: Container) -> Dict[str, Any]:
    """The counters of the agent's last checkpoint (/var/lib/auditimds/state.json), {} before the first one."""
    text = c.read("/var/lib/auditimds/state.json")
    if not text:
        return {}
    try:
        return json.loads(text)["state"]["counters"]
    except (ValueError, KeyError):  # written atomically, but be tolerant of a partial read
        return {}


@pytest.fixture(scope="module")
def nspawn_root() -> Path:
    """The cached root file system: made by make-nspawn-root.sh (a no-op when already complete)."""
    r = subprocess.run(["bash", str(MAKE_ROOT)], capture_output=True, text=True, timeout=1200)
    if r.returncode == 2 and "debootstrap" in r.stderr:
        pytest.skip(f"no cached container root and {r.stderr.strip()} (.ci/run installs it)")
    assert r.returncode == 0, f"make-nspawn-root.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    root = Path(r.stdout.strip().splitlines()[-1])
    assert (root / ".auditimds-root").is_file(), root
    assert not (root / "opt" / "auditimds").exists() and not (root / "var/lib/dpkg/info/auditimds.list").exists(), \
        f"the cached root {root} has auditimds installed: remove it and run make-nspawn-root.sh again"
    return root


@pytest.fixture(scope="module")
def nspawn_run_dir() -> Iterator[None]:
    """A tmpfs on /run/systemd/nspawn (nspawn refuses to start without), mounted here only if none is there."""
    if os.path.ismount(NSPAWN_RUN):
        yield
        return
    created = [p for p in (NSPAWN_RUN.parent, NSPAWN_RUN) if not p.exists()]
    NSPAWN_RUN.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(NSPAWN_RUN)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(NSPAWN_RUN)], check=True)
        for p in reversed(created):
            p.rmdir()


@pytest.fixture(scope="module")
def audit_dir() -> Iterator[Path]:
    """The host directory bind-mounted as the container's /var/log/audit, with an empty audit.log."""
    d = Path(tempfile.mkdtemp(prefix="auditimds-nspawn-audit."))
    try:
        os.chown(d, 0, ADM_GID)
        d.chmod(0o750)
        log = d / "audit.log"
        log.touch()
        os.chown(log, 0, ADM_GID)
        log.chmod(0o640)
        yield d
    finally:
        shutil.rmtree(d)


@pytest.fixture(scope="module")
def container(nspawn_root: Path, nspawn_run_dir: None, audit_dir: Path, deb: Path) -> Iterator[Container]:
    """The container booted (systemctl is-system-running: running, or degraded with the failed units printed)."""
    logdir = Path(tempfile.mkdtemp(prefix="auditimds-nspawn-log."))
    log = logdir / "nspawn.log"
    cmd = ["systemd-nspawn", "--quiet", f"--directory={nspawn_root}", "--volatile=overlay", "--boot",
           "--private-network", "--console=passive", "--register=no", "--keep-unit",
           "--machine=auditimds-test", f"--bind={audit_dir}:/var/log/audit", f"--bind-ro={deb.parent}:{DEB_IN_CONTAINER}"]
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        def nspawn_log() -> str:
            return log.read_text(errors="replace")[-3000:]

        def pid1() -> Optional[int]:
            assert proc.poll() is None, f"systemd-nspawn exited ({proc.returncode}):\n{nspawn_log()}"
            for task in Path(f"/proc/{proc.pid}/task").iterdir():
                for child in (task / "children").read_text().split():
                    try:
                        if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                            return int(child)
                    except FileNotFoundError:
                        pass
            return None

        c = Container(proc, wait_for("the container's systemd (a child of systemd-nspawn)", pid1, 30,
                                     detail=nspawn_log), log)
        assert os.readlink(f"/proc/{c.pid1}/ns/pid") != os.readlink("/proc/self/ns/pid")

        def booted() -> Optional[str]:
            assert proc.poll() is None, f"systemd-nspawn exited ({proc.returncode}):\n{nspawn_log()}"
            r = c.run("systemctl", "is-system-running", check=False, timeout=30)
            state = r.stdout.strip()
            return state if state in ("running", "degraded") else None

        state = wait_for("the container to boot (systemctl is-system-running)", booted, 120, detail=nspawn_log)
        print(f"container booted in {time.monotonic() - t0:.1f} s: {state}")
        if state == "degraded":
            print(c.run("systemctl", "--failed", "--no-legend", check=False).stdout)
        yield c
    finally:
        # SIGTERM: nspawn asks the container's systemd for an orderly shutdown; SIGKILL if that takes too long
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        print(f"nspawn exited {proc.returncode}")
        shutil.rmtree(logdir)


def test_unit_under_systemd_pid1(container: Container, deb: Path) -> None:
    c = container
    t_start = time.monotonic()
    before = listing(c)
    before_accounts = accounts(c)
    assert not os.path.lexists(c.root + "/lib/systemd/system/auditimds.service")

    # 1. install offline: the Depends (python3.N, adduser) come from the debootstrap set; Recommends (auditd)
    #    cannot be fetched and is not wanted in a container.
    r = c.run("apt-get", "install", "--yes", "--no-install-recommends", f"{DEB_IN_CONTAINER}/{deb.name}",
              timeout=300)
    assert "Setting up auditimds" in r.stdout, r.stdout + r.stderr
    assert c.run("systemctl", "is-enabled", "auditimds.service").stdout.strip() == "enabled"

    # 2. started by the postinst, running as auditimds with adm, CAP_SYS_PTRACE only, no_new_privs, seccomp
    pid = wait_running(c, 30)
    uid, gid = c.run("getent", "passwd", PKG).stdout.split(":")[2:4]
    st = proc_status(c, pid)
    assert st["Uid"].split() == [uid] * 4, st["Uid"]
    assert st["Gid"].split() == [gid] * 4, st["Gid"]
    assert str(ADM_GID) in st["Groups"].split(), st["Groups"]
    for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(st[cap], 16) == 1 << CAP_SYS_PTRACE, f"{cap} {st[cap]}: only CAP_SYS_PTRACE expected"
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", st
    ps = c.run("ps", "-o", "user:32=,uid=,supgrp:64=,args=", "-p", str(pid)).stdout.split()
    assert ps[:2] == [PKG, uid] and "adm" in ps[2].split(","), ps
    assert "/opt/auditimds/bin/python3" in ps[3] and "run" in ps[4:], ps
    print(f"running: MainPID {pid}, {' '.join(ps)}")

    # 3. reload: turn the alerts file on and `systemctl reload` the instant `systemctl restart` returned; the
    #    same process logs the reload.  Type=notify: the restart returns once the agent sent READY=1, its
    #    signal handlers in place (with Type=exec a SIGHUP that early ended the agent, "Deactivated
    #    successfully", seen once in CI under load).
    cfg = c.read(CONFIG) or ""
    assert f'# jsonl = "{ALERTS_FILE}"' in cfg, "config/auditimds.toml changed: adapt the test"
    Path(c.root + CONFIG).write_text(cfg.replace(f'# jsonl = "{ALERTS_FILE}"', f'jsonl = "{ALERTS_FILE}"'))

    def reload_lines() -> List[Dict[str, Any]]:
        return [e for e in c.journal() if "configuration reloaded" in str(e["MESSAGE"])]

    assert reload_lines() == []
    c.run("systemctl", "restart", "auditimds.service")
    restarted = c.show("MainPID", "Type")
    c.run("systemctl", "reload", "auditimds.service")
    assert restarted["Type"] == "notify" and int(restarted["MainPID"]) not in (0, pid), restarted
    first_pid, pid = pid, int(restarted["MainPID"])
    reloaded = wait_for("'configuration reloaded' in the journal", reload_lines, 30, detail=c.journal_text)
    assert [int(e["_PID"]) for e in reloaded] == [pid], reloaded
    after = c.show("MainPID", "ActiveState", "NRestarts")
    assert after == {"MainPID": str(pid), "ActiveState": "active", "NRestarts": "0"}, after
    print(f"reload: {reloaded[0]['MESSAGE']} (pid {reloaded[0]['_PID']})")

    # 4. an IMDS credential fetch (real auditd lines) appended to the log: one alert, journal and file
    with open(c.root + "/var/log/audit/audit.log", "ab") as f:
        f.write(FIXTURE.read_bytes())

    def one_alert_each() -> bool:
        return bool(journal_alerts(c)) and bool(file_alerts(c))

    wait_for("the alert in the journal and in the alerts file", one_alert_each, 30, detail=c.journal_text)
    [alert] = journal_alerts(c)
    assert [a["alert"]["id"] for a in file_alerts(c)] == [alert["alert"]["id"]]
    assert alert["rule"]["name"] == "Unusual Instance Metadata Service (IMDS) API Request"
    assert alert["rule"]["id"] == "ecc0cd54-608e-11ef-ab6d-f661ea17fbce"

    # 5. kill -9: restarted after RestartSec with a new main pid; the new agent re-reads its lookback window
    #    (the checkpoint's resume position) and suppresses the alert it finds again
    restart_sec = seconds(c.show("RestartUSec")["RestartUSec"])
    t_kill = time.monotonic()
    c.run("kill", "-9", str(pid))
    new_pid = wait_running(c, restart_sec + 30, not_pid=pid)
    took = time.monotonic() - t_kill
    assert c.show("NRestarts")["NRestarts"] == "1"
    assert took >= restart_sec * 0.9, f"restarted after {took:.1f} s, RestartSec is {restart_sec} s"
    assert any("status=9/KILL" in str(e["MESSAGE"]) for e in c.journal()), c.journal_text()
    print(f"kill -9: MainPID {pid} -> {new_pid}, active again after {took:.1f} s (RestartSec {restart_sec:g} s)")

    def suppressed() -> Optional[Dict[str, Any]]:
        k = state_counters(c)  # the new agent's counters once it has checkpointed (within 5 s of reading)
        return k if k.get("alerts_suppressed_duplicates", 0) >= 1 else None

    counters = wait_for("the restarted agent to re-read the alert's lines (alerts_suppressed_duplicates)",
                        suppressed, 30, detail=lambda: f"{state_counters(c)}\n{c.journal_text()}")
    assert counters["alerts_emitted"] == 0, counters
    assert len(journal_alerts(c)) == 1 and len(file_alerts(c)) == 1, \
        f"{len(journal_alerts(c))} alert(s) in the journal, {len(file_alerts(c))} in the file"
    print(f"alerts: 1 in the journal, 1 in {ALERTS_FILE} (after the restart: "
          f"{counters['alerts_suppressed_duplicates']} duplicate suppressed, 0 emitted)")

    # 6. stop: SIGTERM, exit 0, inactive (not failed), well within TimeoutStopSec
    timeout_stop = seconds(c.show("TimeoutStopUSec")["TimeoutStopUSec"])
    t_stop = time.monotonic()
    r = c.run("systemctl", "stop", "auditimds.service", check=False, timeout=timeout_stop + 30)
    took = time.monotonic() - t_stop
    assert r.returncode == 0, r.stdout + r.stderr
    assert took < timeout_stop, f"stop took {took:.1f} s, TimeoutStopSec is {timeout_stop} s"
    st_stop = c.show("ActiveState", "SubState", "Result", "ExecMainCode", "ExecMainStatus", "MainPID")
    assert st_stop == {"ActiveState": "inactive", "SubState": "dead", "Result": "success", "ExecMainCode": "1",
                       "ExecMainStatus": "0", "MainPID": "0"}, st_stop  # ExecMainCode 1: CLD_EXITED
    stopped = [(int(e["_PID"]), str(e["MESSAGE"])) for e in c.journal()
               if str(e["MESSAGE"]).startswith("auditimds: info: stopped: ")]
    # the agent stopped by the restart of step 3 and the last one wrote their line; the killed agent none
    assert [p for p, _ in stopped] == [first_pid, new_pid], (stopped, first_pid, pid, new_pid)
    final = json.loads(stopped[-1][1].split("stopped: ", 1)[1])
    assert final["alerts_emitted"] == 0 and final["alerts_suppressed_duplicates"] >= 1, final
    print(f"stop: exit {r.returncode} in {took:.2f} s (TimeoutStopSec {timeout_stop:g} s), {st_stop}")
    assert len(journal_alerts(c)) == 1 and len(file_alerts(c)) == 1

    # 7. the sandbox's exposure as systemd rates it
    r = c.run("systemd-analyze", "security", "--no-pager", "auditimds.service", check=False)
    m = re.search(r"^.*Overall exposure level for auditimds\.service: (\d+\.\d).*$", r.stdout, re.M)
    assert m, r.stdout + r.stderr
    print(f"systemd-analyze security: {m.group(0).strip()}")
    exposed = [re.sub(r"\s{2,}", "  ", ln[1:].strip()) for ln in r.stdout.splitlines() if ln.startswith("\u2717")]
    print("  what adds to it:\n    " + "\n    ".join(exposed))
    assert float(m.group(1)) <= MAX_EXPOSURE, \
        f"exposure {m.group(1)} > {MAX_EXPOSURE}: a sandbox directive was lost:\n{r.stdout}"

    # 8. purge, with the service running again: nothing of the package is left
    c.run("systemctl", "start", "auditimds.service")
    wait_running(c, 30)
    r = c.run("apt-get", "purge", "--yes", PKG, timeout=300)
    assert "Purging configuration files for auditimds" in r.stdout, r.stdout + r.stderr
    assert c.show("LoadState", "ActiveState") == {"LoadState": "not-found", "ActiveState": "inactive"}
    assert c.run("getent", "passwd", PKG, check=False).returncode == 2
    assert c.run("getent", "group", PKG, check=False).returncode == 2
    assert c.run("pgrep", "-U", uid, check=False).stdout == "", "a process of the auditimds user is left"
    gone = listing(c)
    assert gone - before == set(), f"left behind: {sorted(gone - before)}"
    assert before - gone == set(), f"removed: {sorted(before - gone)}"
    assert accounts(c) == before_accounts, "an account file changed"
    for p in ("/opt/auditimds", "/etc/auditimds", "/var/lib/auditimds", "/var/log/auditimds", "/usr/bin/auditimds",
              "/etc/audit/rules.d/auditimds.rules", "/lib/systemd/system/auditimds.service",
              "/etc/systemd/system/multi-user.target.wants/auditimds.service"):
        assert not os.path.lexists(c.root + p), f"{p} left behind"
    print(f"install, checks and purge in the container: {time.monotonic() - t_start:.1f} s")
