"""The field catalogue (auditimds/ecs/fields.py) against what the normalizer really builds, and the
connection_accepted events of a real recording with accept/accept4 audited."""

from __future__ import annotations

from typing import List

import pytest

from auditimds.audit.reassembly import AuditEvent, Reassembler
from auditimds.ecs import fields
from auditimds.ecs.event import EcsEvent
from auditimds.ecs.normalize import Normalizer
from tests.conftest import REPO

RECORDINGS = sorted((REPO / "tests" / "fixtures" / "rules").glob("*.log")) + sorted(
    (REPO / "tests" / "fixtures").glob("*.log"))


def events_of(path) -> List[EcsEvent]:
    norm = Normalizer("hid", "hname")
    aevs: List[AuditEvent] = []
    r = Reassembler(aevs.append)
    r.feed(path.read_bytes().splitlines(), 0.0)
    r.flush()
    out = []
    for a in sorted(aevs, key=lambda e: (e.ts_ms, e.serial)):
        ev = norm.normalize(a)
        if ev is not None:
            out.append(ev.materialize())
    return out


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
def test_every_produced_field_and_value_is_catalogued(path):
    evs = events_of(path)
    assert evs
    for ev in evs:
        for key, value in ev.items():
            if value is None:
                continue
            assert fields.is_supplied(key), key
            known = fields.VALUES.get(key)
            if known is not None:
                for v in value if isinstance(value, list) else [value]:
                    assert v in known, (key, v)


def test_catalogue_helpers():
    assert fields.is_supplied("process.args_count") and fields.is_supplied("auditd.data.syscall")
    assert not fields.is_supplied("file.path") and not fields.is_supplied("process.hash.sha256")
    assert fields.unsupplied(["file.path", "process.name", "dns.question.name", "file.path"]) == [
        "dns.question.name", "file.path"]
    assert fields.never_produced_value("event.action", "fork")
    assert not fields.never_produced_value("event.action", "exec")
    assert not fields.never_produced_value("event.action", "EXEC", insensitive=True)
    assert fields.never_produced_value("event.action", "EXEC")
    assert not fields.never_produced_value("process.name", "anything")  # not enumerated


def test_accept4_gives_connection_accepted_with_the_peer_as_source():
    """Real recording with `-S accept,accept4` audited: the listener's accept4 calls (python3 in a network
    namespace with 10.213.0.1 on its loopback) become connection_accepted events."""
    evs = events_of(REPO / "tests" / "fixtures" / "rules" / "accept_listener.log")
    acc = [e for e in evs if e["event.action"] == "connection_accepted"]
    assert len(acc) == 10  # one per scenario connection
    for e in acc:
        assert e["event.category"] == ["network"] and e["event.type"] == ["start"]
        assert e["auditd.data.syscall"] == "accept4"
        assert e["source.ip"] in ("10.213.0.1", "127.0.0.1") and isinstance(e["source.port"], int)
        assert e["destination.ip"] is None  # the local address is not in the audit record
        assert e["process.name"].startswith("python3")
        assert e["process.args"][0] == "python3" and e["process.args"][-1].startswith("case=listener-")
    assert sorted(e["source.ip"] for e in acc).count("127.0.0.1") == 3  # the three loopback near misses
