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
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, TextIO, Tuple

from ..alerts.notify_config import mask_secrets
from ..config import DEFAULT_CONFIG_PATH

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python < 3.11
    import tomli as tomllib

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SERVICE_USER = "auditimds"
# The unit (packaging/systemd/auditimds.service) adds these groups to the service user.
UNIT_SUPPLEMENTARY_GROUPS = ("adm",)
AUDITD_CONF = Path("/etc/audit/auditd.conf")
RULES_D = Path("/etc/audit/rules.d")
PLUGIN_CONF = Path("/etc/audit/plugins.d/auditimds.conf")
RECOMMENDED_BACKLOG = 8192
# The shipped audit rules file to copy into rules.d, first existing wins: the .deb's copy
# (packaging/deb/build.sh), then a source checkout.
SOURCE_RULES = Path("packaging") / "audit" / "auditimds.rules"
RULES_SOURCES = (
    Path("/usr/share/auditimds/audit/auditimds.rules"),
    Path(__file__).resolve().parent.parent.parent / SOURCE_RULES,
)
AF_INET, AF_INET6 = 2, 10
SYS_CONNECT = 3

Runner = Callable[..., Any]


@dataclass
class Finding:
    level: str  # OK, WARN or FAIL
    check: str
    message: str
    fix: Optional[str] = None

    def lines(self) -> List[str]:
        out = [f"{self.level:<5} {self.check}: {self.message}"]
        if self.fix and self.level != OK:
            out.append(f"      fix: {self.fix}")
        return out


@dataclass
class UserInfo:
    name: str
    uid: int
    gids: Tuple[int, ...]
    note: str = ""


# -- helpers -------------------------------------------------------------------------------------------------


def _call(run: Runner, cmd: Sequence[str]) -> Tuple[Optional[int], str]:
    """(exit code, stdout+stderr), or (None, reason) when the command cannot be started."""
    try:
        r = run(list(cmd), capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        return None, f"{cmd[0]}: command not found"
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"{cmd[0]}: {e}"
    return r.returncode, (r.stdout or "") + (r.stderr or "")


def parse_auditctl_status(text: str) -> Dict[str, str]:
    """`auditctl -s` output ("enabled 1", "pid 612", "lost 0" ...) as a dict of strings."""
    out: Dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and re.fullmatch(r"[a-z_]+", parts[0]):
            out[parts[0]] = parts[1].strip()
    return out


def _int(v: Optional[str]) -> Optional[int]:
    if v is None:
        return None
    m = re.match(r"-?\d+", v.strip())
    return int(m.group(0)) if m else None


def parse_auditd_conf(text: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip().lower()] = v.strip()
    return out


_FIELD_RE = re.compile(r"^([A-Za-z0-9_]+)(!=|<=|>=|&=|=|<|>|&)(.*)$")


@dataclass
class AuditRule:
    """One `-a` line of `auditctl -l` (auditctl prints rules normalised: `-F key=`, hex a0..a3)."""

    line: str
    action: str  # "always,exit", "never,exit", ...
    syscalls: Tuple[str, ...]
    fields: List[Tuple[str, str, str]] = field(default_factory=list)  # (name, op, value)

    @property
    def is_exit_always(self) -> bool:
        return set(self.action.split(",")) == {"always", "exit"}

    @property
    def is_exit_never(self) -> bool:
        return set(self.action.split(",")) == {"never", "exit"}

    def values(self, name: str) -> List[Tuple[str, str]]:
        return [(op, v) for n, op, v in self.fields if n == name]


def parse_auditctl_rules(text: str) -> List[AuditRule]:
    rules: List[AuditRule] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("-a ") and not line.startswith("-A "):
            continue
        toks = line.split()
        action = ""
        syscalls: List[str] = []
        fields: List[Tuple[str, str, str]] = []
        i = 0
        while i < len(toks):
            t = toks[i]
            arg = toks[i + 1] if i + 1 < len(toks) else ""
            if t in ("-a", "-A"):
                action = arg
                i += 2
            elif t == "-S":
                syscalls.extend(s for s in arg.split(",") if s)
                i += 2
            elif t == "-F":
                m = _FIELD_RE.match(arg)
                if m:
                    fields.append((m.group(1), m.group(2), m.group(3)))
                i += 2
            elif t in ("-k", "-w", "-p"):
                if t == "-k":
                    fields.append(("key", "=", arg))
                i += 2
            else:
                i += 1
        rules.append(AuditRule(line=line, action=action, syscalls=tuple(syscalls), fields=fields))
    return rules


def _num(v: str) -> Optional[int]:
    try:
        return int(v, 0)
    except ValueError:
        return None


# What the detector needs: (what, arch, syscall, family, required). family None = no address family involved.
NEEDS: Tuple[Tuple[str, str, str, Optional[int], bool], ...] = (
    ("exec", "b64", "execve", None, True),
    ("exec", "b64", "execveat", None, False),
    ("connect", "b64", "connect", AF_INET, True),
    ("connect", "b64", "connect", AF_INET6, True),
    ("exec", "b32", "execve", None, False),
    ("exec", "b32", "execveat", None, False),
    ("connect", "b32", "connect", AF_INET, False),
    ("connect", "b32", "connect", AF_INET6, False),
    ("connect", "b32", "socketcall", AF_INET, False),
    ("connect", "b32", "socketcall", AF_INET6, False),
)


def _coverage(rule: AuditRule, arch: str, syscall: str, family: Optional[int]) -> Optional[str]:
    """"full" when `rule` logs every (arch, syscall[, family]) call, "partial" when it logs only some of them
    (an extra -F filter), None when it does not apply."""
    if syscall not in rule.syscalls and "all" not in rule.syscalls:
        return None
    archs = rule.values("arch")
    if archs and not any(op == "=" and v == arch for op, v in archs):
        return None
    if not archs and arch != "b64":
        return None
    partial = False
    for name, op, v in rule.fields:
        if name in ("arch", "key"):
            continue
        if name == "a0" and syscall == "socketcall":
            if op == "=" and _num(v) == SYS_CONNECT:
                continue
            if op == "=":
                return None
            partial = True
        elif name == "saddr_fam" and family is not None:
            if op == "=" and _num(v) == family:
                continue
            if op == "=":
                return None
            partial = True
        elif name == "success" and op == "=" and v in ("1", "0"):
            # success=1 drops failed calls: a non-blocking connect() "fails" with EINPROGRESS.
            partial = True
        else:
            partial = True
    return "partial" if partial else "full"


def check_rules(rules: List[AuditRule], rules_fix: str) -> List[Finding]:
    out: List[Finding] = []
    missing_req: List[str] = []
    missing_opt: List[str] = []
    partial: List[str] = []
    shadowed: List[str] = []
    for _what, arch, syscall, family, required in NEEDS:
        label = f"{syscall} ({arch}{', ' + ('IPv4' if family == AF_INET else 'IPv6') if family else ''})"
        best = None
        best_idx = -1
        for idx, r in enumerate(rules):
            if not r.is_exit_always:
                continue
            c = _coverage(r, arch, syscall, family)
            if c == "full":
                best, best_idx = "full", idx
                break
            if c == "partial" and best is None:
                best, best_idx = "partial", idx
        if best is None:
            (missing_req if required else missing_opt).append(label)
            continue
        if best == "partial":
            partial.append(f"{label} only with `{rules[best_idx].line}`")
        for r in rules[:best_idx]:
            if r.is_exit_never and _coverage(r, arch, syscall, family) is not None:
                shadowed.append(f"{label} by `{r.line}`")
                break
    if missing_req:
        out.append(Finding(FAIL, "audit rules", "not logged: " + ", ".join(missing_req), rules_fix))
    if partial:
        out.append(Finding(WARN, "audit rules", "logged only in part (an extra -F filter): " + "; ".join(partial),
                           rules_fix))
    if shadowed:
        out.append(Finding(WARN, "audit rules", "an earlier `never` rule hides some events: " + "; ".join(shadowed)
                           + " (the first matching exit rule wins)", "move the never rule after the auditimds "
                           "rules in /etc/audit/rules.d/, then augenrules --load"))
    if missing_opt:
        out.append(Finding(WARN, "audit rules", "not logged (32-bit programs or execveat are missed): "
                           + ", ".join(missing_opt), rules_fix))
    if not out:
        out.append(Finding(OK, "audit rules", "exec and connect are logged for 64- and 32-bit programs"))
    return out


def rules_source(candidates: Sequence[Path] = RULES_SOURCES) -> Optional[Path]:
    """The shipped rules file to install (the first that exists), or None (a pip install outside a checkout)."""
    for p in candidates:
        try:
            if p.is_file():
                return p
        except OSError:
            continue
    return None


def install_rules_fix(source: Optional[Path], rules_d: Path) -> str:
    """How to persist the rules: copy the shipped file, named by its full path, into rules.d, and load it."""
    if source is None:
        return (f"cp {SOURCE_RULES} {rules_d}/auditimds.rules && augenrules --load   (run in a checkout of the "
                "auditimds source: the installed package has no copy of the file)")
    return f"cp {source} {rules_d}/auditimds.rules && augenrules --load"


def persisted_rules(rules_d: Path) -> Optional[Path]:
    """The file in `rules_d` that holds the auditimds rules, or None.  Raises OSError when it cannot be read."""
    for p in sorted(rules_d.glob("*.rules")):
        if "auditimds_exec" in p.read_text(errors="replace"):
            return p
    return None


def _load_rules_fix(persisted: Optional[Path], install_fix: str) -> str:
    if persisted is not None:
        return f"augenrules --load   (or: auditctl -R {persisted})"
    return install_fix


def apprise_url_problem(url: str) -> Optional[str]:
    """Why apprise cannot use `url` (None when it can), without secrets: apprise's own messages quote tokens,
    so its logger is silenced meanwhile."""
    import logging

    try:
        import apprise  # type: ignore[import-untyped]
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
        from apprise.manager_plugins import NotificationManager  # type: ignore[import-untyped]

        known = scheme in NotificationManager()
    except (ImportError, TypeError):  # pragma: no cover - another apprise layout
        known = True
    if not known:
        return f"unknown scheme {scheme!r}" if scheme != "?" else "not a URL (scheme://...)"
    return "apprise cannot parse it (a missing or malformed token, host or address)"


def _mode_allows(st: os.stat_result, user: UserInfo, want: int) -> bool:
    """Whether the classic permission bits let `user` do `want` (4 read, 2 write, 1 search/execute)."""
    if user.uid == 0:
        return True
    if st.st_uid == user.uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid in user.gids:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bits & want == want


def _blocking_dir(path: Path, user: UserInfo, stat_fn: Callable[[str], os.stat_result]) -> Optional[str]:
    """The first parent directory of `path` that `user` cannot traverse, or None."""
    parents = list(path.parents)[::-1]
    for d in parents:
        try:
            st = stat_fn(str(d))
        except OSError:
            return None
        if not _mode_allows(st, user, 1):
            return str(d)
    return None


def _describe_owner(st: os.stat_result) -> str:
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{stat.filemode(st.st_mode)} {owner}:{group}"


def lookup_user(name: str = SERVICE_USER) -> Optional[UserInfo]:
    """The service user as the unit runs it (its groups plus the unit's SupplementaryGroups), or None."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    gids = {pw.pw_gid}
    extra: List[str] = []
    for g in grp.getgrall():
        if name in g.gr_mem:
            gids.add(g.gr_gid)
        elif g.gr_name in UNIT_SUPPLEMENTARY_GROUPS:
            gids.add(g.gr_gid)
            extra.append(g.gr_name)
    note = f" (with the unit's SupplementaryGroups={' '.join(extra)})" if extra else ""
    return UserInfo(name, pw.pw_uid, tuple(sorted(gids)), note)


def current_user() -> UserInfo:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return UserInfo(name, uid, tuple(sorted({os.getegid(), *os.getgroups()})))


def _notify_settings(cfg: Any) -> Optional[Dict[str, Any]]:
    """The [notify] section as configured: from the Config object when it knows it, else from its file."""
    n = getattr(cfg, "notify", None)
    if n is not None:
        return {"urls": list(getattr(n, "urls", ()) or ()), "config": getattr(n, "config", None)}
    extra = getattr(cfg, "extra", None) or {}
    if isinstance(extra.get("notify"), dict):
        return extra["notify"]
    source = getattr(cfg, "source", "")
    if source and not source.startswith("<"):
        try:
            data = tomllib.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(data.get("notify"), dict):
            return data["notify"]
    return None


def _scheme(url: Any) -> str:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", str(url).strip())
    return m.group(1).lower() if m else "?"


def _auditd_process_running(proc_root: Path) -> Optional[bool]:
    try:
        entries = [e for e in os.listdir(proc_root) if e.isdigit()]
    except OSError:
        return None
    return any(_pid_is_auditd(proc_root, int(e)) for e in entries)


def _pid_is_auditd(proc_root: Path, pid: int) -> Optional[bool]:
    """Whether `pid` is a live auditd process; None when /proc cannot tell (e.g. not mounted)."""
    if not proc_root.is_dir():
        return None
    try:
        stat = (proc_root / str(pid) / "stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return None
    # "612 (auditd) S 1 ...": a killed auditd stays a zombie (Z), with its name, until it is reaped
    name, _, rest = stat.partition("(")[2].rpartition(")")
    fields = rest.split()
    return name == "auditd" and bool(fields) and fields[0] not in ("Z", "X", "x")


# -- the checks ----------------------------------------------------------------------------------------------


def run_checks(
    cfg: Any,
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
) -> List[Finding]:
    """All findings.  `log_from_option`: the log path was given with --log, not read from the configuration
    (so a fix changes that option, not the file)."""
    findings: List[Finding] = []
    add = findings.append
    install_fix = install_rules_fix(rules_source(rules_sources), rules_d)
    try:
        persisted: Optional[Path] = persisted_rules(rules_d)
        readable = True
    except OSError:
        persisted, readable = None, False
    rules_fix = _load_rules_fix(persisted, install_fix)

    # 1. auditd and the kernel's audit state
    rc, text = _call(run, ["auditctl", "-s"])
    kernel_ok = False
    if rc is None:
        add(Finding(FAIL, "auditd", "auditctl is not installed (auditd missing?)", "apt-get install auditd"))
    elif rc != 0:
        running = _auditd_process_running(proc_root)
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
        pid = _int(st.get("pid"))
        enabled = _int(st.get("enabled"))
        if enabled == 0:
            add(Finding(FAIL, "kernel audit", "auditing is disabled in the kernel (enabled 0)",
                        "auditctl -e 1   (and check audit=0 is not on the kernel command line)"))
        elif enabled == 2:
            add(Finding(OK, "kernel audit", "enabled and locked (immutable: rule changes need a reboot)"))
        alive = _pid_is_auditd(proc_root, pid) if pid else False
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
        lost = _int(st.get("lost"))
        limit = _int(st.get("backlog_limit"))
        backlog = _int(st.get("backlog"))
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

    # 2. the rules
    if kernel_ok:
        rc, text = _call(run, ["auditctl", "-l"])
        if rc != 0 or rc is None:
            add(Finding(WARN, "audit rules", f"cannot list the rules: {text.strip()[:200]}",
                        "run `auditimds doctor` as root"))
        else:
            findings.extend(check_rules(parse_auditctl_rules(text), rules_fix))
    if readable and persisted is None:
        add(Finding(WARN, "audit rules", f"no file in {rules_d} holds the auditimds rules: they are gone after "
                    "a reboot or an `augenrules --load`", install_fix))

    # 3. auditd.conf: where and how the log is written
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

    # 4. the log, as the service user sees it
    user = user_lookup(service_user)
    if user is None:
        user = current()
        who = f"{user.name} (no user {service_user}: checked for the current user)"
    else:
        who = f"{user.name}{user.note}"
    log_path = Path(cfg.input_path)
    needs_log = not (plugin and conf is not None and conf.get("write_logs", "yes").lower() == "no")
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
        blocked = _blocking_dir(log_path, user, stat_fn)
        if blocked is not None or not _mode_allows(st, user, 4):
            where = f"directory {blocked}" if blocked else f"{log_path} ({_describe_owner(st)})"
            try:
                group = grp.getgrgid(st.st_gid).gr_name
            except KeyError:
                group = str(st.st_gid)
            add(Finding(FAIL if needs_log else WARN, "log access", f"{who} cannot read {where}",
                        f"usermod -aG {group} {user.name}   (auditd.conf log_group = {group}), or set log_group "
                        f"in {auditd_conf} to a group of {user.name}"))
        else:
            add(Finding(OK, "log access", f"{who} can read {log_path} ({_describe_owner(st)})"))

    # 5. the state dir
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
        elif not _mode_allows(st, user, 3):
            add(Finding(FAIL, "state dir", f"{user.name} cannot write {state_dir} ({_describe_owner(st)})",
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

    # 6. notifications (configured or not; sending is the notifier's business)
    n = _notify_settings(cfg)
    urls = list(n.get("urls") or []) if n else []
    apprise_file = n.get("config") if n else None
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


def _config_file(cfg: Any) -> str:
    """The configuration file to edit: the one read, else the default one."""
    source = str(getattr(cfg, "source", "") or "")
    return source if source and not source.startswith("<") else DEFAULT_CONFIG_PATH


def _log_path_fix(cfg: Any, log_file: str, log_from_option: bool) -> str:
    if log_from_option:
        return f"use --log {log_file}   (the path was given with --log, not read from the configuration)"
    return f'set [input] path = "{log_file}" in {_config_file(cfg)}'


def _missing_log_fix(cfg: Any, log_path: str, auditd_log: Optional[str], log_from_option: bool) -> str:
    fix = "start auditd (systemctl start auditd)"
    if auditd_log == log_path:
        return fix
    if auditd_log:
        return f"{fix}, or {_log_path_fix(cfg, auditd_log, log_from_option)}"
    if log_from_option:
        return f"{fix}, or give auditd's log_file with --log"
    return f"{fix}, or set [input] path to auditd's log_file in {_config_file(cfg)}"


def doctor(cfg: Any, out: TextIO, *, run: Runner = subprocess.run, **kwargs: Any) -> int:
    """Print every finding on `out`; 0 when detection can work (no FAIL), 1 otherwise.

    `kwargs` go to `run_checks` (auditd_conf, rules_d, plugin_conf, service_user, user_lookup, current,
    stat_fn, proc_root, rules_sources, url_problem, log_from_option)."""
    findings = run_checks(cfg, run=run, **kwargs)
    for f in findings:
        for line in f.lines():
            out.write(line + "\n")
    counts = {lvl: sum(1 for f in findings if f.level == lvl) for lvl in (OK, WARN, FAIL)}
    verdict = "detection can work" if not counts[FAIL] else "detection CANNOT work until the FAILs are fixed"
    out.write(f"auditimds doctor: {counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failure(s): "
              f"{verdict}\n")
    out.flush()
    return 0 if not counts[FAIL] else 1


def summarize(findings: Iterable[Finding]) -> Dict[str, int]:
    fs = list(findings)
    return {lvl: sum(1 for f in fs if f.level == lvl) for lvl in (OK, WARN, FAIL)}
