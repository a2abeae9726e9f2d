"""The channels of notifications: one apprise URL each, resolved and sent to through apprise; and
`auditimds notify-test`, which sends one sample alert to each of them at once.

apprise is imported lazily (it costs ~75 ms): importing this module does not import it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Deque, Dict, Iterator, List, Mapping, Optional, Tuple

from .notify_config import NotifyConfig, mask_secrets
from .notify_render import flavour_of, render, summarize

# A sender instead of apprise (tests, notify-test's callers): (title, body, masked channel name) -> delivered
SendFn = Callable[[str, str, str], bool]


@dataclass
class Channel:
    """One destination (one apprise URL).  `id` is a hash of the URL (the state file holds no secret)."""

    url: str
    name: str                      # masked URL, for logs and reports
    flavour: str
    id: str = ""
    plugin: Any = None             # apprise plugin object (default sender only)
    invalid: str = ""              # why apprise cannot use it ("" = usable)
    queue: Deque[Dict[str, Any]] = field(default_factory=deque)
    failures: int = 0              # consecutive failures
    failing_since: Optional[float] = None
    next_try: float = 0.0
    down: bool = False             # retries exhausted: queue spooled, head probed every max_backoff
    dead: bool = False             # reported as permanently failing; not retried until restart
    last_error: str = ""
    counters: Dict[str, int] = field(default_factory=lambda: {"sent": 0, "failed": 0, "spooled": 0, "dropped": 0})

    def __post_init__(self) -> None:
        if not self.id:
            self.id = hashlib.sha256(self.url.encode()).hexdigest()[:16]



def channels_from_urls(urls: Tuple[str, ...]) -> List[Channel]:
    return [Channel(url=u, name=mask_secrets(u), flavour=flavour_of(u)) for u in urls]


# -- apprise (imported lazily: it costs ~75 ms) -----------------------------------------------------------

def apprise_escapes_slack_text() -> bool:
    """Whether the installed apprise escapes &<> of plain-text Slack messages itself (apprise >= 2)."""
    try:
        from apprise.plugins.base import NotifyBase
        from apprise.plugins.slack import NotifySlack
    except ImportError:  # pragma: no cover - very old apprise
        return False
    return getattr(NotifySlack, "dialect_convert", None) is not getattr(NotifyBase, "dialect_convert", None)


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_APPRISE_NOISE = ("Failed to load Apprise configuration from",)


def mask_urls_in(text: str) -> str:
    """`text` with every URL in it masked (apprise's messages quote the URLs they reject in full)."""
    return _URL_IN_TEXT.sub(lambda m: mask_secrets(m.group(0)), text)


class _AppriseMessages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad log call of apprise's must not break us
            msg = str(record.msg)
        msg = mask_urls_in(" ".join(msg.split()))
        if msg and not msg.startswith(_APPRISE_NOISE) and msg not in self.messages:
            self.messages.append(msg)


@contextmanager
def _apprise_messages() -> Iterator[_AppriseMessages]:
    """apprise's warnings and errors while it parses URLs and config files, kept (URLs masked) instead of
    printed: apprise logs a URL it rejects whole, secrets included, and the journal must not get them."""
    lg = logging.getLogger("apprise")
    handler = _AppriseMessages()
    old_propagate, old_level = lg.propagate, lg.level
    lg.addHandler(handler)
    lg.propagate = False
    if lg.level == logging.NOTSET or lg.level > logging.WARNING:
        lg.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        lg.removeHandler(handler)
        lg.propagate, lg.level = old_propagate, old_level


def _since(msgs: List[str], n: int) -> str:
    return "; ".join(msgs[n:])


def resolve_channels(cfg: NotifyConfig, complaints: Optional[List[str]] = None) -> List[Channel]:
    """The channels of `cfg` with their apprise plugin objects (imports apprise).

    What apprise says about the apprise config file (entries it skips: an unparseable URL...) is appended,
    masked, to `complaints`; a URL or a file it cannot use at all gives a channel whose `invalid` says why."""
    import apprise

    out: List[Channel] = []
    with _apprise_messages() as said:
        for ch in channels_from_urls(cfg.urls):
            n = len(said.messages)
            plugin = apprise.Apprise.instantiate(ch.url)
            if plugin is None:
                detail = _since(said.messages, n)
                ch.invalid = ("apprise does not accept this URL (unknown scheme or bad/missing token)"
                              + (f": {detail}" if detail else ""))
            ch.plugin = plugin
            out.append(ch)
        if not cfg.config:
            return out
        n = len(said.messages)
        ac = apprise.AppriseConfig()
        found: List[Any] = []
        readable = ac.add(cfg.config)
        if readable:
            a = apprise.Apprise()
            a.add(ac)
            tag: Any = list(cfg.tags) if cfg.tags else apprise.common.MATCH_ALL_TAG
            found = list(a.find(tag=tag))
        detail = _since(said.messages, n)
    name = f"config file {cfg.config}"
    if not readable:
        out.append(Channel(url=f"config://{cfg.config}", name=name, flavour="text",
                           invalid="apprise could not read the config file" + (f": {detail}" if detail else "")))
        return out
    if not found:
        out.append(Channel(url=f"config://{cfg.config}", name=name, flavour="text",
                           invalid="no service in the apprise config file"
                           + (f" has a tag of {', '.join(cfg.tags)}" if cfg.tags else "")
                           + (f" (apprise: {detail})" if detail else "")))
    elif detail and complaints is not None:
        complaints.extend(said.messages[n:])
    for plugin in found:
        url = plugin.url(privacy=False)
        out.append(Channel(url=url, name=mask_secrets(url), flavour=flavour_of(url), plugin=plugin))
    return out


def notify_config_errors(cfg: NotifyConfig) -> List[str]:
    """What the agent would find unusable in `[notify]`, found now (imports apprise): URLs apprise cannot
    parse, an apprise config file it cannot load (or without a service of the tags), entries of that file it
    skips.  One line each, naming the configuration file and the key, secrets masked; [] when all is usable.
    For `auditimds check-config`."""
    where = f"{cfg.source}: [notify]"
    errors: List[str] = []
    if cfg.urls:
        for i, ch in enumerate(resolve_channels(replace(cfg, config=None, tags=())), 1):
            if ch.invalid:
                errors.append(f"{where} urls: item {i} ({ch.name}): {ch.invalid}")
    if cfg.config:
        complaints: List[str] = []
        for ch in resolve_channels(replace(cfg, urls=()), complaints):
            if ch.invalid:
                errors.append(f"{where} config: {cfg.config}: {ch.invalid}")
        errors.extend(f"{where} config: {cfg.config}: apprise skips an entry: {c}" for c in complaints)
    return errors


def apprise_send(title: str, body: str, channel: Channel) -> Tuple[bool, str]:
    """Send through apprise to the one plugin of `channel`; (ok, reason)."""
    import apprise

    a = apprise.Apprise()
    a.add(channel.plugin)
    with apprise.LogCapture(level=logging.WARNING) as logs:
        try:
            ok = bool(a.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT))
        except Exception as e:  # noqa: BLE001 - apprise catches plugin errors; this is belt and braces
            return False, f"{type(e).__name__}: {e}"
        text = logs.getvalue() if hasattr(logs, "getvalue") else ""
    if ok:
        return True, ""
    lines = [ln.split(" - ", 2)[-1].strip() for ln in text.splitlines() if ln.strip()]
    return False, (lines[-1] if lines else "apprise reported a failure")


# -- notify-test ----------------------------------------------------------------------------------------------

def sample_alert() -> Dict[str, Any]:
    return {
        "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "alert": {"id": "0" * 32},
        "rule": {"id": "auditimds-notify-test", "name": "Unusual Instance Metadata Service (IMDS) API Request",
                 "severity": "medium"},
        "host": {"name": os.uname().nodename, "id": "notify-test"},
        "user": {"name": "root", "id": "0"},
        "process": {"name": "curl", "pid": 4242, "executable": "/usr/bin/curl",
                    "command_line": "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                    "working_directory": "/tmp", "parent": {"executable": "/usr/bin/bash"}},
        "destination": {"ip": "169.254.169.254", "port": 80},
    }


def notify_test(cfg: NotifyConfig, *, send: Optional[SendFn] = None,
                alert: Optional[Mapping[str, Any]] = None) -> List[Tuple[str, bool, str]]:
    """Send one sample alert to every configured channel now: [(masked URL, ok, reason)].  No flood control,
    no state, no retry: this reports what each channel does right now."""
    if send is not None:
        chans = channels_from_urls(cfg.urls)
        esc = True
    else:
        chans = resolve_channels(cfg)
        esc = not apprise_escapes_slack_text()
    notice = {"seq": 0, "kind": "test", "created": time.time(), "data": summarize(alert or sample_alert())}
    out: List[Tuple[str, bool, str]] = []
    for ch in chans:
        if ch.invalid:
            out.append((ch.name, False, ch.invalid))
            continue
        title, body = render(notice, ch.flavour, title_max=cfg.title_max, body_max=cfg.body_max, slack_entities=esc)
        if send is not None:
            try:
                ok, reason = bool(send(title, body, ch.name)), ""
            except Exception as e:  # noqa: BLE001
                ok, reason = False, f"{type(e).__name__}: {e}"
            if not ok and not reason:
                reason = "send reported a failure"
        else:
            ok, reason = apprise_send(title, body, ch)
        out.append((ch.name, ok, reason or "delivered"))
    return out
