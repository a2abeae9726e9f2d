"""The alerts file read back after a crash (alerts/ledger.py): ids after the checkpoint's mark, rotations,
truncation, torn last lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from auditimds.alerts.ledger import (
    MAX_RECONCILE_BYTES,
    AlertLedger,
    FileMark,
    reconcile_alerts_file,
)
from auditimds.alerts.sinks import open_alerts_file


def line(aid: str, pad: int = 0) -> bytes:
    return (json.dumps({"@timestamp": "2026-12-04T10:00:00.000Z", "alert": {"id": aid}, "pad": "x" * pad})
            + "\n").encode()


def write(path: Path, *aids: str) -> None:
    with open(path, "ab") as f:
        for a in aids:
            f.write(line(a))


def mark(path: Path) -> FileMark:
    out = open_alerts_file(str(path))
    try:
        m = out.mark()
    finally:
        out.close()
    assert m is not None
    return m


def test_only_the_lines_after_the_mark_are_read(tmp_path):
    f = tmp_path / "alerts.jsonl"
    write(f, "a", "b")
    m = mark(f)
    assert m.size == f.stat().st_size and m.path == os.path.realpath(f)
    write(f, "c", "d")
    got = reconcile_alerts_file(str(f), m)
    assert got.ids == ["c", "d"] and got.torn == b"" and got.bad_lines == 0


def test_the_mark_round_trips_and_garbage_is_no_mark():
    m = FileMark("/x/alerts.jsonl", 1, 2, 3)
    assert FileMark.from_dict(m.to_dict()) == m
    for bad in (None, [], {"path": "/x"}, {"path": "/x", "dev": 1, "ino": 2, "size": -1},
                {"path": "/x", "dev": 1, "ino": True, "size": 3}, {"path": 5, "dev": 1, "ino": 2, "size": 3}):
        assert FileMark.from_dict(bad) is None


def test_a_torn_last_line_is_cut_off_and_never_parsed(tmp_path):
    f = tmp_path / "alerts.jsonl"
    write(f, "a")
    m = mark(f)
    write(f, "b")
    whole = line("c")
    torn = whole[: whole.index(b"pad")]  # holds '"alert": {"id": "c"' already: a half-parser would count it
    assert b'"c"' in torn
    with open(f, "ab") as fh:
        fh.write(torn)
    got = reconcile_alerts_file(str(f), m)
    assert got.ids == ["b"] and got.torn == torn
    assert f.read_bytes() == line("a") + line("b")  # the file ends at its last whole line again


def test_a_file_renamed_by_logrotate_is_found_by_its_inode(tmp_path):
    f = tmp_path / "alerts.jsonl"
    write(f, "a")
    m = mark(f)
    write(f, "b")
    os.rename(f, tmp_path / "alerts.jsonl.1")  # logrotate `create`: a new, empty file takes the name
    write(f, "c")
    assert reconcile_alerts_file(str(f), m).ids == ["b", "c"]
    f.unlink()  # and with no new file yet
    assert reconcile_alerts_file(str(f), m).ids == ["b"]


def test_a_file_truncated_below_its_mark_is_read_from_its_start(tmp_path):
    f = tmp_path / "alerts.jsonl"
    write(f, "a", "b", "c")
    m = mark(f)
    with open(f, "r+b") as fh:  # logrotate `copytruncate`
        fh.truncate(0)
    write(f, "d")
    assert reconcile_alerts_file(str(f), m).ids == ["d"]


def test_without_a_mark_the_tail_of_the_file_is_read(tmp_path, monkeypatch):
    import auditimds.alerts.ledger as ledger

    f = tmp_path / "alerts.jsonl"
    write(f, "a", "b", "c")
    assert reconcile_alerts_file(str(f), None).ids == ["a", "b", "c"]
    monkeypatch.setattr(ledger, "MAX_RECONCILE_BYTES", len(line("c")) + 5)  # begins inside "b"'s line
    assert ledger.reconcile_alerts_file(str(f), None).ids == ["c"]
    assert MAX_RECONCILE_BYTES >= 1 << 20


def test_lines_that_are_not_alerts_are_counted_not_trusted(tmp_path):
    f = tmp_path / "alerts.jsonl"
    f.write_bytes(b"")
    m = mark(f)
    with open(f, "ab") as fh:
        fh.write(b'{"alert": {"id": 7}}\n[1]\nnot json\n\xff\xfe\n\n' + line("ok"))
    got = reconcile_alerts_file(str(f), m)
    assert got.ids == ["ok"] and got.bad_lines == 4


def test_the_mark_of_another_file_reads_both(tmp_path):
    """A reload moved [output] jsonl: the old file after its mark, the new one from its start."""
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    write(old, "a")
    m = mark(old)
    write(old, "b")
    write(new, "c")
    assert reconcile_alerts_file(str(new), m).ids == ["b", "c"]


def test_nothing_to_read(tmp_path):
    assert reconcile_alerts_file(str(tmp_path / "missing.jsonl"), None).ids == []
    if os.path.exists("/dev/full"):
        assert reconcile_alerts_file("/dev/full", None).ids == []
        out = open_alerts_file("/dev/full")
        assert out.mark() is None and not out.durable
        out.close()


def test_a_path_that_cannot_be_read_back_raises(tmp_path):
    (tmp_path / "alerts.jsonl").mkdir()  # as root too (permissions would not stop root)
    with pytest.raises(IsADirectoryError):
        reconcile_alerts_file(str(tmp_path / "alerts.jsonl"), None)


def test_the_alerts_file_is_durable_line_by_line(tmp_path, monkeypatch):
    calls = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real(fd)))
    out = open_alerts_file(str(tmp_path / "alerts.jsonl"))
    out.write_line(line("a").decode())
    out.write_line(line("b").decode())
    assert calls == [out.fd, out.fd]
    out.close()
    lazy = open_alerts_file(str(tmp_path / "lazy.jsonl"), durable=False)
    lazy.write_line(line("a").decode())
    assert len(calls) == 2
    lazy.close()


def test_ledger_bounds():
    led = AlertLedger(max_ids=2, keep_ms=10)
    led.add("a", 0)
    led.add("b", 5)
    led.add("c", 20)
    assert "a" not in led and len(led) == 2
    led.prune(20)
    assert "b" not in led and "c" in led
    led2 = AlertLedger()
    led2.load(led.to_list() + [["bad"], [1, 2], "x"])
    assert led2.to_list() == [["c", 20]]
