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

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from .notify_channels import (
    Channel,
    SendFn,
    apprise_escapes_slack_text,
    apprise_send,
    channels_from_urls,
    notify_config_errors,
    notify_test,
    resolve_channels,
    sample_alert,
)
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
from .notify_policy import FloodControl
from .notify_render import render
from .notify_state import STATE_FILE, StatePersistence

__all__ = [
    "DEFAULT_KEY", "NotifyConfig", "NotifyConfigError", "RetryConfig", "Notifier", "Channel", "STATE_FILE",
    "format_duration", "mask_secrets", "notify_config_errors", "notify_test", "parse_duration", "parse_notify",
    "sample_alert",
]


# -- the notifier -------------------------------------------------------------------------------------------

class Notifier(FloodControl, StatePersistence):
    """Flood control (notify_policy.py), queues, spool, the state file (notify_state.py) and the delivery
    worker.  See the module docstring."""

    def __init__(self, cfg: NotifyConfig, state_dir: Path, *, clock: Callable[[], float] = time.time,
                 send: Optional[SendFn] = None,
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
        self.windows = {}
        self.seen = OrderedDict()  # alert id -> when it was submitted
        self._saved_sig = ()
        self.hour = {"hour": None, "count": 0, "held": 0, "cap_sent": False}
        self.totals = {"alerts": 0, "notified": 0, "suppressed": 0, "digests": 0, "held": 0,
                       "cap_messages": 0, "sent": 0, "failed": 0, "spooled": 0, "dropped": 0,
                       "invalid_channels": 0, "dead_channels": 0, "state_errors": 0, "duplicates": 0}
        if channels is None:
            if send is None:
                channels = []  # resolved with apprise in start() / resolve()
                self._resolved = False
            else:
                channels = channels_from_urls(cfg.urls)
                self._resolved = True
        else:
            self._resolved = True
        self.channels = channels
        self._pending_queues = {}
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
        esc = not apprise_escapes_slack_text()
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
