from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from auditimds.rules.engine.sequence import SequenceMatcher
from auditimds.rules.loader import Rule, RuleLoadError, load_rule, load_rules

from .rules_testpaths import UPSTREAM

GOOD = '''
[metadata]
creation_date = "2024/01/01"

[rule]
rule_id = "{rule_id}"
name = "{name}"
description = "desc"
severity = "low"
risk_score = 21
type = "{type}"
language = "{language}"
tags = ["OS: Linux"]
references = ["https://example.invalid/"]
query = """
{query}
"""

[[rule.threat]]
framework = "MITRE ATT&CK"
[rule.threat.tactic]
id = "TA0006"
name = "Credential Access"
reference = "https://attack.mitre.org/tactics/TA0006/"
'''


def write(path: Path, **kw) -> Path:
    vals = {
        "rule_id": "id-1",
        "name": "Rule one",
        "type": "eql",
        "language": "eql",
        "query": 'process where process.name : "curl"',
    }
    vals.update(kw)
    path.write_text(GOOD.format(**vals))
    return path


def test_load_good_rule(tmp_path):
    r = load_rule(write(tmp_path / "r.toml"))
    assert isinstance(r, Rule)
    assert (r.rule_id, r.name, r.severity, r.risk_score, r.type, r.language) == (
        "id-1",
        "Rule one",
        "low",
        21,
        "eql",
        "eql",
    )
    assert r.tags == ["OS: Linux"] and r.references == ["https://example.invalid/"]
    assert r.threat[0]["tactic"]["id"] == "TA0006"
    assert r.source_path == tmp_path / "r.toml"
    assert r.compiled is not None and r.compiled.categories == frozenset({"process"})
    assert r.description == "desc"


@pytest.mark.parametrize(
    "content,fragment",
    [
        ("this is = not [toml", "not a TOML file"),
        ("[metadata]\nx = 1\n", "missing [rule] table"),
        (b"\xff\xfe", "not a TOML file"),
    ],
)
def test_refuse_bad_files(tmp_path, content, fragment):
    p = tmp_path / "bad.toml"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    with pytest.raises(RuleLoadError) as ei:
        load_rule(p)
    assert fragment in ei.value.reason
    assert "\n" not in str(ei.value)
    assert str(ei.value).startswith(str(p))


def test_refuse_wrong_type_language_and_missing_ids(tmp_path):
    cases = [
        ({"type": "query"}, "unsupported rule type 'query'"),
        ({"language": "kuery"}, "unsupported query language 'kuery'"),
        ({"rule_id": ""}, "rule.rule_id"),
        ({"name": " "}, "rule.name"),
    ]
    for kw, fragment in cases:
        with pytest.raises(RuleLoadError) as ei:
            load_rule(write(tmp_path / "x.toml", **kw))
        assert fragment in ei.value.reason, ei.value.reason


def test_refuse_bad_query_with_position(tmp_path):
    p = write(tmp_path / "q.toml", query='process where\n  process.name = "curl"')
    with pytest.raises(RuleLoadError) as ei:
        load_rule(p)
    # the query starts on the line after the opening triple quotes (line 15); TOML strips that newline
    assert ("invalid query: line 17, column 16 of the file (line 2, column 16 of the query): "
            "'=' is not a valid operator") in ei.value.reason
    p = write(tmp_path / "q2.toml", query="process where nope(a)")
    with pytest.raises(RuleLoadError) as ei:
        load_rule(p)
    assert "unknown function 'nope'" in str(ei.value)


def test_missing_query(tmp_path):
    p = tmp_path / "nq.toml"
    p.write_text('[rule]\nrule_id = "x"\nname = "n"\ntype = "eql"\nlanguage = "eql"\n')
    with pytest.raises(RuleLoadError) as ei:
        load_rule(p)
    assert "rule.query" in ei.value.reason


def test_load_rules_dirs_files_duplicates(tmp_path, caplog):
    d = tmp_path / "rules"
    d.mkdir()
    write(d / "b.toml", rule_id="id-b", name="B")
    write(d / "a.toml", rule_id="id-a", name="A")
    (d / "broken.toml").write_text("[rule]\n")
    (d / "notes.txt").write_text("ignored")
    extra = write(tmp_path / "override.toml", rule_id="id-a", name="A v2")
    with caplog.at_level(logging.WARNING, logger="auditimds"):
        rules, errors = load_rules([d, extra, tmp_path / "nope.toml"])
    assert [r.name for r in rules] == ["A v2", "B"]  # sorted directory order; override keeps position
    assert {Path(e.path).name for e in errors} == {"broken.toml", "nope.toml"}
    assert any("replaces" in rec.getMessage() and "id-a" in rec.getMessage() for rec in caplog.records)


def test_load_upstream_directory(tmp_path):
    rules, errors = load_rules([UPSTREAM])
    assert errors == []
    assert len(rules) == len(list(UPSTREAM.glob("*.toml")))
    assert all(isinstance(r.compiled, SequenceMatcher) for r in rules)
    # a copy with the same rule ids replaces, it does not duplicate
    copy = tmp_path / "copy"
    shutil.copytree(UPSTREAM, copy)
    rules2, errors2 = load_rules([UPSTREAM, copy])
    assert errors2 == [] and len(rules2) == len(rules)
    assert all(r.source_path.parent == copy for r in rules2)


RULE_HEAD = '[rule]\nrule_id = "x"\nname = "x"\ntype = "eql"\nlanguage = "eql"\n'  # the query is on line 6


@pytest.mark.parametrize("query_toml, expected", [
    # on the query's first line the column is offset by `query = '` (9 characters)
    ("query = 'process where process.name = \"x\"'\n", "line 6, column 37 of the file (line 1, column 28"),
    ("  query  =  " + "'" * 3 + 'process where process.name = "x"' + "'" * 3 + "\n",
     "line 6, column 43 of the file (line 1, column 28"),
    ('query = """\nprocess where\n\tprocess.name = "x"\n"""\n', "line 8, column 15 of the file (line 2, column 15"),
])
def test_query_error_position_in_the_file(tmp_path, query_toml, expected):
    """Line and column in the TOML file: the query's own position offset by where the string starts."""
    p = tmp_path / "q.toml"
    p.write_text(RULE_HEAD + query_toml)
    with pytest.raises(RuleLoadError) as ei:
        load_rule(p)
    assert expected in ei.value.reason, ei.value.reason


def test_query_error_position_crlf_and_escapes(tmp_path):
    # CRLF line ends: TOML reads them as LF in the query; the positions are the same
    p = tmp_path / "crlf.toml"
    p.write_bytes((RULE_HEAD + 'query = """\nprocess where\n  process.name = "x"\n"""\n').replace("\n", "\r\n").encode())
    with pytest.raises(RuleLoadError) as ei:
        load_rule(p)
    assert "line 8, column 16 of the file (line 2, column 16 of the query)" in ei.value.reason
    # escapes in a basic string: the file does not hold the query as is; only the query's position is given
    p = tmp_path / "escaped.toml"
    p.write_text(RULE_HEAD + 'query = "process where\\n  process.name = \\"x\\""\n')
    with pytest.raises(RuleLoadError) as ei:
        load_rule(p)
    assert "invalid query: line 2, column 16: '=' is not a valid operator" in ei.value.reason
