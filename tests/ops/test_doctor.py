"""auditimds doctor: findings from injected command outputs and files, and one real run on this host."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Tuple

import pytest

from auditimds.config import Config, load_config
from auditimds.ops.doctor import (
    FAIL,
    OK,
    WARN,
    UserInfo,
    check_rules,
    doctor,
    parse_auditctl_rules,
    run_checks,
)
from tests.conftest import REPO

STATUS_OK = """enabled 1
failure 1
pid 612
rate_limit 0
backlog_limit 8192
lost 0
backlog 0
backlog_wait_time 60000
"""

RULES_OK = """-a always,exit -F arch=b64 -S execve,execveat -F key=auditimds_exec
-a always,exit -F arch=b32 -S execve,execveat -F key=auditimds_exec
-a always,exit -F arch=b64 -S connect -F key=auditimds_net
-a always,exit -F arch=b32 -S connect -F key=auditimds_net
-a always,exit -F arch=b32 -S socketcall -F a0=0x3 -F key=auditimds_net
"""

RULES_LOWVOLUME = """-a always,exit -F arch=b64 -S execve,execveat -F key=auditimds_exec
-a always,exit -F arch=b32 -S execve,execveat -F key=auditimds_exec
-a always,exit -F arch=b64 -S connect -F saddr_fam=2 -F key=auditimds_net
-a always,exit -F arch=b64 -S connect -F saddr_fam=10 -F key=auditimds_net
-a always,exit -F arch=b32 -S connect -F saddr_fam=2 -F key=auditimds_net
-a always,exit -F arch=b32 -S connect -F saddr_fam=10 -F key=auditimds_net
-a always,exit -F arch=b32 -S socketcall -F a0=0x3 -F saddr_fam=2 -F key=auditimds_net
-a always,exit -F arch=b32 -S socketcall -F a0=0x3 -F saddr_fam=10 -F key=auditimds_net
"""

AUDITD_CONF = """log_file = {log}
log_group = adm
log_format = ENRICHED
write_logs = yes
"""


class FakeRun:
    """subprocess.run stand-in: maps the command line to (returncode, stdout, stderr) or an exception."""

    def __init__(self, answers: Dict[Tuple[str, ...], object]) -> None:
        self.answers = answers
        self.calls: List[List[str]] = []

    def __call__(self, cmd, **_kw):
        self.calls.append(list(cmd))
        a = self.answers.get(tuple(cmd))
        if a is None:
            raise FileNotFoundError(cmd[0])
        if isinstance(a, BaseException):
            raise a
        rc, out, err = a  # type: ignore[misc]
        return SimpleNamespace(returncode=rc, stdout=out, stderr=err)


@pytest.fixture
def host(tmp_path: Path):
    """A fake host: log dir 0750 root:adm-like with a 0640 log, auditd.conf, rules.d holding our rules."""
    logdir = tmp_path / "log" / "audit"
    logdir.mkdir(parents=True)
    log = logdir / "audit.log"
    log.write_text("type=DAEMON_START msg=audit(1.000:1): op=start\n")
    os.chmod(logdir, 0o750)
    os.chmod(log, 0o640)
    conf = tmp_path / "auditd.conf"
    conf.write_text(AUDITD_CONF.format(log=log))
    rules_d = tmp_path / "rules.d"
    rules_d.mkdir()
    shutil.copy(REPO / "packaging" / "audit" / "auditimds.rules", rules_d / "auditimds.rules")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (tmp_path / "proc" / "612").mkdir(parents=True)  # the auditd of STATUS_OK ("pid 612") is alive
    (tmp_path / "proc" / "612" / "comm").write_text("auditd\n")
    (tmp_path / "proc" / "612" / "stat").write_text("612 (auditd) S 1 612 612 0 -1 4194624 2071 0 0 0\n")
    st = os.stat(log)
    cfg = Config(source="<test>", input_path=str(log), state_dir=str(state))
    return SimpleNamespace(tmp=tmp_path, log=log, logdir=logdir, conf=conf, rules_d=rules_d, state=state, cfg=cfg,
                           uid=st.st_uid, gid=st.st_gid)


def fake_stat(host):
    """os.stat, except that the directories above the fake host (pytest's 0700 temp dirs) look like /var/log."""
    top = str(host.tmp)

    def st(path: str) -> os.stat_result:
        real = os.stat(path)
        if path.startswith(top + "/"):
            return real
        fields = list(real)
        fields[0] = 0o40755
        return os.stat_result(fields)

    return st


def run_doctor(host, run: FakeRun, user: Optional[UserInfo] = None, **kw) -> Tuple[int, str, list]:
    if user is None:
        user = UserInfo("auditimds", 54321, (host.gid,))
        os.chown(host.state, 54321, host.gid)
    kwargs = dict(auditd_conf=host.conf, rules_d=host.rules_d, plugin_conf=host.tmp / "no-plugin.conf",
                  user_lookup=lambda _name: user, proc_root=host.tmp / "proc", stat_fn=fake_stat(host),
                  core=lambda: ("compiled", ""))
    kwargs.update(kw)
    out = io.StringIO()
    rc = doctor(host.cfg, out, run=run, **kwargs)
    findings = run_checks(host.cfg, run=run, **kwargs)
    return rc, out.getvalue(), findings


def healthy_run(over: Optional[Dict[Tuple[str, ...], object]] = None) -> FakeRun:
    answers: Dict[Tuple[str, ...], object] = {("auditctl", "-s"): (0, STATUS_OK, ""), ("auditctl", "-l"): (0, RULES_OK, "")}
    answers.update(over or {})
    return FakeRun(answers)


def levels(findings, check: str) -> List[str]:
    return [f.level for f in findings if f.check == check]


needs_root_chown = pytest.mark.skipif(os.geteuid() != 0, reason="the fixtures chown a state dir to another uid")


@needs_root_chown
def test_healthy_host_exits_0_and_says_so(host):
    rc, text, findings = run_doctor(host, healthy_run())
    assert rc == 0, text
    assert not [f for f in findings if f.level != OK], text
    assert "auditd is running (pid 612)" in text
    assert "detection can work" in text
    assert "log_format = ENRICHED" in text


@needs_root_chown
def test_auditd_down_fails_with_the_fix(host):
    status = STATUS_OK.replace("pid 612", "pid 0")
    rc, text, findings = run_doctor(host, healthy_run({("auditctl", "-s"): (0, status, "")}))
    assert rc == 1
    assert FAIL in levels(findings, "auditd")
    assert "systemctl enable --now auditd" in text


@needs_root_chown
def test_dead_auditd_still_listed_by_the_kernel_fails(host):
    # after auditd is killed, `auditctl -s` keeps its pid until the kernel next fails to send it a record
    shutil.rmtree(host.tmp / "proc" / "612")
    rc, text, findings = run_doctor(host, healthy_run())
    assert rc == 1, text
    assert FAIL in levels(findings, "auditd")
    assert "pid 612, but that process is gone" in text and "systemctl restart auditd" in text
    # a pid reused by another program is no auditd either
    (host.tmp / "proc" / "612").mkdir()
    (host.tmp / "proc" / "612" / "stat").write_text("612 (bash) S 1 612 612 0 -1 4194624 2071 0 0 0\n")
    rc, text, _ = run_doctor(host, healthy_run())
    assert rc == 1 and "that process is gone" in text
    # nor is a killed auditd not yet reaped (a zombie keeps its name)
    (host.tmp / "proc" / "612" / "stat").write_text("612 (auditd) Z 1 612 612 0 -1 4227084 2071 0 0 0\n")
    rc, text, _ = run_doctor(host, healthy_run())
    assert rc == 1 and "that process is gone" in text


@needs_root_chown
def test_auditctl_missing_fails(host):
    rc, text, _ = run_doctor(host, FakeRun({}))
    assert rc == 1
    assert "apt-get install auditd" in text


@needs_root_chown
def test_not_root_is_a_warning_and_auditd_found_in_proc(host):
    denied = (4, "", "You must be root to run this program.\n")
    rc, text, findings = run_doctor(host, healthy_run({("auditctl", "-s"): denied, ("auditctl", "-l"): denied}))
    assert rc == 0, text
    assert OK in levels(findings, "auditd")
    assert WARN in levels(findings, "kernel audit")
    assert "run `auditimds doctor` as root" in text


@needs_root_chown
def test_rules_missing_fails_and_names_them(host):
    rc, text, findings = run_doctor(host, healthy_run({("auditctl", "-l"): (0, "No rules\n", "")}))
    assert rc == 1
    assert FAIL in levels(findings, "audit rules")
    assert "execve (b64)" in text and "connect (b64, IPv4)" in text and "connect (b64, IPv6)" in text
    assert "augenrules --load" in text


@needs_root_chown
def test_only_32bit_rules_missing_is_a_warning(host):
    b64_only = "\n".join(line for line in RULES_OK.splitlines() if "b32" not in line)
    rc, text, findings = run_doctor(host, healthy_run({("auditctl", "-l"): (0, b64_only, "")}))
    assert rc == 0, text
    assert WARN in levels(findings, "audit rules")
    assert "socketcall (b32, IPv4)" in text


@needs_root_chown
def test_lowvolume_rules_are_accepted(host):
    rc, text, findings = run_doctor(host, healthy_run({("auditctl", "-l"): (0, RULES_LOWVOLUME, "")}))
    assert rc == 0, text
    assert levels(findings, "audit rules") == [OK]


def test_rule_coverage_details():
    fix = "augenrules --load"
    ipv4_only = RULES_LOWVOLUME.replace("saddr_fam=10", "saddr_fam=2")
    f = check_rules(parse_auditctl_rules(ipv4_only), fix)
    assert f[0].level == FAIL and "connect (b64, IPv6)" in f[0].message and "IPv4" not in f[0].message
    # success=1 drops the EINPROGRESS of non-blocking connects: partial coverage is a warning
    succ = RULES_OK.replace("-S connect -F key", "-S connect -F success=1 -F key")
    f = check_rules(parse_auditctl_rules(succ), fix)
    assert [x.level for x in f] == [WARN] and "success=1" in f[0].message
    # a never rule placed before ours hides events
    never = "-a never,exit -F arch=b64 -S connect -F uid=0\n" + RULES_OK
    f = check_rules(parse_auditctl_rules(never), fix)
    assert any(x.level == WARN and "never" in x.message for x in f)
    # -S all covers everything; socketcall with another a0 does not count as connect
    assert check_rules(parse_auditctl_rules("-a always,exit -F arch=b64 -S all\n-a always,exit -F arch=b32 -S all\n"),
                       fix)[0].level == OK
    other = RULES_OK.replace("a0=0x3", "a0=0x1")
    f = check_rules(parse_auditctl_rules(other), fix)
    assert [x.level for x in f] == [WARN] and "socketcall (b32, IPv4)" in f[0].message
    # watch rules and "No rules" are ignored by the parser
    assert parse_auditctl_rules("No rules\n-w /etc/passwd -p wa -k passwd\n") == []


@needs_root_chown
def test_lost_events_and_small_backlog_warn_with_auditctl_b(host):
    status = STATUS_OK.replace("lost 0", "lost 1234").replace("backlog_limit 8192", "backlog_limit 64")
    rc, text, findings = run_doctor(host, healthy_run({("auditctl", "-s"): (0, status, "")}))
    assert rc == 0
    assert levels(findings, "lost events") == [WARN]
    assert levels(findings, "backlog") == [WARN]
    assert "dropped 1234 audit events" in text
    assert "auditctl -b 8192" in text


@needs_root_chown
def test_backlog_filling_up_warns(host):
    status = STATUS_OK.replace("backlog 0", "backlog 6000")
    _, text, findings = run_doctor(host, healthy_run({("auditctl", "-s"): (0, status, "")}))
    assert levels(findings, "backlog") == [WARN] and "not keeping up" in text


@needs_root_chown
def test_kernel_audit_disabled_fails(host):
    status = STATUS_OK.replace("enabled 1", "enabled 0")
    rc, text, _ = run_doctor(host, healthy_run({("auditctl", "-s"): (0, status, "")}))
    assert rc == 1 and "auditctl -e 1" in text


@needs_root_chown
def test_unreadable_log_fails_with_usermod(host):
    user = UserInfo("auditimds", 54321, (54321,))
    os.chown(host.state, 54321, 54321)
    rc, text, findings = run_doctor(host, healthy_run(), user=user)
    assert rc == 1
    assert levels(findings, "log access") == [FAIL]
    assert "usermod -aG" in text and "auditimds" in text


@needs_root_chown
def test_log_dir_without_search_permission_fails(host):
    os.chmod(host.logdir, 0o700)
    rc, text, findings = run_doctor(host, healthy_run())
    assert rc == 1
    assert "cannot read directory" in text


@needs_root_chown
def test_missing_log_fails(host):
    host.log.unlink()
    rc, text, findings = run_doctor(host, healthy_run())
    assert rc == 1 and levels(findings, "audit log") == [FAIL]


@needs_root_chown
def test_write_logs_no_fails_unless_plugin_active(host):
    host.conf.write_text(AUDITD_CONF.format(log=host.log).replace("write_logs = yes", "write_logs = no"))
    rc, text, _ = run_doctor(host, healthy_run())
    assert rc == 1 and "write_logs = no" in text
    plugin = host.tmp / "plugin.conf"
    plugin.write_text((REPO / "packaging" / "audisp" / "auditimds.conf").read_text())
    rc, text, findings = run_doctor(host, healthy_run(), plugin_conf=plugin)
    assert rc == 0, text
    assert OK in levels(findings, "plugin")


@needs_root_chown
def test_log_format_and_log_file_mismatch(host):
    host.conf.write_text(AUDITD_CONF.format(log="/elsewhere/audit.log").replace("ENRICHED", "RAW"))
    rc, text, findings = run_doctor(host, healthy_run())
    assert rc == 0
    assert "log_format = RAW" in text
    assert any(f.level == WARN and "/elsewhere/audit.log" in f.message for f in findings)


@needs_root_chown
def test_rules_not_persisted_warns(host):
    (host.rules_d / "auditimds.rules").unlink()
    rc, text, findings = run_doctor(host, healthy_run())
    assert rc == 0
    assert any(f.level == WARN and "after a reboot" in f.message for f in findings)


@needs_root_chown
def test_state_dir_not_writable_and_corrupt_state(host):
    user = UserInfo("auditimds", 54321, (host.gid,))
    os.chown(host.state, 0, 0)
    os.chmod(host.state, 0o700)
    rc, text, findings = run_doctor(host, healthy_run(), user=user)
    assert rc == 1 and levels(findings, "state dir") == [FAIL] and "chown -R auditimds" in text
    os.chown(host.state, 54321, host.gid)
    (host.state / "state.json").write_text("{not json")
    rc, text, findings = run_doctor(host, healthy_run(), user=user)
    assert rc == 1 and levels(findings, "state file") == [FAIL] and "corrupt" in text


@needs_root_chown
def test_missing_state_dir_is_only_a_warning(host):
    shutil.rmtree(host.state)
    rc, text, findings = run_doctor(host, healthy_run(), user=UserInfo("auditimds", 54321, (host.gid,)))
    assert rc == 0 and levels(findings, "state dir") == [WARN] and "install -d" in text


@needs_root_chown
def test_notification_config_reported_without_secrets(host, tmp_path):
    toml = tmp_path / "auditimds.toml"
    toml.write_text('[notify]\nurls = ["slack://T000/B000/secret-token", "mailto://u:pw@example.com"]\n')
    toml.chmod(0o600)
    cfg = load_config(str(toml)).with_overrides(input_path=host.cfg.input_path, state_dir=host.cfg.state_dir)
    host.cfg = cfg
    rc, text, findings = run_doctor(host, healthy_run())
    assert rc == 0
    assert "2 URL(s) (mailto, slack)" in text
    assert "secret" not in text and "pw@" not in text
    # an object with a .notify attribute (how the config may carry it) is used first
    obj = SimpleNamespace(source="<x>", input_path=host.cfg.input_path, state_dir=host.cfg.state_dir,
                          notify=SimpleNamespace(urls=("json://host/x",), config=None))
    out = io.StringIO()
    doctor(obj, out, run=healthy_run(), auditd_conf=host.conf, rules_d=host.rules_d, stat_fn=fake_stat(host),
           plugin_conf=host.tmp / "none", user_lookup=lambda _n: UserInfo("auditimds", 54321, (host.gid,)))
    assert "1 URL(s) (json)" in out.getvalue()


def test_real_host():
    """doctor against this machine's real auditd: its verdict must agree with what auditctl says."""
    if os.geteuid() != 0:
        pytest.skip("needs root (auditctl -s / -l)")
    if not shutil.which("auditctl"):
        pytest.skip("auditd is not installed (apt-get install auditd; .ci/run installs it)")
    st = subprocess.run(["auditctl", "-s"], capture_output=True, text=True)
    if st.returncode != 0:
        pytest.skip(f"the kernel has no usable audit support: {st.stderr.strip()}")
    from auditimds.ops.doctor import parse_auditctl_status
    from tests.e2e.realaudit import is_auditd

    pid = int(parse_auditctl_status(st.stdout).get("pid", "0").split()[0])
    out = io.StringIO()
    rc = doctor(Config(), out)
    text = out.getvalue()
    assert text.rstrip().splitlines()[-1].startswith("auditimds doctor: "), text
    for line in text.splitlines():
        assert line.startswith(("OK ", "WARN ", "FAIL ", "      fix: ", "auditimds doctor: ")), line
    alive = pid != 0 and is_auditd(pid)
    if pid == 0:
        assert rc == 1 and "auditd is not running" in text
    elif not alive:
        assert rc == 1 and f"pid {pid}, but that process is gone" in text
    else:
        assert f"auditd is running (pid {pid})" in text
    rules = subprocess.run(["auditctl", "-l"], capture_output=True, text=True).stdout
    ours = check_rules(parse_auditctl_rules(rules), "x")
    if any(f.level == FAIL for f in ours) or not alive:
        assert rc == 1, text
    assert ("detection can work" in text) == (rc == 0)


def _fix_lines(text: str) -> List[str]:
    return [ln.strip()[len("fix: "):] for ln in text.splitlines() if ln.strip().startswith("fix: ")]


@needs_root_chown
def test_rules_fix_names_the_file_to_copy_by_its_full_path(host):
    """The fix copies a file that exists: the .deb's copy when installed, else the source tree's."""
    (host.rules_d / "auditimds.rules").unlink()
    deb = host.tmp / "usr" / "share" / "auditimds" / "audit" / "auditimds.rules"
    src = REPO / "packaging" / "audit" / "auditimds.rules"
    no_rules = healthy_run({("auditctl", "-l"): (0, "No rules\n", "")})
    deb.parent.mkdir(parents=True)
    shutil.copy(src, deb)
    _, text, _ = run_doctor(host, no_rules, rules_sources=(deb, src))
    fixes = _fix_lines(text)
    want = f"cp {deb} {host.rules_d}/auditimds.rules && augenrules --load"
    assert fixes.count(want) == 3, text  # not loaded (FAIL: 64-bit, WARN: 32-bit) and not persisted (WARN)
    assert not any(f.startswith("cp auditimds.rules") for f in fixes)
    deb.unlink()
    _, text, _ = run_doctor(host, healthy_run(), rules_sources=(deb, src))
    assert f"cp {src} {host.rules_d}/auditimds.rules && augenrules --load" in _fix_lines(text), text
    # neither (a pip install outside a checkout): where the file is in the source
    _, text, _ = run_doctor(host, healthy_run(), rules_sources=(deb,))
    (fix,) = _fix_lines(text)
    assert fix.startswith(f"cp packaging/audit/auditimds.rules {host.rules_d}/auditimds.rules") and "source" in fix
    # rules persisted but not loaded: load them from rules.d
    shutil.copy(src, host.rules_d / "auditimds.rules")
    _, text, _ = run_doctor(host, no_rules, rules_sources=(deb, src))
    assert set(_fix_lines(text)) == {f"augenrules --load   (or: auditctl -R {host.rules_d / 'auditimds.rules'})"}


@needs_root_chown
def test_unusable_notify_urls_warn_with_secrets_masked(host, tmp_path):
    toml = tmp_path / "auditimds.toml"
    toml.write_text('[notify]\nurls = ["json://host/x", "slack://T000/B000/secret-token", '
                    '"nosuchscheme://user:pw@example.com/tok3n"]\n')
    toml.chmod(0o600)
    host.cfg = load_config(str(toml)).with_overrides(input_path=host.cfg.input_path, state_dir=host.cfg.state_dir)
    rc, text, findings = run_doctor(host, healthy_run())
    assert rc == 0, text  # notifications do not decide whether detection works
    assert levels(findings, "notifications") == [OK, WARN, WARN]
    assert "URL slack://***: apprise cannot parse it" in text
    assert "URL nosuchscheme://***: unknown scheme 'nosuchscheme'" in text
    assert f"correct it in [notify] urls of {toml}" in text and "auditimds notify-test" in text
    for secret in ("secret-token", "T000", "pw@", "tok3n"):
        assert secret not in text
    # the check is injectable
    _, text, findings = run_doctor(host, healthy_run(), url_problem=lambda url: None)
    assert levels(findings, "notifications") == [OK]


@needs_root_chown
def test_log_given_with_log_option_is_fixed_with_that_option(host, tmp_path):
    host.conf.write_text(AUDITD_CONF.format(log="/elsewhere/audit.log"))
    toml = tmp_path / "auditimds.toml"
    toml.write_text("[log]\nlevel = \"info\"\n")
    host.cfg = load_config(str(toml)).with_overrides(input_path=host.cfg.input_path, state_dir=host.cfg.state_dir)
    _, text, _ = run_doctor(host, healthy_run(), log_from_option=True)
    assert "use --log /elsewhere/audit.log" in _fix_lines(text)[0] and str(toml) not in text and "[input]" not in text
    _, text, _ = run_doctor(host, healthy_run())
    assert _fix_lines(text) == [f'set [input] path = "/elsewhere/audit.log" in {toml}']
    # the log does not exist either
    host.log.unlink()
    _, text, _ = run_doctor(host, healthy_run(), log_from_option=True)
    assert "[input]" not in text and str(toml) not in text
    assert "start auditd (systemctl start auditd), or use --log /elsewhere/audit.log" in text
    # auditd writes the log given: only starting auditd helps
    host.conf.write_text(AUDITD_CONF.format(log=host.log))
    _, text, _ = run_doctor(host, healthy_run(), log_from_option=True)
    assert _fix_lines(text) == ["start auditd (systemctl start auditd)"]


@needs_root_chown
def test_the_core_in_use_is_reported_and_the_pure_one_warns_with_the_fix(host):
    _rc, text, findings = run_doctor(host, healthy_run())
    assert levels(findings, "core") == [OK] and "core: compiled (auditimds._core)" in text
    rc, text, findings = run_doctor(host, healthy_run(), core=lambda: ("pure-Python", "AUDITIMDS_PURE=1 is set"))
    assert rc == 0 and levels(findings, "core") == [WARN], text  # slower, not broken: detection still works
    assert "pure-Python: AUDITIMDS_PURE=1 is set" in text and "python3-dev" in text
