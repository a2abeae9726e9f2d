"""The built-in rules ship as data, unmodified from Elastic's files, and load through the generic loader."""

from __future__ import annotations

from auditimds.rules.builtin import builtin_rules_dir
from auditimds.rules.loader import load_rules
from tests.conftest import REPO, UPSTREAM_RULES

SEED = "unusual_instance_metadata_service_api_request.toml"


def test_seed_rule_is_byte_identical_to_upstream_below_the_attribution_header():
    ours = (REPO / "config" / "rules" / SEED).read_bytes()
    upstream = (UPSTREAM_RULES / SEED).read_bytes()
    header, sep, body = ours.partition(b"#\n[metadata]")
    assert sep, "attribution header must end with a '#' line before [metadata]"
    assert b"[metadata]" + body == upstream
    assert all(line.startswith(b"#") for line in header.splitlines())
    assert b"Elastic License 2.0" in header and b"1833d2e7a09333342d12a4b6ff3c02c00e6f5046" in header
    assert (REPO / "config" / "rules" / "LICENSE-ELASTIC-2.0.txt").read_text().count("Elastic License 2.0") >= 1


def test_builtin_rules_load_with_metadata():
    d = builtin_rules_dir()
    assert d.resolve() == (REPO / "config" / "rules").resolve()
    rules, errors = load_rules([d])
    assert errors == []
    (r,) = rules
    assert r.rule_id == "ecc0cd54-608e-11ef-ab6d-f661ea17fbce"
    assert r.name == "Unusual Instance Metadata Service (IMDS) API Request"
    assert (r.severity, r.risk_score, r.type, r.language) == ("medium", 47, "eql", "eql")
    techniques = {t["id"] for th in r.threat for t in th.get("technique", [])}
    assert techniques == {"T1552", "T1580"}
    assert r.compiled.categories == frozenset({"process", "network"})
    assert "process.parent.entity_id" in r.compiled.fields
