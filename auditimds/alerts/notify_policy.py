"""Flood control of notifications, synchronous and cheap (`submit` runs on the detection thread): an alert
of a key (`[notify] key`) already notified within `window` is counted, and one digest is sent when the window
closes; past `hourly_cap` messages in a clock hour the rest are held back, with one "cap reached" message and
a summary when the hour ends.  What passes is queued, per channel, for the delivery worker (alerts/notify.py).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, Mapping, Optional

from .notify_channels import Channel
from .notify_render import clock_hms, event_hms, summarize
from .notify_render import field as doc_field
from .notify_state import MAX_SEEN_IDS, NotifierState


class FloodControl(NotifierState):
    """Suppression windows, the hourly cap and the per-channel queues (bounded by `spool_max`)."""

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
