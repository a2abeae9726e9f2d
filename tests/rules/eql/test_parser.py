from __future__ import annotations

import glob
import sys
from pathlib import Path

import pytest

from auditimds.rules.engine.factory import compile_query
from auditimds.rules.eql.ast import (
    And,
    Compare,
    EqlSyntaxError,
    EventQuery,
    Field,
    FuncCall,
    InSet,
    Literal,
    Match,
    Not,
    Or,
    Sequence,
)
from auditimds.rules.eql.parser import parse_expression, parse_query

from ..rules_testpaths import SEED, UPSTREAM

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

UPSTREAM_FILES = sorted(glob.glob(str(UPSTREAM / "*.toml")))


def _query(path: str) -> str:
    with open(path, "rb") as fh:
        return tomllib.load(fh)["rule"]["query"]


def test_upstream_rules_present():
    assert len(UPSTREAM_FILES) >= 4, f"upstream rules missing in {UPSTREAM} (set AUDITIMDS_SHARED)"


@pytest.mark.parametrize("path", UPSTREAM_FILES, ids=lambda p: Path(p).stem)
def test_upstream_rules_parse_and_compile(path):
    q = parse_query(_query(path))
    assert isinstance(q, Sequence)
    cq = compile_query(q)
    assert cq.categories <= {"process", "network"}
    assert "event.category" in cq.fields and "host.id" in cq.fields


def test_seed_rule_structure():
    q = parse_query(_query(str(SEED)))
    assert [f.name for f in q.by] == ["host.id", "process.parent.entity_id"]
    assert q.maxspan_ns == 3_000_000_000
    assert [s.category for s in q.stages] == ["process", "network"]
    assert q.until is None


def test_reverse_shell_tcp_cli_per_stage_by():
    q = parse_query(_query(str(UPSTREAM / "reverse_shell_tcp_cli.toml")))
    assert [f.name for f in q.by] == ["host.id"]
    assert [[f.name for f in s.by] for s in q.stages] == [["process.entity_id"], ["process.parent.entity_id"]]
    assert q.maxspan_ns == 5_000_000_000
    # lower-case 'cidrmatch' resolves to the canonical function
    calls = [it.expr for it in q.stages[0].where.items if isinstance(it, Not)]
    assert isinstance(calls[0], FuncCall) and calls[0].name == "cidrMatch"


@pytest.mark.parametrize(
    "span,ns",
    [
        ("500ms", 500_000_000),
        ("3s", 3_000_000_000),
        ("2m", 120_000_000_000),
        ("1h", 3_600_000_000_000),
        ("3 s", 3_000_000_000),
    ],
)
def test_maxspan_units(span, ns):
    q = parse_query(f"sequence by a with maxspan={span} [any where true] [any where true]")
    assert q.maxspan_ns == ns


def test_sequence_without_by_or_maxspan():
    q = parse_query("sequence [process where x == 1] [network where y == 2]")
    assert q.by == [] and q.maxspan_ns is None and len(q.stages) == 2


def test_runs_and_until():
    q = parse_query(
        "sequence by h with maxspan=1s [process where a == 1] with runs=3 [network where b == 1] "
        "until [process where c == 1]"
    )
    assert len(q.stages) == 4
    assert q.until is not None and q.until.category == "process"


def test_event_query_and_any():
    q = parse_query('process where process.name == "curl"')
    assert isinstance(q, EventQuery) and q.category == "process"
    q = parse_query("any where true")
    assert q.category is None and q.where == Literal(True, 1, 11)
    q = parse_query('"network" where destination.port == 80')
    assert q.category == "network"


def test_precedence_not_and_or():
    e = parse_expression("not a == 1 and b == 2 or c == 3")
    assert isinstance(e, Or)
    assert isinstance(e.items[0], And)
    assert isinstance(e.items[0].items[0], Not)
    e = parse_expression('not process.name in ("a", "b")')
    assert isinstance(e, Not) and isinstance(e.expr, InSet)
    e = parse_expression("a == 1 and (b == 2 or c == 3)")
    assert isinstance(e, And) and isinstance(e.items[1], Or)


def test_operators():
    assert parse_expression('a : "x*"') == Match(":", Field("a", False, 1, 1), ["x*"], 1, 3)
    e = parse_expression('a like~ ("x", "y")')
    assert e.kind == "like~" and e.patterns == ["x", "y"]
    assert parse_expression('a like "x"').kind == "like"
    assert parse_expression('a regex~ "x.*"').kind == "regex~"
    e = parse_expression('a not in~ ("X", 1)')
    assert isinstance(e, Not) and e.expr.insensitive and [v.value for v in e.expr.values] == ["X", 1]
    e = parse_expression("a in (1, 2.5, true, null)")
    assert [v.value for v in e.values] == [1, 2.5, True, None]
    for op in ("==", "!=", "<", "<=", ">", ">="):
        e = parse_expression(f"a {op} -3")
        assert isinstance(e, Compare) and e.op == op and e.right.value == -3
    # literal on the left is normalised to the right with the operator flipped
    e = parse_expression("5 < a")
    assert e.op == ">" and e.left.name == "a" and e.right.value == 5


def test_fields_backticks_and_optional():
    e = parse_expression('`my-field`.`x``y`.z == "v" and ?process.foo == null and @timestamp > 0')
    assert e.items[0].left.name == "my-field.x`y.z"
    assert e.items[1].left == Field("process.foo", True, 1, 32)
    assert e.items[2].left.name == "@timestamp"


def test_functions_case_insensitive_and_tilde():
    e = parse_expression('CIDRMATCH(destination.ip, "10.0.0.0/8") and startsWith~(process.name, "CU")')
    assert e.items[0].name == "cidrMatch" and not e.items[0].insensitive
    assert e.items[1].name == "startsWith" and e.items[1].insensitive
    e = parse_expression("length(process.args) > 3")
    assert isinstance(e, Compare) and isinstance(e.left, FuncCall) and e.left.name == "length"


@pytest.mark.parametrize(
    "src,value",
    [
        (r'"a\tb"', "a\tb"),
        (r'"a\nb\rc"', "a\nb\rc"),
        (r'"\b\f"', "\b\f"),
        (r'"say \"hi\""', 'say "hi"'),
        (r'"it\'s"', "it's"),
        (r'"C:\\temp"', "C:\\temp"),
        (r'"\u{41}\u{00e9}\u{1F600}"', "A\u00e9\U0001f600"),
        (r'"a\wb"', "a\\wb"),  # unknown escapes pass through, backslash included
        (r'"a\*b"', "a\\*b"),
        ('"""C:\\raw\\path"""', "C:\\raw\\path"),
        ('"""say "hi" \\n"""', 'say "hi" \\n'),
        ('""""quoted""""', '"quoted"'),
        ('""', ""),
    ],
)
def test_string_escapes(src, value):
    e = parse_expression(f"a == {src}")
    assert e.right.value == value


def test_comments():
    q = parse_query(
        "// leading comment\n"
        'process /* inline */ where a == "x" // trailing\n'
        "  /* multi\n line */ and b == 1\n"
    )
    assert isinstance(q.where, And) and len(q.where.items) == 2


@pytest.mark.parametrize(
    "src,line,col,fragment",
    [
        ('process where a = "x"', 1, 17, "'=' is not a valid operator"),
        ("process where a == 'x'", 1, 20, "single-quoted"),
        ('process where a == ?"x"', 1, 20, '?"..."'),
        ("process where foo(a)", 1, 15, "unknown function 'foo'"),
        ('process where\n  a == "x" and\n  nosuchfn(b, "c")', 3, 3, "unknown function 'nosuchfn'"),
        ("sequence [process where a == 1\n  [network where b == 2]", 2, 3, "expected ']'"),
        ("sequence by h\n  [process where a == 1]\n  [network where b == 2 and c = 3]", 3, 31, "'='"),
        ('process where a == "unterminated', 1, 20, "unterminated string"),
        ("process where a == 1 | head 5", 1, 22, "pipes"),
        ("sequence [process where a == 1]", 1, 1, "minimum of 2"),
        ("sequence with maxspan=3s by h [a where true] [b where true]", 1, 26, "before [with]"),
        ("sequence by h with maxspan=3 [a where true] [b where true]", 1, 30, "no time unit"),
        ("sequence by h with maxspan=3x [a where true] [b where true]", 1, 29, "unknown time unit"),
        ("sequence [a where true] by x [b where true] by x, y", 1, 30, "inconsistent number of join keys"),
        ("process where a : b", 1, 19, "expects a string pattern"),
        ("process where a in (b)", 1, 21, "only accepts literal values"),
        ("process where a == b", 1, 17, "comparisons against fields"),
        ("process where a < null", 1, 17, "cannot compare null"),
        ('process where a == "\\u{D800}"', 1, 21, "invalid unicode code point"),
        ('process where a == "\\u{4}"', 1, 21, "invalid unicode escape"),
        ('process where cidrMatch(a, "10.0.0.300/8")', 1, 28, "invalid CIDR"),
        ("process where length(a, b) > 1", 1, 15, "takes 1 arguments"),
        ("process where a == 1 /* never closed", 1, 22, "unterminated /* comment"),
        ("process where a == 1 b == 2", 1, 22, "unexpected"),
        ("process where a + 1 == 2", 1, 17, "arithmetic"),
        ("sequence [a where true] ![b where true]", 1, 25, "missing-event"),
        ("process where length~(a) > 1", 1, 15, "'~'"),
        ("process where a ==", 1, 19, "end of query"),
        ("process a == 1", 1, 9, "expected 'where'"),
    ],
)
def test_syntax_errors(src, line, col, fragment):
    with pytest.raises(EqlSyntaxError) as ei:
        parse_query(src)
    err = ei.value
    assert (err.line, err.col) == (line, col), str(err)
    assert fragment in str(err)
    assert str(err).startswith(f"line {line}, column {col}: ")


def test_error_message_format_expected_bracket():
    with pytest.raises(EqlSyntaxError) as ei:
        parse_query(
            "sequence by h with maxspan=3s\n[process where a == 1\n  and b == 2\n  [network where c == 3]"
        )
    assert str(ei.value).startswith("line 4, column 3: expected ']'")
