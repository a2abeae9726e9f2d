"""Follow auditd's live log across appends, rotations, truncations and restarts.

`LogFollower` is pure logic: no threads, no sleeping, never blocks.  The caller decides when to look
again (source/watch.py wakes it up) and calls `iter_available()` / `read_available()`.

How auditd writes (docs: auditd-format.md §6): `O_WRONLY|O_APPEND|O_NOFOLLOW`, one `write()` per line
(lines over stdio's buffer come in several writes).  Rotation closes the fd, renames `audit.log.(N-2)`
→ `.(N-1)` … `audit.log` → `audit.log.1`, then creates a new `audit.log`; higher numbers are older.

Model
-----
The follower keeps a *chain* of open files, oldest first.  The first one is being read; the last one is
the *anchor*: the file we believe is (or was last) at `path`.  Files before the anchor are rotated
files: auditd has closed them, so they are read to EOF, a final line without "\\n" is delivered as-is
(counted in `stats.unterminated_lines`; auditd never leaves one, but bytes are never dropped), and
closed.  When the anchor is at EOF, `path` is `lstat`-ed:

* same (dev, inode), size < offset, or first-line fingerprint changed → **truncation** (copytruncate):
  restart at 0, the buffered partial line is dropped and counted in `lost_bytes_estimate`;
* another (dev, inode) → **rotation**: the old fd stays in the chain and is drained to EOF, then the
  files newer than it (found by identity among `path.N`; or by mtime if it was deleted) are opened,
  oldest first, then the new `path` at 0.  Every file is opened at detection time, so further renames
  by auditd while we catch up do not matter;
* missing / permission denied / not a regular file → keep the old fd, `status` says "waiting: …"
  (logged once per change of state), retry next call.

Start and resume
----------------
`position=None`: `start="end"` begins after the last complete line of `path` (a line being written at
that moment is delivered once complete: it is not history); `start="beginning"` at 0.  The files are
looked at when the follower is created.  If `path` is missing at the first
call, the file that appears later is new and is read from 0 either way.

With a `position`, the file it names is looked for among `path`, `path.1`, `path.2`, … (every
`path.<digits>` in the directory; never `.gz`, never through a symlink):

1. same (dev, inode) and same fingerprint (or saved fingerprint "", i.e. offset 0) → read it from
   `offset` (from 0 if it is now shorter: truncated, counted), then every newer rotated file from 0,
   then `path`;
2. else a file with the same non-empty fingerprint and size ≥ offset → the same content under another
   inode: restored from a backup, another device number after a reboot, or the copy made by
   logrotate's `copytruncate`.  Treated as 1.  (If several match, the oldest, so we re-read rather
   than skip);
3. else the inode still is `path` but the fingerprint changed or it is shorter → truncated/rewritten in
   place, or the checkpointed file was rotated out and deleted and the new `path` got its freed inode.
   Rotated files whose mtime is at or after `position_time` (the log time of the resume point, when the
   caller knows it) were written since the checkpoint: they are read from 0, oldest first, then `path`
   from 0.  Without such files (auditd renames on rotation, so every rotated file is older than a file
   rewritten in place and was already read): `path` from 0 (counted as a truncation);
4. else (the file was rotated beyond `num_logs`, deleted, or the inode was reused by a newer file):
   nothing left on disk is known to have been read.  Retention deletes the oldest file first, so every
   remaining file is newer than the checkpointed one and *entirely unread*: read all of them from the
   oldest (`path.N`) at 0.  The rest of the checkpointed file is lost; `lost_bytes_estimate` grows by
   (largest rotated file size − saved offset), since auditd rotates at a fixed size.  A warning says so.
   Duplicated alerts (only if the checkpoint was unrelated to these files) are suppressed downstream
   by alert id: we prefer re-reading to losing.

Memory: at most `max_batch_bytes` read at once, plus one partial line (capped at `max_line_bytes`,
beyond which the fragment is delivered as a line and counted in `oversized_lines`).  `iter_available()`
yields batches lazily, so a consumer that handles each batch before taking the next one holds no more;
`read_available()` collects them in a list (bounded by `max_batches` if given).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

FINGERPRINT_BYTES = 4096
PERMISSION_FIX = "run as root, add the user to auditd's log_group, or grant CAP_DAC_READ_SEARCH"
FOLLOWING = "following"
# position_time is the log time of the resume point; a file's mtime is its last write, never before the
# lines it holds were stamped: a second of slack covers clock granularity (re-reading costs nothing but time)
RESUME_TIME_SLACK_S = 1.0
# opening the rotated files again when auditd renamed them meanwhile (each attempt takes microseconds)
SNAPSHOT_ATTEMPTS = 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_MAX_PROBE = 99  # rotated names probed one by one when the directory cannot be listed

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Position:
    """Where to resume: the file (dev, inode, first-line fingerprint) and the byte offset just after the
    last complete line consumed.  `fingerprint` is the hex sha256 of the file's first line (up to 4096
    bytes including its "\\n"), or "" while the file has no complete first line (then offset is 0)."""

    dev: int
    inode: int
    fingerprint: str
    offset: int

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Position:
        """Inverse of to_dict; raises ValueError (one-line message) on a malformed dict."""
        if not isinstance(d, dict):
            raise ValueError(f"position must be an object, not {type(d).__name__}")
        try:
            dev, inode, fp, offset = d["dev"], d["inode"], d["fingerprint"], d["offset"]
        except KeyError as e:
            raise ValueError(f"position lacks field {e.args[0]!r}") from None
        for name, v in (("dev", dev), ("inode", inode), ("offset", offset)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"position field {name!r} must be a non-negative integer, not {v!r}")
        if not isinstance(fp, str) or (fp and not re.fullmatch(r"[0-9a-f]{64}", fp)):
            raise ValueError(f"position field 'fingerprint' must be a sha256 hex digest or '', not {fp!r}")
        return cls(dev=dev, inode=inode, fingerprint=fp, offset=offset)


@dataclass
class Batch:
    lines: List[bytes]  # complete lines, without b"\n"
    position: Position  # just after the last line of this batch
    path: str  # name of the file the lines came from when it was opened/found (".../audit.log.1" while catching up)
    start: Optional[Position] = None  # just before the first line of this batch (same file)


@dataclass
class FollowerStats:
    rotations: int = 0
    truncations: int = 0
    bytes_read: int = 0
    lines: int = 0
    files_caught_up: int = 0  # files read to their end and closed (rotated away)
    lost_bytes_estimate: int = 0
    errors: int = 0
    unterminated_lines: int = 0  # rotated files ending without "\n": last fragment delivered as a line
    oversized_lines: int = 0  # fragments longer than max_line_bytes delivered as lines
    snapshot_retries: int = 0  # auditd renamed the rotated files while they were being opened: opened again

    def as_dict(self) -> Dict[str, int]:
        return asdict(self)


def _fingerprinted_head(head: bytes) -> bytes:
    """The part of a file's first bytes that its fingerprint hashes: the first line, or the first
    FINGERPRINT_BYTES bytes when they hold no newline; b"" (no fingerprint) for a shorter partial line."""
    head = head[:FINGERPRINT_BYTES]
    nl = head.find(b"\n")
    if nl >= 0:
        return head[: nl + 1]
    return head if len(head) >= FINGERPRINT_BYTES else b""


def fingerprint_of(head: bytes) -> str:
    """Fingerprint from the first bytes of a file (at least min(size, 4096) of them)."""
    part = _fingerprinted_head(head)
    return hashlib.sha256(part).hexdigest() if part else ""


class _ReadFailed(Exception):
    pass


@dataclass
class _Reader:
    """One open file in the chain."""

    fd: int
    dev: int
    inode: int
    name: str
    offset: int = 0  # just after the last complete line delivered
    read_pos: int = 0  # offset + len(partial)
    partial: bytes = b""
    fingerprint: str = ""
    head: bytes = b""  # the bytes `fingerprint` hashes: compared as they are, not hashed again, at each look
    skip_to_newline: bool = False  # started mid-line (start="end"): drop up to the next "\n"
    closed: bool = field(default=False)

    def identity(self) -> Tuple[int, int]:
        return (self.dev, self.inode)

    def take_fingerprint(self) -> None:
        """Fingerprint the file's first line as it is now (raises OSError)."""
        self.head = _fingerprinted_head(os.pread(self.fd, FINGERPRINT_BYTES, 0))
        self.fingerprint = hashlib.sha256(self.head).hexdigest() if self.head else ""

    def position(self) -> Position:
        if not self.fingerprint:
            try:
                self.take_fingerprint()
            except OSError:
                pass
        return Position(self.dev, self.inode, self.fingerprint, self.offset)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                os.close(self.fd)
            except OSError:
                pass


class LogFollower:
    """Follow `path` (auditd's audit.log).  See the module docstring for the semantics."""

    def __init__(
        self,
        path: str,
        *,
        start: str = "end",
        position: Optional[Position] = None,
        position_time: Optional[float] = None,
        max_batch_bytes: int = 1 << 20,
        max_line_bytes: int = 1 << 20,
        log: Optional[logging.Logger] = None,
    ) -> None:
        if start not in ("end", "beginning"):
            raise ValueError(f"start must be 'end' or 'beginning', not {start!r}")
        if max_batch_bytes < 1 or max_line_bytes < 1:
            raise ValueError("max_batch_bytes and max_line_bytes must be positive")
        self.path = os.fspath(path)
        self._dir = os.path.dirname(self.path) or "."
        self._base = os.path.basename(self.path)
        self._rotated_re = re.compile(re.escape(self._base) + r"\.([0-9]+)")
        self._start = start
        self._resume: Optional[Position] = position
        self._resume_time = position_time
        self._max_batch = max_batch_bytes
        self._max_line = max_line_bytes
        self._log = log or _log
        self._chain: List[_Reader] = []
        self._missed_start = False  # path was missing at the first attempt: read it from 0 when it appears
        self._status = "starting"
        self._status_key = ""
        self._closed = False
        self.stats = FollowerStats()
        self._start_chain()  # "start"/"position" refer to the files as they are now

    # ------------------------------------------------------------------ public

    @property
    def status(self) -> str:
        """"following", or "waiting: <why> (<fix>)"."""
        return self._status

    @property
    def position(self) -> Optional[Position]:
        """Position of the next line to read (after every line delivered so far): the one to checkpoint
        when every delivered line has been processed.  When caught up it is in the current file, even
        before any line arrives in it.  While a resume position cannot be resolved yet (no file on
        disk), that position; None only when nothing was ever opened."""
        if self._chain:
            return self._chain[0].position()
        return self._resume  # not resolved yet (nothing on disk): keep the saved one

    def iter_available(self) -> Iterator[Batch]:
        """Yield every complete line readable now, in batches of ≤ max_batch_bytes read.  Lazy: stopping
        early loses nothing (the next call goes on from there)."""
        if self._closed:
            raise ValueError("LogFollower is closed")
        if self._chain:
            # before reading: a rotation seen now lets batches name the file they come from (audit.log.1), and
            # a file truncated (and perhaps rewritten past our offset) since the last call is read from 0
            self._check_path(self._chain[-1])
        while True:
            batch = self._step()
            if batch is None:
                return
            yield batch

    def read_available(self, max_batches: Optional[int] = None) -> List[Batch]:
        """Everything complete that can be read now (at most `max_batches` batches: if that many are
        returned, call again before waiting).  Never blocks, never sleeps."""
        out: List[Batch] = []
        for b in self.iter_available():
            out.append(b)
            if max_batches is not None and len(out) >= max_batches:
                break
        return out

    def close(self) -> None:
        for r in self._chain:
            r.close()
        self._chain = []
        self._closed = True

    def __enter__(self) -> LogFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ status

    def _set_status(self, status: str, key: str, level: int = logging.WARNING) -> None:
        """Log on a change of state only (key groups statuses that differ only in detail)."""
        self._status = status
        if key != self._status_key:
            self._status_key = key
            self._log.log(level, "audit log follower: %s", status)

    def _following(self) -> None:
        self._set_status(FOLLOWING, FOLLOWING, logging.INFO)

    def _os_problem(self, name: str, e: OSError) -> None:
        if isinstance(e, FileNotFoundError):
            self._set_status(f"waiting: {name} missing", "missing")
        elif isinstance(e, PermissionError):
            self._set_status(f"waiting: permission denied on {name} ({PERMISSION_FIX})", "perm")
        elif e.errno == getattr(os, "ELOOP", -1):
            self._set_status(
                f"waiting: {name} is a symbolic link (auditd never writes through one: it opens its log "
                "with O_NOFOLLOW); point auditimds at the real file", "symlink")
        else:
            self.stats.errors += 1
            self._set_status(f"waiting: {name}: {e.strerror or e}", f"oserror:{e.errno}")

    # ------------------------------------------------------------------ files

    def _open(self, name: str) -> _Reader:
        """Open a regular file without following a final symlink; raises OSError."""
        fd = os.open(name, _OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(0, "not a regular file", name)
        except BaseException:
            os.close(fd)
            raise
        return _Reader(fd=fd, dev=st.st_dev, inode=st.st_ino, name=name)

    def _rotated_names(self) -> List[Tuple[int, str]]:
        """(N, path.N) for every existing `path.<digits>`, oldest (highest N) first."""
        found: List[Tuple[int, str]] = []
        try:
            entries = os.listdir(self._dir)
        except OSError:
            entries = [f"{self._base}.{i}" for i in range(1, _MAX_PROBE + 1)]
        for e in entries:
            m = self._rotated_re.fullmatch(e)
            if m and int(m.group(1)) > 0:
                found.append((int(m.group(1)), os.path.join(self._dir, e)))
        found.sort(reverse=True)
        out = []
        for n, name in found:
            try:
                if stat.S_ISREG(os.lstat(name).st_mode):
                    out.append((n, name))
            except OSError:
                continue
        return out

    def _open_rotated(self) -> List[_Reader]:
        """Open every rotated file, oldest first (unreadable ones are skipped, with a status), as one
        snapshot: see `_snapshot`."""
        return self._snapshot(with_live=False)[0]

    def _snapshot(self, with_live: bool) -> Tuple[List[_Reader], Optional[_Reader]]:
        """The rotated files, oldest first, and (`with_live`) `path`, opened as one consistent set.

        The files are opened one by one by name while auditd may be renaming them: a rotation between two
        opens shifts every name by one, and one file would be skipped (or one taken twice).  So the names are
        looked at again afterwards and the whole set is opened again until no rotation came in between."""
        for attempt in range(SNAPSHOT_ATTEMPTS):
            listed = self._rotated_names()
            readers = []
            for _, name in listed:
                try:
                    readers.append(self._open(name))
                except FileNotFoundError:
                    continue  # auditd dropped the oldest one meanwhile
                except OSError as e:
                    self._os_problem(name, e)
            live: Optional[_Reader] = None
            if with_live:
                try:
                    live = self._open(self.path)
                except OSError as e:
                    self._os_problem(self.path, e)
            opened = readers + ([live] if live is not None else [])
            if attempt == SNAPSHOT_ATTEMPTS - 1 or self._unmoved(listed, opened):
                return readers, live  # (the last attempt as it is: a rotation storm, never seen in practice)
            for r in opened:
                r.close()
            self.stats.snapshot_retries += 1
        raise AssertionError("unreachable")

    def _unmoved(self, listed: List[Tuple[int, str]], opened: List[_Reader]) -> bool:
        """The rotated names are those listed before opening, and every opened file still has its name."""
        if self._rotated_names() != listed:
            return False
        for r in opened:
            try:
                st = os.lstat(r.name)
            except OSError:
                return False
            if (st.st_dev, st.st_ino) != r.identity():
                return False
        return True

    # ------------------------------------------------------------------ start / resume

    def _start_chain(self) -> None:
        if self._resume is not None:
            self._resume_chain(self._resume)
            return
        try:
            r = self._open(self.path)
        except OSError as e:
            self._os_problem(self.path, e)
            self._missed_start = True
            return
        if self._start == "end" and not self._missed_start:
            try:
                self._seek_end(r)
            except OSError as e:
                r.close()
                self._os_problem(self.path, e)
                return
        self._chain = [r]
        self._following()

    def _seek_end(self, r: _Reader) -> None:
        """Place r after its last complete line: a line being written now is delivered once complete."""
        size = os.fstat(r.fd).st_size
        back = min(size, self._max_line)
        tail = os.pread(r.fd, back, size - back) if back else b""
        nl = tail.rfind(b"\n")
        if nl >= 0:
            r.offset = size - back + nl + 1
        elif back == size:
            r.offset = 0  # one line in progress, nothing complete yet
        else:
            r.offset = size  # no newline in the last max_line_bytes: skip to the next one
            r.skip_to_newline = True
        r.read_pos = r.offset

    def _resume_chain(self, pos: Position) -> None:
        rotated, live = self._snapshot(with_live=True)  # oldest first, then `path`
        files = rotated + ([live] if live else [])
        if not files:
            return  # nothing on disk yet: keep the position, retry next call
        fps = []
        for r in files:
            try:
                r.take_fingerprint()
            except OSError:
                r.fingerprint, r.head = "", b""
            fps.append(r.fingerprint)
        sizes = [os.fstat(r.fd).st_size for r in files]

        idx: Optional[int] = None
        from_zero = False
        how = ""
        for i, r in enumerate(files):  # 1. identity and content
            if r.identity() == (pos.dev, pos.inode) and (pos.fingerprint == r.fingerprint or not pos.fingerprint):
                idx, how = i, "same file"
        if idx is None and pos.fingerprint:  # 2. same content, other inode: the oldest such
            for i, r in enumerate(files):
                if r.fingerprint == pos.fingerprint and sizes[i] >= pos.offset:
                    idx, how = i, "same first line under another inode (copied or restored)"
                    break
        if idx is None and live is not None and live.identity() == (pos.dev, pos.inode):  # 3. rewritten
            # or: the checkpointed file was rotated out and deleted, and the new `path` got its inode (ext4
            # reuses freed inodes at once).  Then the rotated files written since the checkpoint are unread.
            since = self._resume_time
            newer = [i for i in range(len(rotated)) if since is not None
                     and os.fstat(files[i].fd).st_mtime >= since - RESUME_TIME_SLACK_S]
            if newer:
                idx, from_zero = newer[0], True
                self._log.warning(
                    "%s has the checkpointed inode but other content: a rotation deleted the checkpointed file "
                    "and its inode went to a newer one (or it was rewritten in place). Reading the %d rotated "
                    "file(s) written since the checkpoint (from %s), then %s, from the start",
                    self.path, len(rotated) - newer[0], files[newer[0]].name, self.path)
            else:
                idx, from_zero, how = len(files) - 1, True, "same inode, rewritten in place"
        if idx is None:  # 4. lost
            rot_sizes = sizes[: len(rotated)]
            lost = max(0, max(rot_sizes) - pos.offset) if rot_sizes else 0
            self.stats.lost_bytes_estimate += lost
            self._log.warning(
                "checkpoint position (dev %d, inode %d, offset %d) matches none of %s and its %d rotated "
                "files: that file was rotated beyond auditd's num_logs, deleted or replaced while auditimds "
                "was stopped; its unread part is lost (about %d bytes). Reading every remaining file from "
                "the oldest one (%s), since all of them are newer than the checkpoint",
                pos.dev, pos.inode, pos.offset, self.path, len(rotated), lost, files[0].name)
            idx, from_zero = 0, True
        for r in files[:idx]:
            r.close()
        chain = files[idx:]
        first = chain[0]
        if not from_zero and sizes[idx] < pos.offset:
            self.stats.truncations += 1
            self._log.warning("%s is shorter (%d bytes) than the checkpoint offset %d: truncated, reading it "
                              "from the start", first.name, sizes[idx], pos.offset)
        elif from_zero and how:
            self.stats.truncations += 1
            self._log.warning("%s: %s since the checkpoint; reading it from the start", first.name, how)
        elif not from_zero:
            first.offset = first.read_pos = pos.offset
            if how != "same file":
                self._log.info("resuming in %s at offset %d: %s", first.name, pos.offset, how)
        self._chain = chain
        self._resume = None
        if live is not None:
            self._following()

    # ------------------------------------------------------------------ reading

    def _check_truncation(self, r: _Reader) -> bool:
        """Anchor file truncated/rewritten in place?  Then restart it at 0."""
        try:
            size = os.fstat(r.fd).st_size
            changed = size < r.read_pos
            if not changed and r.head and r.read_pos > 0:
                # the first line as fingerprinted, compared byte for byte (one short read, no hashing)
                changed = os.pread(r.fd, len(r.head), 0) != r.head
        except OSError as e:
            self.stats.errors += 1
            self._log.debug("cannot check %s for truncation: %s", r.name, e)
            return False
        if not changed:
            return False
        self.stats.truncations += 1
        self.stats.lost_bytes_estimate += len(r.partial)
        self._log.warning(
            "%s was truncated in place (size %d < offset %d, or its first line changed; copytruncate is not "
            "how auditd rotates): reading it again from the start", r.name, size, r.read_pos)
        r.offset = r.read_pos = 0
        r.partial = b""
        r.fingerprint, r.head = "", b""
        r.skip_to_newline = False
        return True

    def _read_lines(self, r: _Reader) -> Optional[Batch]:
        """Read from r until at least one line is complete or EOF.  None at EOF (partial kept)."""
        while True:
            try:
                data = os.pread(r.fd, self._max_batch, r.read_pos)
            except OSError as e:
                self.stats.errors += 1
                self._os_problem(r.name, e)
                raise _ReadFailed() from None
            if not data:
                return None
            r.read_pos += len(data)
            self.stats.bytes_read += len(data)
            if r.skip_to_newline:
                nl = data.find(b"\n")
                if nl < 0:
                    r.offset = r.read_pos
                    continue
                r.skip_to_newline = False
                data = data[nl + 1 :]
                r.offset = r.read_pos - len(data)
            first_line_at = r.offset
            buf = r.partial + data if r.partial else data
            cut = buf.rfind(b"\n")
            if cut < 0:
                if len(buf) <= self._max_line:
                    r.partial = buf
                    continue
                lines, r.partial = [buf], b""  # no "\n" in sight: not an audit line, but do not hoard it
                self.stats.oversized_lines += 1
                self._log.warning("%s: %d bytes without a newline near offset %d, delivered as one line",
                                  r.name, len(buf), r.offset)
            else:
                lines = buf.split(b"\n")  # the last piece is the partial line: no copy of buf[:cut]
                r.partial = lines.pop()
            r.offset = r.read_pos - len(r.partial)
            self.stats.lines += len(lines)
            pos = r.position()
            start = Position(pos.dev, pos.inode, pos.fingerprint, first_line_at)
            return Batch(lines=lines, position=pos, path=r.name, start=start)

    def _finish_rotated(self, r: _Reader) -> Optional[Batch]:
        """r (not the anchor) is at EOF: deliver a final unterminated fragment, close it."""
        batch = None
        if r.partial:
            start = r.position()
            line, r.partial = r.partial, b""
            r.offset = r.read_pos
            self.stats.lines += 1
            self.stats.unterminated_lines += 1
            self._log.warning("%s ended without a newline (%d bytes); its last line is delivered as is",
                              r.name, len(line))
            batch = Batch(lines=[line], position=r.position(), path=r.name, start=start)
        r.close()
        self._chain.pop(0)
        self.stats.files_caught_up += 1
        return batch

    def _step(self) -> Optional[Batch]:
        while True:
            if not self._chain:
                self._start_chain()
                if not self._chain:
                    return None
            r = self._chain[0]
            try:
                batch = self._read_lines(r)
            except _ReadFailed:
                return None  # status says why; retried next call
            if batch is not None:
                return batch
            if len(self._chain) > 1:
                batch = self._finish_rotated(r)
                if batch is not None:
                    return batch
                continue
            # at EOF: only a rotation can give more to read now; truncation was checked before reading and
            # is checked again at the next call (one look per call, not two)
            if not self._check_path(r, truncation=False):
                return None

    def _check_path(self, r: _Reader, truncation: bool = True) -> bool:
        """The anchor r is at EOF: has `path` moved on?  True if there is more to read now."""
        try:
            st = os.lstat(self.path)
        except OSError as e:
            self._os_problem(self.path, e)
            return False
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISLNK(st.st_mode):
                self._os_problem(self.path, OSError(getattr(os, "ELOOP", 40), "symbolic link"))
            else:
                self._set_status(f"waiting: {self.path} is not a regular file", "notreg")
            return False
        if (st.st_dev, st.st_ino) == r.identity():
            self._following()
            return self._check_truncation(r) if truncation else False
        return self._rotate(r)

    def _rotate(self, old: _Reader) -> bool:
        try:
            new = self._open(self.path)
        except OSError as e:
            self._os_problem(self.path, e)
            return False
        if new.identity() == old.identity():  # renamed back and forth between lstat and open
            new.close()
            return False
        rotated = self._open_rotated()
        ids = [r.identity() for r in rotated]
        if old.identity() in ids:
            k = ids.index(old.identity())
            old.name = rotated[k].name
            newer = rotated[k + 1 :]
            for r in rotated[: k + 1]:
                r.close()
        else:
            # deleted (num_logs reached) or moved elsewhere: what was written after it is newer
            try:
                old_mtime = os.fstat(old.fd).st_mtime_ns
            except OSError:
                old_mtime = 0
            newer = []
            for r in rotated:
                try:
                    keep = os.fstat(r.fd).st_mtime_ns >= old_mtime  # same clock tick: re-read, not lose
                except OSError:
                    keep = False
                if keep and r.identity() != new.identity():
                    newer.append(r)
                else:
                    r.close()
            self._log.warning("%s was rotated away and is no longer among its rotated names; reading the "
                              "%d rotated file(s) written after it", self.path, len(newer))
        newer = [r for r in newer if r.identity() != new.identity()]
        self.stats.rotations += 1 + len(newer)
        self._log.info("%s rotated (%d time(s) since last look): draining %s, then %s",
                       self.path, 1 + len(newer), old.name, ", ".join([r.name for r in newer] + [self.path]))
        self._chain.extend(newer)
        self._chain.append(new)
        self._following()
        return True
