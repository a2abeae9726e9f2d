"""`auditimds run`: follow the live audit log and alert, across rotations, restarts and crashes.

    LogFollower (source/tail.py) ──batches──▶ Pipeline ──alerts──▶ dedupe by alert.id ──▶ stdout / JSONL

* `Daemon.step(now)` reads everything available, processes it, applies wall-clock timeouts and
  checkpoints; it never sleeps, so tests drive it line by line.  `Daemon.run()` is the loop: it waits on
  inotify (source/watch.py) and only uses a timeout while something is pending (events in reassembly, a
  log that is missing or unreadable, a checkpoint due), so an idle agent uses no CPU.
* Restart without loss: the checkpoint holds a *resume* position far enough back to rebuild whatever was
  open when the agent stopped — events being reassembled and partial rule sequences: the log is re-read
  from a line at least (longest rule maxspan + reassembly timeout + margin) older than the newest event
  processed.  Alerts found again on re-reading are recognised by their deterministic `alert.id`, persisted
  with the checkpoint, and not emitted twice.  An alert is written (and flushed) before the checkpoint that
  records it, and the checkpoint is written as soon as a step emitted an alert.
* `type = "new_terms"` rules remember which terms they have seen: that history is saved in its own file in the
  state dir (`new_terms.json`, atomically, when it changed) at each checkpoint and on close, and loaded at
  start (and carried over on a rules reload), so a restart does not make every known term new again.
* Events of auditimds itself and of its children are ignored; parents unknown to the process table are
  looked up in /proc (the log is this host's own).
* One agent per state dir: `start` takes the state dir's lock (released on close, or when the process ends).
* An output that fails (a full disk, a closed pipe) never stops the agent: the alert still goes to the other
  outputs and the notifications and is recorded as emitted; the error is counted (`output_errors`) and
  logged once, again when it changes, and hourly while it lasts.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, TextIO, Tuple

from .alerts.exceptions import ExceptionFilter
from .alerts.ledger import AlertLedger, FileMark, alert_time_ms, reconcile_alerts_file
from .alerts.sinks import AlertsFileError, LineOutput, StreamOutput, dumps, open_alerts_file, stdout_output
from .audit.records import parse_event_id, split_header
from .config import Config, ConfigError, load_config
from .ecs.procfs import ProcResolver
from .pipeline import Pipeline
from .rules.loader import carry_over
from .source.checkpoint import (
    CheckpointError,
    StateLockedError,
    load_state,
    lock_state_dir,
    same_log,
    save_state,
    unlock_state_dir,
)
from .source.tail import LogFollower, Position

log = logging.getLogger("auditimds")

STATE_FILE = "state.json"
NEW_TERMS_FILE = "new_terms.json"
TORN_FILE = "alerts-torn.jsonl"  # torn last lines cut off the alerts file (see alerts/ledger.py)
REASSEMBLY_TIMEOUT_S = 2
RESUME_MARGIN_MS = 2000
# The position is saved every 5 s while lines come in (an alert saves it at once): a crash re-reads at most
# these 5 s more, and the alert ledger suppresses repeats.
CHECKPOINT_INTERVAL_S = 5.0
# A busy log (at least BUSY_LINES_PER_S lines a second, about 330 execs/s) is read every BUSY_POLL_INTERVAL_S
# with the watch paused; below that, inotify wakes the agent at each write (an alert within milliseconds).
BUSY_POLL_INTERVAL_S = 0.1
BUSY_LINES_PER_S = 2000
CATCH_UP_CHECKPOINT_BATCHES = 32  # about 32 MB of log
BUSY_QUIET_POLLS = 4
OUTPUT_ERROR_REMINDER_S = 3600.0
TEXTFILE_INTERVAL_S = 15.0


class DaemonError(Exception):
    """A problem that stops the daemon from starting; one line for the user."""


class StateDirInUse(DaemonError):
    """Another agent runs with this state dir."""


_CONTROL = {c: f"\\x{c:02x}" for c in list(range(0x20)) + [0x7F]}


def _printable(text: str) -> str:
    """Attacker-controlled text (process names, paths) for a log line: control characters escaped, so a
    name holding a newline cannot forge log lines."""
    return text.translate(_CONTROL)


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


def _prepare_state_dir(state_dir: str) -> None:
    """Create the state dir (ours: 0700) if needed; one-line DaemonError when it cannot be used."""
    p = Path(state_dir)
    if p.exists() and not p.is_dir():
        raise DaemonError(f"state dir {state_dir}: is not a directory (give --state-dir / [state] dir a "
                          "directory)")
    try:
        p.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise DaemonError(f"state dir {state_dir}: is not a directory") from None
    except OSError as e:
        raise DaemonError(f"state dir {state_dir}: {e.strerror or e}") from None
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise DaemonError(f"state dir {state_dir}: not writable by this user")


def _first_ts_ms(lines: List[bytes]) -> Optional[int]:
    for line in lines[:50]:
        h = split_header(line)
        if h is not None:
            ids = parse_event_id(h.eid)
            if ids is not None:
                return ids[0] * 1000 + ids[1]
    return None


class Daemon:
    def __init__(
        self,
        cfg: Config,
        rules: List[Any],
        *,
        host_id: str,
        host_name: str,
        stdout: Optional[TextIO] = None,
        resolver: Optional[Callable[[int], Optional[dict]]] = None,
        self_pid: Optional[int] = None,
        max_batch_bytes: int = 1 << 20,
        checkpoint_interval: float = CHECKPOINT_INTERVAL_S,
    ) -> None:
        self.cfg = cfg
        self.host_id = host_id
        self.host_name = host_name
        self.stdout = stdout if stdout is not None else sys.stdout
        self._stdout_out: LineOutput = StreamOutput(stdout) if stdout is not None else stdout_output(sys.stdout)
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self.max_batch_bytes = max_batch_bytes
        self.checkpoint_interval = checkpoint_interval
        self.state_path = Path(cfg.state_dir) / STATE_FILE
        self.new_terms_path = Path(cfg.state_dir) / NEW_TERMS_FILE
        self._new_terms_saved: Optional[int] = None
        self.ledger = AlertLedger()
        # ids found in the alerts file after the checkpoint's mark (written by a run that died before its
        # checkpoint): not written again when the log is re-read
        self._to_notify: List[Dict[str, Any]] = []  # alerts read back from the file, for the notifier
        self.emitted = 0
        self.suppressed = 0
        self._jsonl: Optional[LineOutput] = None
        self.output_errors = 0
        self._output_errors = ErrorThrottle(OUTPUT_ERROR_REMINDER_S)
        self._textfile_errors = ErrorThrottle(None)
        self._now = 0.0
        self._lock_fd: Optional[int] = None
        self._notify_final: Optional[Dict[str, Any]] = None
        self._alerts_pending_checkpoint = 0
        self._read_since_checkpoint = False
        self._last_checkpoint = 0.0
        self._samples: Deque[Tuple[Position, int]] = deque()
        # asked between two batches of a read: True ends the read early (run_daemon: a signal is pending)
        self.interrupted: Callable[[], bool] = lambda: False
        self._resume_ts_ms: Optional[int] = None  # the log time at the saved resume position
        self.pipeline = Pipeline(
            rules, host_id, host_name, on_alert=self._on_alert, reorder_ms=200, wall_timeout=REASSEMBLY_TIMEOUT_S,
            resolver=resolver, ignore_pid=self._ignore_pid, exceptions=ExceptionFilter(cfg.exceptions),
        )
        self.follower: Optional[LogFollower] = None
        self.notifier: Any = None
        self._next_health = 0.0
        self._next_textfile = 0.0

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        _prepare_state_dir(self.cfg.state_dir)
        self._lock()
        try:
            self._start()
        except BaseException:
            self.release_lock()
            raise

    def _lock(self) -> None:
        try:
            self._lock_fd = lock_state_dir(Path(self.cfg.state_dir), os.getpid())
        except StateLockedError as e:
            raise StateDirInUse(str(e)) from None
        except OSError as e:
            raise DaemonError(f"state dir {self.cfg.state_dir}: cannot create its lock file: "
                              f"{e.strerror or e}") from None

    def release_lock(self) -> None:
        """Let another agent use the state dir (done by close(); the end of the process does it too)."""
        if self._lock_fd is not None:
            unlock_state_dir(self._lock_fd)
            self._lock_fd = None

    def _start(self) -> None:
        try:
            state = load_state(self.state_path)
        except CheckpointError as e:
            raise DaemonError(str(e)) from None
        position: Optional[Position] = None
        if state is not None:
            if not same_log(state.get("log"), self.cfg.input_path):
                log.warning("the saved state is for %s, not %s: starting without it", state.get("log"),
                            self.cfg.input_path)
            else:
                try:
                    position = Position.from_dict(state["resume"]) if state.get("resume") else None
                    ts = state.get("resume_ts_ms")
                    self._resume_ts_ms = ts if isinstance(ts, int) and not isinstance(ts, bool) else None
                except (ValueError, KeyError, TypeError) as e:
                    raise DaemonError(f"{self.state_path}: bad resume position ({e}); remove the file to "
                                      "start fresh") from None
                self.ledger.load(state.get("alerts"))
        self.load_new_terms()
        self._reconcile(state)
        self._open_output(self.cfg.output_jsonl)
        self._start_notifier()
        self.follower = LogFollower(self.cfg.input_path, start=self.cfg.start, position=position,
                                    position_time=None if self._resume_ts_ms is None else self._resume_ts_ms / 1000,
                                    max_batch_bytes=self.max_batch_bytes, log=log)
        if position is not None:
            log.info("resuming %s from the saved position (%d alert ids remembered)", self.cfg.input_path,
                     len(self.ledger))
        # Record where we start at once: if the log rotates before anything is read and we are stopped,
        # the next start must catch up through the rotated files, not begin afresh at the current log.
        self.checkpoint(0.0, force=True)

    def start_stream(self) -> None:
        """Plugin mode (records on stdin): outputs and the alert ledger, no log to follow."""
        try:
            _prepare_state_dir(self.cfg.state_dir)
            self._lock()
            state = load_state(self.state_path)
        except StateDirInUse:
            raise
        except (DaemonError, CheckpointError) as e:
            log.warning("state dir %s unusable (%s): duplicates across restarts will not be recognised",
                        self.cfg.state_dir, e)
            state = None
        if state is not None:
            self.ledger.load(state.get("alerts"))
        try:
            self.load_new_terms()
        except DaemonError as e:
            log.warning("%s: new_terms rules start with an empty history", e)
        self._reconcile(state)
        try:
            self._open_output(self.cfg.output_jsonl)
        except BaseException:
            self.release_lock()
            raise
        self._start_notifier()

    def _reconcile(self, state: Optional[Dict[str, Any]]) -> None:
        """Read back the alerts file after the saved mark: ids a killed run wrote after its last checkpoint
        are not written again; a torn last line is cut off and kept in the state dir (see alerts/ledger.py)."""
        path = self.cfg.output_jsonl
        if not path:
            return
        mark = FileMark.from_dict(state.get("alerts_file")) if state is not None else None
        try:
            found = reconcile_alerts_file(path, mark)
        except OSError as e:
            log.warning("alerts file %s: cannot read it back (%s): an alert written just before the agent was "
                        "killed may be written again", path, e.strerror or e)
            return
        if found.torn:
            aside = Path(self.cfg.state_dir) / TORN_FILE
            try:
                fd = os.open(str(aside), os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
                try:
                    os.write(fd, found.torn + b"\n")
                finally:
                    os.close(fd)
                where = f"kept in {aside}"
            except OSError as e:
                where = f"not kept ({aside}: {e.strerror or e})"
            log.warning("alerts file %s ended in a torn line (%d bytes: the agent was stopped while writing it): cut "
                        "off and %s; that alert is written again, whole", path, len(found.torn), where)
        if found.bad_lines:
            log.warning("alerts file %s: %d line(s) after the last checkpoint are not alerts (ignored)", path,
                        found.bad_lines)
        # The file is the record of what was emitted (stdout got each line before the file): its alerts join
        # the ledger now, so the mark may move past them at the next checkpoint without their ids being lost.
        # The notifier is handed those written after a mark (it drops the ids it already took); without a mark
        # (no state yet) the file's tail is history, not notified again.
        default_ts = state.get("newest_event_ms", 0) if state is not None else 0
        new = [d for d in found.alerts if d["alert"]["id"] not in self.ledger]
        for d in new:
            self.ledger.add(d["alert"]["id"], alert_time_ms(d, default_ts if isinstance(default_ts, int) else 0))
        self._to_notify = new if mark is not None else []
        if new:
            log.info("alerts file %s: %d alert(s) written after the last checkpoint (not written again)", path,
                     len(new))

    # -- new_terms history ------------------------------------------------------------------------------

    def _new_terms_rules(self) -> List[Any]:
        return [r for r in self.pipeline.rules if hasattr(r.compiled, "to_state")]

    def _new_terms_changes(self) -> int:
        return sum(getattr(r.compiled, "changes", 0) for r in self._new_terms_rules())

    def load_new_terms(self) -> None:
        """Restore the history of the new_terms rules from the state dir (a rule no longer loaded is ignored)."""
        if not self._new_terms_rules():
            return
        try:
            saved = load_state(self.new_terms_path)
        except CheckpointError as e:
            # only history: starting without it costs a few repeated "first seen" alerts, refusing to start
            # would stop detection (and an attacker can make the file grow)
            log.warning("%s; new_terms rules start with an empty history", e)
            saved = None
        rules = saved.get("rules") if saved is not None else None
        if not isinstance(rules, dict):
            self._new_terms_saved = self._new_terms_changes()
            return
        prints = saved.get("fingerprints") if saved is not None else None
        prints = prints if isinstance(prints, dict) else {}  # written by an older release: trusted as is
        n = 0
        for r in self._new_terms_rules():
            fp = prints.get(r.rule_id)
            if fp is not None and fp != r.fingerprint:
                log.info("rule %s (%s) changed since its new_terms history was saved: the history starts fresh",
                         r.rule_id, r.name)
                continue
            n += r.compiled.load_state(rules.get(r.rule_id))
        self._new_terms_saved = self._new_terms_changes()
        log.info("new_terms history restored: %d term(s)", n)

    def save_new_terms(self, force: bool = False) -> None:
        """Write the history of the new_terms rules (only if it changed since the last write)."""
        rules = self._new_terms_rules()
        if not rules:
            return
        changes = self._new_terms_changes()
        if not force and changes == self._new_terms_saved:
            return
        doc = {"rules": {r.rule_id: r.compiled.to_state() for r in rules},
               "fingerprints": {r.rule_id: r.fingerprint for r in rules}}
        try:
            save_state(self.new_terms_path, doc)
        except CheckpointError as e:
            log.error("%s", e)
            return
        self._new_terms_saved = changes

    def _start_notifier(self) -> None:
        """Notifications (apprise) run on a worker thread; detection never waits for them."""
        if not self.cfg.notify.enabled:
            return
        from .alerts.notify import Notifier  # apprise is loaded only when notifications are configured

        self.notifier = Notifier(self.cfg.notify, Path(self.cfg.state_dir), log=logging.getLogger("auditimds.notify"))
        self.notifier.start()

    def _stop_notifier(self) -> Optional[Dict[str, Any]]:
        """Stop the worker; its final counters (None without notifications)."""
        if self.notifier is None:
            return None
        self.notifier.stop(5.0)
        final = self.notifier.counters()
        self.notifier = None
        return final

    def feed(self, lines: List[bytes], now: float) -> None:
        """Plugin mode: process lines received on stdin."""
        self._now = now
        self._hand_over()
        self.pipeline.feed(lines, now)
        self.pipeline.tick(now)
        if self._alerts_pending_checkpoint:
            self._save_ledger()

    def _save_ledger(self) -> None:
        self.save_new_terms()
        try:
            save_state(self.state_path, {"log": "<stdin>", "resume": None, "position": None,
                                         "alerts": self.ledger.to_list(), "alerts_file": self._alerts_file_mark(),
                                         "newest_event_ms": self.pipeline.newest_ts_ms, "counters": self.counters()})
            self._alerts_pending_checkpoint = 0
        except CheckpointError as e:
            log.error("%s", e)

    def _open_output(self, path: Optional[str]) -> None:
        """(Re)open the alerts file `path` (None: none) — on SIGHUP too, for logrotate.  The new one is opened
        before the old one is closed, so a reload naming a bad file keeps the current one (DaemonError)."""
        new: Optional[LineOutput] = None
        if path:
            try:
                new = open_alerts_file(path)
            except AlertsFileError as e:
                raise DaemonError(str(e)) from None
        if self._jsonl is not None:
            self._jsonl.close()
        self._jsonl = new

    def close(self, now: float, flush: bool = True) -> None:
        """Stop: process what is readable, complete what is open (if `flush`), checkpoint, release the state
        dir."""
        if self.follower is None:
            self.release_lock()
            return
        self._now = now
        self._read(now)
        if flush:
            self.pipeline.finish()
        self.checkpoint(now, force=True)
        self.follower.close()
        self.follower = None
        self._notify_final = self._stop_notifier()
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        self.release_lock()

    def close_stream(self, now: float) -> None:
        """Plugin mode's close: complete what is open, save the ledger, release the state dir."""
        self._now = now
        self.pipeline.finish()
        self._save_ledger()
        self._notify_final = self._stop_notifier()
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        self.release_lock()

    def stopped_line(self) -> str:
        from .metrics import format_stopped_line

        return format_stopped_line(self.counters())

    # -- work -------------------------------------------------------------------------------------------

    def _ignore_pid(self, pid: int, ppid: int) -> bool:
        return pid == self.self_pid or ppid == self.self_pid

    def _on_alert(self, alert: Dict[str, Any]) -> None:
        """Each output gets an alert once: the ledger holds what stdout and the file have (saved at the
        checkpoint; at start, the alerts the file got after it join it: `_reconcile`); the notifier keeps its
        own ids and is handed every alert found, also one already in the ledger.
        stdout is written before the file, so an alert in the file is on stdout too."""
        aid = alert["alert"]["id"]
        if aid in self.ledger:
            self.suppressed += 1
            # the ledger may be saved before the notifier's worker wrote down that it took the alert: hand it
            # over again, the notifier drops the ids it already took (a kill between the two loses nothing)
            if self.notifier is not None:
                self.notifier.submit(alert)
            return
        line = dumps(alert) + "\n"
        if self.cfg.output_stdout:
            self._write(self._stdout_out, line)
        if self._jsonl is not None:
            self._write(self._jsonl, line)
        self.emitted += 1
        log.info("alert %s: %s", aid, _printable(alert.get("message", "")))
        ts = self.pipeline.newest_ts_ms
        self.ledger.add(aid, ts if ts >= 0 else 0)
        self._alerts_pending_checkpoint += 1
        if self.notifier is not None:
            self.notifier.submit(alert)

    def _hand_over(self) -> None:
        """The alerts a killed run wrote to the file after its last checkpoint, to the notifier (which drops
        those it took before the kill)."""
        if self._to_notify and self.notifier is not None:
            for alert in self._to_notify:
                self.notifier.submit(alert)
        self._to_notify = []

    def _write(self, out: LineOutput, line: str) -> None:
        """One alert line to one output; a failure is counted and reported, never raised."""
        try:
            out.write_line(line)
        except (OSError, ValueError) as e:
            self.output_errors += 1
            text = (e.strerror if isinstance(e, OSError) and e.strerror else str(e)) or type(e).__name__
            unreported = self._output_errors.failed(out.name, text, self._now)
            if unreported is not None:
                since = f"; {unreported} more alert(s) not written since the last report" if unreported else ""
                log.error("cannot write alerts to %s: %s (the agent goes on: other outputs and notifications "
                          "still get them; counted in output_errors%s)", out.name, text, since)
            return
        failures = self._output_errors.recovered(out.name)
        if failures is not None:
            log.warning("alerts are written to %s again (%d alert(s) were not)", out.name, failures)

    def _read(self, now: float) -> int:
        assert self.follower is not None
        n = 0
        batches = 0
        for batch in self.follower.iter_available():
            ts = _first_ts_ms(batch.lines)
            if ts is not None and batch.start is not None:
                self._samples.append((batch.start, ts))
            self.pipeline.feed(batch.lines, now)
            n += len(batch.lines)
            batches += 1
            if batches % CATCH_UP_CHECKPOINT_BATCHES == 0:
                # a long catch-up moves the checkpoint along: a crash in it does not replay everything
                self._read_since_checkpoint = True
                self.checkpoint(now, force=True)
            if self.interrupted():
                break  # a signal came: stop or reload now, not after the whole catch-up (the rest waits)
        if n:
            self._read_since_checkpoint = True
        return n

    def step(self, now: float) -> int:
        """Read and process everything available; apply wall-clock timeouts; checkpoint when due."""
        self._now = now
        self._hand_over()
        n = self._read(now)
        self.pipeline.tick(now)
        self.checkpoint(now)
        self.housekeeping(now)
        return n

    def housekeeping(self, now: float) -> None:
        """Periodic health line and metrics textfile."""
        if self.cfg.health_interval and now >= self._next_health:
            if self._next_health:  # not at start-up
                log.info("%s", self.health_line())
            self._next_health = now + self.cfg.health_interval
        if self.cfg.metrics_textfile and now >= self._next_textfile:
            self._next_textfile = now + TEXTFILE_INTERVAL_S
            self.write_textfile(now)

    def _lag_bytes(self) -> Optional[int]:
        from .metrics import log_lag

        pos = self.follower.position if self.follower is not None else None
        try:
            lag, _name, _note = log_lag(self.cfg.input_path, pos.to_dict() if pos is not None else None)
        except Exception:  # noqa: BLE001 - a health figure must never stop the agent
            return None
        return lag

    def health_line(self) -> str:
        from .metrics import format_health_line

        return format_health_line(self.counters(), lag_bytes=self._lag_bytes())

    def write_textfile(self, now: Optional[float] = None) -> None:
        """Write the metrics textfile; a failure is logged once (again if the error changes, or if it fails
        again after a success), not at every attempt."""
        from .metrics import write_prometheus_textfile

        now = time.time() if now is None else now
        newest = self.pipeline.newest_ts_ms
        gauges = {"lag_bytes": self._lag_bytes(),
                  "lag_seconds": max(0.0, time.time() - newest / 1000) if newest >= 0 else None}
        path = self.cfg.metrics_textfile or ""
        try:
            write_prometheus_textfile(Path(path), self.counters(), gauges=gauges)
        except OSError as e:
            text = e.strerror or str(e)
            if self._textfile_errors.failed(path, text, now) is not None:
                log.warning("metrics textfile %s: %s (not repeated while the error lasts)", path, text)
            return
        if self._textfile_errors.recovered(path) is not None:
            log.info("metrics textfile %s written again", path)

    # -- checkpoint -------------------------------------------------------------------------------------

    @property
    def lookback_ms(self) -> int:
        return self.pipeline.max_maxspan_ms + REASSEMBLY_TIMEOUT_S * 1000 + RESUME_MARGIN_MS

    def resume_position(self) -> Tuple[Optional[Position], Optional[int]]:
        """The newest batch start that is at least `lookback_ms` older than the newest event processed, and
        the log time of its first line (None when unknown)."""
        assert self.follower is not None
        samples = self._samples
        if not samples:
            return self.follower.position, self._resume_ts_ms
        limit = self.pipeline.newest_ts_ms - self.lookback_ms
        chosen = 0
        for i, (_pos, ts) in enumerate(samples):
            if ts <= limit:
                chosen = i
            else:
                break
        for _ in range(chosen):
            samples.popleft()
        return samples[0]

    def checkpoint(self, now: float, force: bool = False) -> None:
        if self.follower is None:
            return
        due = (self._alerts_pending_checkpoint > 0
               or (self._read_since_checkpoint and now - self._last_checkpoint >= self.checkpoint_interval))
        if not (force or due):
            return
        resume, resume_ts = self.resume_position()
        pos = self.follower.position
        newest = self.pipeline.newest_ts_ms
        if newest >= 0:
            self.ledger.prune(newest)
        state = {
            "log": os.path.realpath(self.cfg.input_path),
            "resume": resume.to_dict() if resume is not None else None,
            "resume_ts_ms": resume_ts,
            "position": pos.to_dict() if pos is not None else None,
            "alerts": self.ledger.to_list(),
            "alerts_file": self._alerts_file_mark(),
            "newest_event_ms": newest,
            "counters": self.counters(),
        }
        # the history first: a crash between the two writes then at worst suppresses a re-found alert that the
        # ledger would have suppressed anyway, never repeats one
        self.save_new_terms()
        try:
            save_state(self.state_path, state)
        except CheckpointError as e:
            log.error("%s", e)
            return
        self._alerts_pending_checkpoint = 0
        self._read_since_checkpoint = False
        self._last_checkpoint = now

    def _alerts_file_mark(self) -> Optional[Dict[str, Any]]:
        mark = self._jsonl.mark() if self._jsonl is not None else None
        return mark.to_dict() if mark is not None else None

    def counters(self) -> Dict[str, Any]:
        st = self.pipeline.stats()
        st["alerts_emitted"] = self.emitted
        st["alerts_suppressed_duplicates"] = self.suppressed
        st["output_errors"] = self.output_errors
        if self.follower is not None:
            st["follower"] = self.follower.stats.as_dict()
        if self.notifier is not None:
            st["notify"] = self.notifier.counters()
        elif self._notify_final is not None:
            st["notify"] = self._notify_final  # after close: what the notifier did until it stopped
        return st

    # -- reload -----------------------------------------------------------------------------------------

    def apply(self, cfg: Config, rules: List[Any]) -> None:
        """Take a new configuration and rule set (SIGHUP); input and state changes need a restart.  A new
        alerts file that cannot be opened refuses the whole reload (DaemonError), before anything changed."""
        if not (same_log(cfg.input_path, self.cfg.input_path) and same_log(cfg.state_dir, self.cfg.state_dir)):
            log.warning("[input] path and [state] dir changes take effect at the next restart")
        cfg = cfg.with_overrides(input_path=self.cfg.input_path, state_dir=self.cfg.state_dir)
        self._open_output(cfg.output_jsonl)
        notify_changed = cfg.notify != self.cfg.notify
        self.cfg = cfg
        # unchanged rules keep their state (open sequences, first stages held, new_terms history); the
        # pipeline keeps the events being reassembled or ordered and the process table
        rules, notes = carry_over(self.pipeline.rules, list(rules))
        for note in notes:
            log.info("%s", note)
        self.pipeline.set_rules(rules)
        self._new_terms_saved = None  # the set of histories may have changed: write it at the next checkpoint
        self.pipeline.exceptions = ExceptionFilter(cfg.exceptions)
        if notify_changed:
            self._stop_notifier()
            self._start_notifier()
        # the checkpoint's mark follows a new alerts file at once
        if self.follower is not None:
            self.checkpoint(self._now, force=True)

    def wait_timeout(self, now: Optional[float] = None) -> Optional[float]:
        """How long the loop may sleep: None (until woken) when nothing is pending and no periodic output
        (health line, metrics file) is configured."""
        if self.follower is not None and self.follower.status != "following":
            return 2.0
        if self.pipeline.pending:
            return 0.5
        if self._read_since_checkpoint or self._alerts_pending_checkpoint:
            return self.checkpoint_interval
        due = [t for t in ((self._next_health if self.cfg.health_interval else 0),
                           (self._next_textfile if self.cfg.metrics_textfile else 0)) if t]
        if due:
            return max(0.0, min(due) - (time.time() if now is None else now))
        return None


class Cadence:
    """When to stop watching the log and read it on a timer instead, from the rate at which lines arrive.

    Every line auditd writes is one inotify event, turned into Python objects on watchdog's threads: under a
    sustained load that costs more than reading the log ten times a second.  Below `busy_lines_per_s` the
    watch stays on and an alert is written milliseconds after its record.  The rate is measured over windows
    of at least `interval` seconds; once busy, `quiet_windows` windows in a row below the rate go back to
    watching (hysteresis: a log near the threshold does not flap).  Time is passed in.
    """

    def __init__(self, busy_lines_per_s: float = BUSY_LINES_PER_S, interval: float = BUSY_POLL_INTERVAL_S,
                 quiet_windows: int = BUSY_QUIET_POLLS) -> None:
        self.busy_lines_per_s = busy_lines_per_s
        self.interval = interval
        self.quiet_windows = quiet_windows
        self.busy = False
        self._start: Optional[float] = None
        self._lines = 0
        self._quiet = 0

    def observe(self, lines: int, now: float) -> None:
        """`lines` were read by the step that ran at `now`."""
        if self._start is None or now < self._start:  # first call, or the clock went back
            self._start, self._lines = now, 0
        self._lines += lines
        elapsed = now - self._start
        if elapsed < self.interval:
            return
        fast = self._lines >= self.busy_lines_per_s * elapsed
        self._start, self._lines = now, 0
        if fast:
            self.busy, self._quiet = True, 0
        elif self.busy:
            self._quiet += 1
            if self._quiet >= self.quiet_windows:
                self.busy, self._quiet = False, 0


class SignalPipe:
    """Signals wake the loop through a pipe (`signal.set_wakeup_fd`), never by calling into threading from a
    handler: a handler that sets a `threading.Event` while the interrupted main thread holds that Event's
    lock (inside `Event.wait`) deadlocks the process.  Handlers only set flags."""

    def __init__(self) -> None:
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        self._old = signal.set_wakeup_fd(self.wfd)

    def drain(self) -> None:
        try:
            while os.read(self.rfd, 512):
                pass
        except (BlockingIOError, OSError):
            pass

    def forward_to(self, wake: Callable[[], None]) -> None:
        """A thread that turns each signal into `wake()` (from a normal thread context)."""
        import select
        import threading

        def pump() -> None:
            while True:
                try:
                    select.select([self.rfd], [], [])
                except (OSError, ValueError):
                    return
                self.drain()
                wake()

        threading.Thread(target=pump, name="auditimds-signals", daemon=True).start()

    def close(self) -> None:
        signal.set_wakeup_fd(self._old)


def run_stdin(cfg: Config, load_rules: Callable[[Config], List[Any]],
              host: Callable[[Config], Tuple[str, str]], stdin_fd: int = 0) -> int:
    """`auditimds run --stdin`: the auditd plugin mode (auditd pipes records, EOE included, to stdin).

    Reads until end of input (auditd stopping the plugin) or SIGTERM; wall-clock timeouts still fire when
    the stream is quiet.  The log file, rotations and checkpoints are auditd's business in this mode.
    """
    import select

    # signal handlers first: a SIGTERM or SIGHUP during start-up must not kill the agent the default way
    flags = {"stop": False}

    def on_stop(signum: int, _frame: Any) -> None:
        flags["stop"] = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # auditd sends SIGHUP to plugins on its own reload
    sigpipe = SignalPipe()
    rules = load_rules(cfg)
    host_id, host_name = host(cfg)
    d = Daemon(cfg, rules, host_id=host_id, host_name=host_name, resolver=ProcResolver())
    d.start_stream()
    log.info("reading audit records from standard input (plugin mode), %d rule(s)", len(rules))
    partial = b""
    try:
        while not flags["stop"]:
            timeout = 0.5 if d.pipeline.pending else None
            try:
                ready, _, _ = select.select([stdin_fd, sigpipe.rfd], [], [], timeout)
            except InterruptedError:
                continue
            if sigpipe.rfd in ready:
                sigpipe.drain()
                continue  # the loop condition sees the flag
            if not ready:
                d.feed([], time.time())
                continue
            chunk = os.read(stdin_fd, 1 << 16)
            if not chunk:
                break
            data = partial + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                partial = data
                continue
            partial = data[cut + 1 :]
            d.feed(data[:cut].split(b"\n"), time.time())
        if partial:
            d.feed([partial], time.time())
    finally:
        sigpipe.close()
        d.close_stream(time.time())
    log.info("%s", d.stopped_line())
    return 0


def run_daemon(cfg: Config, config_path: Optional[str], overrides: Dict[str, Any],
               load_rules: Callable[[Config], List[Any]], host: Callable[[Config], Tuple[str, str]]) -> int:
    """The loop of `auditimds run`.  Returns the exit code."""
    from .source.watch import Waker

    # signal handlers first: a SIGTERM or SIGHUP during start-up (loading rules, catching up) must not kill the
    # agent the default way; the flags are seen when the loop starts
    flags = {"stop": False, "reload": False}

    def on_stop(signum: int, _frame: Any) -> None:
        flags["stop"] = True  # only flags here: see SignalPipe

    def on_hup(_signum: int, _frame: Any) -> None:
        flags["reload"] = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    sigpipe = SignalPipe()
    rules = load_rules(cfg)
    host_id, host_name = host(cfg)
    d = Daemon(cfg, rules, host_id=host_id, host_name=host_name, resolver=ProcResolver())
    d.interrupted = lambda: flags["stop"] or flags["reload"]
    d.start()
    waker = Waker(cfg.input_path, log=log)
    sigpipe.forward_to(waker.wake)
    waker.start()
    log.info("following %s (%s), %d rule(s), state in %s, alerts to %s", cfg.input_path, waker.mode, len(rules),
             cfg.state_dir, ", ".join(x for x in ("stdout" if cfg.output_stdout else "", cfg.output_jsonl or "") if x)
             or "nowhere")
    cadence = Cadence()
    try:
        while not flags["stop"]:
            n = d.step(time.time())
            cadence.observe(n, time.time())
            if flags["reload"]:
                flags["reload"] = False
                try:
                    new_cfg = load_config(config_path).with_overrides(**overrides)
                    new_rules = load_rules(new_cfg)
                    d.apply(new_cfg, new_rules)
                except (ConfigError, Exception) as e:  # noqa: BLE001 - any bad new config keeps the old one
                    log.error("reload refused, keeping the previous configuration: %s", e)
                else:
                    logging.getLogger("auditimds").setLevel(new_cfg.log_level.upper())
                    log.info("configuration reloaded from %s: %d rule(s)", new_cfg.source, len(new_rules))
            if flags["stop"]:
                break
            # Adaptive wake-up (see Cadence): inotify wakes us at each write while the log is calm; a busy log
            # is read every BUSY_POLL_INTERVAL_S with the watch paused, until its rate has been low a while.
            if cadence.busy:
                waker.pause()
                waker.wait(BUSY_POLL_INTERVAL_S)
                continue
            if waker.paused:
                waker.resume()
                continue  # look once more: lines may have arrived before the watch was back
            waker.wait(d.wait_timeout(time.time()))
    finally:
        sigpipe.close()
        d.close(time.time())
        waker.stop()
    log.info("%s", d.stopped_line())
    return 0
