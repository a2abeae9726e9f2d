"""Read audit logs (plain or gzip) as batches of complete lines, in bounded memory.

Any readable file works, seekable or not: a regular file, `-` (standard input), a FIFO, `/dev/stdin`, a
process substitution.  Gzip is recognised by its magic bytes, peeked at without seeking.

A batch is the list of lines in one read of `chunk_size` bytes; a line cut by the chunk boundary is kept
and completed by the next read.  At end of file a final line without newline is returned too (a finished
log, e.g. one copied off a host, may lack it); the live tailer (source/tail.py) never does that.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
from typing import BinaryIO, Iterator, List, Optional, Tuple, Union, cast

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CHUNK = 1 << 20
STDIN = "-"


class LogOpenError(Exception):
    """A log file cannot be opened or read; the message is meant for the user."""


class _Prepended(io.RawIOBase):
    """A raw stream that gives `head`, then the rest of `rest`: puts back bytes read from a non-seekable stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    # the base class takes any writable buffer (typeshed's WriteableBuffer, not importable at run time); the
    # buffers io hands a raw stream are bytearrays and memoryviews, whose len and slicing this uses
    def readinto(self, b: "bytearray | memoryview") -> int:  # type: ignore[override]  # narrower buffer type, see above
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        read1 = getattr(self._rest, "read1", self._rest.read)
        data = read1(len(b))
        b[: len(data)] = data
        return len(data)

    def fileno(self) -> int:
        return self._rest.fileno()

    def close(self) -> None:
        try:
            self._rest.close()
        finally:
            super().close()


def _is_seekable(f: BinaryIO) -> bool:
    raw = getattr(f, "fileobj", f)  # a GzipFile says it is seekable even over a pipe: ask its file
    try:
        return bool(raw.seekable())
    except (OSError, ValueError, AttributeError):
        return False


def sniff(f: BinaryIO, n: int) -> Tuple[bytes, BinaryIO]:
    """The first `n` bytes of `f` (fewer at end of file) and a stream that still starts with them.

    A buffered reader is peeked at; a pipe that delivers fewer bytes than asked is read and the bytes put back."""
    peek = getattr(f, "peek", None)
    if peek is not None:
        head = peek(n)[:n]
        if len(head) >= n or not head:
            return head, f
    head = _read_upto(f, n)
    return head, io.BufferedReader(_Prepended(head, f))


def _read_upto(f: BinaryIO, n: int) -> bytes:
    """`n` bytes, fewer only at end of file (a pipe or a GzipFile may give less than asked per read)."""
    head = b""
    while len(head) < n:
        chunk = f.read(n - len(head))
        if not chunk:
            break
        head += chunk
    return head


def read_head(f: BinaryIO, n: int) -> Tuple[bytes, BinaryIO]:
    """Up to `n` bytes from the start of `f` and a stream to read it all from (for seekable files `f` itself,
    rewound; otherwise the bytes are put back in front of the rest).  Raises LogOpenError on a read error."""
    try:
        if _is_seekable(f):
            pos = f.tell()
            head = f.read(n)
            f.seek(pos)
            return head, f
        head = _read_upto(f, n)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise LogOpenError(f"read error: {e}") from None
    return head, io.BufferedReader(_Prepended(head, f))


def _open_raw(path: str, stdin: Optional[BinaryIO]) -> BinaryIO:
    if path == STDIN:
        return stdin if stdin is not None else sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 - returned to the caller
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


def open_log(path: str, stdin: Optional[BinaryIO] = None) -> BinaryIO:
    """Open `path` for reading, transparently decompressing gzip (by magic bytes, not by name).

    `-` is standard input (`stdin`, default sys.stdin's binary buffer).  Nothing is seeked: pipes, FIFOs,
    /dev/stdin and process substitutions work like regular files."""
    f = _open_raw(path, stdin)
    try:
        magic, f = sniff(f, len(GZIP_MAGIC))
    except (OSError, ValueError) as e:
        f.close()
        raise LogOpenError(f"{path}: {getattr(e, 'strerror', None) or e}") from None
    if magic == GZIP_MAGIC:
        # a GzipFile reads like a BinaryIO but is not one to the type checker (typing.BinaryIO is nominal)
        return cast(BinaryIO, gzip.GzipFile(fileobj=f, mode="rb"))
    return f


def read_chunks(f: BinaryIO, chunk_size: int = DEFAULT_CHUNK) -> Iterator[Union[bytes, memoryview]]:
    """Yield the file as pieces of whole lines, separated by b"\\n" and without the last one's: per read of
    `chunk_size` bytes, the line the previous read cut (bytes) and a zero-copy view of the read's whole
    lines.  The last partial line is yielded at EOF.  Splitting a piece at b"\\n" gives its lines; the cores
    take the pieces as they are (core.py), which spares copying the file twice more."""
    tail = b""
    read = f.read
    while True:
        try:
            chunk = read(chunk_size)
        except (OSError, EOFError, gzip.BadGzipFile) as e:  # corrupt/truncated .gz
            raise LogOpenError(f"read error: {e}") from None
        if not chunk:
            break
        cut = chunk.rfind(b"\n")
        if cut < 0:
            tail += chunk
            continue
        start = 0
        if tail:
            start = chunk.find(b"\n") + 1
            yield tail + chunk[: start - 1]
        if start <= cut:
            yield memoryview(chunk)[start:cut]
        tail = chunk[cut + 1 :]
    if tail:
        yield tail


def read_batches(f: BinaryIO, chunk_size: int = DEFAULT_CHUNK) -> Iterator[List[bytes]]:
    """Yield lists of lines (without b"\\n").  The last partial line is yielded at EOF."""
    for piece in read_chunks(f, chunk_size):
        yield bytes(piece).split(b"\n")


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
