"""The notifier's state and its file, state_dir/notify-state.json: suppression windows, hour counters,
totals, the ids of the alerts taken and the undelivered messages, so that a restart notifies nothing twice and
sends what was left first.  See alerts/notify.py for the whole design.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

from ..fsutil import atomic_write
from .notify_channels import Channel
from .notify_config import NotifyConfig

STATE_FILE = "notify-state.json"
STATE_VERSION = 1
SAVE_INTERVAL_S = 1.0
MAX_SEEN_IDS = 10_000  # alert ids remembered (a restart re-reads seconds of log, not more)


def _atomic_write(path: Path, data: bytes) -> None:
    """The state file, 0600, in a directory made 0700 when missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, data, mode=0o600)


class NotifierState:
    """What the notifier's parts share, set by Notifier.__init__ (alerts/notify.py); guarded by `_lock`."""

    cfg: NotifyConfig
    state_path: Path
    clock: Callable[[], float]
    log: logging.Logger
    _lock: threading.RLock
    _wake: threading.Condition
    _dirty: bool
    _last_save: float
    _saved_sig: Tuple[Any, ...]
    _seq: int
    windows: Dict[str, Dict[str, Any]]
    seen: "OrderedDict[str, float]"  # alert id -> when it was submitted
    hour: Dict[str, Any]
    totals: Dict[str, int]
    channels: List[Channel]
    _pending_queues: Dict[str, List[Dict[str, Any]]]  # queues of the state file for channels not resolved yet


class StatePersistence(NotifierState):
    """Writing and reading the state file."""

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

