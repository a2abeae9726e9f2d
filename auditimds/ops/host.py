"""The host as `auditimds doctor` sees it (ops/doctor.py): the kernel's audit status (`auditctl -s`), auditd.conf,
whether auditd runs (/proc), the service user and what its permission bits let it read and write."""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

SERVICE_USER = "auditimds"
# The unit (packaging/systemd/auditimds.service) adds these groups to the service user.
UNIT_SUPPLEMENTARY_GROUPS = ("adm",)


@dataclass
class UserInfo:
    name: str
    uid: int
    gids: Tuple[int, ...]
    note: str = ""


def parse_auditctl_status(text: str) -> Dict[str, str]:
    """`auditctl -s` output ("enabled 1", "pid 612", "lost 0" ...) as a dict of strings."""
    out: Dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and re.fullmatch(r"[a-z_]+", parts[0]):
            out[parts[0]] = parts[1].strip()
    return out


def int_of(v: Optional[str]) -> Optional[int]:
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


def mode_allows(st: os.stat_result, user: UserInfo, want: int) -> bool:
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


def blocking_dir(path: Path, user: UserInfo, stat_fn: Callable[[str], os.stat_result]) -> Optional[str]:
    """The first parent directory of `path` that `user` cannot traverse, or None."""
    parents = list(path.parents)[::-1]
    for d in parents:
        try:
            st = stat_fn(str(d))
        except OSError:
            return None
        if not mode_allows(st, user, 1):
            return str(d)
    return None


def describe_owner(st: os.stat_result) -> str:
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


def auditd_process_running(proc_root: Path) -> Optional[bool]:
    try:
        entries = [e for e in os.listdir(proc_root) if e.isdigit()]
    except OSError:
        return None
    return any(pid_is_auditd(proc_root, int(e)) for e in entries)


def pid_is_auditd(proc_root: Path, pid: int) -> Optional[bool]:
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
