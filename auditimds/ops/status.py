"""Health of the agent: `auditimds status` (reads the state dir), a periodic health log line, and a Prometheus
textfile for node_exporter's textfile collector.

`status` only reads: the state file written by the daemon's checkpoints (`STATE_DIR/state.json`, see
source/checkpoint.py: `{"version", "saved_at", "state": {"log", "position", "alerts", "newest_event_ms",
"counters"}}`), the sizes of the followed log and of its rotated copies (to measure the lag even when the
position is still in a rotated file), and, when it may (root), the kernel's audit counters (`auditctl -s`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, TextIO, Tuple

from ..source.checkpoint import CheckpointError, load_state

STATE_FILE = "state.json"
MAX_ROTATED = 99
EXIT_OK, EXIT_NO_STATE, EXIT_BAD_STATE = 0, 1, 2

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


# -- reading the state -------------------------------------------------------------------------------------


def read_state(state_dir: Path) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(state, saved_at) from STATE_DIR/state.json; (None, None) when there is none.  Raises CheckpointError."""
    path = Path(state_dir) / STATE_FILE
    state = load_state(path)
    if state is None:
        return None, None
    saved_at = None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and isinstance(doc.get("saved_at"), str):
            saved_at = doc["saved_at"]
    except (OSError, ValueError):
        pass
    return state, saved_at


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


def kernel_counters(run: Callable[..., Any] = subprocess.run) -> Optional[Dict[str, int]]:
    """lost/backlog/backlog_limit from `auditctl -s`, or None when it cannot be read (not root, no auditd)."""
    try:
        r = run(["auditctl", "-s"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    out: Dict[str, int] = {}
    for line in (r.stdout or "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("lost", "backlog", "backlog_limit", "pid", "enabled"):
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out or None


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00",
                                                                                                       "Z")


def _ago(seconds: float) -> str:
    s = max(seconds, 0.0)
    if s < 120:
        return f"{s:.1f} s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    if s < 172800:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.1f} days ago"


def _parse_iso(text: Optional[str]) -> Optional[float]:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def collect_status(state_dir: Path, *, now: Optional[float] = None, run: Callable[..., Any] = subprocess.run,
                   stat_fn: Callable[[str], os.stat_result] = os.stat) -> Dict[str, Any]:
    """Everything `status` shows, as a JSON-serialisable dict.  Raises CheckpointError on a bad state file."""
    now = time.time() if now is None else now
    state_path = Path(state_dir) / STATE_FILE
    state, saved_at = read_state(Path(state_dir))
    doc: Dict[str, Any] = {"state_file": str(state_path), "state_found": state is not None}
    if state is None:
        return doc
    saved_ts = _parse_iso(saved_at)
    doc["saved_at"] = saved_at
    doc["saved_seconds_ago"] = round(now - saved_ts, 3) if saved_ts is not None else None
    log = state.get("log")
    doc["log"] = log
    pos = state.get("position")
    doc["position"] = pos
    lag, in_file, note = log_lag(log, pos, stat_fn) if isinstance(log, str) else (None, None, "no log recorded")
    doc["lag_bytes"] = lag
    doc["position_file"] = in_file
    if note:
        doc["lag_note"] = note
    newest = state.get("newest_event_ms")
    if isinstance(newest, int) and not isinstance(newest, bool) and newest >= 0:
        doc["newest_event_ms"] = newest
        doc["newest_event"] = _iso_ms(newest)
        doc["lag_seconds"] = round(now - newest / 1000, 3)
    else:
        doc["newest_event_ms"] = None
        doc["lag_seconds"] = None
    counters = state.get("counters") if isinstance(state.get("counters"), dict) else {}
    doc["counters"] = counters
    alerts = state.get("alerts") if isinstance(state.get("alerts"), list) else []
    last = max((a[1] for a in alerts if isinstance(a, list) and len(a) == 2 and isinstance(a[1], int)
                and not isinstance(a[1], bool)), default=None)
    doc["alert_ids_remembered"] = len(alerts)
    doc["last_alert_ms"] = last
    doc["last_alert"] = _iso_ms(last) if last is not None else None
    doc["notify"] = counters.get("notify") if isinstance(counters.get("notify"), dict) else None
    doc["kernel"] = kernel_counters(run)
    return doc


def _n(counters: Mapping[str, Any], key: str) -> Any:
    v = counters.get(key)
    return v if v is not None else "?"


def format_status(doc: Mapping[str, Any], now: float) -> List[str]:
    lines: List[str] = []
    saved = doc.get("saved_at") or "?"
    ago = doc.get("saved_seconds_ago")
    lines.append(f"state:          {doc['state_file']} (saved {saved}" + (f", {_ago(ago)})" if ago is not None
                                                                          else ")"))
    lines.append(f"log:            {doc.get('log')}")
    pos = doc.get("position") or {}
    lag = doc.get("lag_bytes")
    if lag is not None:
        where = doc.get("position_file")
        in_rot = f" (still reading the rotated {where})" if where and where != doc.get("log") else ""
        lines.append(f"position:       offset {pos.get('offset')}{in_rot}: {lag} bytes behind the end of the log")
    else:
        lines.append(f"position:       offset {pos.get('offset', '?')}: lag unknown ({doc.get('lag_note')})")
    if doc.get("newest_event"):
        lines.append(f"newest event:   {doc['newest_event']} ({_ago(doc['lag_seconds'])}; an idle host logs "
                     "nothing, so this grows while nothing happens)")
    else:
        lines.append("newest event:   none processed yet")
    c = doc.get("counters") or {}
    lines.append(f"processed:      {_n(c, 'lines')} lines, {_n(c, 'events')} events ({_n(c, 'exec_events')} exec, "
                 f"{_n(c, 'network_events')} network), {_n(c, 'malformed_lines')} malformed lines, "
                 f"{_n(c, 'late_events')} late events, {_n(c, 'rule_errors')} rule errors")
    last = doc.get("last_alert")
    last_txt = f"; last alert {last} ({_ago(now - doc['last_alert_ms'] / 1000)})" if last else "; no alert remembered"
    lines.append(f"alerts:         {_n(c, 'alerts_emitted')} emitted, {_n(c, 'alerts_suppressed_duplicates')} "
                 f"duplicates suppressed, {_n(c, 'alerts_silenced_by_exceptions')} silenced by exceptions "
                 f"(since the last start){last_txt}")
    if "output_errors" in c:
        warn = "  <- see the agent's log: disk full, a closed pipe..." if c["output_errors"] else ""
        lines.append(f"output errors:  {c['output_errors']} alert line(s) not written to stdout or the JSON lines "
                     f"file{warn}")
    f = c.get("follower") if isinstance(c.get("follower"), dict) else {}
    if f:
        lines.append(f"log follower:   {_n(f, 'rotations')} rotations, {_n(f, 'truncations')} truncations, "
                     f"{_n(f, 'lost_bytes_estimate')} bytes lost (estimate), {_n(f, 'errors')} errors")
    n = doc.get("notify")
    if n:
        lines.append(f"notifications:  {_n(n, 'sent')} sent, {_n(n, 'suppressed')} suppressed, "
                     f"{_n(n, 'failed')} failed, {_n(n, 'spooled')} spooled")
    else:
        lines.append("notifications:  no counters (not configured, or not reported by this version)")
    k = doc.get("kernel")
    if k:
        warn = "  <- events dropped: raise the backlog (auditctl -b 8192)" if k.get("lost") else ""
        lines.append(f"kernel audit:   lost {k.get('lost', '?')}, backlog {k.get('backlog', '?')} of "
                     f"{k.get('backlog_limit', '?')}{warn}")
    else:
        lines.append("kernel audit:   not readable (auditctl -s needs root)")
    return lines


def status(state_dir: Path, out: TextIO, *, json_output: bool = False, now: Optional[float] = None,
           run: Callable[..., Any] = subprocess.run,
           stat_fn: Callable[[str], os.stat_result] = os.stat) -> int:
    """Print the agent's status; 0 when a state file was read, 1 when there is none, 2 when it is unusable."""
    now = time.time() if now is None else now
    try:
        doc = collect_status(Path(state_dir), now=now, run=run, stat_fn=stat_fn)
    except CheckpointError as e:
        if json_output:
            out.write(json.dumps({"state_file": str(Path(state_dir) / STATE_FILE), "error": str(e)}) + "\n")
        else:
            out.write(f"auditimds status: {e}\n")
        return EXIT_BAD_STATE
    if json_output:
        out.write(json.dumps(doc, sort_keys=True) + "\n")
    elif not doc["state_found"]:
        out.write(f"auditimds status: no state file {doc['state_file']}: auditimds has not run with this state "
                  "dir yet (see `systemctl status auditimds`, or give --state-dir)\n")
    else:
        for line in format_status(doc, now):
            out.write(line + "\n")
    out.flush()
    return EXIT_OK if doc["state_found"] else EXIT_NO_STATE


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
    for key, value in sorted((gauges or {}).items()):
        if value is None or isinstance(value, bool):
            continue
        emit(_metric_name(prefix, key), "gauge", HELP.get(key, f"auditimds gauge {key}."), value)
    emit(f"{prefix}_textfile_timestamp_seconds", "gauge", "When auditimds wrote this file (Unix time).",
         round(time.time() if now is None else now, 3))
    return "\n".join(lines) + "\n"


def write_prometheus_textfile(path: Path, counters: Mapping[str, Any], *,
                              gauges: Optional[Mapping[str, Optional[float]]] = None,
                              prefix: str = "auditimds", now: Optional[float] = None) -> None:
    """Write the counters (and `gauges`, e.g. {"lag_bytes": 0, "kernel_lost": 0}) to `path` atomically.

    The file is written beside `path` under a name node_exporter ignores (it reads `*.prom` only), made
    world-readable (0644), fsynced and renamed over `path`: the collector never sees half a file.
    Raises OSError when the directory is not writable."""
    path = Path(path)
    data = render_prometheus(counters, gauges=gauges, prefix=prefix, now=now).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        try:
            os.fchmod(fd, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, str(path))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
