"""What was emitted: the alert ledger, and the alerts file read back after a crash.

The live agent must write each alert once to the alerts file, also when it is killed (-9) at any instant.
Its checkpoint holds the ids of the alerts emitted so far and a *mark* of the alerts file (device, inode and
size right after the last line written before the checkpoint).  A kill between writing a line and the next
checkpoint leaves ids in the file that the saved ledger does not know: on start, `reconcile_alerts_file`
reads the lines written after the mark and returns their ids, so an alert found again on re-reading the log
is recognised as already written.

* The file is followed through a rename (logrotate's `create`: the marked inode is looked for among the
  files beside it) and a truncation (`copytruncate`: the file is smaller than its mark, so it is read from
  its start).
* A torn last line (the agent was killed in the middle of writing it, or the machine lost power) is never
  parsed: it is cut off the file and handed back (`Reconciled.torn`) to be kept aside, and the alert is
  written again, whole, when the log is re-read.
* A complete line that is not an alert (damaged, or written by something else) is counted, not trusted.
"""

from __future__ import annotations

import json
import os
import stat
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

# Lines after the mark are those written between two checkpoints (seconds of alerts): far less than this.
# More means the mark does not belong to this file; only its last part is read, so a start never stalls.
MAX_RECONCILE_BYTES = 64 << 20


class AlertLedger:
    """alert.id of alerts already emitted, kept for as long as a restart could find them again."""

    def __init__(self, max_ids: int = 50_000, keep_ms: int = 24 * 3600 * 1000) -> None:
        self.max_ids = max_ids
        self.keep_ms = keep_ms
        self._ids: "OrderedDict[str, int]" = OrderedDict()

    def __contains__(self, alert_id: str) -> bool:
        return alert_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, alert_id: str, ts_ms: int) -> None:
        self._ids[alert_id] = ts_ms
        self._ids.move_to_end(alert_id)
        while len(self._ids) > self.max_ids:
            self._ids.popitem(last=False)

    def prune(self, now_ts_ms: int) -> None:
        limit = now_ts_ms - self.keep_ms
        for k in [k for k, ts in self._ids.items() if ts < limit]:
            del self._ids[k]

    def to_list(self) -> List[List[Any]]:
        return [[k, ts] for k, ts in self._ids.items()]

    def load(self, items: Any) -> None:
        if not isinstance(items, list):
            return
        for item in items:
            if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], int):
                self.add(item[0], item[1])


@dataclass(frozen=True)
class FileMark:
    """Where the alerts file ended at a checkpoint."""

    path: str
    dev: int
    ino: int
    size: int

    def to_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "dev": self.dev, "ino": self.ino, "size": self.size}

    @classmethod
    def from_dict(cls, d: Any) -> Optional["FileMark"]:
        """The mark saved by to_dict, or None when `d` is not one (an older state file has none)."""
        if not isinstance(d, dict):
            return None
        path, dev, ino, size = d.get("path"), _count(d.get("dev")), _count(d.get("ino")), _count(d.get("size"))
        if not isinstance(path, str) or dev is None or ino is None or size is None:
            return None
        return cls(path, dev, ino, size)


def _count(v: Any) -> Optional[int]:
    """`v` when it is an int >= 0 (not a bool), else None."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def mark_of(fd: int, path: str) -> Optional[FileMark]:
    """The mark of an open alerts file (None for what is not a regular file: /dev/full, a pipe)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return FileMark(os.path.realpath(path), st.st_dev, st.st_ino, st.st_size)


@dataclass
class Reconciled:
    ids: List[str] = field(default_factory=list)  # alert ids written after the mark, in file order
    alerts: List[Dict[str, Any]] = field(default_factory=list)  # those alerts, as written (same order)
    torn: bytes = b""                              # the torn last line, cut off the file
    bad_lines: int = 0                             # complete lines that are not alerts
    read_bytes: int = 0


def _alert_of(line: bytes) -> Optional[Dict[str, Any]]:
    """The alert a line holds, or None when it is not one (damaged, or not ours)."""
    try:
        doc = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    if not isinstance(doc, dict):
        return None
    alert = doc.get("alert")
    aid = alert.get("id") if isinstance(alert, dict) else None
    return doc if isinstance(aid, str) and aid else None


def _scan(data: bytes, out: Reconciled) -> None:
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        doc = _alert_of(line)
        if doc is None:
            out.bad_lines += 1
        else:
            out.ids.append(doc["alert"]["id"])
            out.alerts.append(doc)


def alert_time_ms(doc: Dict[str, Any], default: int) -> int:
    """An alert's @timestamp (log time) in ms since the epoch, or `default` when it has none usable."""
    ts = doc.get("@timestamp")
    if not isinstance(ts, str):
        return default
    try:
        when = datetime.fromisoformat(ts[:-1] + "+00:00" if ts.endswith("Z") else ts)
    except ValueError:
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def _read_from(fd: int, start: int, end: int) -> bytes:
    """Bytes [start, end) of fd; at most MAX_RECONCILE_BYTES, taken from the end and begun at a line start."""
    if end - start > MAX_RECONCILE_BYTES:
        start = end - MAX_RECONCILE_BYTES
        data = os.pread(fd, end - start, start)
        cut = data.find(b"\n")
        return data[cut + 1:] if cut >= 0 else b""
    chunks = []
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(end - pos, 1 << 20), pos)
        if not chunk:
            break
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)


def _rotated_sibling(mark: FileMark) -> Optional[str]:
    """The file beside mark.path that is the marked inode (the alerts file renamed by logrotate)."""
    directory, base = os.path.split(mark.path)
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return None
    for name in names:
        if name == base or not name.startswith(base):
            continue
        p = os.path.join(directory, name)
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_dev == mark.dev and st.st_ino == mark.ino:
            return p
    return None


def reconcile_alerts_file(path: str, mark: Optional[FileMark]) -> Reconciled:
    """The ids of the alerts written to `path` (the alerts file about to be appended to) after `mark`.

    Without a mark (no state yet, or a state of an older release) the last MAX_RECONCILE_BYTES of the file
    are read.  A torn last line of `path` is cut off it and returned in `torn`.  Raises OSError when `path`
    exists but cannot be read or cut."""
    out = Reconciled()
    real = os.path.realpath(path)
    if mark is not None and mark.path != real:
        # the alerts file was another one at the checkpoint (a reload changed [output] jsonl): read that one
        # after its mark; the current one (new to the ledger) from its start
        old = reconcile_alerts_file(mark.path, mark) if os.path.exists(mark.path) else Reconciled()
        out.ids.extend(old.ids)
        out.alerts.extend(old.alerts)
        out.bad_lines += old.bad_lines
        mark = None
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        if mark is not None:
            sibling = _rotated_sibling(mark)
            if sibling is not None:
                _read_rotated(sibling, mark, out)
        return out
    except OSError as e:
        if e.errno == getattr(os, "ELOOP", -1):  # a symlink: the output opens it as such, so may we
            fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        else:
            raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return out  # /dev/full, a FIFO: nothing to read back
        start = 0
        if mark is not None:
            if (st.st_dev, st.st_ino) == (mark.dev, mark.ino):
                # the same file: after the mark, unless it was truncated below it (copytruncate)
                start = mark.size if st.st_size >= mark.size else 0
            else:
                sibling = _rotated_sibling(mark)
                if sibling is not None:
                    _read_rotated(sibling, mark, out)
        data = _read_from(fd, start, st.st_size)
        out.read_bytes += len(data)
        end = data.rfind(b"\n") + 1
        if end < len(data):
            out.torn = data[end:]
            os.ftruncate(fd, st.st_size - len(out.torn))
            os.fsync(fd)
            data = data[:end]
        _scan(data, out)
    finally:
        os.close(fd)
    return out


def _read_rotated(path: str, mark: FileMark, out: Reconciled) -> None:
    """The lines a rotated alerts file got after the mark (a torn last line there is not counted)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        size = os.fstat(fd).st_size
        data = _read_from(fd, mark.size if size >= mark.size else 0, size)
    finally:
        os.close(fd)
    out.read_bytes += len(data)
    _scan(data[: data.rfind(b"\n") + 1], out)
