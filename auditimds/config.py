"""The configuration file (TOML) and its validation.

Every key is declared in SCHEMA with its type; an unknown key, a wrong type or a bad value is a
`ConfigError` whose message names the file and the key (`/etc/auditimds/auditimds.toml: [input] start:
must be one of "end", "beginning", not "middle"`).  Command-line flags override the file.

Relative paths in a file (`[rules] paths`, `[notify] config`) are taken relative to the file's directory;
a `[rules] paths` entry that names no file may name a rule pack shipped with auditimds ("hardened").
"""

from __future__ import annotations

import grp
import os
import stat
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .alerts.exceptions import ExceptionConfigError, RuleException, parse_exceptions
from .alerts.notify_config import NotifyConfig, NotifyConfigError, parse_notify

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11
    import tomli as tomllib

DEFAULT_CONFIG_PATH = "/etc/auditimds/auditimds.toml"
DEFAULT_LOG = "/var/log/audit/audit.log"
DEFAULT_STATE_DIR = "/var/lib/auditimds"


class ConfigError(Exception):
    """A configuration problem, as one line for the user."""


@dataclass(frozen=True)
class Config:
    source: str = "<defaults>"
    input_path: str = DEFAULT_LOG
    start: str = "end"
    state_dir: str = DEFAULT_STATE_DIR
    rule_paths: Tuple[str, ...] = ()
    builtin_rules: bool = True
    output_stdout: bool = True
    output_jsonl: Optional[str] = None
    host_id: Optional[str] = None
    host_name: Optional[str] = None
    log_level: str = "info"
    health_interval: int = 300
    metrics_textfile: Optional[str] = None
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    exceptions: Tuple[RuleException, ...] = ()
    extra: Dict[str, Any] = field(default_factory=dict)

    def with_overrides(self, **changes: Any) -> "Config":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# section -> key -> (type, Config attribute, allowed values or None)
SCHEMA: Dict[str, Dict[str, Tuple[type, str, Optional[Tuple[Any, ...]]]]] = {
    "input": {
        "path": (str, "input_path", None),
        "start": (str, "start", ("end", "beginning")),
    },
    "state": {"dir": (str, "state_dir", None)},
    "rules": {
        "paths": (list, "rule_paths", None),
        "builtin": (bool, "builtin_rules", None),
    },
    "output": {
        "stdout": (bool, "output_stdout", None),
        "jsonl": (str, "output_jsonl", None),
    },
    "host": {
        "id": (str, "host_id", None),
        "name": (str, "host_name", None),
    },
    "log": {
        "level": (str, "log_level", ("debug", "info", "warning", "error")),
        "health_interval": (int, "health_interval", None),
    },
    "metrics": {"textfile": (str, "metrics_textfile", None)},
}
# Sections with their own parser (and their own key list).
SPECIAL_SECTIONS = ("notify", "exceptions")

_TYPE_NAMES = {str: "a string", bool: "true or false", list: "a list of strings", int: "an integer"}


def _check(source: str, section: str, key: str, value: Any, typ: type,
           allowed: Optional[Tuple[Any, ...]]) -> Any:
    where = f"{source}: [{section}] {key}"
    if typ is bool:
        ok = isinstance(value, bool)
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, typ)
    if not ok:
        raise ConfigError(f"{where}: must be {_TYPE_NAMES[typ]}, not {type(value).__name__} {value!r}")
    if typ is list:
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise ConfigError(f"{where}: item {i + 1} must be a non-empty string, not {item!r}")
        return tuple(value)
    if typ is str and not value:
        raise ConfigError(f"{where}: must not be empty (remove the key to use the default)")
    if allowed is not None and value not in allowed:
        choices = ", ".join(f'"{a}"' for a in allowed)
        raise ConfigError(f'{where}: must be one of {choices}, not "{value}"')
    return value


def parse_config(data: Dict[str, Any], source: str) -> Config:
    values: Dict[str, Any] = {}
    for section, body in data.items():
        if section == "exceptions":
            try:
                values["exceptions"] = parse_exceptions(body, source)
            except ExceptionConfigError as e:
                raise ConfigError(str(e)) from None
            continue
        if section == "notify":
            if not isinstance(body, dict):
                raise ConfigError(f"{source}: notify must be a table ([notify]), not a value")
            try:
                values["notify"] = parse_notify(body, source)
            except NotifyConfigError as e:
                raise ConfigError(str(e)) from None
            continue
        spec = SCHEMA.get(section)
        if spec is None:
            known = ", ".join(f"[{s}]" for s in list(SCHEMA) + list(SPECIAL_SECTIONS))
            raise ConfigError(f"{source}: unknown section [{section}] (known: {known})")
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: {section} must be a table ([{section}]), not a value")
        for key, value in body.items():
            if key not in spec:
                known = ", ".join(spec)
                raise ConfigError(f"{source}: [{section}] unknown key '{key}' (known: {known})")
            typ, attr, allowed = spec[key]
            values[attr] = _check(source, section, key, value, typ, allowed)
    if values.get("health_interval", 0) < 0:
        raise ConfigError(f"{source}: [log] health_interval: must be 0 (off) or a number of seconds")
    return Config(source=source, **values)


def _shipped_packs(rules_dir: Path) -> List[str]:
    if not rules_dir.is_dir():
        return []
    return sorted(x.name for x in rules_dir.iterdir() if x.is_dir() and not x.name.startswith(("_", ".")))


def resolve_rule_paths(paths: Tuple[str, ...], source: str,
                       rules_dir: Optional[Path] = None) -> Tuple[str, ...]:
    """`[rules] paths` of the file `source`: a relative path is taken relative to the file's directory (not
    the current directory); an absolute one is kept.  An entry that names nothing there but is the bare name
    of a shipped pack ("hardened") stays that name.  Raises ConfigError naming the file and the key."""
    if rules_dir is None:
        from .rules.builtin import builtin_rules_dir

        rules_dir = builtin_rules_dir()
    from_file = bool(source) and not source.startswith("<")
    base = Path(os.path.abspath(source)).parent if from_file else None
    out: List[str] = []
    for i, p in enumerate(paths, 1):
        pp = Path(p).expanduser()
        if not pp.is_absolute() and base is not None:
            pp = base / pp
        if pp.exists():
            out.append(str(pp))
            continue
        if "/" not in p and p in _shipped_packs(rules_dir):
            out.append(p)
            continue
        packs = ", ".join(_shipped_packs(rules_dir)) or "none"
        raise ConfigError(f"{source}: [rules] paths: item {i} ({p!r}): no such file or directory: {pp} "
                          f"(shipped packs: {packs})")
    return tuple(out)


SERVICE_GROUPS = ("root", "auditimds")


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def secret_file_problem(path: str, mode: int, group: str, what: str = "notification URLs (secrets)") -> Optional[str]:
    """The one-line refusal for a file holding secrets that other users can read (None when it is fine):
    readable by everyone, or by a group other than root's or the service's."""
    mode = stat.S_IMODE(mode)
    if not (mode & 0o004 or (mode & 0o040 and group not in SERVICE_GROUPS)):
        return None
    return (f"{path}: holds {what} but is readable by other users (mode {mode:04o}, group {group}); fix: "
            f"chown root:auditimds {path} && chmod 0640 {path} (or chmod 0600 {path} when auditimds runs as "
            "root)")


def _check_secret_file(path: str, what: str) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    problem = secret_file_problem(path, st.st_mode, _group_name(st.st_gid), what)
    if problem is not None:
        raise ConfigError(problem)


def check_secret_permissions(path: str, cfg: Config) -> None:
    """Files with notification URLs (tokens, passwords) must not be readable by other users: the
    configuration file itself when it configures notifications, and the apprise config file it names."""
    if not cfg.notify.enabled:
        return
    _check_secret_file(path, "notification URLs (secrets)")
    if cfg.notify.config:
        _check_secret_file(cfg.notify.config, f"notification URLs (secrets: the apprise config file of [notify] "
                                              f"config in {path})")


def load_config(path: Optional[str]) -> Config:
    """Load `path`; None means the default file if it exists, else built-in defaults."""
    if path is None:
        if not Path(DEFAULT_CONFIG_PATH).exists():
            return Config()
        path = DEFAULT_CONFIG_PATH
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    cfg = parse_config(data, str(path))
    if cfg.rule_paths:
        cfg = replace(cfg, rule_paths=resolve_rule_paths(cfg.rule_paths, str(path)))
    check_secret_permissions(str(path), cfg)
    return cfg


def describe(cfg: Config) -> List[str]:
    """The effective configuration as TOML-like lines (for logs and check-config)."""
    out: List[str] = [f"# effective configuration (from {cfg.source})"]
    for section, spec in SCHEMA.items():
        out.append(f"[{section}]")
        for key, (_typ, attr, _allowed) in spec.items():
            v = getattr(cfg, attr)
            if v is None:
                out.append(f"# {key} not set")
            elif isinstance(v, bool):
                out.append(f"{key} = {'true' if v else 'false'}")
            elif isinstance(v, tuple):
                out.append(f"{key} = [" + ", ".join(f'"{x}"' for x in v) + "]")
            elif isinstance(v, int):
                out.append(f"{key} = {v}")
            else:
                out.append(f'{key} = "{v}"')
    out.extend(cfg.notify.describe())
    for e in cfg.exceptions:
        out.extend(e.describe())
    return out
