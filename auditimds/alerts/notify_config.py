"""The `[notify]` section of the configuration file: `NotifyConfig`, `parse_notify`, `mask_secrets`.

Kept free of apprise (and of `auditimds.config`): parsing a config must not pay for importing apprise, and
the alerts stage does not depend on the stages that use it.  Messages are one line and name the file, the
section and the key, like the rest of the configuration (`/etc/auditimds/auditimds.toml: [notify] window:
must be a duration like "90s", "10m" or "1h", not "10 minutes"`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, quote, urlsplit

DEFAULT_KEY: Tuple[str, ...] = ("rule.id", "host.id", "process.executable", "process.parent.executable")


class NotifyConfigError(ValueError):
    """A problem in the [notify] section, as one line for the user."""


@dataclass(frozen=True)
class RetryConfig:
    attempts: int = 5              # tries of one message before the channel is taken as down and it is spooled
    backoff: float = 2.0           # first delay between tries (seconds), doubled each failure
    max_backoff: float = 300.0     # longest delay; also how often a down channel is probed
    give_up_after: float = 86400.0  # a channel failing for this long is reported and no longer retried


@dataclass(frozen=True)
class NotifyConfig:
    source: str = "<defaults>"
    urls: Tuple[str, ...] = ()
    config: Optional[str] = None
    tags: Tuple[str, ...] = ()
    window: float = 600.0
    key: Tuple[str, ...] = DEFAULT_KEY
    hourly_cap: int = 30
    digest: bool = True
    retry: RetryConfig = field(default_factory=RetryConfig)
    title_max: int = 120
    body_max: int = 2000
    spool_max: int = 1000

    @property
    def enabled(self) -> bool:
        return bool(self.urls or self.config)

    def describe(self) -> List[str]:
        """TOML-like lines of the effective [notify] section, secrets masked (for check-config)."""
        out = ["[notify]"]
        out.append("urls = [" + ", ".join(_toml_str(mask_secrets(u)) for u in self.urls) + "]")
        out.append(f"config = {_toml_str(self.config)}" if self.config else "# config not set")
        if self.tags:
            out.append("tags = [" + ", ".join(_toml_str(t) for t in self.tags) + "]")
        out.append(f"window = {_toml_str(format_duration(self.window))}")
        out.append("key = [" + ", ".join(_toml_str(k) for k in self.key) + "]")
        out.append(f"hourly_cap = {self.hourly_cap}")
        out.append(f"digest = {'true' if self.digest else 'false'}")
        out.append(f"title_max = {self.title_max}")
        out.append(f"body_max = {self.body_max}")
        out.append(f"spool_max = {self.spool_max}")
        r = self.retry
        out.append("[notify.retry]")
        out.append(f"attempts = {r.attempts}")
        out.append(f"backoff = {_toml_str(format_duration(r.backoff))}")
        out.append(f"max_backoff = {_toml_str(format_duration(r.max_backoff))}")
        out.append(f"give_up_after = {_toml_str(format_duration(r.give_up_after))}")
        return out


def _toml_str(s: Optional[str]) -> str:
    return '"' + (s or "").replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- durations ---------------------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^([0-9]+)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> Optional[float]:
    m = _DURATION_RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        return None
    return float(int(m.group(1)) * _UNITS[m.group(2)])


def format_duration(seconds: float) -> str:
    s = int(seconds)
    for unit in ("d", "h", "m"):
        if s and s % _UNITS[unit] == 0:
            return f"{s // _UNITS[unit]}{unit}"
    return f"{s}s"


# -- parsing -----------------------------------------------------------------------------------------------

_KEYS = ("urls", "config", "tags", "window", "key", "hourly_cap", "digest", "retry", "title_max", "body_max",
         "spool_max")
_RETRY_KEYS = ("attempts", "backoff", "max_backoff", "give_up_after")
_FIELD_RE = re.compile(r"^[A-Za-z_@][A-Za-z0-9_@]*(\.[A-Za-z_@][A-Za-z0-9_@]*)*$")
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _type_name(v: Any) -> str:
    return f"{type(v).__name__} {v!r}"


def _int(where: str, v: Any, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise NotifyConfigError(f"{where}: must be an integer, not {_type_name(v)}")
    if not lo <= v <= hi:
        raise NotifyConfigError(f"{where}: must be between {lo} and {hi}, not {v}")
    return v


def _duration(where: str, v: Any, lo: float = 1.0) -> float:
    if not isinstance(v, str):
        raise NotifyConfigError(f'{where}: must be a duration string like "90s", "10m" or "1h", not {_type_name(v)}')
    d = parse_duration(v)
    if d is None:
        raise NotifyConfigError(f'{where}: must be a duration like "90s", "10m" or "1h", not "{v}"')
    if d < lo:
        raise NotifyConfigError(f"{where}: must be at least {format_duration(lo)}, not \"{v}\"")
    return d


def _str_list(where: str, v: Any) -> Tuple[str, ...]:
    if not isinstance(v, list):
        raise NotifyConfigError(f"{where}: must be a list of strings, not {_type_name(v)}")
    for i, item in enumerate(v):
        if not isinstance(item, str) or not item.strip():
            raise NotifyConfigError(f"{where}: item {i + 1} must be a non-empty string, not {item!r}")
    return tuple(v)


def parse_notify(section: Dict[str, Any], source: str) -> NotifyConfig:
    """Validate the `[notify]` table (as parsed from TOML) of the file `source`.

    A relative `config` path is taken relative to the directory of `source` when `source` is a file.
    Raises NotifyConfigError with a one-line message naming `source`, `[notify]` and the key.
    """
    if not isinstance(section, dict):
        raise NotifyConfigError(f"{source}: notify must be a table ([notify]), not a value")
    values: Dict[str, Any] = {}
    for key, v in section.items():
        where = f"{source}: [notify] {key}"
        if key not in _KEYS:
            raise NotifyConfigError(f"{source}: [notify] unknown key '{key}' (known: {', '.join(_KEYS)})")
        if key == "urls":
            urls = _str_list(where, v)
            for i, u in enumerate(urls):
                if not _URL_RE.match(u.strip()):
                    raise NotifyConfigError(f"{where}: item {i + 1} is not an apprise URL (scheme://...): "
                                            f"{mask_secrets(u)!r}")
            values["urls"] = tuple(u.strip() for u in urls)
        elif key == "config":
            if not isinstance(v, str) or not v.strip():
                raise NotifyConfigError(f"{where}: must be a non-empty string (the path of an apprise YAML or "
                                        f"TEXT config file), not {_type_name(v)}")
            p = Path(v).expanduser()
            if not p.is_absolute() and source and not source.startswith("<"):
                p = Path(source).parent / p
            if not p.exists():
                raise NotifyConfigError(f"{where}: no such file: {p}")
            if not p.is_file():
                raise NotifyConfigError(f"{where}: not a regular file: {p}")
            values["config"] = str(p)
        elif key == "tags":
            values["tags"] = _str_list(where, v)
        elif key == "window":
            values["window"] = _duration(where, v)
        elif key == "key":
            fields = _str_list(where, v)
            if not fields:
                raise NotifyConfigError(f"{where}: must name at least one field (e.g. \"rule.id\")")
            for f in fields:
                if not _FIELD_RE.match(f):
                    raise NotifyConfigError(f"{where}: \"{f}\" is not a field name like \"process.executable\"")
            values["key"] = fields
        elif key == "hourly_cap":
            values["hourly_cap"] = _int(where + " (0 = no cap)", v, 0, 100_000)
        elif key == "digest":
            if not isinstance(v, bool):
                raise NotifyConfigError(f"{where}: must be true or false, not {_type_name(v)}")
            values["digest"] = v
        elif key == "title_max":
            values["title_max"] = _int(where, v, 20, 250)
        elif key == "body_max":
            values["body_max"] = _int(where, v, 200, 30_000)
        elif key == "spool_max":
            values["spool_max"] = _int(where, v, 1, 1_000_000)
        elif key == "retry":
            values["retry"] = _parse_retry(v, source)
    if "tags" in values and "config" not in values:
        raise NotifyConfigError(f"{source}: [notify] tags: only selects services of the apprise file named by "
                                "[notify] config, which is not set")
    return NotifyConfig(source=source, **values)


def _parse_retry(v: Any, source: str) -> RetryConfig:
    if not isinstance(v, dict):
        raise NotifyConfigError(f"{source}: [notify] retry: must be a table ([notify.retry]), not {_type_name(v)}")
    vals: Dict[str, Any] = {}
    for k, x in v.items():
        where = f"{source}: [notify.retry] {k}"
        if k not in _RETRY_KEYS:
            raise NotifyConfigError(f"{source}: [notify.retry] unknown key '{k}' (known: {', '.join(_RETRY_KEYS)})")
        if k == "attempts":
            vals[k] = _int(where, x, 1, 100)
        else:
            vals[k] = _duration(where, x)
    r = RetryConfig(**vals)
    if r.max_backoff < r.backoff:
        raise NotifyConfigError(f"{source}: [notify.retry] max_backoff: must not be shorter than backoff "
                                f"({format_duration(r.backoff)})")
    if r.give_up_after < r.max_backoff:
        raise NotifyConfigError(f"{source}: [notify.retry] give_up_after: must not be shorter than max_backoff "
                                f"({format_duration(r.max_backoff)})")
    return r


# -- secrets -----------------------------------------------------------------------------------------------

# Schemes whose host part is a real host name (kept when printing); for every other scheme the whole part
# after "scheme://" is made of tokens (slack://T/B/C, discord://id/token, tgram://bot/chat, ...).
_HOST_SCHEMES = {
    "json", "jsons", "form", "forms", "xml", "xmls", "mailto", "mailtos", "mmost", "mmosts", "ntfy", "ntfys",
    "gotify", "gotifys", "rocket", "rockets", "apprise", "apprises", "matrix", "matrixs", "http", "https",
}
_SECRET_QUERY = re.compile(r"(pass|pwd|token|secret|key|auth|sig|webhook|hook|bearer|cred)", re.IGNORECASE)


def mask_secrets(url: str) -> str:
    """`url` with its passwords and tokens replaced by `***`, for printing and logs.

    json://user:***@host:8080/***, slack://***, mailto://user:***@example.com?to=ops%40example.com
    """
    url = url.strip()
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", url, re.DOTALL)
    if m is None:
        return "***"
    scheme = m.group(1)
    if scheme.lower() not in _HOST_SCHEMES:
        return f"{scheme}://***"
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return f"{scheme}://***"
    user = ""
    if "@" in netloc:
        userinfo = netloc.rsplit("@", 1)[0]
        name, sep, _pw = userinfo.partition(":")
        user = (name + (":***" if sep else "")) + "@"
    if ":" in host:
        host = f"[{host}]"
    out = f"{scheme}://{user}{host}" + (f":{port}" if port else "")
    path = parts.path
    out += "/***" if path not in ("", "/") else path
    if parts.query:
        q = []
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            q.append(f"{k}=***" if _SECRET_QUERY.search(k) or k.lower() in ("user", "pass") else
                     f"{k}={quote(v, safe='@:,')}")
        out += "?" + "&".join(q)
    return out
