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
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, TextIO, Tuple

from ..metrics import (  # noqa: F401 - the agent's runtime metrics, also part of this module's interface
    GAUGES,
    HELP,
    flatten_counters,
    format_health_line,
    format_stopped_line,
    log_lag,
    render_prometheus,
    write_prometheus_textfile,
)
from ..source.checkpoint import CheckpointError, load_state

STATE_FILE = "state.json"
EXIT_OK, EXIT_NO_STATE, EXIT_BAD_STATE = 0, 1, 2

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
    raw_counters, raw_alerts = state.get("counters"), state.get("alerts")
    counters: Dict[str, Any] = raw_counters if isinstance(raw_counters, dict) else {}
    doc["counters"] = counters
    alerts: List[Any] = raw_alerts if isinstance(raw_alerts, list) else []
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
