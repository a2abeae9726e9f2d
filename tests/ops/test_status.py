"""auditimds status, the health line and the Prometheus textfile."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from auditimds.ops.status import (
    EXIT_BAD_STATE,
    EXIT_NO_STATE,
    EXIT_OK,
    collect_status,
    format_health_line,
    format_stopped_line,
    log_lag,
    render_prometheus,
    status,
    write_prometheus_textfile,
)
from auditimds.source.checkpoint import save_state

COUNTERS = {
    "lines": 1200, "malformed_lines": 3, "records": 900, "events": 300, "exec_events": 200, "network_events": 100,
    "alerts": 5, "reassembly": {"events": 300, "timeouts": 2}, "late_events": 0, "rule_errors": 0,
    "processes_tracked": 42, "alerts_emitted": 4, "alerts_suppressed_duplicates": 1,
    "follower": {"rotations": 1, "truncations": 0, "bytes_read": 123456, "lines": 1200, "files_caught_up": 1,
                 "lost_bytes_estimate": 0, "errors": 0, "unterminated_lines": 0, "oversized_lines": 0},
}
NOW = 1_800_000_000.0


def no_auditctl(*_a, **_k):
    raise FileNotFoundError("auditctl")


def make_state(state_dir: Path, log: Path, offset: int, counters=None, alerts=None, newest=None) -> None:
    st = os.stat(log)
    save_state(state_dir / "state.json", {
        "log": str(log),
        "resume": {"dev": st.st_dev, "inode": st.st_ino, "fingerprint": "", "offset": 0},
        "position": {"dev": st.st_dev, "inode": st.st_ino, "fingerprint": "", "offset": offset},
        "alerts": alerts if alerts is not None else [["a1", int(NOW * 1000) - 60_000], ["a2", int(NOW * 1000) - 5_000]],
        "newest_event_ms": newest if newest is not None else int(NOW * 1000) - 2_500,
        "counters": counters if counters is not None else COUNTERS,
    })


@pytest.fixture
def agent(tmp_path: Path):
    log = tmp_path / "audit.log"
    log.write_bytes(b"x" * 1000)
    state = tmp_path / "state"
    make_state(state, log, 400)
    return SimpleNamespace(log=log, state=state)


def test_status_text(agent):
    out = io.StringIO()
    rc = status(agent.state, out, now=NOW, run=no_auditctl)
    text = out.getvalue()
    assert rc == EXIT_OK
    assert "offset 400: 600 bytes behind the end of the log" in text
    assert "2.5 s ago" in text
    assert "1200 lines, 300 events (200 exec, 100 network), 3 malformed lines" in text
    assert "4 emitted, 1 duplicates suppressed" in text
    assert "last alert 2027-01-15T07:59:55.000Z" in text
    assert "(5.0 s ago)" in text  # newest of the remembered alerts
    assert "1 rotations" in text
    assert "notifications:  no counters" in text
    assert "kernel audit:   not readable" in text


def test_status_json_with_notify_and_kernel(agent):
    counters = dict(COUNTERS, notify={"sent": 7, "suppressed": 3, "failed": 1, "spooled": 2})
    make_state(agent.state, agent.log, 1000, counters=counters)

    def run(cmd, **_k):
        assert cmd == ["auditctl", "-s"]
        return SimpleNamespace(returncode=0, stdout="enabled 1\npid 9\nlost 17\nbacklog 3\nbacklog_limit 8192\n",
                               stderr="")

    out = io.StringIO()
    assert status(agent.state, out, json_output=True, now=NOW, run=run) == EXIT_OK
    doc = json.loads(out.getvalue())
    assert doc["lag_bytes"] == 0
    assert doc["lag_seconds"] == pytest.approx(2.5)
    assert doc["notify"] == {"sent": 7, "suppressed": 3, "failed": 1, "spooled": 2}
    assert doc["kernel"]["lost"] == 17
    assert doc["last_alert_ms"] == int(NOW * 1000) - 5_000
    assert doc["counters"]["alerts_emitted"] == 4
    out = io.StringIO()
    status(agent.state, out, now=NOW, run=run)
    assert "7 sent, 3 suppressed, 1 failed, 2 spooled" in out.getvalue()
    assert "lost 17" in out.getvalue() and "auditctl -b 8192" in out.getvalue()


def test_lag_through_rotated_files(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(b"a" * 1000)
    os.rename(log, tmp_path / "audit.log.1")   # the position is in this file, now rotated
    log.write_bytes(b"b" * 300)
    st = os.stat(tmp_path / "audit.log.1")
    pos = {"dev": st.st_dev, "inode": st.st_ino, "offset": 900, "fingerprint": ""}
    lag, where, note = log_lag(str(log), pos)
    assert (lag, where, note) == (100 + 300, str(tmp_path / "audit.log.1"), "")
    os.unlink(tmp_path / "audit.log.1")
    lag, where, note = log_lag(str(log), pos)
    assert lag is None and "gone" in note
    assert log_lag(str(log), None)[0] is None


def test_no_state_and_bad_state(tmp_path):
    out = io.StringIO()
    assert status(tmp_path, out, run=no_auditctl) == EXIT_NO_STATE
    assert "no state file" in out.getvalue()
    (tmp_path / "state.json").write_text("{broken")
    out = io.StringIO()
    assert status(tmp_path, out, run=no_auditctl) == EXIT_BAD_STATE
    assert "corrupt" in out.getvalue()
    out = io.StringIO()
    assert status(tmp_path, out, json_output=True, run=no_auditctl) == EXIT_BAD_STATE
    assert "corrupt" in json.loads(out.getvalue())["error"]


def test_fresh_state_without_events_or_position(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    save_state(tmp_path / "state.json", {"log": str(log), "resume": None, "position": None, "alerts": [],
                                         "newest_event_ms": -1, "counters": {}})
    doc = collect_status(tmp_path, now=NOW, run=no_auditctl)
    assert doc["lag_bytes"] is None and doc["lag_seconds"] is None and doc["last_alert"] is None
    out = io.StringIO()
    assert status(tmp_path, out, now=NOW, run=no_auditctl) == EXIT_OK
    assert "none processed yet" in out.getvalue() and "no alert remembered" in out.getvalue()


def test_health_line():
    line = format_health_line(dict(COUNTERS, notify={"sent": 2, "failed": 0, "spooled": 1}), lag_bytes=0,
                              kernel_lost=5)
    assert line.startswith("health: lines=1200 events=300 exec=200 network=100 malformed=3 ")
    assert "alerts=4 duplicates=1 processes=42 rotations=1 lost_bytes=0" in line
    assert "notify_failed=0 notify_sent=2 notify_spooled=1" in line
    assert line.endswith("lag_bytes=0 kernel_lost=5")
    assert format_health_line({}) == "health:"


def test_prometheus_textfile(tmp_path):
    path = tmp_path / "auditimds.prom"
    counters = dict(COUNTERS, notify={"sent": 2, "ok": True})
    write_prometheus_textfile(path, counters, gauges={"lag_bytes": 600, "lag_seconds": 2.5, "kernel_lost": None},
                              now=NOW)
    text = path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["auditimds.prom"]  # no temporary file left
    assert "# HELP auditimds_lines_total Audit log lines read.\n# TYPE auditimds_lines_total counter\n" \
           "auditimds_lines_total 1200\n" in text
    assert "# TYPE auditimds_processes_tracked gauge\nauditimds_processes_tracked 42\n" in text
    assert "auditimds_follower_rotations_total 1\n" in text
    assert "auditimds_reassembly_timeouts_total 2\n" in text
    assert "auditimds_notify_sent_total 2\n" in text
    assert "notify_ok" not in text  # booleans are not metrics
    assert "# TYPE auditimds_lag_bytes gauge\nauditimds_lag_bytes 600\n" in text
    assert "auditimds_lag_seconds 2.5\n" in text
    assert "kernel_lost" not in text
    assert "auditimds_textfile_timestamp_seconds 1800000000.0\n" in text
    # every sample has HELP and TYPE, names are valid, no duplicates
    names = [ln.split()[0] for ln in text.splitlines() if not ln.startswith("#")]
    assert len(names) == len(set(names))
    for n in names:
        assert f"# HELP {n} " in text and f"# TYPE {n} " in text
        assert n.replace("_", "a").isalnum() and n.startswith("auditimds_")
    # a second write replaces the file whole
    write_prometheus_textfile(path, {"lines": 1}, now=NOW)
    assert "auditimds_lines_total 1\n" in path.read_text() and "rotations" not in path.read_text()


def test_prometheus_textfile_unwritable_dir_raises(tmp_path):
    with pytest.raises(OSError):
        write_prometheus_textfile(tmp_path / "missing" / "x.prom", {"lines": 1})


def test_render_is_valid_for_empty_counters():
    text = render_prometheus({}, now=NOW)
    assert text.endswith("auditimds_textfile_timestamp_seconds 1800000000.0\n")


def test_silenced_alerts_and_output_errors_in_status_and_health_line(agent):
    counters = dict(COUNTERS, alerts_silenced_by_exceptions=6, output_errors=2)
    make_state(agent.state, agent.log, 400, counters=counters)
    out = io.StringIO()
    assert status(agent.state, out, now=NOW, run=no_auditctl) == EXIT_OK
    text = out.getvalue()
    assert "4 emitted, 1 duplicates suppressed, 6 silenced by exceptions (since the last start)" in text
    assert "output errors:  2 alert line(s) not written to stdout or the JSON lines file  <- see the agent's log" in text
    line = format_health_line(counters)
    assert "duplicates=1 silenced=6 output_errors=2 processes=42" in line
    prom = render_prometheus(counters, now=NOW)
    assert "auditimds_alerts_silenced_by_exceptions_total 6\n" in prom and "auditimds_output_errors_total 2\n" in prom
    # state of an older agent: no output counter, no line about it
    make_state(agent.state, agent.log, 400)
    out = io.StringIO()
    status(agent.state, out, now=NOW, run=no_auditctl)
    assert "? silenced by exceptions" in out.getvalue() and "output errors" not in out.getvalue()


def test_stopped_line_has_the_notifier_counters():
    counters = dict(COUNTERS, notify={"sent": 3, "suppressed": 1, "failed": 2, "spooled": 1,
                                      "channels": {"json://***": {"sent": 3, "state": "ok"}}})
    line = format_stopped_line(counters)
    assert line.startswith("stopped: {")
    doc = json.loads(line[len("stopped: "):])
    assert doc["notify"] == {"sent": 3, "suppressed": 1, "failed": 2, "spooled": 1}
    assert doc["lines"] == 1200 and doc["alerts_emitted"] == 4
    assert "follower" not in doc and "reassembly" not in doc
    assert "notify" not in json.loads(format_stopped_line(COUNTERS)[len("stopped: "):])
