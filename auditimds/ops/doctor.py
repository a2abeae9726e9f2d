"""`auditimds doctor`: can detection work on this host?  One finding per line, each with the command that fixes it.

    OK    auditd is running (pid 612)
    FAIL  audit rules: no rule logs connect (b64) ...
          fix: augenrules --load   (or: auditctl -R /etc/audit/rules.d/auditimds.rules)

Checks: auditd runs and the kernel's audit is enabled (`auditctl -s`), the rules the detector needs are loaded
(`auditctl -l`, in auditctl's normalised output form), the kernel's lost-event counter and backlog, auditd.conf
(write_logs, log_file, log_format), the log is readable by the service user (`auditimds` if it exists, else the
current user), the state dir is usable, and whether notifications are configured and each URL is one apprise can
use (printed with its secrets masked).  Exit code 0 only when no
finding is FAIL, i.e. when detection can work; a check that cannot be made (not root) is a WARN.

Every outside access is injectable (`run` for commands, paths, user lookup) so that tests can play any host.
The parts: ops/findings.py (what is reported), ops/audit_rules.py (the rules), ops/host.py (auditd, the kernel's
status, auditd.conf, users and permissions); each section of the checks is one function here.
"""

from __future__ import annotations

import grp
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from ..alerts.notify_config import mask_secrets
from ..config import DEFAULT_CONFIG_PATH, Config
from ..core import core_info
from .audit_rules import (
    RULES_D,
    RULES_SOURCES,
    AuditRule,
    check_loaded_rules,
    check_rules,
    install_rules_fix,
    load_rules_fix,
    parse_auditctl_rules,
    persisted_rules,
    rules_source,
)
from .findings import FAIL, OK, WARN, Finding, Runner, call, summarize
from .host import (
    SERVICE_USER,
    UserInfo,
    auditd_process_running,
    blocking_dir,
    current_user,
    describe_owner,
    int_of,
    lookup_user,
    mode_allows,
    parse_auditctl_status,
    parse_auditd_conf,
    pid_is_auditd,
)

# what tests and tools import from here
__all__ = [
    "FAIL", "OK", "WARN", "AuditRule", "Finding", "UserInfo", "check_rules", "doctor", "parse_auditctl_rules",
    "parse_auditctl_status", "parse_auditd_conf", "run_checks",
]

AUDITD_CONF = Path("/etc/audit/auditd.conf")
PLUGIN_CONF = Path("/etc/audit/plugins.d/auditimds.conf")
RECOMMENDED_BACKLOG = 8192


def apprise_url_problem(url: str) -> Optional[str]:
    """Why apprise cannot use `url` (None when it can), without secrets: apprise's own messages quote tokens,
    so its logger is silenced meanwhile."""
    import logging

    try:
        import apprise
    except ImportError:
        return "apprise is not installed"
    logger = logging.getLogger("apprise")
    was_disabled = logger.disabled
    logger.disabled = True
    try:
        plugin = apprise.Apprise.instantiate(url)
    except Exception:  # noqa: BLE001 - a plugin's parser failing is an unusable URL too
        plugin = None
    finally:
        logger.disabled = was_disabled
    if plugin is not None:
        return None
    scheme = _scheme(url)
    try:
        from apprise.manager_plugins import NotificationManager

        known = scheme in NotificationManager()
    except (ImportError, TypeError):  # pragma: no cover - another apprise layout
        known = True
    if not known:
        return f"unknown scheme {scheme!r}" if scheme != "?" else "not a URL (scheme://...)"
    return "apprise cannot parse it (a missing or malformed token, host or address)"



def _scheme(url: Any) -> str:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", str(url).strip())
    return m.group(1).lower() if m else "?"



# -- the checks, one function a section ----------------------------------------------------------------------


def check_auditd(run: Runner, proc_root: Path) -> Tuple[List[Finding], bool]:
    """1. auditd and the kernel's audit state (`auditctl -s`): (findings, whether the kernel could be queried)."""
    findings: List[Finding] = []
    add = findings.append
    rc, text = call(run, ["auditctl", "-s"])
    kernel_ok = False
    if rc is None:
        add(Finding(FAIL, "auditd", "auditctl is not installed (auditd missing?)", "apt-get install auditd"))
    elif rc != 0:
        running = auditd_process_running(proc_root)
        reason = text.strip().splitlines()[0] if text.strip() else f"exit code {rc}"
        if running:
            add(Finding(OK, "auditd", "an auditd process is running"))
        elif running is False:
            add(Finding(FAIL, "auditd", "no auditd process is running",
                        "systemctl enable --now auditd   (without systemd: service auditd start)"))
        add(Finding(WARN, "kernel audit", f"cannot query the kernel ({reason}): rules, lost events and backlog "
                    "not checked", "run `auditimds doctor` as root"))
    else:
        st = parse_auditctl_status(text)
        kernel_ok = True
        pid = int_of(st.get("pid"))
        enabled = int_of(st.get("enabled"))
        if enabled == 0:
            add(Finding(FAIL, "kernel audit", "auditing is disabled in the kernel (enabled 0)",
                        "auditctl -e 1   (and check audit=0 is not on the kernel command line)"))
        elif enabled == 2:
            add(Finding(OK, "kernel audit", "enabled and locked (immutable: rule changes need a reboot)"))
        alive = pid_is_auditd(proc_root, pid) if pid else False
        if not pid:
            add(Finding(FAIL, "auditd", "auditd is not running (auditctl -s: pid 0): nothing writes the log",
                        "systemctl enable --now auditd   (without systemd: service auditd start)"))
        elif alive is False:
            # the kernel forgets a dead auditd only when it next fails to send it a record: until then
            # `auditctl -s` still shows the old pid while every record goes to the kernel log instead
            add(Finding(FAIL, "auditd", f"the kernel lists auditd as pid {pid}, but that process is gone (auditd "
                        "died): nothing writes the log", "systemctl restart auditd   (without systemd: "
                        "service auditd restart)"))
        else:
            add(Finding(OK, "auditd", f"auditd is running (pid {pid})"))
        lost = int_of(st.get("lost"))
        limit = int_of(st.get("backlog_limit"))
        backlog = int_of(st.get("backlog"))
        if lost:
            add(Finding(WARN, "lost events", f"the kernel has dropped {lost} audit events since boot (backlog "
                        f"limit {limit}): alerts may have been missed",
                        f"auditctl -b {RECOMMENDED_BACKLOG}   (persist: `-b {RECOMMENDED_BACKLOG}` in "
                        "/etc/audit/rules.d/audit.rules)"))
        elif lost == 0:
            add(Finding(OK, "lost events", "the kernel has dropped no audit events"))
        if limit is not None and limit < RECOMMENDED_BACKLOG:
            add(Finding(WARN, "backlog", f"backlog_limit {limit} is small for bursts of exec/connect events",
                        f"auditctl -b {RECOMMENDED_BACKLOG}   (persist: `-b {RECOMMENDED_BACKLOG}` in "
                        "/etc/audit/rules.d/audit.rules)"))
        elif limit is not None and backlog is not None and limit and backlog > limit // 2:
            add(Finding(WARN, "backlog", f"the backlog is {backlog} of {limit}: auditd is not keeping up",
                        f"auditctl -b {max(limit * 2, RECOMMENDED_BACKLOG)}; check auditd's disk and "
                        "priority_boost"))
        elif limit is not None:
            add(Finding(OK, "backlog", f"backlog_limit {limit}, backlog {backlog}"))
    return findings, kernel_ok


def check_auditd_conf(cfg: Config, auditd_conf: Path, plugin_conf: Path,
                      log_from_option: bool) -> Tuple[List[Finding], Optional[Dict[str, str]], bool]:
    """3. auditd.conf, where and how the log is written: (findings, auditd.conf's settings (None: unreadable),
    whether the auditimds plugin is active)."""
    findings: List[Finding] = []
    add = findings.append
    conf: Optional[Dict[str, str]] = None
    try:
        conf = parse_auditd_conf(auditd_conf.read_text(errors="replace"))
    except FileNotFoundError:
        add(Finding(WARN, "auditd.conf", f"{auditd_conf} not found: auditd's defaults assumed"))
        conf = {}
    except OSError as e:
        add(Finding(WARN, "auditd.conf", f"cannot read {auditd_conf} ({e.strerror or e})",
                    "run `auditimds doctor` as root"))
    plugin = False
    try:
        pconf = parse_auditd_conf(plugin_conf.read_text(errors="replace"))
        plugin = pconf.get("active", "").lower() == "yes"
    except OSError:
        pass
    if conf is not None:
        write_logs = conf.get("write_logs", "yes").lower()
        log_file = conf.get("log_file", "/var/log/audit/audit.log")
        fmt = conf.get("log_format", "ENRICHED").upper()
        if write_logs == "no":
            if plugin:
                add(Finding(OK, "auditd.conf", "write_logs = no, but the auditimds plugin is active in "
                            f"{plugin_conf} (auditimds run --stdin)"))
            else:
                add(Finding(FAIL, "auditd.conf", "write_logs = no: auditd writes no log for auditimds to follow",
                            f"set write_logs = yes in {auditd_conf} and restart auditd, or use the plugin "
                            f"({plugin_conf}, see docs/operations.md)"))
        else:
            add(Finding(OK, "auditd.conf", f"write_logs = yes, log_file = {log_file}"))
            if log_file != cfg.input_path and not plugin:
                add(Finding(WARN, "auditd.conf", f"auditd writes {log_file} but auditimds follows "
                            f"{cfg.input_path}", _log_path_fix(cfg, log_file, log_from_option)))
        if fmt in ("RAW", "ENRICHED"):
            add(Finding(OK, "log format", f"log_format = {fmt} (both are understood)"))
        else:
            add(Finding(WARN, "log format", f"log_format = {fmt}: auditimds understands RAW and ENRICHED",
                        f"set log_format = ENRICHED in {auditd_conf} and restart auditd"))
    if plugin:
        add(Finding(OK, "plugin", f"auditd feeds auditimds directly ({plugin_conf} active = yes)"))
    return findings, conf, plugin


def check_log_access(cfg: Config, user: UserInfo, who: str, conf: Optional[Dict[str, str]], plugin: bool,
                     kernel_ok: bool, auditd_conf: Path, stat_fn: Callable[[str], os.stat_result],
                     log_from_option: bool) -> List[Finding]:
    """4. the log, as the service user (`user`, described by `who`) sees it."""
    findings: List[Finding] = []
    add = findings.append
    log_path = Path(cfg.input_path)
    needs_log = not (plugin and conf is not None and conf.get("write_logs", "yes").lower() == "no")
    st: Optional[os.stat_result]
    try:
        st = stat_fn(str(log_path))
    except FileNotFoundError:
        st = None
        if needs_log:
            auditd_log = conf.get("log_file", "/var/log/audit/audit.log") if conf is not None else None
            add(Finding(FAIL if kernel_ok else WARN, "audit log", f"{log_path} does not exist",
                        _missing_log_fix(cfg, str(log_path), auditd_log, log_from_option)))
    except PermissionError:
        st = None
        add(Finding(WARN, "audit log", f"cannot see {log_path} from this user", "run `auditimds doctor` as root"))
    if st is not None:
        blocked = blocking_dir(log_path, user, stat_fn)
        if blocked is not None or not mode_allows(st, user, 4):
            where = f"directory {blocked}" if blocked else f"{log_path} ({describe_owner(st)})"
            try:
                group = grp.getgrgid(st.st_gid).gr_name
            except KeyError:
                group = str(st.st_gid)
            add(Finding(FAIL if needs_log else WARN, "log access", f"{who} cannot read {where}",
                        f"usermod -aG {group} {user.name}   (auditd.conf log_group = {group}), or set log_group "
                        f"in {auditd_conf} to a group of {user.name}"))
        else:
            add(Finding(OK, "log access", f"{who} can read {log_path} ({describe_owner(st)})"))
    return findings


def check_state_dir(cfg: Config, user: UserInfo, stat_fn: Callable[[str], os.stat_result]) -> List[Finding]:
    """5. the state dir, usable by the service user, and the state file in it."""
    findings: List[Finding] = []
    add = findings.append
    state_dir = Path(cfg.state_dir)
    try:
        st = stat_fn(str(state_dir))
    except FileNotFoundError:
        add(Finding(WARN, "state dir", f"{state_dir} does not exist yet (systemd creates it at start: "
                    "StateDirectory=auditimds)",
                    f"install -d -o {user.name} -g {user.name} -m 0700 {state_dir}"))
    except OSError as e:
        add(Finding(WARN, "state dir", f"cannot check {state_dir} ({e.strerror or e})",
                    "run `auditimds doctor` as root"))
    else:
        if not stat.S_ISDIR(st.st_mode):
            add(Finding(FAIL, "state dir", f"{state_dir} is not a directory", f"rm {state_dir}"))
        elif not mode_allows(st, user, 3):
            add(Finding(FAIL, "state dir", f"{user.name} cannot write {state_dir} ({describe_owner(st)})",
                        f"chown -R {user.name}: {state_dir} && chmod 0700 {state_dir}"))
        else:
            add(Finding(OK, "state dir", f"{state_dir} is writable by {user.name}"))
            from ..source.checkpoint import CheckpointError, load_state, same_log

            try:
                state = load_state(state_dir / "state.json")
            except CheckpointError as e:
                add(Finding(FAIL, "state file", str(e), f"rm {state_dir / 'state.json'}"))
            else:
                if state is not None and not same_log(state.get("log"), cfg.input_path):
                    add(Finding(WARN, "state file", f"the saved position is for {state.get('log')}, not "
                                f"{cfg.input_path}: it will be ignored"))
    return findings


def check_notifications(cfg: Config, url_problem: Callable[[str], Optional[str]]) -> List[Finding]:
    """6. notifications (configured or not; sending is the notifier's business)."""
    findings: List[Finding] = []
    add = findings.append
    urls = list(cfg.notify.urls)
    apprise_file = cfg.notify.config
    if urls or apprise_file:
        parts = []
        if urls:
            parts.append(f"{len(urls)} URL(s) ({', '.join(sorted({_scheme(u) for u in urls}))})")
        if apprise_file:
            parts.append(f"apprise config {apprise_file}")
        add(Finding(OK, "notifications", "configured: " + ", ".join(parts)))
        for url in urls:
            problem = url_problem(str(url))
            if problem is not None:
                add(Finding(WARN, "notifications", f"URL {mask_secrets(str(url))}: {problem}: nothing is sent to it",
                            f"correct it in [notify] urls of {_config_file(cfg)} (apprise's URL formats: "
                            "https://github.com/caronc/apprise/wiki), then: auditimds notify-test"))
        if apprise_file and not Path(str(apprise_file)).is_file():
            add(Finding(WARN, "notifications", f"apprise config {apprise_file} not found",
                        f"create it, or remove [notify] config from {cfg.source}"))
    else:
        add(Finding(OK, "notifications", "none configured: alerts go to standard output (the journal) and "
                    "[output] jsonl only"))
    return findings


def check_core(info: Tuple[str, str]) -> List[Finding]:
    """7. which core runs: the compiled one, or the pure-Python reference (slower, same detections)."""
    name, why = info
    if not why:
        return [Finding(OK, "core", f"{name} (auditimds._core)")]
    return [Finding(WARN, "core", f"{name}: {why}; detection is the same, at several times the CPU",
                    "install a C compiler and the Python headers (apt-get install gcc python3-dev), then reinstall "
                    "auditimds (pip install --force-reinstall --no-deps auditimds), or unset AUDITIMDS_PURE")]


def run_checks(
    cfg: Config,
    *,
    run: Runner = subprocess.run,
    auditd_conf: Path = AUDITD_CONF,
    rules_d: Path = RULES_D,
    plugin_conf: Path = PLUGIN_CONF,
    service_user: str = SERVICE_USER,
    user_lookup: Callable[[str], Optional[UserInfo]] = lookup_user,
    current: Callable[[], UserInfo] = current_user,
    stat_fn: Callable[[str], os.stat_result] = os.stat,
    proc_root: Path = Path("/proc"),
    rules_sources: Sequence[Path] = RULES_SOURCES,
    url_problem: Callable[[str], Optional[str]] = apprise_url_problem,
    log_from_option: bool = False,
    core: Callable[[], Tuple[str, str]] = core_info,
) -> List[Finding]:
    """All findings.  `log_from_option`: the log path was given with --log, not read from the configuration
    (so a fix changes that option, not the file)."""
    findings: List[Finding] = []
    install_fix = install_rules_fix(rules_source(rules_sources), rules_d)
    try:
        persisted: Optional[Path] = persisted_rules(rules_d)
        readable = True
    except OSError:
        persisted, readable = None, False
    rules_fix = load_rules_fix(persisted, install_fix)

    auditd, kernel_ok = check_auditd(run, proc_root)
    findings.extend(auditd)
    # 2. the rules
    if kernel_ok:
        findings.extend(check_loaded_rules(run, rules_d, readable, persisted, rules_fix, install_fix))
    if readable and persisted is None:
        findings.append(Finding(WARN, "audit rules", f"no file in {rules_d} holds the auditimds rules: they are "
                                "gone after a reboot or an `augenrules --load`", install_fix))
    conf_findings, conf, plugin = check_auditd_conf(cfg, auditd_conf, plugin_conf, log_from_option)
    findings.extend(conf_findings)
    user = user_lookup(service_user)
    if user is None:
        user = current()
        who = f"{user.name} (no user {service_user}: checked for the current user)"
    else:
        who = f"{user.name}{user.note}"
    findings.extend(check_log_access(cfg, user, who, conf, plugin, kernel_ok, auditd_conf, stat_fn, log_from_option))
    findings.extend(check_state_dir(cfg, user, stat_fn))
    findings.extend(check_notifications(cfg, url_problem))
    findings.extend(check_core(core()))
    return findings


def _config_file(cfg: Config) -> str:
    """The configuration file to edit: the one read, else the default one."""
    source = str(cfg.source or "")
    return source if source and not source.startswith("<") else DEFAULT_CONFIG_PATH


def _log_path_fix(cfg: Config, log_file: str, log_from_option: bool) -> str:
    if log_from_option:
        return f"use --log {log_file}   (the path was given with --log, not read from the configuration)"
    return f'set [input] path = "{log_file}" in {_config_file(cfg)}'


def _missing_log_fix(cfg: Config, log_path: str, auditd_log: Optional[str], log_from_option: bool) -> str:
    fix = "start auditd (systemctl start auditd)"
    if auditd_log == log_path:
        return fix
    if auditd_log:
        return f"{fix}, or {_log_path_fix(cfg, auditd_log, log_from_option)}"
    if log_from_option:
        return f"{fix}, or give auditd's log_file with --log"
    return f"{fix}, or set [input] path to auditd's log_file in {_config_file(cfg)}"




def doctor(cfg: Config, out: TextIO, *, run: Runner = subprocess.run, **kwargs: Any) -> int:
    """Print every finding on `out`; 0 when detection can work (no FAIL), 1 otherwise.

    `kwargs` go to `run_checks` (auditd_conf, rules_d, plugin_conf, service_user, user_lookup, current,
    stat_fn, proc_root, rules_sources, url_problem, log_from_option)."""
    findings = run_checks(cfg, run=run, **kwargs)
    for f in findings:
        for line in f.lines():
            out.write(line + "\n")
    counts = summarize(findings)
    verdict = "detection can work" if not counts[FAIL] else "detection CANNOT work until the FAILs are fixed"
    out.write(f"auditimds doctor: {counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failure(s): "
              f"{verdict}\n")
    out.flush()
    return 0 if not counts[FAIL] else 1
