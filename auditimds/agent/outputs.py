"""Where alerts go: dedupe by `alert.id` (the ledger), stdout then the JSON lines file, the notifier.

* Each output gets an alert once: the ledger holds what stdout and the file have (saved with the state; at
  start, the alerts the file got after the saved mark join it: `reconcile`).  The notifier keeps its own ids
  and is handed every alert found, also one already in the ledger.  stdout is written before the file, so an
  alert in the file is on stdout too.
* An output that fails (a full disk, a closed pipe) never stops the agent: the alert still goes to the other
  outputs and the notifications and is recorded as emitted; the error is counted (`output_errors`) and
  logged once, again when it changes, and hourly while it lasts.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, TextIO

from ..alerts.ledger import AlertLedger, FileMark, alert_time_ms, reconcile_alerts_file
from ..alerts.notify_api import AlertNotifier
from ..alerts.notify_config import NotifyConfig
from ..alerts.sinks import AlertsFileError, LineOutput, StreamOutput, dumps, open_alerts_file, stdout_output
from ..metrics import ErrorThrottle
from . import DaemonError

if TYPE_CHECKING:
    from .statedir import AgentState

log = logging.getLogger("auditimds")

OUTPUT_ERROR_REMINDER_S = 3600.0

_CONTROL = {c: f"\\x{c:02x}" for c in list(range(0x20)) + [0x7F]}


def _printable(text: str) -> str:
    """Attacker-controlled text (process names, paths) for a log line: control characters escaped, so a
    name holding a newline cannot forge log lines."""
    return text.translate(_CONTROL)


class Outputs:
    def __init__(self, stdout: Optional[TextIO], to_stdout: bool = True) -> None:
        self.stdout_out: LineOutput = StreamOutput(stdout) if stdout is not None else stdout_output(sys.stdout)
        self.to_stdout = to_stdout
        self.jsonl: Optional[LineOutput] = None
        self.notifier: Optional[AlertNotifier] = None
        self.ledger = AlertLedger()
        # alerts read back from the file after the saved mark (written by a run that died before its
        # checkpoint), for the notifier
        self.to_notify: List[Dict[str, Any]] = []
        self.emitted = 0
        self.suppressed = 0
        self.output_errors = 0
        self.pending = 0  # alerts written since the state was last saved
        self.now = 0.0  # the time of the current step, for the error throttle
        self._errors = ErrorThrottle(OUTPUT_ERROR_REMINDER_S)
        self._notify_final: Optional[Dict[str, Any]] = None

    # -- opening, closing ------------------------------------------------------------------------------------

    def open_jsonl(self, path: Optional[str]) -> None:
        """(Re)open the alerts file `path` (None: none) — on SIGHUP too, for logrotate.  The new one is opened
        before the old one is closed, so a reload naming a bad file keeps the current one (DaemonError)."""
        new: Optional[LineOutput] = None
        if path:
            try:
                new = open_alerts_file(path)
            except AlertsFileError as e:
                raise DaemonError(str(e)) from None
        if self.jsonl is not None:
            self.jsonl.close()
        self.jsonl = new

    def mark(self) -> Optional[FileMark]:
        """Where the alerts file ends now (saved with the state)."""
        return self.jsonl.mark() if self.jsonl is not None else None

    def start_notifier(self, notify_cfg: NotifyConfig, state_dir: Path) -> None:
        """Notifications (apprise) run on a worker thread; detection never waits for them."""
        if not notify_cfg.enabled:
            return
        from ..alerts.notify import Notifier  # apprise is loaded only when notifications are configured

        self.notifier = Notifier(notify_cfg, state_dir, log=logging.getLogger("auditimds.notify"))
        self.notifier.start()

    def stop_notifier(self) -> Optional[Dict[str, Any]]:
        """Stop the worker; its final counters (None without notifications)."""
        if self.notifier is None:
            return None
        self.notifier.stop(5.0)
        final = self.notifier.counters()
        self.notifier = None
        return final

    def close(self) -> None:
        self._notify_final = self.stop_notifier()
        if self.jsonl is not None:
            self.jsonl.close()
            self.jsonl = None

    def counters(self, st: Dict[str, Any]) -> Dict[str, Any]:
        st["alerts_emitted"] = self.emitted
        st["alerts_suppressed_duplicates"] = self.suppressed
        st["output_errors"] = self.output_errors
        return st

    def notify_counters(self) -> Optional[Dict[str, Any]]:
        if self.notifier is not None:
            return self.notifier.counters()
        return self._notify_final  # after close: what the notifier did until it stopped

    # -- the alerts file read back -----------------------------------------------------------------------------

    def reconcile(self, path: Optional[str], state: Optional[AgentState], keep_torn: Callable[[bytes], str]) -> None:
        """Read back the alerts file after the saved mark (`state`: an AgentState or None): ids a killed run
        wrote after its last checkpoint are not written again; a torn last line is cut off and kept aside by
        `keep_torn` (see alerts/ledger.py)."""
        if not path:
            return
        mark = state.alerts_file if state is not None else None
        try:
            found = reconcile_alerts_file(path, mark)
        except OSError as e:
            log.warning("alerts file %s: cannot read it back (%s): an alert written just before the agent was "
                        "killed may be written again", path, e.strerror or e)
            return
        if found.torn:
            where = keep_torn(found.torn)
            log.warning("alerts file %s ended in a torn line (%d bytes: the agent was stopped while writing it): cut "
                        "off and %s; that alert is written again, whole", path, len(found.torn), where)
        if found.bad_lines:
            log.warning("alerts file %s: %d line(s) after the last checkpoint are not alerts (ignored)", path,
                        found.bad_lines)
        # The file is the record of what was emitted (stdout got each line before the file): its alerts join
        # the ledger now, so the mark may move past them at the next checkpoint without their ids being lost.
        # The notifier is handed those written after a mark (it drops the ids it already took); without a mark
        # (no state yet) the file's tail is history, not notified again.
        default_ts = state.newest_event_ms if state is not None else 0
        new = [d for d in found.alerts if d["alert"]["id"] not in self.ledger]
        for d in new:
            self.ledger.add(d["alert"]["id"], alert_time_ms(d, default_ts))
        self.to_notify = new if mark is not None else []
        if new:
            log.info("alerts file %s: %d alert(s) written after the last checkpoint (not written again)", path,
                     len(new))

    def hand_over(self) -> None:
        """The alerts a killed run wrote to the file after its last checkpoint, to the notifier (which drops
        those it took before the kill)."""
        if self.to_notify and self.notifier is not None:
            for alert in self.to_notify:
                self.notifier.submit(alert)
        self.to_notify = []

    # -- each alert ----------------------------------------------------------------------------------------------

    def on_alert(self, alert: Dict[str, Any], newest_ts_ms: int) -> None:
        """Ledger check, then stdout, then the file, then the notifier (see the module's docstring)."""
        aid = alert["alert"]["id"]
        if aid in self.ledger:
            self.suppressed += 1
            # the ledger may be saved before the notifier's worker wrote down that it took the alert: hand it
            # over again, the notifier drops the ids it already took (a kill between the two loses nothing)
            if self.notifier is not None:
                self.notifier.submit(alert)
            return
        line = dumps(alert) + "\n"
        if self.to_stdout:
            self.write(self.stdout_out, line)
        if self.jsonl is not None:
            self.write(self.jsonl, line)
        self.emitted += 1
        log.info("alert %s: %s", aid, _printable(alert.get("message", "")))
        self.ledger.add(aid, newest_ts_ms if newest_ts_ms >= 0 else 0)
        self.pending += 1
        if self.notifier is not None:
            self.notifier.submit(alert)

    def write(self, out: LineOutput, line: str) -> None:
        """One alert line to one output; a failure is counted and reported, never raised."""
        try:
            out.write_line(line)
        except (OSError, ValueError) as e:
            self.output_errors += 1
            text = (e.strerror if isinstance(e, OSError) and e.strerror else str(e)) or type(e).__name__
            unreported = self._errors.failed(out.name, text, self.now)
            if unreported is not None:
                since = f"; {unreported} more alert(s) not written since the last report" if unreported else ""
                log.error("cannot write alerts to %s: %s (the agent goes on: other outputs and notifications "
                          "still get them; counted in output_errors%s)", out.name, text, since)
            return
        failures = self._errors.recovered(out.name)
        if failures is not None:
            log.warning("alerts are written to %s again (%d alert(s) were not)", out.name, failures)
