"""alerts/sinks.py: the JSON-lines sink of `scan` and the line outputs of the agent, on real file descriptors
(regular files, pipes, /dev/full), not mocks."""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import stat
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from auditimds.alerts.sinks import (
    ALERTS_FILE_MODE,
    AlertsFileError,
    FdOutput,
    JsonLinesSink,
    StreamOutput,
    dumps,
    open_alerts_file,
    stdout_output,
)


@pytest.fixture
def pipe() -> Iterator[Tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def _drain(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


# --- dumps / JsonLinesSink -------------------------------------------------------------------------------

def test_dumps_is_compact_and_keeps_non_ascii() -> None:
    doc = {"process": {"args": ["curl", "http://169.254.169.254/", "é"]}, "n": 1}
    s = dumps(doc)
    assert s == '{"process":{"args":["curl","http://169.254.169.254/","é"]},"n":1}'
    assert "\n" not in dumps({"cmd": "a\nb"})  # a newline in a value is escaped: one alert, one line
    assert json.loads(s) == doc


class _CountingStream(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_json_lines_sink_writes_one_line_per_alert_and_counts() -> None:
    out = _CountingStream()
    sink = JsonLinesSink(out)
    sink({"a": 1})
    sink({"b": "x"})
    assert out.getvalue() == '{"a":1}\n{"b":"x"}\n'
    assert sink.count == 2
    assert out.flushes == 2  # each alert is out before the next event is read


def test_json_lines_sink_without_flush_leaves_flushing_to_the_stream() -> None:
    out = _CountingStream()
    sink = JsonLinesSink(out, flush=False)
    sink({"a": 1})
    assert out.flushes == 0 and out.getvalue() == '{"a":1}\n' and sink.count == 1


def test_json_lines_sink_error_propagates_and_is_not_counted() -> None:
    out = io.StringIO()
    out.close()
    sink = JsonLinesSink(out)
    with pytest.raises(ValueError):
        sink({"a": 1})
    assert sink.count == 0


# --- FdOutput -----------------------------------------------------------------------------------------------

def test_fd_output_writes_whole_lines_to_a_file(tmp_path: Path) -> None:
    p = tmp_path / "alerts.jsonl"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    out = FdOutput(fd, str(p), owned=True)
    out.write_line('{"a":1}\n')
    out.write_line('{"b":"\udcff"}\n')  # a surrogate-escaped byte from the log goes out as that byte
    assert p.read_bytes() == b'{"a":1}\n{"b":"\xff"}\n'
    m = out.mark()
    assert m is not None and m.size == p.stat().st_size and m.ino == p.stat().st_ino
    assert m.path == os.path.realpath(p)
    out.close()
    assert out.fd == -1 and out.mark() is None
    with pytest.raises(OSError):
        os.fstat(fd)  # owned: closed
    out.close()  # twice is harmless


def test_fd_output_not_owned_leaves_the_fd_open(pipe: Tuple[int, int]) -> None:
    r, w = pipe
    out = FdOutput(w, "pipe")
    out.write_line("x\n")
    out.close()
    os.fstat(w)  # still open
    assert os.read(r, 10) == b"x\n"
    assert out.mark() is None  # a pipe has no mark for the checkpoint


def test_fd_output_durable_only_for_a_regular_file(tmp_path: Path, pipe: Tuple[int, int]) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert FdOutput(fd, "f", durable=True).durable is True
        assert FdOutput(fd, "f", durable=False).durable is False
    finally:
        os.close(fd)
    assert FdOutput(pipe[1], "pipe", durable=True).durable is False


def test_fd_output_on_a_full_disk_raises_and_leaves_no_partial_line() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    fd = os.open("/dev/full", os.O_WRONLY)
    out = FdOutput(fd, "/dev/full", owned=True)
    try:
        with pytest.raises(OSError) as e:
            out.write_line("x\n")
        assert e.value.errno == errno.ENOSPC
        assert out._partial is False  # nothing was written, so the next line needs no newline first
        assert out.mark() is None
    finally:
        out.close()


def test_fd_output_a_line_cut_short_is_ended_before_the_next_one(pipe: Tuple[int, int]) -> None:
    r, w = pipe
    fl = fcntl.fcntl(w, fcntl.F_GETFL)
    fcntl.fcntl(w, fcntl.F_SETFL, fl | os.O_NONBLOCK)
    fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_NONBLOCK)
    out = FdOutput(w, "pipe")
    big = "A" * (4 << 20) + "\n"  # larger than any pipe buffer: the write stops part way
    with pytest.raises(BlockingIOError):
        out.write_line(big)
    first = _drain(r)
    assert 0 < len(first) < len(big) and not first.endswith(b"\n")
    out.write_line('{"next":1}\n')
    second = _drain(r)
    # the broken line is ended, the next alert stands alone on its own line
    assert second == b'\n{"next":1}\n'
    out.write_line("z\n")
    assert _drain(r) == b"z\n"  # once ended, no extra newline


# --- StreamOutput / stdout_output -------------------------------------------------------------------------

def test_stream_output_writes_and_flushes() -> None:
    s = _CountingStream()
    out = StreamOutput(s)
    out.write_line("a\n")
    assert s.getvalue() == "a\n" and s.flushes == 1 and out.name == "stdout" and out.mark() is None


def test_stdout_output_uses_the_fd_of_a_real_stream_after_flushing_it(tmp_path: Path) -> None:
    p = tmp_path / "out"
    with open(p, "w") as f:
        f.write("printed before\n")  # still in the Python buffer
        out = stdout_output(f)
        assert isinstance(out, FdOutput) and out.fd == f.fileno() and not out.owned
        out.write_line("alert\n")
    assert p.read_text() == "printed before\nalert\n"  # the earlier text went first


def test_stdout_output_of_a_stream_without_fd_is_a_stream_output() -> None:
    s = io.StringIO()
    out = stdout_output(s)
    assert isinstance(out, StreamOutput)
    out.write_line("x\n")
    assert s.getvalue() == "x\n"


def test_stdout_output_without_stdout_is_fd_1() -> None:
    out = stdout_output(None)  # type: ignore[arg-type]  # sys.stdout is None under pythonw / closed fds
    assert isinstance(out, FdOutput) and out.fd == 1 and not out.owned


# --- open_alerts_file -------------------------------------------------------------------------------------

def test_open_alerts_file_creates_0640_appends_and_is_cloexec(tmp_path: Path) -> None:
    p = tmp_path / "alerts.jsonl"
    old = os.umask(0o022)
    try:
        out = open_alerts_file(str(p))
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(p.stat().st_mode) == ALERTS_FILE_MODE == 0o640
        assert fcntl.fcntl(out.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert out.owned and out.durable
        out.write_line("1\n")
    finally:
        out.close()
    out2 = open_alerts_file(str(p), durable=False)
    try:
        assert not out2.durable
        out2.write_line("2\n")
    finally:
        out2.close()
    assert p.read_text() == "1\n2\n"  # appended, never truncated


def test_open_alerts_file_respects_a_stricter_umask(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    old = os.umask(0o077)
    try:
        open_alerts_file(str(p)).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_open_alerts_file_keeps_the_mode_of_an_existing_file(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_text("old\n")
    p.chmod(0o600)
    open_alerts_file(str(p)).close()
    assert stat.S_IMODE(p.stat().st_mode) == 0o600 and p.read_text() == "old\n"


def test_open_alerts_file_does_not_create_a_missing_directory(tmp_path: Path) -> None:
    p = tmp_path / "nope" / "alerts.jsonl"
    with pytest.raises(AlertsFileError) as e:
        open_alerts_file(str(p))
    msg = str(e.value)
    assert "does not exist" in msg and str(p.parent) in msg and "--alerts-jsonl" in msg
    assert not p.parent.exists()


def test_open_alerts_file_parent_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(AlertsFileError, match="is not a directory"):
        open_alerts_file(str(f / "alerts.jsonl"))


def test_open_alerts_file_that_is_a_directory_says_why(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    with pytest.raises(AlertsFileError) as e:
        open_alerts_file(str(d))
    assert str(d) in str(e.value) and "Is a directory" in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__  # one line for the user, no traceback chain
