from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import List, Optional

import pytest

from auditimds.source import tail as tail_mod
from auditimds.source.tail import Batch, LogFollower, Position, fingerprint_of


class AuditdLog:
    """Writes like auditd: O_APPEND fd kept open; rotation = close, shift names, rename, create."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: Optional[int] = None
        self.open()

    def open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, data: bytes) -> None:
        assert self.fd is not None
        os.write(self.fd, data)

    def lines(self, *lines: bytes) -> None:
        self.write(b"".join(ln + b"\n" for ln in lines))

    def rotate(self, num_logs: int = 5, *, keep_old_fd: bool = False) -> Optional[int]:
        old = self.fd
        if not keep_old_fd:
            assert old is not None
            os.close(old)
            old = None
        for k in range(num_logs - 2, 0, -1):
            src = Path(f"{self.path}.{k}")
            if src.exists():
                src.rename(f"{self.path}.{k + 1}")
        self.path.rename(f"{self.path}.1")
        self.open()
        return old

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@pytest.fixture
def log(tmp_path: Path):
    lg = AuditdLog(tmp_path / "audit.log")
    yield lg
    lg.close()


def read_lines(f: LogFollower) -> List[bytes]:
    return [ln for b in f.read_available() for ln in b.lines]


def L(i: int) -> bytes:
    return b"type=SYSCALL msg=audit(1700000000.%03d:%d): line %d" % (i, i, i)


# ---------------------------------------------------------------- appends and partial lines

def test_line_written_in_three_pieces_comes_out_once_whole(log):
    f = LogFollower(str(log.path), start="beginning")
    assert read_lines(f) == []
    log.write(b"type=SYSCALL ")
    assert read_lines(f) == []
    log.write(b"msg=audit(1:2): ")
    assert read_lines(f) == []
    log.write(b"a=b\nnext")
    assert read_lines(f) == [b"type=SYSCALL msg=audit(1:2): a=b"]
    assert read_lines(f) == []
    log.write(b" line\n")
    assert read_lines(f) == [b"next line"]
    assert f.status == "following"
    assert f.stats.lines == 2


def test_lines_longer_than_a_read_and_empty_lines(log):
    big = b"type=EXECVE msg=audit(1:1): " + b"a" * 20000
    log.lines(L(1), big, b"", L(2))
    f = LogFollower(str(log.path), start="beginning", max_batch_bytes=4096)
    batches = f.read_available()
    assert len(batches) > 1
    assert [ln for b in batches for ln in b.lines] == [L(1), big, b"", L(2)]
    assert batches[-1].position.offset == log.path.stat().st_size
    assert batches[0].start is not None and batches[0].start.offset == 0


def test_iter_available_can_stop_early_without_loss(log):
    log.lines(*[L(i) for i in range(10)])
    f = LogFollower(str(log.path), start="beginning", max_batch_bytes=8)
    it = f.iter_available()
    first = next(it)
    rest = read_lines(f)
    assert first.lines + rest == [L(i) for i in range(10)]
    assert len(f.read_available(max_batches=1)) == 0


def test_memory_cap_delivers_a_newline_free_flood_as_lines(log):
    log.write(b"x" * 5000)
    f = LogFollower(str(log.path), start="beginning", max_batch_bytes=1024, max_line_bytes=2048)
    out = read_lines(f)
    # the fragment is cut once it exceeds max_line_bytes (bounded by max_line_bytes + max_batch_bytes)
    assert out == [b"x" * 3072] and f.stats.oversized_lines == 1


# ---------------------------------------------------------------- start

def test_start_end_skips_history_and_start_beginning_reads_it(log):
    log.lines(L(1), L(2))
    end = LogFollower(str(log.path), start="end")
    beg = LogFollower(str(log.path), start="beginning")
    assert read_lines(end) == []
    assert read_lines(beg) == [L(1), L(2)]
    log.lines(L(3))
    assert read_lines(end) == [L(3)]
    assert read_lines(beg) == [L(3)]


def test_start_end_while_a_line_is_being_written_delivers_that_line_whole(log):
    log.lines(L(1))
    log.write(b"half of a line")
    f = LogFollower(str(log.path), start="end")
    pos = f.position
    assert pos is not None and pos.offset == len(L(1)) + 1  # a resumable line boundary, not mid-line
    assert read_lines(f) == []
    log.write(b" rest\n")
    log.lines(L(2))
    assert read_lines(f) == [b"half of a line rest", L(2)]
    assert read_lines(LogFollower(str(log.path), position=pos)) == [b"half of a line rest", L(2)]


def test_start_end_with_no_newline_in_the_last_max_line_bytes_skips_to_the_next(log):
    log.write(b"y" * 100)
    f = LogFollower(str(log.path), start="end", max_line_bytes=10)
    log.write(b"yyy\n")
    log.lines(L(1))
    assert read_lines(f) == [L(1)]


def test_bad_start_rejected(log):
    with pytest.raises(ValueError):
        LogFollower(str(log.path), start="middle")


# ---------------------------------------------------------------- rotation

def test_rotation_mid_line_completed_in_old_file(log):
    f = LogFollower(str(log.path), start="beginning")
    log.lines(L(1))
    log.write(b"half ")
    assert read_lines(f) == [L(1)]
    old_fd = log.rotate(keep_old_fd=True)
    assert old_fd is not None
    os.write(old_fd, b"and the rest\n")  # the still-open fd finishes the line (auditd would not)
    os.close(old_fd)
    log.lines(L(2))
    batches = f.read_available()
    assert [ln for b in batches for ln in b.lines] == [L(1)[:0] + b"half and the rest", L(2)]
    assert batches[0].path == f"{log.path}.1" and batches[-1].path == str(log.path)
    assert f.stats.rotations == 1 and f.stats.files_caught_up == 1 and f.stats.unterminated_lines == 0
    assert read_lines(f) == []


def test_rotation_leaving_an_unterminated_line_delivers_it_as_is(log, caplog):
    f = LogFollower(str(log.path), start="beginning")
    log.lines(L(1))
    log.write(b"cut short")
    assert read_lines(f) == [L(1)]
    log.rotate()
    log.lines(L(2))
    with caplog.at_level(logging.WARNING):
        assert read_lines(f) == [b"cut short", L(2)]
    assert f.stats.unterminated_lines == 1
    assert "without a newline" in caplog.text


def test_rotation_after_complete_line_and_new_file_already_written(log):
    f = LogFollower(str(log.path), start="beginning")
    log.lines(L(1))
    assert read_lines(f) == [L(1)]
    log.lines(L(2))  # written before the rotation, not yet read
    log.rotate()
    log.lines(L(3), L(4))
    assert read_lines(f) == [L(2), L(3), L(4)]
    log.lines(L(5))
    assert read_lines(f) == [L(5)]
    assert f.stats.rotations == 1


@pytest.mark.parametrize("rotations", [2, 3])
def test_several_rotations_between_two_calls(log, rotations):
    f = LogFollower(str(log.path), start="beginning")
    log.lines(L(0))
    assert read_lines(f) == [L(0)]
    expected = []
    for i in range(1, rotations + 1):
        log.lines(L(i))
        expected.append(L(i))
        log.rotate()
    log.lines(L(99))
    expected.append(L(99))
    batches = f.read_available()
    assert [ln for b in batches for ln in b.lines] == expected
    assert [b.path for b in batches] == [f"{log.path}.{k}" for k in range(rotations, 0, -1)] + [str(log.path)]
    assert f.stats.rotations == rotations
    assert f.stats.files_caught_up == rotations


def test_rotation_with_old_file_deleted_reads_newer_rotated_files(log):
    f = LogFollower(str(log.path), start="beginning")
    log.lines(L(0))
    assert read_lines(f) == [L(0)]
    log.lines(L(1))
    log.rotate(num_logs=2)  # audit.log -> .1
    log.lines(L(2))
    os.unlink(f"{log.path}.1")  # num_logs=2: the next rotation would drop it; simulate
    log.rotate(num_logs=2)
    log.lines(L(3))
    # L(1) is still readable from the open fd of the deleted file
    assert read_lines(f) == [L(1), L(2), L(3)]


def test_truncation_in_place_restarts_at_zero(log, caplog):
    f = LogFollower(str(log.path), start="beginning")
    log.lines(L(1), L(2), L(3))
    assert read_lines(f) == [L(1), L(2), L(3)]
    os.truncate(log.path, 0)  # copytruncate
    log.lines(b"new")
    with caplog.at_level(logging.WARNING):
        assert read_lines(f) == [b"new"]
    assert f.stats.truncations == 1
    assert "truncated" in caplog.text
    assert read_lines(f) == []


def test_truncation_then_regrowth_past_offset_detected_by_fingerprint(log):
    f = LogFollower(str(log.path), start="beginning")
    log.lines(L(1))
    assert read_lines(f) == [L(1)]
    os.truncate(log.path, 0)
    log.lines(b"other first line is longer than the old one", L(7))
    assert read_lines(f) == [b"other first line is longer than the old one", L(7)]
    assert f.stats.truncations == 1


def test_first_line_rewritten_with_the_same_length_is_a_truncation(log):
    """The first line is compared byte for byte with the one fingerprinted: same length is not enough."""
    f = LogFollower(str(log.path), start="beginning")
    log.lines(L(1), L(2))
    assert read_lines(f) == [L(1), L(2)]
    os.truncate(log.path, 0)
    log.lines(L(8), L(9), L(3))  # L(8) is as long as L(1); the file grows past the old offset
    assert read_lines(f) == [L(8), L(9), L(3)]
    assert f.stats.truncations == 1


def test_a_look_at_an_unchanged_log_reads_only_its_first_line_and_hashes_nothing(log, monkeypatch):
    """The agent looks at a busy log ten times a second: each look must stay cheap (no hashing, no read of
    more than the first line), whatever the file's size."""
    f = LogFollower(str(log.path), start="beginning")
    log.lines(*[L(i) for i in range(1, 200)])
    assert len(read_lines(f)) == 199
    calls = {"lstat": 0, "pread": 0, "pread_bytes": 0, "sha256": 0}
    real_lstat, real_pread, real_sha = os.lstat, os.pread, tail_mod.hashlib.sha256

    def lstat(*a, **k):
        calls["lstat"] += 1
        return real_lstat(*a, **k)

    def pread(fd, n, off):
        calls["pread"] += 1
        data = real_pread(fd, n, off)
        calls["pread_bytes"] += len(data)
        return data

    def sha(*a, **k):
        calls["sha256"] += 1
        return real_sha(*a, **k)

    monkeypatch.setattr(tail_mod.os, "lstat", lstat)
    monkeypatch.setattr(tail_mod.os, "pread", pread)
    monkeypatch.setattr(tail_mod.hashlib, "sha256", sha)
    assert read_lines(f) == []
    # a path lookup (rotation?) before reading and one at the end; the first line compared as is (one read
    # of its own length); one read at the offset that finds nothing new
    assert calls == {"lstat": 2, "pread": 2, "pread_bytes": len(L(1)) + 1, "sha256": 0}


# ---------------------------------------------------------------- missing / permissions

def test_missing_at_start_then_created_is_read_from_zero(tmp_path, caplog):
    p = tmp_path / "audit.log"
    f = LogFollower(str(p), start="end")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert read_lines(f) == []
    assert f.status == f"waiting: {p} missing"
    assert caplog.text.count("audit log follower: waiting") == 1  # logged once, not per call
    lg = AuditdLog(p)
    lg.lines(L(1))
    assert read_lines(f) == [L(1)]
    assert f.status == "following"
    lg.close()


def test_missing_after_open_keeps_old_fd_then_follows_new_file(log):
    f = LogFollower(str(log.path), start="beginning")
    log.lines(L(1))
    assert read_lines(f) == [L(1)]
    log.lines(L(2))
    log.close()
    os.rename(log.path, f"{log.path}.1")  # auditd between rename and create
    assert read_lines(f) == [L(2)]
    assert f.status.startswith("waiting:") and "missing" in f.status
    log.open()
    log.lines(L(3))
    assert read_lines(f) == [L(3)]
    assert f.status == "following"


def test_permission_denied_then_fixed(log, monkeypatch, caplog):
    log.lines(L(1))
    real_open = os.open

    def denied(path, flags, *a, **kw):
        if os.fspath(path) == str(log.path):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(tail_mod.os, "open", denied)
    f = LogFollower(str(log.path), start="beginning")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert read_lines(f) == []
    assert "permission denied" in f.status and "log_group" in f.status and "CAP_DAC_READ_SEARCH" in f.status
    assert caplog.text.count("permission denied") == 1
    monkeypatch.setattr(tail_mod.os, "open", real_open)
    assert read_lines(f) == [L(1)]
    assert f.status == "following"


def test_permission_denied_on_new_file_after_rotation_keeps_old_and_retries(log, monkeypatch):
    f = LogFollower(str(log.path), start="beginning")
    log.lines(L(1))
    assert read_lines(f) == [L(1)]
    log.lines(L(2))
    log.rotate()
    log.lines(L(3))
    real_open = os.open

    def denied(path, flags, *a, **kw):
        if os.fspath(path) == str(log.path):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(tail_mod.os, "open", denied)
    assert read_lines(f) == [L(2)]
    assert "permission denied" in f.status
    monkeypatch.setattr(tail_mod.os, "open", real_open)
    assert read_lines(f) == [L(3)]


def test_symlinked_log_is_not_followed(tmp_path):
    real = tmp_path / "real.log"
    real.write_bytes(L(1) + b"\n")
    link = tmp_path / "audit.log"
    link.symlink_to(real)
    f = LogFollower(str(link), start="beginning")
    assert read_lines(f) == []
    assert "symbolic link" in f.status


# ---------------------------------------------------------------- resume

def positions_of_every_line(path: Path) -> List[Position]:
    """Position after each line (max_batch_bytes=1: every batch is one line), plus the start."""
    f = LogFollower(str(path), start="beginning", max_batch_bytes=1)
    batches = f.read_available()
    assert all(len(b.lines) == 1 for b in batches)
    first = batches[0].start
    assert first is not None
    f.close()
    return [first] + [b.position for b in batches]


def roundtrip(p: Position) -> Position:
    return Position.from_dict(json.loads(json.dumps(p.to_dict())))


def check_resume(log_path: Path, positions: List[Position], all_lines: List[bytes], before: List[bytes]) -> None:
    for k, pos in enumerate(positions):
        f = LogFollower(str(log_path), position=roundtrip(pos), max_batch_bytes=7)
        after = read_lines(f)
        assert before[:k] + after == all_lines, f"resume after line {k}"
        assert f.stats.lost_bytes_estimate == 0
        f.close()


def test_resume_at_every_line_boundary(log):
    lines = [L(i) for i in range(6)]
    log.lines(*lines)
    positions = positions_of_every_line(log.path)
    check_resume(log.path, positions, lines, lines)


def test_resume_across_a_rotation_while_stopped(log):
    old = [L(i) for i in range(5)]
    log.lines(*old)
    positions = positions_of_every_line(log.path)
    log.rotate()
    new = [L(i) for i in range(10, 13)]
    log.lines(*new)
    check_resume(log.path, positions, old + new, old)


def test_resume_across_two_rotations_while_stopped(log):
    old = [L(i) for i in range(4)]
    log.lines(*old)
    positions = positions_of_every_line(log.path)
    log.lines(L(50))
    log.rotate()
    log.lines(L(60), L(61))
    log.rotate()
    log.lines(L(70))
    check_resume(log.path, positions, old + [L(50), L(60), L(61), L(70)], old)


def test_resume_from_follower_position_after_catching_up(log):
    f = LogFollower(str(log.path), start="beginning")
    log.lines(L(1))
    log.rotate()
    assert read_lines(f) == [L(1)]
    pos = f.position  # in the new, still empty audit.log
    assert pos is not None and pos.offset == 0 and pos.fingerprint == ""
    f.close()
    log.lines(L(2))
    log.rotate()
    log.lines(L(3))
    g = LogFollower(str(log.path), position=roundtrip(pos))
    assert read_lines(g) == [L(2), L(3)]


def test_resume_into_a_truncated_file_reads_it_from_zero(log):
    log.lines(L(1), L(2))
    pos = positions_of_every_line(log.path)[-1]
    log.close()
    with open(log.path, "wb") as fh:  # same inode, rewritten
        fh.write(L(9) + b"\n")
    log.open()
    f = LogFollower(str(log.path), position=pos)
    assert read_lines(f) == [L(9)]
    assert f.stats.truncations == 1


def test_resume_when_a_rotation_deleted_the_checkpointed_file_and_the_new_log_got_its_inode(log, caplog):
    """ext4 hands a freed inode to the next file created: the checkpointed file was rotated out and deleted,
    and the new audit.log has its inode (other content).  The rotated files written since the checkpoint
    (mtime at or after `position_time`) are unread: read them, oldest first, then audit.log.  Without
    `position_time` it is taken for a rewrite in place (the old behaviour: audit.log only)."""
    log.lines(L(1), L(2))
    pos = positions_of_every_line(log.path)[1]  # after L(1): L(2) unread
    checkpoint_time = os.stat(log.path).st_mtime
    log.rotate()
    log.lines(L(3))
    log.rotate()
    log.lines(L(4))
    st = os.stat(log.path)
    reused = Position(dev=st.st_dev, inode=st.st_ino, fingerprint=pos.fingerprint, offset=pos.offset)
    os.unlink(f"{log.path}.2")  # the checkpointed file, rotated out ([L(1), L(2)]: L(2) is lost)
    f = LogFollower(str(log.path), position=reused, position_time=checkpoint_time)
    assert read_lines(f) == [L(3), L(4)]
    assert "inode went to a newer one" in caplog.text
    g = LogFollower(str(log.path), position=reused)
    assert read_lines(g) == [L(4)]  # no time: a rewrite in place (rotated files older, already read)
    old = time.time() - 3600
    os.utime(f"{log.path}.1", (old, old))
    h = LogFollower(str(log.path), position=reused, position_time=checkpoint_time)
    assert read_lines(h) == [L(4)]  # the rotated file was written before the checkpoint: already read


@pytest.mark.parametrize("at_open", [1, 2, 3])
def test_a_rotation_while_the_rotated_files_are_being_opened_skips_none(log, monkeypatch, at_open):
    """auditd renames path.N while the follower opens them one by one by name: every name shifts by one under
    its feet.  The snapshot is taken again, so no file is skipped and none is read twice."""
    log.lines(L(1), L(2))
    pos = positions_of_every_line(log.path)[1]  # after L(1)
    log.rotate()
    log.lines(L(3))
    log.rotate()
    log.lines(L(4))
    log.rotate()
    log.lines(L(5))
    real_open = LogFollower._open
    calls = {"n": 0}

    def open_then_rotate(self, name):
        r = real_open(self, name)
        calls["n"] += 1
        if calls["n"] == at_open:
            log.rotate()  # between two opens
            log.lines(L(6))
        return r

    monkeypatch.setattr(LogFollower, "_open", open_then_rotate)
    f = LogFollower(str(log.path), position=pos)
    assert read_lines(f) == [L(2), L(3), L(4), L(5), L(6)]
    assert f.stats.snapshot_retries == 1


def test_an_unreadable_rotated_file_is_not_taken_for_a_rotation_while_opening(log, monkeypatch):
    """A rotated file that cannot be opened (permission) is skipped with a status, not a reason to open the
    whole set again and again."""
    log.lines(L(1))
    pos = positions_of_every_line(log.path)[-1]
    log.rotate()
    log.lines(L(2))
    log.rotate()
    log.lines(L(3))
    real_open = LogFollower._open
    unreadable = f"{log.path}.1"

    def open_or_deny(self, name):
        if name == unreadable:
            raise PermissionError(13, "Permission denied", name)
        return real_open(self, name)

    monkeypatch.setattr(LogFollower, "_open", open_or_deny)
    f = LogFollower(str(log.path), position=pos)
    assert read_lines(f) == [L(3)]  # audit.log.1 (L(2)) cannot be read
    assert f.stats.snapshot_retries == 0


def test_resume_after_copytruncate_finds_the_copy_by_fingerprint(log):
    log.lines(L(1), L(2))
    pos = positions_of_every_line(log.path)[1]  # after L(1)
    shutil.copyfile(log.path, f"{log.path}.1")  # logrotate copytruncate: copy (new inode) ...
    os.truncate(log.path, 0)  # ... then truncate in place
    log.lines(L(3))
    f = LogFollower(str(log.path), position=pos)
    assert read_lines(f) == [L(2), L(3)]


def test_resume_when_checkpointed_file_is_gone_reads_all_remaining(log, caplog):
    log.lines(L(1), L(2))
    pos = positions_of_every_line(log.path)[1]
    log.rotate()
    later = [L(i) for i in range(3, 9)]
    log.lines(*later)
    log.rotate()
    log.lines(L(9))
    os.unlink(f"{log.path}.2")  # rotated beyond num_logs while we were stopped
    Path(f"{log.path}.3.gz").write_bytes(gzip.compress(L(0) + b"\n"))  # never read in the live path
    with caplog.at_level(logging.WARNING):
        f = LogFollower(str(log.path), position=pos)
        assert read_lines(f) == later + [L(9)]
    assert "matches none" in caplog.text
    assert f.stats.lost_bytes_estimate > 0


def test_resume_with_nothing_on_disk_waits(tmp_path):
    pos = Position(dev=1, inode=2, fingerprint="", offset=0)
    f = LogFollower(str(tmp_path / "audit.log"), position=pos)
    assert read_lines(f) == []
    assert "missing" in f.status
    assert f.position == pos  # unresolved: still the saved one, so a checkpoint now keeps it
    lg = AuditdLog(tmp_path / "audit.log")
    lg.lines(L(1))
    assert read_lines(f) == [L(1)]
    lg.close()


def test_position_dict_validation():
    p = Position(dev=5, inode=7, fingerprint=fingerprint_of(b"x\n"), offset=2)
    assert Position.from_dict(p.to_dict()) == p
    for bad in ({"dev": 1}, {"dev": -1, "inode": 1, "fingerprint": "", "offset": 0},
                {"dev": 1, "inode": 1, "fingerprint": "zz", "offset": 0}, []):
        with pytest.raises(ValueError):
            Position.from_dict(bad)  # type: ignore[arg-type]


def test_fingerprint_definition():
    assert fingerprint_of(b"") == ""
    assert fingerprint_of(b"no newline yet") == ""
    assert fingerprint_of(b"a\nb\n") == fingerprint_of(b"a\nzzz")
    assert fingerprint_of(b"y" * 5000) != ""


def test_batch_is_a_plain_dataclass():
    b = Batch(lines=[b"a"], position=Position(1, 2, "", 0), path="p")
    assert b.start is None


# ---------------------------------------------------------------- randomized: appends, rotations, restarts

@pytest.mark.parametrize("seed", range(40))
def test_random_writes_rotations_and_restarts_lose_and_repeat_nothing(tmp_path, seed):
    import random

    rnd = random.Random(seed)
    lg = AuditdLog(tmp_path / "audit.log")
    written: List[bytes] = []
    pending = b""  # bytes of the current line stream not yet written
    got: List[bytes] = []
    mbb = rnd.choice([1, 5, 64, 4096])
    f = LogFollower(str(lg.path), start="beginning", max_batch_bytes=mbb)
    last: Optional[Position] = None
    n = 0
    for _ in range(200):
        op = rnd.random()
        if op < 0.45:
            if not pending:
                n += 1
                line = b"type=T msg=audit(%d.000:%d): " % (n, n) + b"x" * rnd.choice([0, 3, 40, 300])
                written.append(line)
                pending = line + b"\n"
            k = rnd.randint(1, len(pending))
            lg.write(pending[:k])
            pending = pending[k:]
        elif op < 0.55 and not pending:  # auditd rotates between lines
            lg.rotate(num_logs=50)
        elif op < 0.62 and last is not None:  # restart from the last batch position or f.position
            resume = last if rnd.random() < 0.5 or f.position is None else f.position
            f.close()
            f = LogFollower(str(lg.path), position=roundtrip(resume), max_batch_bytes=mbb)
        else:
            for b in f.read_available(max_batches=rnd.choice([None, 1, 2])):
                got.extend(b.lines)
                last = b.position
    if pending:
        lg.write(pending)
    for _ in range(1000):
        bs = f.read_available()
        if not bs:
            break
        for b in bs:
            got.extend(b.lines)
    assert got == written
    assert f.stats.lost_bytes_estimate == 0
    f.close()
    lg.close()
