"""`auditimds run --stdin` (auditd plugin mode) on a real recorded plugin stream gives the same alerts as `scan`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

STREAM = REPO / "tests" / "fixtures" / "audisp-stream.txt"


def alert_ids(stdout: str) -> list:
    return [json.loads(ln)["alert"]["id"] for ln in stdout.splitlines() if ln.strip()]


def test_stdin_mode_equals_scan_on_a_recorded_plugin_stream(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    (tmp_path / "empty.toml").write_text("")
    data = STREAM.read_bytes()
    assert data.count(b"type=EOE") == 620
    live = subprocess.run(
        [sys.executable, "-m", "auditimds", "run", "--stdin", "--config", str(tmp_path / "empty.toml"),
         "--host-id", "h", "--state-dir", str(tmp_path / "state")],
        input=data, capture_output=True, env=env, timeout=60)
    assert live.returncode == 0, live.stderr.decode()
    batch = subprocess.run([sys.executable, "-m", "auditimds", "scan", "--host-id", "h", str(STREAM)],
                           capture_output=True, env=env, timeout=60)
    assert batch.returncode == 0
    ids = alert_ids(live.stdout.decode())
    assert len(ids) == 4 and sorted(ids) == sorted(alert_ids(batch.stdout.decode()))
    # EOE after PROCTITLE is a late record of an already completed event, never a second event
    assert b"reading audit records from standard input" in live.stderr


def test_stdin_mode_in_small_pieces_and_across_a_restart(tmp_path):
    """auditd may deliver a line in several reads; a restarted plugin does not repeat alerts it emitted."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    (tmp_path / "empty.toml").write_text("")
    cmd = [sys.executable, "-m", "auditimds", "run", "--stdin", "--config", str(tmp_path / "empty.toml"),
           "--host-id", "h", "--state-dir", str(tmp_path / "state")]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    data = STREAM.read_bytes()
    for i in range(0, len(data), 4093):  # odd-sized pieces cut lines anywhere
        p.stdin.write(data[i:i + 4093])
        p.stdin.flush()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err.decode()
    assert len(alert_ids(out.decode())) == 4
    again = subprocess.run(cmd, input=data, capture_output=True, env=env, timeout=60)
    assert again.returncode == 0 and alert_ids(again.stdout.decode()) == []


def test_sigterm_stops_the_plugin_while_stdin_stays_open(tmp_path):
    """auditd stops plugins with SIGTERM; the plugin must not wait for more input to notice."""
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(REPO))
    (tmp_path / "empty.toml").write_text("")
    p = subprocess.Popen([sys.executable, "-m", "auditimds", "run", "--stdin", "--config", str(tmp_path / "empty.toml"),
                          "--state-dir", str(tmp_path / "state")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    try:
        p.stdin.write(STREAM.read_bytes()[:20000])
        p.stdin.flush()
        end = time.monotonic() + 20
        while time.monotonic() < end and not (tmp_path / "state").exists():
            time.sleep(0.05)
        time.sleep(0.3)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
        p.stdin.close()
