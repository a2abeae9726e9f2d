from __future__ import annotations

import gzip
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditimds.source.reader import LogOpenError, open_log, read_batches, read_chunks


def flat(f, chunk):
    return [ln for batch in read_batches(f, chunk) for ln in batch]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_lines_cut_at_any_chunk_boundary_are_rebuilt(chunk):
    data = b"line one\nline two is longer\n\nlast line without newline"
    assert flat(io.BytesIO(data), chunk) == [b"line one", b"line two is longer", b"", b"last line without newline"]


def test_trailing_newline_gives_no_empty_tail():
    assert flat(io.BytesIO(b"a\nb\n"), 3) == [b"a", b"b"]


@given(st.lists(st.sampled_from([b"", b"x", b"type=EOE msg=audit(1.000:1): ", b"y" * 50]), max_size=30),
       st.booleans(), st.integers(1, 80))
def test_chunks_are_whole_lines_that_split_like_the_file(lines, newline_at_end, chunk):
    data = b"\n".join(lines) + (b"\n" if newline_at_end and lines else b"")
    pieces = list(read_chunks(io.BytesIO(data), chunk))
    got = [ln for p in pieces for ln in bytes(p).split(b"\n")]
    expected = data.split(b"\n")
    if expected and expected[-1] == b"" and data.endswith(b"\n"):
        expected.pop()  # a final newline ends the last line, it does not start an empty one
    assert got == (expected if data else [])
    assert all(isinstance(p, (bytes, memoryview)) for p in pieces)


def test_gzip_detected_by_magic_not_name(tmp_path):
    p = tmp_path / "audit.log.1"  # no .gz suffix
    p.write_bytes(gzip.compress(b"x\ny\n"))
    with open_log(str(p)) as f:
        assert flat(f, 4) == [b"x", b"y"]


def test_errors_are_one_line_messages(tmp_path):
    with pytest.raises(LogOpenError, match="no such file"):
        open_log(str(tmp_path / "missing.log"))
    with pytest.raises(LogOpenError, match="is a directory"):
        open_log(str(tmp_path))
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"a\n" * 1000)[:30])
    with pytest.raises(LogOpenError, match="read error"):
        with open_log(str(bad)) as f:
            flat(f, 1 << 16)


def test_permission_error_names_the_fix(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open

    def deny(path, *a, **k):
        if str(path).endswith("secret.log"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(LogOpenError, match="log_group"):
        open_log(str(tmp_path / "secret.log"))


# -- non-seekable input: pipes, FIFOs, standard input ------------------------------------------------------

PLAIN = b"type=SYSCALL msg=audit(1.000:1): x\ntype=EOE msg=audit(1.000:1): \n" * 2000


def _writer(fd_or_path, data: bytes, first: int = 0, delay: float = 0.0):
    """A thread writing `data` into a pipe fd (or opening a FIFO path) — `first` bytes, a pause, the rest."""
    import os
    import threading
    import time

    def run():
        fd = os.open(fd_or_path, os.O_WRONLY) if isinstance(fd_or_path, str) else fd_or_path
        try:
            if first:
                os.write(fd, data[:first])
                time.sleep(delay)
            view = memoryview(data)[first:]
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("compress", [False, True])
def test_stdin_dash_from_a_real_pipe(compress):
    import os

    data = gzip.compress(PLAIN) if compress else PLAIN
    r, w = os.pipe()
    t = _writer(w, data)
    with open(r, "rb") as stdin, open_log("-", stdin=stdin) as f:
        assert flat(f, 4096) == PLAIN.split(b"\n")[:-1]
    t.join(5)


def test_gzip_magic_split_across_two_pipe_writes():
    """A writer that delivers one byte, then the rest: the magic is still recognised (no seek, nothing lost)."""
    import os

    data = gzip.compress(PLAIN)
    r, w = os.pipe()
    t = _writer(w, data, first=1, delay=0.2)
    with open(r, "rb", buffering=0) as raw, open_log("-", stdin=raw) as f:  # unbuffered: no peek
        assert flat(f, 1 << 16) == PLAIN.split(b"\n")[:-1]
    t.join(5)


@pytest.mark.parametrize("compress", [False, True])
def test_fifo_plain_or_gzip(tmp_path, compress):
    import os

    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    t = _writer(str(fifo), gzip.compress(PLAIN) if compress else PLAIN)
    with open_log(str(fifo)) as f:
        assert flat(f, 1000) == PLAIN.split(b"\n")[:-1]
    t.join(5)


@pytest.mark.parametrize("compress", [False, True])
def test_read_head_puts_the_bytes_back_on_a_pipe(compress):
    import os

    from auditimds.source.reader import read_head

    r, w = os.pipe()
    t = _writer(w, gzip.compress(PLAIN) if compress else PLAIN)
    with open(r, "rb") as stdin:
        f = open_log("-", stdin=stdin)
        head, f = read_head(f, 100)
        assert head == PLAIN[:100]
        with f:
            assert flat(f, 333) == PLAIN.split(b"\n")[:-1]
    t.join(5)


def test_read_head_rewinds_a_regular_file(tmp_path):
    from auditimds.source.reader import read_head

    p = tmp_path / "audit.log.1"
    p.write_bytes(gzip.compress(PLAIN))
    with open_log(str(p)) as f:
        head, g = read_head(f, 10)
        assert head == PLAIN[:10] and g is f
        assert flat(g, 1 << 16) == PLAIN.split(b"\n")[:-1]
