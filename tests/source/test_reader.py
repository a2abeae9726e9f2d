from __future__ import annotations

import gzip
import io

import pytest

from auditimds.source.reader import LogOpenError, open_log, read_batches


def flat(f, chunk):
    return [ln for batch in read_batches(f, chunk) for ln in batch]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_lines_cut_at_any_chunk_boundary_are_rebuilt(chunk):
    data = b"line one\nline two is longer\n\nlast line without newline"
    assert flat(io.BytesIO(data), chunk) == [b"line one", b"line two is longer", b"", b"last line without newline"]


def test_trailing_newline_gives_no_empty_tail():
    assert flat(io.BytesIO(b"a\nb\n"), 3) == [b"a", b"b"]


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
