"""The .deb: built by packaging/deb/build.sh, installed with dpkg -i, run from the installed paths, purged
leaving nothing behind.  Needs root, dpkg-deb and Debian's python3 with venv (build.sh installs python3-venv
when missing) and PyPI for the dependencies: about 25 s to build (once per session: the `deb` fixture of
conftest.py, shared with test_systemd_nspawn.py), 10 s to install and purge.

The machine's audit state is put back as it was: dpkg -i runs `augenrules --load` (which replaces the kernel's
rules by those of /etc/audit/rules.d), so the rules listed before the test are re-added afterwards, and
auditd's /etc/audit/audit.rules(.prev) are restored.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest

PKG = "auditimds"
# Where the package puts (or its scripts create) anything.
WATCHED = ["/opt", "/etc", "/usr/bin", "/usr/share/doc", "/usr/share/auditimds", "/lib/systemd/system", "/var/lib",
           "/var/log"]
# Changed by dpkg, apt, adduser and augenrules themselves, not by us.
IGNORED_PREFIXES = ("/var/lib/dpkg", "/var/lib/apt", "/var/log/dpkg.log", "/var/log/apt", "/var/log/audit",
                    "/var/log/journal", "/var/lib/systemd", "/var/lib/ucf", "/etc/audit/audit.rules.prev",
                    "/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-", "/etc/ld.so.cache",
                    "/var/log/alternatives.log", "/var/lib/auditimds-test")
ACCOUNT_FILES = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (dpkg -i / dpkg --purge)"),
    pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("dpkg") is None,
                       reason="dpkg/dpkg-deb not found: not a Debian system"),
    pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="Debian's /usr/bin/python3 is missing"),
]


def sh(*cmd: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def listing() -> Set[str]:
    out: Set[str] = set()
    for top in WATCHED:
        for root, dirs, files in os.walk(top):
            if root.startswith(IGNORED_PREFIXES):
                dirs[:] = []
                continue
            for n in dirs + files:
                p = os.path.join(root, n)
                if not p.startswith(IGNORED_PREFIXES):
                    out.add(p)
    return out


def installed() -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PKG], capture_output=True, text=True)
    return r.returncode == 0 and "installed" in r.stdout and "not-installed" not in r.stdout


def audit_rules() -> Optional[List[str]]:
    if not shutil.which("auditctl"):
        return None
    r = subprocess.run(["auditctl", "-l"], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return [ln for ln in r.stdout.splitlines() if ln.startswith("-a ")]


def audit_status() -> Dict[str, str]:
    r = subprocess.run(["auditctl", "-s"], capture_output=True, text=True)
    return dict(ln.split(None, 1) for ln in r.stdout.splitlines() if len(ln.split(None, 1)) == 2)


@pytest.fixture(scope="module")
def machine():
    """The machine as it was before the package: put back whatever the install changed outside the package."""
    if installed():
        pytest.skip(f"{PKG} is already installed on this machine: not touching it")
    if subprocess.run(["getent", "passwd", PKG], capture_output=True).returncode == 0:
        pytest.skip(f"a user {PKG} exists already (not created by this test): not touching it")
    saved = {p: Path(p).read_bytes() if Path(p).exists() else None
             for p in ("/etc/audit/audit.rules", "/etc/audit/audit.rules.prev")}
    before = {"listing": listing(), "accounts": {p: Path(p).read_text() for p in ACCOUNT_FILES if Path(p).exists()},
              "rules": audit_rules(), "status": audit_status() if shutil.which("auditctl") else {}}
    yield before
    if installed():
        subprocess.run(["dpkg", "--purge", PKG], capture_output=True)
    for p, data in saved.items():
        if data is None:
            Path(p).unlink(missing_ok=True)
        else:
            Path(p).write_bytes(data)
    if before["rules"] is not None:
        now = audit_rules() or []
        for ln in before["rules"]:
            if ln not in now:  # `-F key=K` is accepted back by auditctl as is
                subprocess.run(["auditctl", *ln.split()], capture_output=True)
        bwt = before["status"].get("backlog_wait_time", "").split()
        if bwt:
            subprocess.run(["auditctl", "--backlog_wait_time", bwt[0]], capture_output=True)


def test_package_contents(deb):
    info = sh("dpkg-deb", "-I", str(deb)).stdout
    assert "Package: auditimds" in info
    assert "Depends: python3.11, adduser" in info or "Depends: python3." in info
    assert "Recommends: auditd" in info
    for script in ("postinst", "prerm", "postrm", "conffiles"):
        assert script in info
    files = sh("dpkg-deb", "-c", str(deb)).stdout
    for path in ("./usr/bin/auditimds", "./lib/systemd/system/auditimds.service", "./etc/auditimds/auditimds.toml",
                 "./etc/audit/rules.d/auditimds.rules", "./opt/auditimds/pyvenv.cfg",
                 "./usr/share/auditimds/audisp/auditimds.conf", "./usr/share/auditimds/audit/auditimds-lowvolume.rules",
                 "site-packages/auditimds/cli.py", "site-packages/auditimds/builtin_rules/",
                 "unusual_instance_metadata_service_api_request.toml", "site-packages/watchdog/",
                 "site-packages/regex/", "site-packages/apprise/"):
        assert path in files, f"{path} missing from the package"
    assert "/tmp/" not in files and "pip/" not in files.replace("pip/_", "")
    # the compiled core is shipped (built by build.sh for the package's python), its C sources are not needed
    assert re.search(r"site-packages/auditimds/_core\.cpython-3\d+-[^ ]+\.so", files), "no compiled core"
    ctl = Path(str(deb) + ".ctl")
    ctl.mkdir(exist_ok=True)
    sh("dpkg-deb", "-e", str(deb), str(ctl))
    assert sorted((ctl / "conffiles").read_text().split()) == ["/etc/audit/rules.d/auditimds.rules",
                                                                "/etc/auditimds/auditimds.toml"]
    # no absolute path of the build machine left in the venv
    x = Path(str(deb) + ".x")
    sh("dpkg-deb", "-x", str(deb), str(x))
    r = subprocess.run(["grep", "-rlI", "auditimds-deb.", str(x)], capture_output=True, text=True)
    assert r.stdout == "", f"staging paths left in: {r.stdout}"
    assert os.readlink(x / "opt/auditimds/bin/python3").startswith("/usr/bin/python3.")


def test_install_run_purge(deb, machine):
    t0 = time.monotonic()
    sh("dpkg", "-i", str(deb))
    try:
        version = sh("/usr/bin/auditimds", "--version").stdout.strip()
        assert version.startswith("auditimds ") and version.endswith("(compiled core)"), version
        ids = sh("id", PKG).stdout
        assert "(adm)" in ids, ids
        st = os.stat("/var/lib/auditimds")
        assert (st.st_mode & 0o777) == 0o700 and sh("stat", "-c", "%U", "/var/lib/auditimds").stdout.strip() == PKG

        # The installed unit as shipped (ExecStart=/usr/bin/auditimds exists now).
        if shutil.which("systemd-analyze"):
            r = sh("systemd-analyze", "verify", "/lib/systemd/system/auditimds.service", check=False)
            assert r.returncode == 0, r.stdout + r.stderr

        # doctor from the installed venv (the function), then the CLI command.
        r = sh("/opt/auditimds/bin/python3", "-I", "-c",
               "import sys; from auditimds.config import load_config; from auditimds.ops.doctor import doctor; "
               "sys.exit(doctor(load_config('/etc/auditimds/auditimds.toml'), sys.stdout))", check=False)
        assert r.returncode in (0, 1) and "auditimds doctor: " in r.stdout, r.stdout + r.stderr
        assert "log access: auditimds" in r.stdout and "can read" in r.stdout, r.stdout

        # The agent as the service runs it: user auditimds, groups from the database (adm), CAP_SYS_PTRACE
        # ambient; it reads the real audit log and writes its state.
        if shutil.which("setpriv") and Path("/var/log/audit/audit.log").exists():
            p = subprocess.Popen(["setpriv", "--reuid=auditimds", "--regid=auditimds", "--init-groups",
                                  "--inh-caps=+sys_ptrace", "--ambient-caps=+sys_ptrace", "/usr/bin/auditimds", "run",
                                  "--config", "/etc/auditimds/auditimds.toml", "--start", "beginning"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not Path("/var/lib/auditimds/state.json").exists():
                time.sleep(0.2)
            time.sleep(1)
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=30)
            assert p.returncode == 0, err
            assert Path("/var/lib/auditimds/state.json").exists(), err

        # The CLI's doctor (wired by cli.py), checked after the purge checks below.
        cli_doctor = sh("/usr/bin/auditimds", "doctor", check=False)
    finally:
        sh("dpkg", "--purge", PKG)
        print(f"install, checks and purge: {time.monotonic() - t0:.1f} s")

    # Nothing left behind: files, user, group, state, config, rules.
    assert not installed()
    after = listing()
    assert after - machine["listing"] == set(), f"left behind: {sorted(after - machine['listing'])}"
    assert machine["listing"] - after == set(), f"removed: {sorted(machine['listing'] - after)}"
    for p, text in machine["accounts"].items():
        assert Path(p).read_text() == text, f"{p} changed"
    assert subprocess.run(["getent", "passwd", PKG], capture_output=True).returncode != 0
    assert subprocess.run(["getent", "group", PKG], capture_output=True).returncode != 0
    for p in ("/opt/auditimds", "/etc/auditimds", "/var/lib/auditimds", "/var/log/auditimds", "/usr/bin/auditimds",
              "/etc/audit/rules.d/auditimds.rules", "/lib/systemd/system/auditimds.service"):
        assert not os.path.lexists(p), f"{p} left behind"

    # `auditimds doctor` from the installed package: exit 0 or 1 with its summary line, never a usage error.
    assert cli_doctor.returncode in (0, 1), cli_doctor.stdout + cli_doctor.stderr
    assert "auditimds doctor: " in cli_doctor.stdout
