"""Notifications through apprise that never flood, lose or re-send.

    detection ──submit(alert)──▶ flood control (synchronous, cheap) ──▶ per-channel queues ──worker──▶ apprise
                                   │ same key within `window`: counted, one digest when the window closes
                                   │ `hourly_cap` messages per clock hour, then one "cap reached" message
                                   ▼
                          state_dir/notify-state.json (windows, hour counters, undelivered messages)

* `submit()` never blocks on the network and never raises: it decides suppression under a lock, appends
  to the channel queues and wakes the worker thread.  Writing the state file is the worker's job too.
* Delivery is per channel and in order: a failed message is retried with exponential backoff; after
  `retry.attempts` failures the channel is taken as down and its queue is *spooled* (kept in the state
  file, counted) and the head is probed every `retry.max_backoff`; the first success drains the rest.
  A URL apprise cannot use, or a channel that failed for `retry.give_up_after`, is reported once and no
  longer retried (its messages stay in the spool for the next start).  A queue holds at most `spool_max`
  messages: the oldest are dropped, and counted.
* After a restart the suppression windows and hour counters are those of the state file, so nothing is
  notified twice, and undelivered messages are sent first.
* Each alert is taken once: the ids of the alerts submitted (notified, suppressed or held) are kept in the
  state file, and an alert submitted again (the agent re-reading its log after a crash) is dropped and
  counted (`duplicates`).  The worker writes the state before it sends, so a message sent is always one the
  state file knows as queued: a crash can repeat a message only if it comes after the send and before the
  state that records it as delivered is written (at-least-once for that instant, never a loss).

`clock`, `state_dir` and `send` are passed in; tests drive windows and hours with a fake clock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterator, List, Mapping, Optional, Tuple

from ..fsutil import atomic_write
from .notify_config import (
    DEFAULT_KEY,
    NotifyConfig,
    NotifyConfigError,
    RetryConfig,
    format_duration,
    mask_secrets,
    parse_duration,
    parse_notify,
)
from .notify_render import clock_hms, event_hms, flavour_of, render, summarize
from .notify_render import field as doc_field

__all__ = [
    "DEFAULT_KEY", "NotifyConfig", "NotifyConfigError", "RetryConfig", "Notifier", "Channel", "STATE_FILE",
    "format_duration", "mask_secrets", "notify_config_errors", "notify_test", "parse_duration", "parse_notify",
    "sample_alert",
]

STATE_FILE = "notify-state.json"
STATE_VERSION = 1
SAVE_INTERVAL_S = 1.0
MAX_SEEN_IDS = 10_000  # alert ids remembered (a restart re-reads seconds of log, not more)

SendFn = Callable[[str, str, "Channel"], bool]


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


def _channels_from_urls(urls: Tuple[str, ...]) -> List[Channel]:
    return [Channel(url=u, name=mask_secrets(u), flavour=flavour_of(u)) for u in urls]


# -- apprise (imported lazily: it costs ~75 ms) -----------------------------------------------------------

def _apprise_escapes_slack_text() -> bool:
    """Whether the installed apprise escapes &<> of plain-text Slack messages itself (apprise >= 2)."""
    try:
        from apprise.plugins.base import NotifyBase  # type: ignore[import-untyped]
        from apprise.plugins.slack import NotifySlack  # type: ignore[import-untyped]
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
    import apprise  # type: ignore[import-untyped]

    out: List[Channel] = []
    with _apprise_messages() as said:
        for ch in _channels_from_urls(cfg.urls):
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


# -- state file ---------------------------------------------------------------------------------------------

def _atomic_write(path: Path, data: bytes) -> None:
    """The state file, 0600, in a directory made 0700 when missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, data, mode=0o600)


# -- the notifier -------------------------------------------------------------------------------------------

class Notifier:
    """Flood control, queues, spool and the delivery worker.  See the module docstring."""

    def __init__(self, cfg: NotifyConfig, state_dir: Path, *, clock: Callable[[], float] = time.time,
                 send: Optional[Callable[[str, str, str], bool]] = None,
                 log: Optional[logging.Logger] = None, channels: Optional[List[Channel]] = None) -> None:
        self.cfg = cfg
        self.state_path = Path(state_dir) / STATE_FILE
        self.clock = clock
        self.log = log or logging.getLogger("auditimds.notify")
        self._send_fn = send
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._dirty = False
        self._last_save = 0.0
        self._seq = 0
        self._slack_entities = True
        self.windows: Dict[str, Dict[str, Any]] = {}
        self.seen: "OrderedDict[str, float]" = OrderedDict()  # alert id -> when it was submitted
        self._saved_sig: Tuple[Any, ...] = ()
        self.hour: Dict[str, Any] = {"hour": None, "count": 0, "held": 0, "cap_sent": False}
        self.totals: Dict[str, int] = {"alerts": 0, "notified": 0, "suppressed": 0, "digests": 0, "held": 0,
                                       "cap_messages": 0, "sent": 0, "failed": 0, "spooled": 0, "dropped": 0,
                                       "invalid_channels": 0, "dead_channels": 0, "state_errors": 0,
                                       "duplicates": 0}
        if channels is None:
            if send is None:
                channels = []  # resolved with apprise in start() / resolve()
                self._resolved = False
            else:
                channels = _channels_from_urls(cfg.urls)
                self._resolved = True
        else:
            self._resolved = True
        self.channels: List[Channel] = channels
        self._pending_queues: Dict[str, List[Dict[str, Any]]] = {}
        self._load()
        if self._resolved:
            self._attach_queues()

    # -- lifecycle ------------------------------------------------------------------------------------------

    def resolve(self) -> None:
        """Build the channels with apprise (imports it).  Called by start(); idempotent."""
        with self._lock:
            if self._resolved:
                return
        complaints: List[str] = []
        chans = resolve_channels(self.cfg, complaints)
        for c in complaints:
            self.log.warning("apprise config file %s: entry skipped: %s", self.cfg.config, c)
        esc = not _apprise_escapes_slack_text()
        with self._lock:
            self.channels = chans
            self._slack_entities = esc
            self._resolved = True
            self._attach_queues()

    def start(self) -> None:
        """Resolve the channels and start the worker thread (daemon thread)."""
        try:
            self.resolve()
        except Exception as e:  # noqa: BLE001 - notifications must never stop detection
            self.log.error("notifications disabled: %s", e)
            with self._lock:
                self._resolved = True
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="auditimds-notify", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker (after at most `timeout` s) and save the state (undelivered messages included)."""
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
            t = self._thread
        if t is not None:
            t.join(timeout)
            if t.is_alive():
                self.log.warning("notification worker still busy after %.1f s; its state is saved as is", timeout)
        with self._lock:
            self._thread = None
        self.save()

    def wake(self) -> None:
        with self._lock:
            self._wake.notify_all()

    # -- flood control (synchronous, cheap) -----------------------------------------------------------------

    def _key(self, alert: Mapping[str, Any]) -> str:
        vals = [doc_field(alert, k) for k in self.cfg.key]
        return hashlib.sha256(json.dumps(vals, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def submit(self, alert: Mapping[str, Any]) -> None:
        """Take one alert: notify it, count it in a suppression window, or hold it back (cap).  Never raises."""
        try:
            now = self.clock()
            with self._lock:
                aid = doc_field(alert, "alert.id")
                if isinstance(aid, str) and aid:
                    if aid in self.seen:
                        self.totals["duplicates"] += 1
                        return
                    self.seen[aid] = now
                    while len(self.seen) > MAX_SEEN_IDS:
                        self.seen.popitem(last=False)
                    self._dirty = True
                    self._wake.notify_all()  # the worker writes the state at once: the id must survive a crash
                self._tick_locked(now)
                self.totals["alerts"] += 1
                key = self._key(alert)
                w = self.windows.get(key)
                if w is not None and now < w["start"] + self.cfg.window:
                    s = summarize(alert, keep=2000)
                    w["count"] += 1
                    if w["count"] == 1:
                        w["since"] = event_hms(s["time"], now)
                    w["last_at"] = event_hms(s["time"], now)
                    w["last"] = {k: s[k] for k in ("process", "command_line", "alert_id")}
                    self.totals["suppressed"] += 1
                    self._dirty = True
                    return
                if not self._cap_allows(now):
                    self.hour["held"] += 1
                    self.totals["held"] += 1
                    self._dirty = True
                    return
                s = summarize(alert)
                self.windows[key] = {"start": now, "count": 0, "rule": s["rule"], "host": s["host"],
                                     "since": "", "last_at": "", "last": {}}
                self.totals["notified"] += 1
                self._enqueue_locked("alert", s, now)
        except Exception:  # noqa: BLE001 - detection must never fail because of notifications
            self.log.exception("notification of an alert failed (the alert is in the JSON lines output)")

    def _cap_allows(self, now: float) -> bool:
        """Count one message against the hourly cap; False (and the "cap reached" message once) when over."""
        cap = self.cfg.hourly_cap
        if cap <= 0:
            return True
        if self.hour["count"] < cap:
            self.hour["count"] += 1
            return True
        if not self.hour["cap_sent"]:
            self.hour["cap_sent"] = True
            hour = int(now // 3600)
            self.totals["cap_messages"] += 1
            self._enqueue_locked("cap", {"cap": cap, "at": clock_hms(now), "until": clock_hms((hour + 1) * 3600.0)},
                                 now)
        return False

    def tick(self, now: Optional[float] = None) -> None:
        """Close suppression windows (digests) and clock hours (cap summary).  Cheap; call it often."""
        try:
            with self._lock:
                self._tick_locked(self.clock() if now is None else now)
        except Exception:  # noqa: BLE001
            self.log.exception("notification tick failed")

    def _tick_locked(self, now: float) -> None:
        hour = int(now // 3600)
        if self.hour["hour"] is None:
            self.hour["hour"] = hour
        elif hour != self.hour["hour"]:
            old = self.hour
            self.hour = {"hour": hour, "count": 0, "held": 0, "cap_sent": False}
            self._dirty = True
            if old["held"] > 0:
                self.totals["cap_messages"] += 1
                self._enqueue_locked("cap_summary", {"held": old["held"], "cap": self.cfg.hourly_cap,
                                                     "start": clock_hms(old["hour"] * 3600.0)[:5],
                                                     "end": clock_hms((old["hour"] + 1) * 3600.0)[:5]}, now)
        closed = [k for k, w in self.windows.items() if now >= w["start"] + self.cfg.window]
        for k in closed:
            w = self.windows.pop(k)
            self._dirty = True
            if w["count"] > 0 and self.cfg.digest:
                if not self._cap_allows(now):
                    self.hour["held"] += w["count"]
                    self.totals["held"] += w["count"]
                    continue
                self.totals["digests"] += 1
                self._enqueue_locked("digest", {"count": w["count"], "rule": w["rule"], "host": w["host"],
                                                "since": w["since"], "last_at": w["last_at"], "last": w["last"]},
                                     now)

    def _enqueue_locked(self, kind: str, data: Dict[str, Any], now: float) -> None:
        self._seq += 1
        notice = {"seq": self._seq, "kind": kind, "created": now, "data": data}
        for ch in self.channels:
            if ch.invalid:
                continue
            self._push(ch, {"notice": notice, "attempts": 0, "spooled": ch.down})
            if ch.down:
                ch.counters["spooled"] += 1
                self.totals["spooled"] += 1
        self._dirty = True
        self._wake.notify_all()

    def _push(self, ch: Channel, entry: Dict[str, Any]) -> None:
        ch.queue.append(entry)
        while len(ch.queue) > self.cfg.spool_max:
            old = ch.queue.popleft()
            ch.counters["dropped"] += 1
            self.totals["dropped"] += 1
            self.log.error("notification spool of %s full (%d): dropped the oldest undelivered message (%s #%s)",
                           ch.name, self.cfg.spool_max, old["notice"]["kind"], old["notice"]["seq"])

    # -- delivery -----------------------------------------------------------------------------------------

    def _send(self, title: str, body: str, ch: Channel) -> Tuple[bool, str]:
        if self._send_fn is not None:
            try:
                r = self._send_fn(title, body, ch.name)
            except Exception as e:  # noqa: BLE001
                return False, f"{type(e).__name__}: {e}"
            return bool(r), "" if r else "send reported a failure"
        return apprise_send(title, body, ch)

    def pump(self, now: Optional[float] = None) -> float:
        """One delivery pass: tick, then send every message that is due, channel by channel, in order.

        Returns the number of seconds (of `clock`) until something is due again (capped at 1 s).
        """
        now = self.clock() if now is None else now
        self.tick(now)
        wait = 1.0
        for ch in list(self.channels):
            with self._lock:
                if ch.invalid or ch.dead:
                    continue
            while True:
                with self._lock:
                    if not ch.queue:
                        break
                    if now < ch.next_try:
                        wait = min(wait, ch.next_try - now)
                        break
                    entry = ch.queue[0]
                    title, body = render(entry["notice"], ch.flavour, title_max=self.cfg.title_max,
                                         body_max=self.cfg.body_max, slack_entities=self._slack_entities)
                    unsaved = self._dirty
                if unsaved:
                    self.save()  # what is sent is first known as queued (and its alert id as taken)
                ok, reason = self._send(title, body, ch)
                now = self.clock()
                with self._lock:
                    if ok:
                        self._delivered(ch, entry)
                    else:
                        self._failed(ch, entry, reason, now)
                        break
                if self._stopping:
                    break
        self._maybe_save(now)
        return max(0.0, wait)

    def _delivered(self, ch: Channel, entry: Dict[str, Any]) -> None:
        if ch.queue and ch.queue[0] is entry:
            ch.queue.popleft()
        ch.counters["sent"] += 1
        self.totals["sent"] += 1
        if ch.down:
            self.log.warning("notifications to %s delivered again (%d waiting)", ch.name, len(ch.queue))
        ch.failures = 0
        ch.failing_since = None
        ch.down = False
        ch.next_try = 0.0
        ch.last_error = ""
        self._dirty = True

    def _failed(self, ch: Channel, entry: Dict[str, Any], reason: str, now: float) -> None:
        r = self.cfg.retry
        entry["attempts"] += 1
        ch.failures += 1
        ch.counters["failed"] += 1
        self.totals["failed"] += 1
        ch.last_error = reason
        if ch.failing_since is None:
            ch.failing_since = now
        delay = min(r.backoff * (2 ** (ch.failures - 1)), r.max_backoff)
        ch.next_try = now + delay
        if ch.failures >= r.attempts and not ch.down:
            ch.down = True
            n = 0
            for e in ch.queue:
                if not e["spooled"]:
                    e["spooled"] = True
                    n += 1
            ch.counters["spooled"] += n
            self.totals["spooled"] += n
            self.log.warning("notifications to %s failing (%s): %d message(s) spooled, retried every %s",
                             ch.name, reason, len(ch.queue), format_duration(r.max_backoff))
        if ch.down:
            ch.next_try = now + r.max_backoff
        if now - ch.failing_since >= r.give_up_after and not ch.dead:
            ch.dead = True
            self.totals["dead_channels"] += 1
            self.log.error("notifications to %s failed for %s (%d tries, last: %s): no longer retried until "
                           "restart; %d message(s) kept in %s", ch.name, format_duration(now - ch.failing_since),
                           ch.failures, reason, len(ch.queue), self.state_path)
        self._dirty = True

    def _run(self) -> None:
        invalid_reported = set()
        while True:
            with self._lock:
                for ch in self.channels:
                    if ch.invalid and ch.id not in invalid_reported:
                        invalid_reported.add(ch.id)
                        self.totals["invalid_channels"] += 1
                        self.log.error("notification channel %s unusable: %s", ch.name, ch.invalid)
                if self._stopping:
                    break
            try:
                wait = self.pump()
            except Exception:  # noqa: BLE001 - keep the worker alive
                self.log.exception("notification worker error")
                wait = 1.0
            with self._lock:
                if self._stopping:
                    break
                if not self._has_due_work():
                    self._wake.wait(timeout=min(max(wait, 0.01), 1.0))
        self._maybe_save(self.clock(), force=True)

    def _has_due_work(self) -> bool:
        now = self.clock()
        return any(ch.queue and not ch.invalid and not ch.dead and now >= ch.next_try for ch in self.channels)

    # -- persistence --------------------------------------------------------------------------------------

    def _maybe_save(self, now: float, force: bool = False) -> None:
        with self._lock:
            if not self._dirty:
                return
            recent = time.monotonic() - self._last_save < SAVE_INTERVAL_S
            if not force and recent and self._signature() == self._saved_sig:
                return
        self.save()

    def _signature(self) -> Tuple[Any, ...]:
        """What must reach the state file at once when it changes: the queues and the alert ids taken."""
        return (tuple((ch.id, len(ch.queue), ch.queue[0]["notice"]["seq"] if ch.queue else 0) for ch in self.channels),
                next(reversed(self.seen), None))

    def save(self) -> None:
        with self._lock:
            queues: Dict[str, List[Dict[str, Any]]] = {ch.id: list(ch.queue) for ch in self.channels if ch.queue}
            for cid, q in self._pending_queues.items():  # queues of channels not resolved yet
                queues.setdefault(cid, q)
            doc = {"version": STATE_VERSION, "seq": self._seq, "windows": self.windows, "hour": self.hour,
                   "queues": queues, "totals": self.totals, "seen": list(self.seen.items())}
            data = (json.dumps(doc, sort_keys=True, default=str) + "\n").encode()
            self._saved_sig = self._signature()
            self._dirty = False
            self._last_save = time.monotonic()
        try:
            _atomic_write(self.state_path, data)
        except OSError as e:
            with self._lock:
                self._dirty = True
                self.totals["state_errors"] += 1
            self.log.error("cannot write %s: %s (notification state kept in memory)", self.state_path,
                           e.strerror or e)

    def _load(self) -> None:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as e:
            self.log.error("cannot read %s: %s; starting without notification state", self.state_path,
                           e.strerror or e)
            return
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
                raise ValueError("unknown format")
            windows = doc.get("windows", {})
            hour = doc.get("hour", {})
            queues = doc.get("queues", {})
            if not (isinstance(windows, dict) and isinstance(hour, dict) and isinstance(queues, dict)):
                raise ValueError("bad sections")
        except ValueError as e:
            self.log.error("%s is damaged (%s): starting without notification state", self.state_path, e)
            return
        self._seq = int(doc.get("seq", 0))
        self.windows = windows
        if set(hour) >= {"hour", "count", "held", "cap_sent"}:
            self.hour = hour
        for k, v in doc.get("totals", {}).items():
            if k in self.totals and isinstance(v, int):
                self.totals[k] = v
        self._pending_queues = {cid: list(q) for cid, q in queues.items() if isinstance(q, list)}
        for item in doc.get("seen", []) if isinstance(doc.get("seen"), list) else []:
            if (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                    and isinstance(item[1], (int, float))):
                self.seen[item[0]] = float(item[1])
        while len(self.seen) > MAX_SEEN_IDS:
            self.seen.popitem(last=False)

    def _attach_queues(self) -> None:
        by_id = {ch.id: ch for ch in self.channels}
        for cid, q in list(self._pending_queues.items()):
            ch = by_id.get(cid)
            if ch is None:
                self.totals["dropped"] += len(q)
                self.log.warning("%d undelivered notification(s) for a channel no longer configured: dropped",
                                 len(q))
                continue
            for e in q:
                e["spooled"] = True
                self._push(ch, e)
            if q:
                self.log.info("%d undelivered notification(s) for %s from the previous run", len(q), ch.name)
        self._pending_queues = {}

    # -- health -------------------------------------------------------------------------------------------

    def counters(self) -> Dict[str, Any]:
        with self._lock:
            out: Dict[str, Any] = dict(self.totals)
            out["windows_open"] = len(self.windows)
            out["held_this_hour"] = self.hour.get("held", 0)
            out["queued"] = sum(len(ch.queue) for ch in self.channels)
            out["channels"] = {
                ch.name: dict(ch.counters, queued=len(ch.queue),
                              state="invalid" if ch.invalid else "dead" if ch.dead else "down" if ch.down
                              else "retrying" if ch.failures else "ok",
                              last_error=ch.invalid or ch.last_error)
                for ch in self.channels
            }
            return out


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


def notify_test(cfg: NotifyConfig, *, send: Optional[Callable[[str, str, str], bool]] = None,
                alert: Optional[Mapping[str, Any]] = None) -> List[Tuple[str, bool, str]]:
    """Send one sample alert to every configured channel now: [(masked URL, ok, reason)].  No flood control,
    no state, no retry: this reports what each channel does right now."""
    if send is not None:
        chans = _channels_from_urls(cfg.urls)
        esc = True
    else:
        chans = resolve_channels(cfg)
        esc = not _apprise_escapes_slack_text()
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
