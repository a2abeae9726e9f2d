"""The files in packaging/: audit rules (checked by the real auditctl), the systemd unit, the audisp plugin."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import List

import pytest

from auditimds.ops.doctor import OK, check_rules, parse_auditctl_rules
from tests.conftest import REPO

AUDIT = REPO / "packaging" / "audit"
UNIT = REPO / "packaging" / "systemd" / "auditimds.service"
PLUGIN = REPO / "packaging" / "audisp" / "auditimds.conf"


def rule_lines(path: Path) -> List[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def normalise(line: str) -> str:
    """A rules-file line in `auditctl -l` form: `-k K` -> `-F key=K`, a0=3 -> a0=0x3."""
    line = re.sub(r"-k (\S+)", r"-F key=\1", line)
    return re.sub(r"\b(a[0-3])=(\d+)\b", lambda m: f"{m.group(1)}={hex(int(m.group(2)))}", line)


@pytest.mark.parametrize("name", ["auditimds.rules", "auditimds-lowvolume.rules"])
def test_rules_files_satisfy_doctor(name):
    lines = [normalise(ln) for ln in rule_lines(AUDIT / name)]
    findings = check_rules(parse_auditctl_rules("\n".join(lines)), "fix")
    assert [f.level for f in findings] == [OK], findings
    for ln in rule_lines(AUDIT / name):
        assert " -k auditimds_" in ln, f"{name}: every rule needs an auditimds_ key: {ln}"


def test_lowvolume_documents_what_it_loses():
    text = (AUDIT / "auditimds-lowvolume.rules").read_text()
    assert "What it loses" in text and "AF_UNIX" in text and "saddr_fam" in text


def test_rules_load_in_the_real_kernel():
    """Each rule of both files is accepted by this machine's auditctl and listed back as expected.

    Rules already loaded are left alone; only the rules this test added are deleted again (never -D)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (auditctl)")
    if not shutil.which("auditctl"):
        pytest.skip("auditd is not installed (apt-get install auditd; .ci/run installs it)")
    probe = subprocess.run(["auditctl", "-s"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"the kernel has no usable audit support: {probe.stderr.strip()}")
    status = dict(ln.split(None, 1) for ln in probe.stdout.splitlines() if len(ln.split(None, 1)) == 2)
    if status.get("enabled", "").strip() == "2":
        pytest.skip("audit rules are locked (enabled 2) until reboot")
    added: List[List[str]] = []
    try:
        for name in ("auditimds.rules", "auditimds-lowvolume.rules"):
            for ln in rule_lines(AUDIT / name):
                r = subprocess.run(["auditctl", *ln.split()], capture_output=True, text=True)
                if r.returncode == 0:
                    added.append(ln.split())
                else:
                    assert "exists" in (r.stderr + r.stdout), f"auditctl {ln}: {r.stderr.strip()}"
        listed = subprocess.run(["auditctl", "-l"], capture_output=True, text=True, check=True).stdout.splitlines()
        for name in ("auditimds.rules", "auditimds-lowvolume.rules"):
            for ln in rule_lines(AUDIT / name):
                assert normalise(ln) in listed, f"{ln} not listed by auditctl -l as {normalise(ln)}"
    finally:
        for args in added:
            subprocess.run(["auditctl", "-d", *args[1:]], capture_output=True)


def unit_settings() -> dict:
    settings: dict = {}
    for ln in UNIT.read_text().splitlines():
        if "=" in ln and not ln.startswith("#"):
            k, v = ln.split("=", 1)
            settings.setdefault(k.strip(), []).append(v.strip())
    return settings


def test_unit_hardening_choices():
    s = unit_settings()
    assert s["User"] == ["auditimds"] and s["SupplementaryGroups"] == ["adm"]
    assert s["StateDirectory"] == ["auditimds"] and s["ConfigurationDirectory"] == ["auditimds"]
    assert s["ProtectSystem"] == ["strict"] and s["NoNewPrivileges"] == ["yes"] and s["PrivateTmp"] == ["yes"]
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert s["CapabilityBoundingSet"] == s["AmbientCapabilities"] == ["CAP_SYS_PTRACE"]
    assert s["ProtectProc"] == ["default"]  # invisible/ptraceable would hide other users' /proc entries
    assert s["Restart"] == ["on-failure"] and s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "@system-service" in s["SystemCallFilter"]
    assert any("@debug" in v and v.startswith("~") for v in s["SystemCallFilter"])
    assert s["ExecStart"][0].startswith("/usr/bin/auditimds run")


def test_unit_passes_systemd_analyze_verify(tmp_path):
    """The unit as shipped, with ExecStart pointed at an existing binary (auditimds may not be installed here;
    tests/packaging/test_deb.py verifies the installed unit as it is)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    unit = tmp_path / "auditimds.service"
    unit.write_text(UNIT.read_text().replace("ExecStart=/usr/bin/auditimds", "ExecStart=/bin/true"))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "auditimds.service" not in r.stderr, r.stderr  # no warning about our unit


def test_audisp_plugin_conf():
    conf = {}
    for ln in PLUGIN.read_text().splitlines():
        if "=" in ln and not ln.lstrip().startswith("#"):
            k, v = ln.split("=", 1)
            conf[k.strip()] = v.strip()
    assert conf == {"active": "yes", "direction": "out", "path": "/usr/bin/auditimds", "type": "always",
                    "args": "run --stdin", "format": "string"}
