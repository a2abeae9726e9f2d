"""The upstream Linux rules on real audit logs recorded with the kernel and auditd (tests/fixtures/rules/).

Each recording is run through `Pipeline` with every upstream rule loaded, as `scan` does.  The positive
recordings fire exactly their rule, once; the near-miss recordings fire nothing, and for each we show that
the events are there and that the stage meant to fail is the only one that no event satisfies, so "no alert"
is the rule's decision for the intended reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from auditimds.pipeline import Pipeline
from auditimds.rules.loader import Rule, load_rules
from auditimds.source.reader import open_log, read_batches

from .rules_testpaths import REPO, UPSTREAM

FIXTURES = REPO / "tests" / "fixtures" / "rules"

SEED = "ecc0cd54-608e-11ef-ab6d-f661ea17fbce"
REVSHELL_BIN = "fa3a59dc-33c3-43bf-80a9-e8437a922c7f"  # Potential Reverse Shell via Suspicious Binary
REVSHELL_CLI = "48b3d2e3-f4e8-41e6-95e6-9b2091228db3"  # Potential Reverse Shell
CHISEL = "3f12325a-4cc6-410b-8d4c-9fbbeb744cfd"  # Potential Protocol Tunneling via Chisel Client

# recording -> (rule it targets, rule ids expected to fire, stages of the target rule no event satisfies)
CASES: Dict[str, Tuple[str, set, set]] = {
    "revshell_tmp_binary": (REVSHELL_BIN, {REVSHELL_BIN}, set()),
    "revshell_system_binary": (REVSHELL_BIN, set(), {0, 1}),  # /usr/bin/bash: not a suspicious location
    "revshell_tmp_binary_loopback": (REVSHELL_BIN, set(), {1}),  # destination 127.0.0.1 excluded
    "revshell_bash_interactive": (REVSHELL_CLI, {REVSHELL_CLI}, set()),
    "revshell_bash_loopback": (REVSHELL_CLI, set(), {0}),  # cidrmatch 127.0.0.0/8 excluded
    "revshell_bash_not_interactive": (REVSHELL_CLI, set(), {1}),  # child shell without -i / -l
    "chisel_client_tunnel": (CHISEL, {CHISEL}, set()),
    "chisel_client_plain_args": (CHISEL, set(), {0}),  # no R*, *:*, *socks* argument
    "chisel_client_loopback": (CHISEL, set(), {1}),  # destination 127.0.0.1 excluded
    "chisel_client_from_python": (CHISEL, set(), {0}),  # parent is python3, not a shell
}
# near misses where another process of the recording satisfies the failing stage: only that process's events
# are considered (the python3 launcher has the chisel arguments in its own argv, but it never connects)
SUBJECT = {"chisel_client_from_python": "chisel"}


@pytest.fixture(scope="module")
def rules() -> Dict[str, Rule]:
    loaded, errors = load_rules([UPSTREAM])
    assert errors == []
    by_id = {r.rule_id: r for r in loaded}
    assert set(by_id) == {SEED, REVSHELL_BIN, REVSHELL_CLI, CHISEL}
    return by_id


def run(path: Path, rules: List[Rule]) -> Tuple[List[Dict[str, Any]], List[Any]]:
    """Scan a recording with fresh copies of `rules` (compiled rules hold sequence state)."""
    fresh, _ = load_rules([r.source_path for r in rules])
    rules = [r for r in fresh if r.rule_id in {x.rule_id for x in rules}]
    alerts: List[Dict[str, Any]] = []
    events: List[Any] = []
    pipe = Pipeline(rules, "rec-host", "rec-host", on_alert=alerts.append, on_event=events.append)
    with open_log(str(path)) as f:
        for batch in read_batches(f):
            pipe.feed(batch, 0.0)
    pipe.finish()
    st = pipe.stats()
    assert st["malformed_lines"] == 0 and st["rule_errors"] == 0
    return alerts, events


def stages_satisfied(rule: Rule, events: List[Any]) -> List[bool]:
    """For each stage of a sequence rule: does any event (of the stage's category) satisfy its condition?"""
    cq = rule.compiled
    out = []
    for stage, pred in zip(cq.query.stages, cq.preds):  # type: ignore[union-attr]
        out.append(any(stage.category in e["event.category"] and pred(e) for e in events))
    return out


def test_every_recording_is_a_case():
    assert {p.stem for p in FIXTURES.glob("*.log")} == set(CASES) | {"accept_listener"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_recording_fires_exactly_the_expected_rules(name, rules):
    _target, want, _failing = CASES[name]
    alerts, events = run(FIXTURES / f"{name}.log", list(rules.values()))
    assert events, "the recording holds events"
    fired = [a["rule"]["id"] for a in alerts]
    assert sorted(fired) == sorted(want)  # each expected rule exactly once, nothing else


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_intended_stage_decides(name, rules):
    target, _want, failing = CASES[name]
    rule = rules[target]
    _alerts, events = run(FIXTURES / f"{name}.log", [rule])
    rule = load_rules([rule.source_path])[0][0]
    if name in SUBJECT:
        events = [e for e in events if e["process.name"] == SUBJECT[name]]
    sat = stages_satisfied(rule, events)
    assert {i for i, ok in enumerate(sat) if not ok} == failing


def test_revshell_tmp_binary_alert_content(rules):
    alerts, _ = run(FIXTURES / "revshell_tmp_binary.log", [rules[REVSHELL_BIN]])
    (a,) = alerts
    docs = a["events"]
    assert [d["event"]["action"] for d in docs] == ["exec", "connection_attempted", "exec"]
    assert docs[0]["process"]["executable"].startswith("/tmp/auditimds-rec-")
    assert docs[0]["process"]["parent"]["name"] == "bash"
    assert docs[1]["destination"]["ip"] == "10.213.0.1"
    assert docs[2]["process"]["name"] == "dash"
    # exec keeps the entity id: the three stages are one process
    assert len({d["process"]["entity_id"] for d in docs}) == 1
    assert len({d["process"]["pid"] for d in docs}) == 1


def test_revshell_cli_alert_joins_parent_to_connecting_shell(rules):
    alerts, _ = run(FIXTURES / "revshell_bash_interactive.log", [rules[REVSHELL_CLI]])
    (a,) = alerts
    net, shell = a["events"]
    assert net["event"]["action"] == "connection_attempted" and net["process"]["name"] == "bash"
    assert shell["process"]["args"] == ["bash", "-i"]
    assert shell["process"]["parent"]["entity_id"] == net["process"]["entity_id"]


def test_chisel_alert_content(rules):
    alerts, _ = run(FIXTURES / "chisel_client_tunnel.log", [rules[CHISEL]])
    (a,) = alerts
    ex, net = a["events"]
    assert ex["process"]["args"][1:4] == ["client", "10.213.0.1:4447", "R:socks"]
    assert ex["process"]["args_count"] == 5  # the recording's case= marker is the fifth argument
    assert ex["process"]["parent"]["name"] == "bash"
    assert net["destination"] == {"ip": "10.213.0.1", "port": 4447}
    assert ex["process"]["entity_id"] == net["process"]["entity_id"]
