"""`auditimds rules check`: check_rules(paths, out) -> exit code, one line per rule file plus notes."""

from __future__ import annotations

import io

from auditimds.rules.check import check_rules, rule_notes
from auditimds.rules.eql.parser import parse_query

from .rules_testpaths import UPSTREAM


def rule_file(tmp_path, name, query, rtype="eql"):
    p = tmp_path / name
    q = query.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    p.write_text(f'[rule]\nrule_id = "{name}-id"\nname = "{name} rule"\ntype = "{rtype}"\n'
                 f'language = "{rtype}"\nquery = "{q}"\n')
    return p


def check(paths):
    out = io.StringIO()
    rc = check_rules([str(p) for p in paths], out)
    return rc, out.getvalue()


def test_upstream_rules_all_load():
    rc, text = check([UPSTREAM])
    lines = text.splitlines()
    assert rc == 0
    loaded = [ln for ln in lines if ": loaded: " in ln]
    assert len(loaded) == 4
    # the reverse-shell rule's fork branch can never match auditd exec/connect events
    i = next(i for i, ln in enumerate(lines) if "reverse_shell_tcp_cli.toml: loaded" in ln)
    assert lines[i + 1] == '    values never produced: event.action in "fork"'
    # the other three use only fields the normalizer supplies
    assert sum(1 for ln in lines if ln.startswith("    ")) == 1


def test_refused_rule_reason_with_position(tmp_path):
    good = rule_file(tmp_path, "good.toml", 'process where process.name == "x"')
    bad = rule_file(tmp_path, "bad.toml", 'process where\n  process.name == "x" | head 3')
    kql = rule_file(tmp_path, "kql.toml", "process.name: x", rtype="query")
    rc, text = check([good, bad, kql])
    assert rc == 1
    assert f"{good}: loaded: good.toml rule (good.toml-id)" in text
    assert f"{bad}: refused: invalid query: line 2, column 23: pipes ('|') are not supported" in text
    assert f"{kql}: refused: unsupported rule type 'query'" in text


def test_directory_and_order(tmp_path):
    rule_file(tmp_path, "b.toml", 'process where process.name == "b"')
    rule_file(tmp_path, "a.toml", 'process where process.name == "a"')
    rc, text = check([tmp_path])
    assert rc == 0
    assert [ln.split(": ")[0].rsplit("/", 1)[1] for ln in text.splitlines()] == ["a.toml", "b.toml"]


def test_bad_usage(tmp_path):
    assert check([])[0] == 2
    rc, text = check([tmp_path / "missing.toml"])
    assert rc == 2 and "missing.toml: no such file or directory" in text
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, text = check([empty])
    assert rc == 2 and "no *.toml rule files" in text


def test_notes_for_fields_categories_and_values():
    q = parse_query(
        'sequence by host.id with maxspan=1m '
        '[process where event.action in ("fork", "exec") and process.hash.sha256 != null '
        '  and process.Ext.relative_file_creation_time < 10] '
        '[file where event.action : "creat*" and ?file.path : "/etc/*" and user.name == "root"] '
        '[network where event.type == "end" and event.category regex "net.*"]'
    )
    assert rule_notes(q) == [
        "fields not supplied by auditd events: file.path, process.Ext.relative_file_creation_time, "
        "process.hash.sha256",
        "event categories never produced: file",
        'values never produced: event.action in "fork", event.action : "creat*", event.type == "end"',
    ]


def test_no_notes_for_supported_query():
    q = parse_query('process where event.action : "EXEC" and process.args_count >= 4 and auditd.data.exit == 0')
    assert rule_notes(q) == []


def test_shipped_pack_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not in a checkout: `hardened` is the pack shipped with auditimds
    rc, text = check(["hardened"])
    assert rc == 0, text
    assert text.count(": loaded: ") == 4 and "/hardened/" in text
    rc, text = check(["nosuchpack"])
    assert rc == 2 and "nosuchpack: no such file or directory (shipped packs: hardened)" in text
    # a local directory of that name is that directory
    (tmp_path / "hardened").mkdir()
    rule_file(tmp_path / "hardened", "mine.toml", 'process where process.name == "x"')
    rc, text = check(["hardened"])
    assert rc == 0 and text.startswith("hardened/mine.toml: loaded: ")


def test_duplicate_rule_id_across_files_is_flagged(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = rule_file(tmp_path / "a", "same.toml", 'process where process.name == "a"')
    second = rule_file(tmp_path / "b", "same.toml", 'process where process.name == "b"')  # same rule_id
    other = rule_file(tmp_path / "b", "other.toml", 'process where process.name == "c"')
    rc, text = check([tmp_path / "a", tmp_path / "b"])
    assert rc == 1
    lines = text.splitlines()
    i = lines.index(f"{second}: loaded: same.toml rule (same.toml-id)")
    assert lines[i + 1] == f"    duplicate rule_id: also defined in {first}"
    assert text.count("duplicate rule_id") == 1 and f"{other}: loaded" in text
    # the same file reached twice (a file and its directory) is checked once, not flagged
    rc, text = check([other, tmp_path / "b" / ".." / "b" / "other.toml"])
    assert rc == 0 and text.count(": loaded: ") == 1


def test_syntax_error_position_in_the_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[rule]\nrule_id = "x"\nname = "x"\ntype = "eql"\nlanguage = "eql"\n'
                 "query = '''\nprocess where\n  process.name == \"x\" | head 3\n'''\n")
    rc, text = check([p])
    assert rc == 1
    assert (f"{p}: refused: invalid query: line 8, column 23 of the file (line 2, column 23 of the query): "
            "pipes ('|') are not supported") in text
