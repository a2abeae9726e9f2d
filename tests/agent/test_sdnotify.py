"""sd_notify(3) without libsystemd: the datagram, the abstract namespace, and what happens without systemd."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from auditimds.agent.sdnotify import Notifier


def receiver(address: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(address)
    s.settimeout(5)
    return s


def test_a_path_socket_gets_one_datagram_of_lines(tmp_path: Path):
    path = str(tmp_path / "notify")
    with receiver(path) as r:
        n = Notifier({"NOTIFY_SOCKET": path})
        assert n.enabled
        assert n.ready("2 rule(s)\nsecond line")
        assert r.recv(4096) == b"READY=1\nSTATUS=2 rule(s) second line"  # a newline would start a new key
        assert n.reloading() and r.recv(4096).split(b"\n")[0] == b"RELOADING=1"
        assert n.stopping() and r.recv(4096).split(b"\n")[0] == b"STOPPING=1"


def test_an_abstract_socket_name_starts_with_at():
    name = f"auditimds-test-{os.getpid()}"
    with receiver("\0" + name) as r:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send("READY=1")
        assert r.recv(4096) == b"READY=1"


def test_without_systemd_nothing_is_sent():
    n = Notifier({})
    assert not n.enabled and not n.ready("x")


def test_a_bad_or_vanished_socket_is_one_warning_not_an_error(tmp_path: Path, caplog):
    with caplog.at_level(logging.WARNING, logger="auditimds"):
        assert not Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled
        gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
        assert not gone.ready("x") and not gone.stopping()
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("neither a path nor an abstract name" in m for m in warnings) == 1
    assert sum("cannot notify systemd" in m for m in warnings) == 1, warnings
