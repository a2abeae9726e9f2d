"""The audit rules `auditimds doctor` wants loaded (ops/doctor.py): `auditctl -l` parsed (auditctl prints rules
normalised: `-F key=`, hex a0..a3), which of the exec and connect calls the detector needs they log, and the
file of /etc/audit/rules.d that keeps them across a reboot."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .findings import FAIL, OK, WARN, Finding, Runner, call

RULES_D = Path("/etc/audit/rules.d")
# The shipped audit rules file to copy into rules.d, first existing wins: the .deb's copy
# (packaging/deb/build.sh), then a source checkout.
SOURCE_RULES = Path("packaging") / "audit" / "auditimds.rules"
RULES_SOURCES = (
    Path("/usr/share/auditimds/audit/auditimds.rules"),
    Path(__file__).resolve().parent.parent.parent / SOURCE_RULES,
)
AF_INET, AF_INET6 = 2, 10
SYS_CONNECT = 3


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


def load_rules_fix(persisted: Optional[Path], install_fix: str) -> str:
    if persisted is not None:
        return f"augenrules --load   (or: auditctl -R {persisted})"
    return install_fix


def check_loaded_rules(run: Runner, rules_d: Path, readable: bool, persisted: Optional[Path], rules_fix: str,
                       install_fix: str) -> List[Finding]:
    """The rules the kernel has (`auditctl -l`), and whether a file of `rules_d` keeps them (`readable`: whether
    `rules_d` could be read; `persisted`: the file that holds them)."""
    findings: List[Finding] = []
    add = findings.append
    rc, text = call(run, ["auditctl", "-l"])
    if rc != 0 or rc is None:
        add(Finding(WARN, "audit rules", f"cannot list the rules: {text.strip()[:200]}",
                    "run `auditimds doctor` as root"))
    else:
        findings.extend(check_rules(parse_auditctl_rules(text), rules_fix))
    return findings
