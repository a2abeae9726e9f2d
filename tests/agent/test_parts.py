"""The parts daemon.py composes: the typed state document, the stdin source's line splitting, the batch time."""

from __future__ import annotations

import os

from auditimds.agent.inputs import StdinSource
from auditimds.agent.statedir import STDIN_LOG, AgentState
from auditimds.pipeline import Pipeline
from auditimds.source.tail import Position

POS = {"dev": 1, "inode": 2, "fingerprint": "", "offset": 3}


def test_the_state_document_round_trips_and_plugin_mode_has_no_resume_time():
    doc = {"log": "/var/log/audit/audit.log", "resume": POS, "resume_ts_ms": 5, "position": POS, "alerts": [["a", 1]],
           "alerts_file": {"path": "/x", "dev": 1, "ino": 2, "size": 3}, "newest_event_ms": 7, "counters": {"lines": 1}}
    st = AgentState.from_dict(doc)
    assert st.resume == Position.from_dict(POS) and st.resume_error is None
    st.position = Position.from_dict(POS)
    assert st.to_dict() == doc and list(st.to_dict()) == list(doc)
    assert "resume_ts_ms" not in AgentState(log=STDIN_LOG).to_dict()


def test_a_bad_resume_position_is_reported_not_raised():
    st = AgentState.from_dict({"log": "l", "resume": {"dev": 1}, "resume_ts_ms": True, "newest_event_ms": None})
    assert st.resume is None and "lacks field" in (st.resume_error or "")
    assert st.resume_ts_ms is None and st.newest_event_ms == 0


def test_stdin_source_yields_complete_lines_and_the_last_one_at_the_end():
    r, w = os.pipe()
    try:
        src = StdinSource(r)
        os.write(w, b"type=A msg=audit(1.002:3): x\ntype=B")
        assert src.fill() and list(src.batches()) == [[b"type=A msg=audit(1.002:3): x"]]
        os.write(w, b" y")
        assert src.fill() and list(src.batches()) == []
        os.close(w)
        w = -1
        assert not src.fill()
        src.end()
        assert list(src.batches()) == [[b"type=B y"]]
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_first_event_ms_reads_the_first_header():
    assert Pipeline.first_event_ms([b"garbage", b"type=SYSCALL msg=audit(1700000000.123:42): x"]) == 1700000000123
    assert Pipeline.first_event_ms([b"garbage"]) is None
