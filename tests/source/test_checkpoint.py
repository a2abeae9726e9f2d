from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from auditimds.source import checkpoint as cp
from auditimds.source.checkpoint import STATE_VERSION, CheckpointError, load_state, save_state
from auditimds.source.tail import Position


def test_absent_state_is_none(tmp_path: Path):
    assert load_state(tmp_path / "state.json") is None


def test_roundtrip_mode_0600_and_version(tmp_path: Path):
    p = tmp_path / "sub" / "state.json"
    state = {"position": Position(1, 2, "", 0).to_dict(), "log": "/var/log/audit/audit.log"}
    save_state(p, state)
    assert load_state(p) == state
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    doc = json.loads(p.read_text())
    assert doc["version"] == STATE_VERSION and doc["state"] == state
    assert [x.name for x in p.parent.iterdir()] == ["state.json"]  # no temporary file left


def test_replace_failure_keeps_old_state_intact(tmp_path: Path, monkeypatch):
    p = tmp_path / "state.json"
    save_state(p, {"n": 1})
    before = p.read_bytes()

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cp.os, "replace", crash)
    with pytest.raises(CheckpointError) as ei:
        save_state(p, {"n": 2})
    assert str(p) in str(ei.value) and "previous state is kept" in str(ei.value)
    assert p.read_bytes() == before
    assert load_state(p) == {"n": 1}
    assert [x.name for x in tmp_path.iterdir()] == ["state.json"]


def test_write_failure_midway_keeps_old_state(tmp_path: Path, monkeypatch):
    p = tmp_path / "state.json"
    save_state(p, {"n": 1})
    real_write = os.write
    calls = {"n": 0}

    def half_write(fd, data):
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(cp.os, "write", half_write)
    with pytest.raises(CheckpointError):
        save_state(p, {"n": 2, "pad": "x" * 1000})
    monkeypatch.undo()
    assert load_state(p) == {"n": 1}


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'{"state": {}}',
                                     b'{"version": 1, "state": 3}'])
def test_corrupt_state_file_gives_one_line_message(tmp_path: Path, content: bytes):
    p = tmp_path / "state.json"
    p.write_bytes(content)
    with pytest.raises(CheckpointError) as ei:
        load_state(p)
    msg = str(ei.value)
    assert "\n" not in msg and str(p) in msg and "remove" in msg


def test_unknown_version_refused(tmp_path: Path):
    p = tmp_path / "state.json"
    p.write_text(json.dumps({"version": 99, "state": {}}))
    with pytest.raises(CheckpointError) as ei:
        load_state(p)
    assert "version 99" in str(ei.value) and f"version {STATE_VERSION}" in str(ei.value)


def test_unreadable_state_file(tmp_path: Path, monkeypatch):
    p = tmp_path / "state.json"
    save_state(p, {})

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(CheckpointError) as ei:
        load_state(p)
    assert "Permission denied" in str(ei.value) and str(p) in str(ei.value)


def test_directory_instead_of_file(tmp_path: Path):
    (tmp_path / "state.json").mkdir()
    with pytest.raises(CheckpointError):
        load_state(tmp_path / "state.json")
