"""Where alerts go: JSON lines on a stream or in a file.

`scan` writes through `JsonLinesSink` (a stream; an error ends the command).  The live agent writes through
`LineOutput`s (`FdOutput` for a file descriptor or the alerts file, `StreamOutput` for a text stream), whose
`write_line` raises OSError and keeps nothing buffered after a failure: the agent counts the error, reports it
and goes on, and a later write neither repeats nor glues onto a failed one.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Dict, Optional, TextIO

from .ledger import FileMark, mark_of

ALERTS_FILE_MODE = 0o640  # alerts hold command lines: not for every user of the host


def dumps(doc: Dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


class JsonLinesSink:
    def __init__(self, stream: TextIO, flush: bool = True) -> None:
        self.stream = stream
        self.flush = flush
        self.count = 0

    def __call__(self, doc: Dict[str, Any]) -> None:
        self.stream.write(dumps(doc) + "\n")
        if self.flush:
            self.stream.flush()
        self.count += 1


class LineOutput:
    """One destination of alert lines.  `write_line` raises OSError (or ValueError for a closed stream)."""

    name = "output"

    def write_line(self, line: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def mark(self) -> Optional[FileMark]:
        """Where a file output ends now, for the checkpoint; None for a stream."""
        return None

    def close(self) -> None:
        pass


class FdOutput(LineOutput):
    """Unbuffered writes of whole lines to a file descriptor (os.write until done).

    A line cut short by an error (a full disk) is ended by a newline before the next line, so one failure
    costs at most one broken line in the file, never a line glued to the next one.

    `durable`: each line is on disk (fdatasync) before `write_line` returns, for a regular file: the agent
    records an alert as written only then, so a power loss cannot take back a line the checkpoint counts."""

    def __init__(self, fd: int, name: str, owned: bool = False, durable: bool = False) -> None:
        self.fd = fd
        self.name = name
        self.owned = owned
        self._partial = False
        self.durable = durable and _is_regular(fd)

    def write_line(self, line: str) -> None:
        data = line.encode("utf-8", "surrogateescape")
        view = memoryview((b"\n" if self._partial else b"") + data)
        written = 0
        try:
            while view:
                n = os.write(self.fd, view)
                written += n
                view = view[n:]
        except OSError:
            if written:
                self._partial = True
            raise
        self._partial = False
        if self.durable:
            os.fdatasync(self.fd)

    def mark(self) -> Optional[FileMark]:
        """Where the file ends now (None when it is not a regular file)."""
        return mark_of(self.fd, self.name) if self.fd >= 0 else None

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1


class StreamOutput(LineOutput):
    """A text stream (tests pass io.StringIO)."""

    def __init__(self, stream: TextIO, name: str = "stdout") -> None:
        self.stream = stream
        self.name = name

    def write_line(self, line: str) -> None:
        self.stream.write(line)
        self.stream.flush()


def stdout_output(stream: TextIO) -> LineOutput:
    """The process's standard output as a LineOutput: its file descriptor when it has one (so that a failed
    write leaves nothing in a Python buffer to fail again), else the stream itself."""
    if stream is None:  # no sys.stdout at all: fd 1, whose errors are then counted like any other
        return FdOutput(1, "stdout")
    try:
        fd = stream.fileno()
    except (AttributeError, ValueError, OSError):
        return StreamOutput(stream)
    try:
        stream.flush()  # whatever was printed before goes first
    except (OSError, ValueError):
        pass
    return FdOutput(fd, "stdout")


def _is_regular(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


class AlertsFileError(Exception):
    """The alerts file cannot be opened; one line for the user."""


def open_alerts_file(path: str, durable: bool = True) -> FdOutput:
    """Open `path` for appending, creating it with mode 0640 (less with a stricter umask); `durable`: see
    FdOutput.

    Its directory must exist: creating directories (as root, world-readable) where a typo points is not ours
    to do.  Raises AlertsFileError."""
    p = Path(path)
    parent = p.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise AlertsFileError(f"alerts file {path}: the directory {parent} {what} (create it, or choose another "
                              "[output] jsonl / --alerts-jsonl)")
    try:
        fd = os.open(str(p), os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), ALERTS_FILE_MODE)
    except OSError as e:
        raise AlertsFileError(f"alerts file {path}: {e.strerror or e}") from None
    return FdOutput(fd, str(path), owned=True, durable=durable)
