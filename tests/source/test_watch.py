from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from auditimds.source import watch as watch_mod
from auditimds.source.watch import Waker

DEADLINE = 10.0  # generous upper bound; each wait returns as soon as the event arrives


def drain(w: Waker) -> None:
    """Swallow the tail of a burst of events (bounded)."""
    end = time.monotonic() + DEADLINE
    while w.wait(0.3) and time.monotonic() < end:
        pass


def append(p: Path, data: bytes) -> None:
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    d = tmp_path / "audit"
    d.mkdir()
    (d / "audit.log").write_bytes(b"")
    return d


def test_inotify_wakes_on_append_rename_create_not_on_reads_or_other_files(logdir: Path):
    log = logdir / "audit.log"
    w = Waker(str(log))
    w.start()
    try:
        assert w.mode == "inotify"
        drain(w)
        assert not w.wait(0.05)

        append(log, b"type=X msg=audit(1:1): a\n")
        assert w.wait(DEADLINE)
        drain(w)

        with open(log, "rb") as fh:  # our own reads must not wake us
            fh.read()
        (logdir / "unrelated.txt").write_bytes(b"x")
        assert not w.wait(0.5)

        os.chmod(log, 0o640)  # e.g. an admin fixing log_group permissions
        assert w.wait(DEADLINE)
        drain(w)

        log.rename(logdir / "audit.log.1")
        assert w.wait(DEADLINE)
        drain(w)

        append(log, b"type=DAEMON_ROTATE msg=audit(2:2): new file\n")
        assert w.wait(DEADLINE)
    finally:
        w.stop()
    assert w.mode == "stopped"


def test_polling_fallback_when_inotify_cannot_start(logdir: Path, monkeypatch, caplog):
    class NoInotify:
        def __init__(self, *a: object, **kw: object) -> None:
            pass

        def schedule(self, *a: object, **kw: object) -> None:
            pass

        def start(self) -> None:
            raise OSError(24, "inotify instance limit reached")

    monkeypatch.setattr(watch_mod, "Observer", NoInotify)
    log = logdir / "audit.log"
    w = Waker(str(log), poll_interval=0.1)
    with caplog.at_level(logging.WARNING, logger="auditimds.source.watch"):
        w.start()
    try:
        assert w.mode == "polling"
        warnings = [r for r in caplog.records if "falling back to polling" in r.getMessage()]
        assert len(warnings) == 1 and "inotify instance limit reached" in warnings[0].getMessage()
        drain(w)
        append(log, b"line\n")
        assert w.wait(DEADLINE)
        drain(w)
        log.rename(logdir / "audit.log.1")
        assert w.wait(DEADLINE)
    finally:
        w.stop()


def test_missing_directory_is_waited_for(tmp_path: Path, caplog):
    d = tmp_path / "not-yet"
    log = d / "audit.log"
    w = Waker(str(log), dir_poll_interval=0.05)
    with caplog.at_level(logging.WARNING, logger="auditimds.source.watch"):
        w.start()
    try:
        assert w.mode == "waiting"
        assert "does not exist" in caplog.text
        d.mkdir()
        assert w.wait(DEADLINE)  # woken when the directory appears
        assert w.mode == "inotify"
        drain(w)
        append(log, b"first\n")
        assert w.wait(DEADLINE)
    finally:
        w.stop()


def test_directory_deleted_and_recreated(logdir: Path):
    log = logdir / "audit.log"
    w = Waker(str(log), dir_poll_interval=0.05)
    w.start()
    try:
        drain(w)
        shutil.rmtree(logdir)
        assert w.wait(DEADLINE)
        end = time.monotonic() + DEADLINE
        while w.mode != "waiting" and time.monotonic() < end:
            w.wait(0.05)
        assert w.mode == "waiting"
        logdir.mkdir()
        end = time.monotonic() + DEADLINE
        while w.mode != "inotify" and time.monotonic() < end:
            w.wait(0.05)
        assert w.mode == "inotify"
        drain(w)
        append(log, b"back\n")
        assert w.wait(DEADLINE)
    finally:
        w.stop()


def test_stop_releases_a_waiter_and_wake_works(logdir: Path):
    w = Waker(str(logdir / "audit.log"))
    w.start()
    drain(w)
    w.wake()
    assert w.wait(0)
    w.stop()
    assert w.wait(0)  # stop() wakes anybody still waiting


def test_pause_stops_wakeups_and_resume_restores_them(tmp_path):
    from auditimds.source.watch import Waker

    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    w = Waker(str(log))
    w.start()
    try:
        if w.mode != "inotify":
            pytest.skip(f"inotify not available here ({w.mode})")
        w.pause()
        assert w.paused
        with open(log, "ab") as f:
            f.write(b"line while paused\n")
        assert w.wait(0.3) is False  # no watch: no wake-up
        w.wake()
        assert w.wait(0.1) is True  # still an interruptible sleep (signals use this)
        w.resume()
        assert not w.paused
        deadline = time.monotonic() + 5
        woken = False
        while not woken and time.monotonic() < deadline:
            with open(log, "ab") as f:
                f.write(b"line after resume\n")
            woken = w.wait(0.2)
        assert woken
    finally:
        w.stop()
