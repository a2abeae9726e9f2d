"""The agent's runtime metrics: the counters' names and help, the lag behind the log, the periodic health
log line, the last (`stopped:`) line, and the Prometheus textfile for node_exporter's textfile collector.

Used by the agent (daemon.py) while it runs and by `auditimds status` (ops/status.py), which reads them back
from the state dir.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .fsutil import atomic_write

MAX_ROTATED = 99

# Counters whose value can go down: exported as gauges (everything else numeric is a counter).
GAUGES = frozenset({"processes_tracked", "newest_event_ms", "notify.spool_size", "notify.pending",
                    "notify.channels_down"})
HELP = {
    "lines": "Audit log lines read.",
    "malformed_lines": "Audit log lines that could not be parsed.",
    "records": "Audit records parsed.",
    "events": "Audit events reassembled.",
    "exec_events": "Exec events built.",
    "network_events": "Network events built.",
    "alerts": "Rule matches (before duplicate suppression).",
    "alerts_emitted": "Alerts written.",
    "alerts_suppressed_duplicates": "Alerts found again after a restart and not written twice.",
    "alerts_silenced_by_exceptions": "Alerts dropped by [[exceptions]] of the configuration.",
    "output_errors": "Alert lines that could not be written to an output (stdout, the JSON lines file).",
    "late_events": "Events that arrived after the reorder window.",
    "rule_errors": "Rule evaluation errors.",
    "processes_tracked": "Processes in the process table.",
    "follower.rotations": "Log rotations followed.",
    "follower.truncations": "Log truncations seen.",
    "follower.bytes_read": "Bytes of audit log read.",
    "follower.lost_bytes_estimate": "Estimated bytes of audit log lost (rotated away unread).",
    "follower.errors": "Errors reading the audit log.",
    "notify.sent": "Notifications sent.",
    "notify.suppressed": "Notifications suppressed (grouped, rate-limited).",
    "notify.failed": "Notifications that failed.",
    "notify.spooled": "Notifications spooled for a later retry.",
}


def log_lag(log: str, position: Optional[Mapping[str, Any]],
            stat_fn: Callable[[str], os.stat_result] = os.stat) -> Tuple[Optional[int], Optional[str], str]:
    """(bytes between the position and the end of the current log, file the position is in, note).

    The position names its file by (dev, inode): it is the live log, or a rotated copy (`log.1`, `log.2`...)
    when auditimds has not yet finished reading a file that was rotated away; then the lag is the rest of that
    file plus every newer file."""
    if not position or not isinstance(position, Mapping):
        return None, None, "no position saved yet"
    try:
        dev, ino, offset = int(position["dev"]), int(position["inode"]), int(position["offset"])
    except (KeyError, TypeError, ValueError):
        return None, None, "malformed position"
    sizes: List[int] = []
    names = [log] + [f"{log}.{i}" for i in range(1, MAX_ROTATED + 1)]
    for name in names:
        try:
            st = stat_fn(name)
        except FileNotFoundError:
            if name == log:
                sizes.append(0)
                continue
            break
        except OSError as e:
            return None, None, f"cannot stat {name}: {e.strerror or e}"
        if (st.st_dev, st.st_ino) == (dev, ino):
            return max(st.st_size - offset, 0) + sum(sizes), name, ""
        sizes.append(st.st_size)
    return None, None, "the file of the saved position is gone (rotated away or deleted)"


class ErrorThrottle:
    """When to log a recurring error: the first time, when its text changes, and then at most every
    `remind_every` seconds (never again when None) while it lasts.  Time is passed in."""

    def __init__(self, remind_every: Optional[float] = None) -> None:
        self.remind_every = remind_every
        # key -> [text, reported at, failures since that report, failures since the problem began]
        self._failing: Dict[str, List[Any]] = {}

    def failed(self, key: str, text: str, now: float) -> Optional[int]:
        """One more failure.  None: stay quiet; else log it now (the value: failures not logged since the
        previous report of this key)."""
        st = self._failing.get(key)
        if st is None:
            self._failing[key] = [text, now, 0, 1]
            return 0
        st[3] += 1
        if st[0] != text or (self.remind_every is not None and now - st[1] >= self.remind_every):
            unreported = st[2]
            st[0], st[1], st[2] = text, now, 0
            return unreported
        st[2] += 1
        return None

    def recovered(self, key: str) -> Optional[int]:
        """A success: the number of failures of the problem it ends, or None when `key` was not failing."""
        st = self._failing.pop(key, None)
        return None if st is None else st[3]


# -- periodic health line ------------------------------------------------------------------------------------

_HEALTH_KEYS = (
    ("lines", "lines"), ("events", "events"), ("exec_events", "exec"), ("network_events", "network"),
    ("malformed_lines", "malformed"), ("late_events", "late"), ("rule_errors", "rule_errors"),
    ("alerts_emitted", "alerts"), ("alerts_suppressed_duplicates", "duplicates"),
    ("alerts_silenced_by_exceptions", "silenced"), ("output_errors", "output_errors"),
    ("processes_tracked", "processes"),
)


def format_health_line(counters: Mapping[str, Any], *, lag_bytes: Optional[int] = None,
                       kernel_lost: Optional[int] = None) -> str:
    """One logfmt-style line of the main counters, for a periodic INFO log message:

    health: lines=1200 events=300 exec=200 network=100 malformed=0 ... rotations=1 notify_sent=2 lag_bytes=0
    """
    parts = ["health:"]
    for key, label in _HEALTH_KEYS:
        if key in counters:
            parts.append(f"{label}={counters[key]}")
    f = counters.get("follower")
    if isinstance(f, Mapping):
        for key, label in (("rotations", "rotations"), ("lost_bytes_estimate", "lost_bytes"),
                           ("errors", "read_errors")):
            if key in f:
                parts.append(f"{label}={f[key]}")
    n = counters.get("notify")
    if isinstance(n, Mapping):
        for key in sorted(n):
            if isinstance(n[key], (int, float)) and not isinstance(n[key], bool):
                parts.append(f"notify_{key}={n[key]}")
    if lag_bytes is not None:
        parts.append(f"lag_bytes={lag_bytes}")
    if kernel_lost is not None:
        parts.append(f"kernel_lost={kernel_lost}")
    return " ".join(parts)


def format_stopped_line(counters: Mapping[str, Any]) -> str:
    """The agent's last log line: `stopped: {...}` with its counters and the notifier's (sent, suppressed,
    failed, spooled...) as JSON; nested tables (per channel, reassembly...) are left out."""
    doc: Dict[str, Any] = {k: v for k, v in counters.items() if not isinstance(v, Mapping)}
    n = counters.get("notify")
    if isinstance(n, Mapping):
        doc["notify"] = {k: v for k, v in n.items() if not isinstance(v, Mapping)}
    return "stopped: " + json.dumps(doc)


# -- Prometheus textfile ---------------------------------------------------------------------------------------

_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")


def flatten_counters(counters: Mapping[str, Any], prefix: str = "") -> List[Tuple[str, float]]:
    """(dotted key, value) of every numeric leaf (bools and strings are skipped)."""
    out: List[Tuple[str, float]] = []
    for k in sorted(counters):
        v = counters[k]
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.extend(flatten_counters(v, key + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append((key, v))
    return out


def _metric_name(prefix: str, dotted: str) -> str:
    name = _NAME_BAD.sub("_", f"{prefix}_{dotted.replace('.', '_')}")
    return re.sub(r"_+", "_", name)


def _fmt_value(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


def render_prometheus(counters: Mapping[str, Any], *, gauges: Optional[Mapping[str, Optional[float]]] = None,
                      prefix: str = "auditimds", now: Optional[float] = None) -> str:
    """node_exporter textfile format: HELP and TYPE lines, `auditimds_` names, counters ending in `_total`."""
    lines: List[str] = []
    seen = set()

    def emit(name: str, kind: str, help_text: str, value: float) -> None:
        if name in seen:
            return
        seen.add(name)
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name} {_fmt_value(value)}")

    for dotted, value in flatten_counters(counters):
        is_gauge = dotted in GAUGES
        name = _metric_name(prefix, dotted)
        if not is_gauge and not name.endswith("_total"):
            name += "_total"
        emit(name, "gauge" if is_gauge else "counter", HELP.get(dotted, f"auditimds counter {dotted}."), value)
    for key, gauge in sorted((gauges or {}).items()):
        if gauge is None or isinstance(gauge, bool):
            continue
        emit(_metric_name(prefix, key), "gauge", HELP.get(key, f"auditimds gauge {key}."), gauge)
    emit(f"{prefix}_textfile_timestamp_seconds", "gauge", "When auditimds wrote this file (Unix time).",
         round(time.time() if now is None else now, 3))
    return "\n".join(lines) + "\n"


def write_prometheus_textfile(path: Path, counters: Mapping[str, Any], *,
                              gauges: Optional[Mapping[str, Optional[float]]] = None,
                              prefix: str = "auditimds", now: Optional[float] = None) -> None:
    """Write the counters (and `gauges`, e.g. {"lag_bytes": 0, "kernel_lost": 0}) to `path` atomically.

    The file is written beside `path` under a name node_exporter ignores (it reads `*.prom` only), made
    world-readable (0644), fsynced and renamed over `path` (`fsutil.atomic_write`): the collector never sees
    half a file.
    Raises OSError when the directory is not writable."""
    path = Path(path)
    data = render_prometheus(counters, gauges=gauges, prefix=prefix, now=now).encode("utf-8")
    atomic_write(path, data, mode=0o644)


# -- the agent's periodic health line and textfile -------------------------------------------------------------

TEXTFILE_INTERVAL_S = 15.0


class Periodic:
    """The health line (every `health_interval` s, not at start-up) and the metrics textfile (every
    TEXTFILE_INTERVAL_S) of a running agent.  `counters()`, `lag_bytes()` and `newest_ts_ms()` are asked when
    due; time is passed in."""

    def __init__(self, counters: Callable[[], Dict[str, Any]], lag_bytes: Callable[[], Optional[int]],
                 newest_ts_ms: Callable[[], int], log: Any) -> None:
        self.counters, self.lag_bytes, self.newest_ts_ms, self.log = counters, lag_bytes, newest_ts_ms, log
        self.next_health = 0.0
        self.next_textfile = 0.0
        self._textfile_errors = ErrorThrottle(None)

    def due(self, health_interval: float, textfile: Optional[str]) -> List[float]:
        """When the configured periodic outputs are next due (empty: none is)."""
        return [t for t in ((self.next_health if health_interval else 0),
                            (self.next_textfile if textfile else 0)) if t]

    def run(self, now: float, health_interval: float, textfile: Optional[str]) -> None:
        if health_interval and now >= self.next_health:
            if self.next_health:  # not at start-up
                self.log.info("%s", self.health_line())
            self.next_health = now + health_interval
        if textfile and now >= self.next_textfile:
            self.next_textfile = now + TEXTFILE_INTERVAL_S
            self.write_textfile(textfile, now)

    def health_line(self) -> str:
        return format_health_line(self.counters(), lag_bytes=self.lag_bytes())

    def write_textfile(self, path: str, now: Optional[float] = None) -> None:
        """Write the metrics textfile; a failure is logged once (again if the error changes, or if it fails
        again after a success), not at every attempt."""
        now = time.time() if now is None else now
        newest = self.newest_ts_ms()
        gauges = {"lag_bytes": self.lag_bytes(),
                  "lag_seconds": max(0.0, time.time() - newest / 1000) if newest >= 0 else None}
        try:
            write_prometheus_textfile(Path(path), self.counters(), gauges=gauges)
        except OSError as e:
            text = e.strerror or str(e)
            if self._textfile_errors.failed(path, text, now) is not None:
                self.log.warning("metrics textfile %s: %s (not repeated while the error lasts)", path, text)
            return
        if self._textfile_errors.recovered(path) is not None:
            self.log.info("metrics textfile %s written again", path)
