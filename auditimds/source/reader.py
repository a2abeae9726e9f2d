"""Read audit logs (plain or gzip) as batches of complete lines, in bounded memory.

A batch is the list of lines in one read of `chunk_size` bytes; a line cut by the chunk boundary is kept
and completed by the next read.  At end of file a final line without newline is returned too (a finished
log, e.g. one copied off a host, may lack it); the live tailer (source/tail.py) never does that.
"""

from __future__ import annotations

import gzip
import io
import os
from typing import BinaryIO, Iterator, List

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CHUNK = 1 << 20


class LogOpenError(Exception):
    """A log file cannot be opened or read; the message is meant for the user."""


def open_log(path: str) -> BinaryIO:
    """Open `path` for reading, transparently decompressing gzip (by magic bytes, not by name)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - returned to the caller
    except FileNotFoundError:
        raise LogOpenError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LogOpenError(f"{path}: is a directory, not a log file") from None
    except PermissionError:
        raise LogOpenError(
            f"{path}: permission denied (run as root, as a member of auditd's log_group, "
            "or with CAP_DAC_READ_SEARCH)"
        ) from None
    except OSError as e:
        raise LogOpenError(f"{path}: {e.strerror or e}") from None
    try:
        magic = f.read(2)
        f.seek(0)
    except OSError as e:
        f.close()
        raise LogOpenError(f"{path}: {e.strerror or e}") from None
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


def read_batches(f: BinaryIO, chunk_size: int = DEFAULT_CHUNK) -> Iterator[List[bytes]]:
    """Yield lists of lines (without b"\\n").  The last partial line is yielded at EOF."""
    tail = b""
    read = f.read
    while True:
        try:
            chunk = read(chunk_size)
        except (OSError, EOFError, gzip.BadGzipFile) as e:  # corrupt/truncated .gz
            raise LogOpenError(f"read error: {e}") from None
        if not chunk:
            break
        if tail:
            chunk = tail + chunk
        cut = chunk.rfind(b"\n")
        if cut < 0:
            tail = chunk
            continue
        tail = chunk[cut + 1 :]
        yield chunk[:cut].split(b"\n")
    if tail:
        yield [tail]


def file_size(f: BinaryIO) -> int:
    """Size of the underlying file (compressed size for gzip), or 0 when unknown."""
    raw = getattr(f, "fileobj", f)
    try:
        return os.fstat(raw.fileno()).st_size
    except (OSError, AttributeError, io.UnsupportedOperation):
        return 0


def raw_position(f: BinaryIO) -> int:
    """Bytes consumed from the underlying file (compressed bytes for gzip), for progress display."""
    raw = getattr(f, "fileobj", f)
    try:
        return raw.tell()
    except (OSError, AttributeError, ValueError):
        return 0
