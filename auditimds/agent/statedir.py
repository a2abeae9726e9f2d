"""The agent's state dir: its paths, its lock, and the one state document (`state.json`) with its one writer.

* `state.json`: where to resume reading the log (`resume`, far enough back to rebuild what was open), the
  position read up to, the alert ledger (ids already written) and the mark of the alerts file, the newest event
  and the counters (read by `auditimds status`).  Written atomically (source/checkpoint.py) by `StateDir.save`.
* `new_terms.json`: the history of the `type = "new_terms"` rules, written only when it changed.
* `alerts-torn.jsonl`: torn last lines cut off the alerts file (see alerts/ledger.py).
* `lock`: one agent per state dir.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from ..alerts.ledger import FileMark
from ..source.checkpoint import (
    CheckpointError,
    StateLockedError,
    load_state,
    lock_state_dir,
    save_state,
    unlock_state_dir,
)
from ..source.tail import Position
from . import DaemonError, StateDirInUse

if TYPE_CHECKING:  # the rule type only: the state directory needs no rule code at run time
    from ..rules.loader import Rule

log = logging.getLogger("auditimds")

STATE_FILE = "state.json"
NEW_TERMS_FILE = "new_terms.json"
TORN_FILE = "alerts-torn.jsonl"  # torn last lines cut off the alerts file (see alerts/ledger.py)
STDIN_LOG = "<stdin>"  # the `log` of the state written in plugin mode


@dataclass
class AgentState:
    """The state document.  `resume_error`: why a saved resume position could not be read (only the file
    follower needs it)."""

    log: Optional[str] = None
    resume: Optional[Position] = None
    resume_ts_ms: Optional[int] = None
    position: Optional[Position] = None
    alerts: Any = None
    alerts_file: Optional[FileMark] = None
    newest_event_ms: int = 0
    counters: Dict[str, Any] = field(default_factory=dict)
    resume_error: Optional[str] = None

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "AgentState":
        st = cls(log=d.get("log"), alerts=d.get("alerts"), alerts_file=FileMark.from_dict(d.get("alerts_file")))
        try:
            st.resume = Position.from_dict(d["resume"]) if d.get("resume") else None
        except (ValueError, KeyError, TypeError) as e:
            st.resume_error = str(e)
        ts = d.get("resume_ts_ms")
        st.resume_ts_ms = ts if isinstance(ts, int) and not isinstance(ts, bool) else None
        newest = d.get("newest_event_ms", 0)
        st.newest_event_ms = newest if isinstance(newest, int) else 0
        counters = d.get("counters")
        st.counters = counters if isinstance(counters, dict) else {}
        return st

    def to_dict(self) -> Dict[str, Any]:
        doc: Dict[str, Any] = {
            "log": self.log,
            "resume": self.resume.to_dict() if self.resume is not None else None,
            "resume_ts_ms": self.resume_ts_ms,
            "position": self.position.to_dict() if self.position is not None else None,
            "alerts": self.alerts,
            "alerts_file": self.alerts_file.to_dict() if self.alerts_file is not None else None,
            "newest_event_ms": self.newest_event_ms,
            "counters": self.counters,
        }
        if self.log == STDIN_LOG:
            del doc["resume_ts_ms"]  # plugin mode does not resume a log
        return doc


class StateDir:
    def __init__(self, path: str) -> None:
        self.name = path  # as given, for messages
        self.dir = Path(path)
        self.state_path = self.dir / STATE_FILE
        self.new_terms_path = self.dir / NEW_TERMS_FILE
        self.torn_path = self.dir / TORN_FILE
        self._lock_fd: Optional[int] = None
        self._new_terms_saved: Optional[int] = None

    # -- the directory and its lock ------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the state dir (ours: 0700) if needed; one-line DaemonError when it cannot be used."""
        p, name = self.dir, self.name
        if p.exists() and not p.is_dir():
            raise DaemonError(f"state dir {name}: is not a directory (give --state-dir / [state] dir a directory)")
        try:
            p.mkdir(parents=True, exist_ok=True, mode=0o700)
        except FileExistsError:
            raise DaemonError(f"state dir {name}: is not a directory") from None
        except OSError as e:
            raise DaemonError(f"state dir {name}: {e.strerror or e}") from None
        if not os.access(name, os.W_OK | os.X_OK):
            raise DaemonError(f"state dir {name}: not writable by this user")

    def lock(self) -> None:
        try:
            self._lock_fd = lock_state_dir(self.dir, os.getpid())
        except StateLockedError as e:
            raise StateDirInUse(str(e)) from None
        except OSError as e:
            raise DaemonError(f"state dir {self.name}: cannot create its lock file: {e.strerror or e}") from None

    def release(self) -> None:
        if self._lock_fd is not None:
            unlock_state_dir(self._lock_fd)
            self._lock_fd = None

    # -- the state document ----------------------------------------------------------------------------------

    def load(self) -> Optional[AgentState]:
        """The saved state, None when there is none.  Raises CheckpointError."""
        d = load_state(self.state_path)
        return AgentState.from_dict(d) if d is not None else None

    def save(self, state: AgentState) -> bool:
        """Write the state document (atomically); an error is logged, False."""
        try:
            save_state(self.state_path, state.to_dict())
        except CheckpointError as e:
            log.error("%s", e)
            return False
        return True

    def keep_torn(self, data: bytes) -> str:
        """Append a torn line cut off the alerts file; where it went, for the log."""
        aside = self.torn_path
        try:
            fd = os.open(str(aside), os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                os.write(fd, data + b"\n")
            finally:
                os.close(fd)
            return f"kept in {aside}"
        except OSError as e:
            return f"not kept ({aside}: {e.strerror or e})"

    # -- new_terms history ---------------------------------------------------------------------------------

    @staticmethod
    def _new_terms_rules(rules: Sequence[Rule]) -> List[Rule]:
        return [r for r in rules if r.compiled.keeps_state]

    def _new_terms_changes(self, rules: Sequence[Rule]) -> int:
        return sum(r.compiled.changes for r in self._new_terms_rules(rules))

    def forget_new_terms_saved(self) -> None:
        """The set of histories may have changed (a reload): write it at the next save."""
        self._new_terms_saved = None

    def load_new_terms(self, all_rules: Sequence[Rule]) -> None:
        """Restore the history of the new_terms rules (a rule no longer loaded is ignored)."""
        if not self._new_terms_rules(all_rules):
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
            self._new_terms_saved = self._new_terms_changes(all_rules)
            return
        prints = saved.get("fingerprints") if saved is not None else None
        prints = prints if isinstance(prints, dict) else {}  # written by an older release: trusted as is
        n = 0
        for r in self._new_terms_rules(all_rules):
            fp = prints.get(r.rule_id)
            if fp is not None and fp != r.fingerprint:
                log.info("rule %s (%s) changed since its new_terms history was saved: the history starts fresh",
                         r.rule_id, r.name)
                continue
            n += r.compiled.load_state(rules.get(r.rule_id))
        self._new_terms_saved = self._new_terms_changes(all_rules)
        log.info("new_terms history restored: %d term(s)", n)

    def save_new_terms(self, all_rules: Sequence[Rule], force: bool = False) -> None:
        """Write the history of the new_terms rules (only if it changed since the last write)."""
        rules = self._new_terms_rules(all_rules)
        if not rules:
            return
        changes = self._new_terms_changes(all_rules)
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
