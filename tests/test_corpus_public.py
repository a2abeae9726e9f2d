"""Every public log goes through `scan` and `events` without an exception; spot checks of what they give."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest

from auditimds.cli import main
from tests.conftest import CORPUS_PUBLIC

FILES = sorted(p for p in CORPUS_PUBLIC.rglob("*") if p.is_file() and p.name != "README.md")


def test_corpus_present():
    assert len(FILES) >= 130


def run(capsys, *argv: str) -> "tuple[int, List[dict], str]":
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, [json.loads(ln) for ln in out.splitlines()], err


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS_PUBLIC)))
def test_scan_and_events_never_fail(path: Path, capsys):
    rc, alerts, err = run(capsys, "scan", "--host-id", "t", "--host-name", "t", str(path))
    assert rc == 0, err
    assert "Traceback" not in err and "malformed lines" in err
    rc, events, err = run(capsys, "events", "--host-id", "t", "--host-name", "t", str(path))
    assert rc == 0, err
    for ev in events:
        assert ev["event"]["action"] in ("exec", "connection_attempted", "connection_accepted")
        assert ev["host"]["os"]["type"] == "linux"


def events_of(capsys, rel: str) -> List[dict]:
    rc, events, _ = run(capsys, "events", "--host-id", "t", "--host-name", "t", str(CORPUS_PUBLIC / rel))
    assert rc == 0
    return events


def test_spade_wget_exec_and_connects(capsys):
    evs = events_of(capsys, "spade/test-linux-input/audit_wget_unit.log")
    assert [e["event"]["action"] for e in evs] == ["exec", "connection_attempted", "connection_attempted"]
    assert evs[0]["process"]["command_line"] == "src/wget www.csl.sri.com"
    assert [e["destination"] for e in evs[1:]] == [{"ip": "10.0.2.3", "port": 53}, {"ip": "130.107.1.110", "port": 80}]
    assert evs[2]["event"]["outcome"] == "success"
    assert evs[1]["process"]["entity_id"] == evs[0]["process"]["entity_id"]


def test_laurel_ipv6_connect_and_node(capsys):
    evs = events_of(capsys, "laurel/testdata/record-connect.txt")
    assert [e["destination"]["ip"] for e in evs] == ["127.0.0.1", "::1"]
    assert evs[1]["network"]["type"] == "ipv6" and evs[1]["auditd"]["data"]["errno"] == "EINPROGRESS"
    (ev,) = events_of(capsys, "laurel/testdata/record-execve.txt")
    assert ev["host"]["id"] == "work" and ev["process"]["args"] == ["whoami"]


def test_auparse_exec_with_216_arguments(capsys):
    evs = events_of(capsys, "audit-userspace/auparse/test/test4.log")
    m4 = [e for e in evs if e["process"]["name"] == "m4"][0]
    assert m4["process"]["args_count"] == 216 and len(m4["process"]["args"]) == 216
    assert m4["auditd"]["data"]["arch"] == "x86_64" and m4["process"]["args"][0] == "/usr/bin/m4"


def test_gce_agent_imds_connect_in_yaml_wrapped_log(capsys):
    evs = events_of(capsys, "go-libaudit/aucoalesce/testdata/ubuntu-16.10-linux-4.8.0.yaml")
    imds = [e for e in evs if e.get("destination", {}).get("ip") == "169.254.169.254"]
    assert len(imds) == 1 and imds[0]["process"]["name"].startswith("python3")
    assert any(e["event"]["action"] == "connection_accepted" for e in evs)
