"""Persist the follower's state (e.g. `{"position": Position.to_dict(), ...}`) across restarts.

The file is JSON: `{"version": 1, "saved_at": "<UTC ISO 8601>", "state": {...}}`, mode 0600, replaced
atomically (`fsutil.atomic_write`: temporary file in the same directory, fsync, rename, fsync of the
directory): after a crash it holds either the old or the new state, never a mix.  A state file that
cannot be used is an error the user must resolve (`CheckpointError`, one line): silently starting from
scratch would lose or repeat events without anyone noticing.

`lock_state_dir` keeps a second agent off a state dir that is in use (both would emit every alert and
overwrite each other's state); readers (`auditimds status`) never take the lock.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional

from ..fsutil import atomic_write

STATE_VERSION = 1
MAX_STATE_BYTES = 16 << 20
LOCK_FILE = "lock"


class CheckpointError(Exception):
    """The state file cannot be read or written; the message is one line meant for the user."""


def _fresh(path: Path) -> str:
    return f"remove {path} to start fresh (auditimds then starts as --start says)"


def save_state(path: Path, state: Dict[str, Any]) -> None:
    """Write `state` (JSON-serialisable) atomically to `path`, mode 0600.  Raises CheckpointError."""
    path = Path(path)
    doc = {
        "version": STATE_VERSION,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "state": state,
    }
    data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8")  # TypeError is a bug: not caught
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot write state file {path}: {e.strerror or e}") from None
    try:
        atomic_write(path, data, mode=0o600)
    except OSError as e:
        raise CheckpointError(f"cannot write state file {path}: {e.strerror or e} (the previous state is "
                              "kept)") from None


def load_state(path: Path) -> Optional[Dict[str, Any]]:
    """The state saved by save_state, or None if there is no state file.  Raises CheckpointError."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CheckpointError(f"cannot read state file {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"state file {path} is not a regular file; {_fresh(path)}")
    if st.st_size > MAX_STATE_BYTES:
        raise CheckpointError(f"state file {path} is implausibly large ({st.st_size} bytes); {_fresh(path)}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CheckpointError(f"cannot read state file {path}: {e.strerror or e} (fix its permissions, or "
                              f"{_fresh(path)})") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"state file {path} is corrupt (not UTF-8); {_fresh(path)}") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"state file {path} is corrupt (not JSON: {e.msg} at line {e.lineno} column "
                              f"{e.colno}); {_fresh(path)}") from None
    if not isinstance(doc, dict) or "version" not in doc:
        raise CheckpointError(f"state file {path} is not an auditimds state file (no version field); "
                              f"{_fresh(path)}")
    version = doc["version"]
    if version != STATE_VERSION or isinstance(version, bool):
        raise CheckpointError(f"state file {path} has version {version!r}, this auditimds understands version "
                              f"{STATE_VERSION} only (written by another release?); upgrade auditimds, or "
                              f"{_fresh(path)}")
    state = doc.get("state")
    if not isinstance(state, dict):
        raise CheckpointError(f"state file {path} is corrupt (no state object); {_fresh(path)}")
    return state


def same_log(saved: Optional[str], current: str) -> bool:
    """Whether the log a state was saved for is `current`: different spellings of one file (relative,
    `./`, through a symlinked directory) are the same log.  A state without a log is anyone's."""
    if saved is None:
        return True
    if not isinstance(saved, str):
        return False
    return saved == current or os.path.realpath(saved) == os.path.realpath(current)


class StateLockedError(Exception):
    """Another process holds the state dir's lock; the message is one line meant for the user."""

    def __init__(self, state_dir: Path, pid: Optional[int]) -> None:
        who = f"another auditimds (pid {pid})" if pid is not None else "another auditimds"
        super().__init__(f"state dir {state_dir} is in use by {who}: stop it, or give this one its own "
                         "--state-dir ([state] dir)")
        self.pid = pid


def _read_pid(fd: int) -> Optional[int]:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def lock_state_dir(state_dir: Path, pid: int) -> int:
    """Take the exclusive lock of `state_dir` (flock on STATE_DIR/lock) and write `pid` in the lock file.

    Returns the file descriptor that holds the lock: closing it (or the process ending, however it ends)
    releases the lock.  Raises StateLockedError when another process holds it, OSError when the lock file
    cannot be created."""
    path = Path(state_dir) / LOCK_FILE
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        other = _read_pid(fd) if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES) else None
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise StateLockedError(Path(state_dir), other) from None
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{pid}\n".encode("ascii"), 0)
    except OSError:
        pass  # the lock is what matters; the pid is only for the other agent's message
    return fd


def unlock_state_dir(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
