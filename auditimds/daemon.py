"""`auditimds run`: follow the live audit log (or auditd's plugin stream on stdin) and alert, across rotations,
restarts and crashes.

    source (agent/inputs.py) ──batches──▶ Pipeline ──alerts──▶ outputs (agent/outputs.py): dedupe, stdout,
                    │                                                                    JSONL, notifier
                    └────── position, ledger, new_terms ──▶ state dir (agent/statedir.py)

* `Daemon.step(now)` reads everything available, processes it, applies wall-clock timeouts and
  checkpoints; it never sleeps, so tests drive it line by line.  `run_daemon` / `run_stdin` are the loop: it
  waits on inotify (source/watch.py) or on stdin and only uses a timeout while something is pending (events in
  reassembly, a log that is missing or unreadable, a checkpoint due), so an idle agent uses no CPU.
* Restart without loss: the checkpoint holds a *resume* position far enough back to rebuild whatever was
  open when the agent stopped — events being reassembled and partial rule sequences: the log is re-read
  from a line at least (longest rule maxspan + reassembly timeout + margin) older than the newest event
  processed.  Alerts found again on re-reading are recognised by their deterministic `alert.id`, persisted
  with the checkpoint, and not emitted twice.  An alert is written (and flushed) before the checkpoint that
  records it, and the checkpoint is written as soon as a step emitted an alert.
* `new_terms` histories are saved (`new_terms.json`) at each checkpoint and on close, loaded at start and
  carried over on a reload.  Events of auditimds itself and of its children are ignored; parents unknown to
  the process table are looked up in /proc.  One agent per state dir (a lock, see agent/statedir.py).
* Under systemd (`Type=notify`, agent/sdnotify.py) READY=1 is sent once the handlers are in place and the
  state is loaded, RELOADING=1/READY=1 around a reload and STOPPING=1 at the stop.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple, Union

from .agent import DaemonError, StateDirInUse
from .agent.inputs import FileSource, FileWait, StdinSource, StdinWait, install_signals
from .agent.outputs import Outputs
from .agent.sdnotify import Notifier as Systemd
from .agent.statedir import STDIN_LOG, AgentState, StateDir
from .alerts.exceptions import ExceptionFilter
from .config import Config, ConfigError, load_config
from .ecs.procfs import ProcResolver
from .metrics import Periodic, format_stopped_line, log_lag
from .pipeline import Pipeline
from .rules.loader import Rule, carry_over
from .source.checkpoint import CheckpointError, same_log

log = logging.getLogger("auditimds")

REASSEMBLY_TIMEOUT_S = 2
RESUME_MARGIN_MS = 2000
# The position is saved every 5 s while lines come in (an alert saves it at once): a crash re-reads at most
# these 5 s more, and the alert ledger suppresses repeats.
CHECKPOINT_INTERVAL_S = 5.0
CATCH_UP_CHECKPOINT_BATCHES = 32  # about 32 MB of log


class Daemon:
    def __init__(self, cfg: Config, rules: List[Rule], *, host_id: str, host_name: str,
                 stdout: Optional[TextIO] = None, resolver: Optional[Callable[[int], Optional[dict]]] = None,
                 self_pid: Optional[int] = None, max_batch_bytes: int = 1 << 20,
                 checkpoint_interval: float = CHECKPOINT_INTERVAL_S) -> None:
        self.cfg, self.host_id, self.host_name = cfg, host_id, host_name
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self.max_batch_bytes, self.checkpoint_interval = max_batch_bytes, checkpoint_interval
        self.state = StateDir(cfg.state_dir)
        self.outputs = Outputs(stdout, cfg.output_stdout)
        self.source: Optional[Union[FileSource, StdinSource]] = None
        self._now = self._last_checkpoint = 0.0
        self._read_since_checkpoint = False
        # asked between two batches of a read: True ends the read early (run_daemon: a signal is pending)
        self.interrupted: Callable[[], bool] = lambda: False
        self.pipeline = Pipeline(
            rules, host_id, host_name, on_alert=self._on_alert, reorder_ms=200, wall_timeout=REASSEMBLY_TIMEOUT_S,
            resolver=resolver, self_pid=self.self_pid, exceptions=ExceptionFilter(cfg.exceptions),
        )
        self.periodic = Periodic(self.counters, self._lag_bytes, lambda: self.pipeline.newest_ts_ms, log)

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self, stdin_fd: Optional[int] = None) -> None:
        """Take the state dir, restore the state, open the outputs and the source: the log to follow, or
        (`stdin_fd`, plugin mode) records on a pipe, where an unusable state dir only costs the recognition of
        duplicates across restarts."""
        state: Optional[AgentState] = None
        try:
            self.state.prepare()
            self.state.lock()
            state = self.state.load()
        except StateDirInUse:
            raise
        except (DaemonError, CheckpointError) as e:
            if stdin_fd is None:
                self.release_lock()
                raise DaemonError(str(e)) from None
            log.warning("state dir %s unusable (%s): duplicates across restarts will not be recognised",
                        self.cfg.state_dir, e)
        try:
            position, resume_ts = None, None
            if state is not None and stdin_fd is not None:
                self.outputs.ledger.load(state.alerts)
            elif state is not None and not same_log(state.log, self.cfg.input_path):
                log.warning("the saved state is for %s, not %s: starting without it", state.log, self.cfg.input_path)
            elif state is not None:
                if state.resume_error is not None:
                    raise DaemonError(f"{self.state.state_path}: bad resume position ({state.resume_error}); "
                                      "remove the file to start fresh")
                position, resume_ts = state.resume, state.resume_ts_ms
                self.outputs.ledger.load(state.alerts)
            self.state.load_new_terms(self.pipeline.rules)
            self.outputs.reconcile(self.cfg.output_jsonl, state, self.state.keep_torn)
            self.outputs.open_jsonl(self.cfg.output_jsonl)
            self.outputs.start_notifier(self.cfg.notify, Path(self.cfg.state_dir))
            if stdin_fd is not None:
                self.source = StdinSource(stdin_fd)
                return
            self.source = FileSource(self.cfg.input_path, start=self.cfg.start, position=position,
                                     resume_ts_ms=resume_ts, max_batch_bytes=self.max_batch_bytes)
            if position is not None:
                log.info("resuming %s from the saved position (%d alert ids remembered)", self.cfg.input_path,
                         len(self.outputs.ledger))
            # Record where we start at once: if the log rotates before anything is read and we are stopped,
            # the next start must catch up through the rotated files, not begin afresh at the current log.
            self.checkpoint(0.0, force=True)
        except BaseException:
            self.release_lock()
            raise

    def release_lock(self) -> None:
        """Let another agent use the state dir (done by close(); the end of the process does it too)."""
        self.state.release()

    def close(self, now: float, flush: bool = True) -> None:
        """Stop: process what is readable, complete what is open (if `flush`), checkpoint, release the state
        dir."""
        if self.source is None:
            self.release_lock()
            return
        self._now = self.outputs.now = now
        self._read(now)
        if flush:
            self.pipeline.finish()
        self.checkpoint(now, force=True)
        self.source.close()
        self.source = None
        self.outputs.close()
        self.release_lock()

    def stopped_line(self) -> str:
        return format_stopped_line(self.counters())

    # -- work -------------------------------------------------------------------------------------------

    def _on_alert(self, alert: Dict[str, Any]) -> None:
        self.outputs.on_alert(alert, self.pipeline.newest_ts_ms)

    def _read(self, now: float) -> int:
        assert self.source is not None
        n = 0
        batches = 0
        for lines in self.source.batches():
            self.pipeline.feed(lines, now)
            n += len(lines)
            batches += 1
            if batches % CATCH_UP_CHECKPOINT_BATCHES == 0:
                # a long catch-up moves the checkpoint along: a crash in it does not replay everything
                self._read_since_checkpoint = True
                self.checkpoint(now, force=True)
            if self.interrupted():
                break  # a signal came: stop or reload now, not after the whole catch-up (the rest waits)
        if n and self.source.resumable:
            self._read_since_checkpoint = True
        return n

    def step(self, now: float) -> int:
        """Read and process everything available; apply wall-clock timeouts; checkpoint when due."""
        self._now = self.outputs.now = now
        self.outputs.hand_over()
        n = self._read(now)
        self.pipeline.tick(now)
        self.checkpoint(now)
        if self.source is not None and self.source.resumable:
            self.housekeeping(now)
        return n

    def housekeeping(self, now: float) -> None:
        """Periodic health line and metrics textfile."""
        self.periodic.run(now, self.cfg.health_interval, self.cfg.metrics_textfile)

    def _lag_bytes(self) -> Optional[int]:
        pos = self.source.position if self.source is not None else None
        try:
            lag, _name, _note = log_lag(self.cfg.input_path, pos.to_dict() if pos is not None else None)
        except Exception:  # noqa: BLE001 - a health figure must never stop the agent
            return None
        return lag

    # -- checkpoint -------------------------------------------------------------------------------------

    @property
    def lookback_ms(self) -> int:
        return self.pipeline.max_maxspan_ms + REASSEMBLY_TIMEOUT_S * 1000 + RESUME_MARGIN_MS

    def checkpoint(self, now: float, force: bool = False) -> None:
        """Save the state (the one writer of state.json) when due: an alert was written, or lines were read
        `checkpoint_interval` ago; the new_terms history first: a crash between the two writes then at worst
        suppresses a re-found alert that the ledger would have suppressed anyway, never repeats one."""
        src = self.source
        if src is None:
            return
        due = (self.outputs.pending > 0
               or (self._read_since_checkpoint and now - self._last_checkpoint >= self.checkpoint_interval))
        if not (force or due):
            return
        newest = self.pipeline.newest_ts_ms
        if isinstance(src, FileSource):
            resume, resume_ts = src.resume_position(newest - self.lookback_ms)
            if newest >= 0:
                self.outputs.ledger.prune(newest)
            state = AgentState(log=os.path.realpath(self.cfg.input_path), resume=resume, resume_ts_ms=resume_ts,
                               position=src.position)
        else:
            state = AgentState(log=STDIN_LOG)
        state.alerts, state.alerts_file = self.outputs.ledger.to_list(), self.outputs.mark()
        state.newest_event_ms, state.counters = newest, self.counters()
        self.state.save_new_terms(self.pipeline.rules)
        if not self.state.save(state):
            return
        self.outputs.pending = 0
        self._read_since_checkpoint = False
        self._last_checkpoint = now

    def counters(self) -> Dict[str, Any]:
        st = self.outputs.counters(self.pipeline.stats())
        for key, value in (("follower", self.source.stats() if self.source is not None else None),
                           ("notify", self.outputs.notify_counters())):
            if value is not None:
                st[key] = value
        return st

    # -- reload -----------------------------------------------------------------------------------------

    def apply(self, cfg: Config, rules: List[Rule]) -> None:
        """Take a new configuration and rule set (SIGHUP); input and state changes need a restart.  A new
        alerts file that cannot be opened refuses the whole reload (DaemonError), before anything changed."""
        if not (same_log(cfg.input_path, self.cfg.input_path) and same_log(cfg.state_dir, self.cfg.state_dir)):
            log.warning("[input] path and [state] dir changes take effect at the next restart")
        cfg = cfg.with_overrides(input_path=self.cfg.input_path, state_dir=self.cfg.state_dir)
        self.outputs.open_jsonl(cfg.output_jsonl)
        notify_changed = cfg.notify != self.cfg.notify
        self.cfg = cfg
        self.outputs.to_stdout = cfg.output_stdout
        # unchanged rules keep their state (open sequences, first stages held, new_terms history); the
        # pipeline keeps the events being reassembled or ordered and the process table
        rules, notes = carry_over(self.pipeline.rules, list(rules))
        for note in notes:
            log.info("%s", note)
        self.pipeline.set_rules(rules)
        self.state.forget_new_terms_saved()  # the set of histories may have changed: written at the next checkpoint
        self.pipeline.exceptions = ExceptionFilter(cfg.exceptions)
        if notify_changed:
            self.outputs.stop_notifier()
            self.outputs.start_notifier(cfg.notify, Path(cfg.state_dir))
        # the checkpoint's mark follows a new alerts file at once
        if isinstance(self.source, FileSource):
            self.checkpoint(self._now, force=True)

    def wait_timeout(self, now: Optional[float] = None) -> Optional[float]:
        """How long the loop may sleep: None (until woken) when nothing is pending and no periodic output
        (health line, metrics file) is configured."""
        if self.source is not None and not self.source.resumable:
            return 0.5 if self.pipeline.pending else None
        if self.source is not None and not self.source.following:
            return 2.0
        if self.pipeline.pending:
            return 0.5
        if self._read_since_checkpoint or self.outputs.pending:
            return self.checkpoint_interval
        due = self.periodic.due(self.cfg.health_interval, self.cfg.metrics_textfile)
        if due:
            return max(0.0, min(due) - (time.time() if now is None else now))
        return None


def _run(cfg: Config, load_rules: Callable[[Config], List[Rule]], host: Callable[[Config], Tuple[str, str]], *,
         stdin_fd: Optional[int] = None, config_path: Optional[str] = None,
         overrides: Optional[Dict[str, Any]] = None) -> int:
    """The loop of `auditimds run` (`stdin_fd`: plugin mode, records on that pipe).  Returns the exit code."""
    # signal handlers first: a SIGTERM or SIGHUP during start-up (loading rules, catching up) must not kill the
    # agent the default way; the flags are seen when the loop starts
    flags = {"stop": False, "reload": False}
    sigpipe = install_signals(flags, reload=stdin_fd is None)
    rules = load_rules(cfg)
    host_id, host_name = host(cfg)
    d = Daemon(cfg, rules, host_id=host_id, host_name=host_name, resolver=ProcResolver())
    if stdin_fd is None:
        d.interrupted = lambda: flags["stop"] or flags["reload"]
    d.start(stdin_fd)
    if d.pipeline.core_note:  # said once per start: the pure-Python core costs several times the CPU
        log.warning("%s", d.pipeline.core_note)
    if isinstance(d.source, StdinSource):
        waiter: Union[FileWait, StdinWait] = StdinWait(d.source, sigpipe)
        log.info("reading audit records from standard input (plugin mode), %d rule(s)", len(rules))
    else:
        waiter = FileWait(cfg.input_path, sigpipe)
        log.info("following %s (%s), %d rule(s), state in %s, alerts to %s", cfg.input_path, waiter.waker.mode,
                 len(rules), cfg.state_dir, ", ".join(x for x in ("stdout" if cfg.output_stdout else "",
                                                                  cfg.output_jsonl or "") if x) or "nowhere")
    systemd = Systemd()
    systemd.ready(f"{len(rules)} rule(s)")
    try:
        while not flags["stop"]:
            waiter.observe(d.step(time.time()))
            if flags["reload"]:
                flags["reload"] = False
                systemd.reloading()
                try:
                    new_cfg = load_config(config_path).with_overrides(**(overrides or {}))
                    new_rules = load_rules(new_cfg)
                    d.apply(new_cfg, new_rules)
                except (ConfigError, Exception) as e:  # noqa: BLE001 - any bad new config keeps the old one
                    log.error("reload refused, keeping the previous configuration: %s", e)
                    systemd.ready("reload refused, the previous configuration is kept: " + str(e))
                else:
                    logging.getLogger("auditimds").setLevel(new_cfg.log_level.upper())
                    log.info("configuration reloaded from %s: %d rule(s)", new_cfg.source, len(new_rules))
                    systemd.ready(f"{len(new_rules)} rule(s), configuration reloaded")
            if flags["stop"] or not waiter.wait(lambda: d.wait_timeout(time.time())):
                break
        systemd.stopping()
        if isinstance(d.source, StdinSource):
            d.source.end()
            d.step(time.time())
    finally:
        sigpipe.close()
        d.close(time.time())
        waiter.close()
    log.info("%s", d.stopped_line())
    return 0


def run_daemon(cfg: Config, config_path: Optional[str], overrides: Dict[str, Any],
               load_rules: Callable[[Config], List[Rule]], host: Callable[[Config], Tuple[str, str]]) -> int:
    """`auditimds run`: follow the log.  Returns the exit code."""
    return _run(cfg, load_rules, host, config_path=config_path, overrides=overrides)


def run_stdin(cfg: Config, load_rules: Callable[[Config], List[Rule]],
              host: Callable[[Config], Tuple[str, str]], stdin_fd: int = 0) -> int:
    """`auditimds run --stdin`, auditd's plugin mode (records, EOE included, on stdin) until EOF or SIGTERM."""
    return _run(cfg, load_rules, host, stdin_fd=stdin_fd)
