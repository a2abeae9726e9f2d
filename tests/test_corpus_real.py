"""Golden test: the seed rule on the real host-a audit.log and its labelled scenarios."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

import pytest

from auditimds.pipeline import Pipeline
from auditimds.rules.builtin import builtin_rules_dir
from auditimds.rules.loader import load_rules
from auditimds.source.reader import open_log, read_batches
from tests.conftest import shared_path

CASE = re.compile(r"case=(dev_[a-z0-9_]+)")


def scenario_of(texts: List[Optional[str]]) -> Optional[str]:
    for t in texts:
        if t:
            m = CASE.search(t)
            if m:
                return m.group(1)
    return None


def event_scenario(ev: Any) -> Optional[str]:
    return scenario_of([ev["process.command_line"], ev["process.parent.command_line"]])


@pytest.fixture(scope="module")
def host_a() -> Dict[str, Any]:
    labels = {}
    for line in shared_path("corpus", "real", "host-a.labels").read_text().splitlines():
        if line.strip():
            name, want = line.split()
            labels[name] = want
    rules, errors = load_rules([builtin_rules_dir()])
    assert errors == [] and len(rules) == 1
    alerts: List[Dict[str, Any]] = []
    events: List[Any] = []
    pipe = Pipeline(rules, "host-a", "host-a", on_alert=alerts.append, on_event=events.append)
    with open_log(str(shared_path("corpus", "real", "host-a.log.gz"))) as f:
        for batch in read_batches(f):
            pipe.feed(batch, 0.0)
    pipe.finish()
    return {"labels": labels, "alerts": alerts, "events": events, "stats": pipe.stats()}


def alert_scenarios(alert: Dict[str, Any]) -> set:
    found = set()
    for doc in alert["events"]:
        p = doc.get("process", {})
        s = scenario_of([p.get("command_line"), p.get("parent", {}).get("command_line")])
        if s:
            found.add(s)
    return found


def test_counts(host_a):
    st = host_a["stats"]
    assert st["lines"] == 233519
    assert st["events"] == 36927  # every event of the file (README: 36,927 events)
    assert st["malformed_lines"] == 0
    assert st["reassembly"]["evicted"] == 0 and st["rule_errors"] == 0


def test_every_alert_scenario_alerts_exactly_once(host_a):
    per: Dict[str, int] = {}
    for a in host_a["alerts"]:
        for s in alert_scenarios(a):
            per[s] = per.get(s, 0) + 1
    want = {n for n, w in host_a["labels"].items() if w == "alert"}
    assert len(want) == 6
    assert {s: per.get(s, 0) for s in want} == {s: 1 for s in want}


def test_quiet_scenarios_and_benign_traffic_do_not_alert(host_a):
    quiet = {n for n, w in host_a["labels"].items() if w == "quiet"}
    assert len(quiet) == 7
    for a in host_a["alerts"]:
        s = alert_scenarios(a)
        assert s, f"alert on benign traffic: {a['message']}"
        assert not (s & quiet), f"quiet scenario alerted: {s & quiet}"
    assert len(host_a["alerts"]) == 6


def test_quiet_scenarios_are_really_in_the_log(host_a):
    """So that 'no alert' means the rule said no, not that the events were lost."""
    execs: Dict[str, List[Any]] = {}
    imds_connects: Dict[str, int] = {}
    for ev in host_a["events"]:
        s = event_scenario(ev)
        if not s:
            continue
        if ev["event.action"] == "exec":
            execs.setdefault(s, []).append(ev)
        elif ev["destination.ip"] == "169.254.169.254":
            imds_connects[s] = imds_connects.get(s, 0) + 1
    for name in host_a["labels"]:
        assert name in execs, f"no exec event for {name}"
    for name in ("dev_token_put", "dev_token_get", "dev_slow", "dev_rapid7_cwd", "dev_cloudinit_parent"):
        assert imds_connects.get(name, 0) >= 1, f"no IMDS connect for {name}"
    assert "dev_loopback" not in imds_connects and "dev_noconnect" not in imds_connects
    # the facts each quiet label relies on
    assert any(e["process.working_directory"] == "/opt/rapid7/bin" for e in execs["dev_rapid7_cwd"])
    assert any(e["process.parent.executable"] == "/usr/bin/cloud-init" for e in execs["dev_cloudinit_parent"])
    assert any("-X PUT" in e["process.command_line"] for e in execs["dev_token_put"])


def test_alert_documents(host_a):
    ids = [a["alert"]["id"] for a in host_a["alerts"]]
    assert len(set(ids)) == len(ids)
    for a in host_a["alerts"]:
        assert a["rule"]["id"] == "ecc0cd54-608e-11ef-ab6d-f661ea17fbce"
        assert a["rule"]["severity"] == "medium" and a["rule"]["risk_score"] == 47
        assert {t["tactic"]["id"] for t in a["threat"]} == {"TA0006", "TA0007"}
        assert a["event"]["kind"] == "signal" and a["host"]["id"] == "host-a"
        first, last = a["events"]
        assert first["event"]["action"] == "exec" and last["event"]["action"] == "connection_attempted"
        assert last["destination"]["ip"] == "169.254.169.254"
        assert first["process"]["parent"]["entity_id"] == last["process"]["parent"]["entity_id"]
        assert a["process"]["command_line"]
