"""Issue 6's language checklist, construct by construct: each parses, compiles and evaluates with
Elasticsearch's semantics (the generated code and the reference interpreter agree), and unknown syntax is a
precise error with line and column."""

from __future__ import annotations

from typing import Any

import pytest

from auditimds.rules.engine.factory import compile_query
from auditimds.rules.eql.ast import EqlSyntaxError
from auditimds.rules.eql.codegen import compile_expr
from auditimds.rules.eql.interpreter import evaluate
from auditimds.rules.eql.parser import parse_expression, parse_query


class Ev(dict):
    def __missing__(self, key: str) -> Any:
        return None


EV = Ev({
    "event.category": ["process"], "event.type": ["start"], "event.action": "exec",
    "process.name": "Chisel", "process.executable": "/tmp/x/chisel",
    "process.args": ["/tmp/x/chisel", "client", "10.0.0.5:8000", "R:socks"], "process.args_count": 4,
    "process.pid": 4242, "destination.ip": "10.0.0.5", "process.working_directory": "/root",
    "user.id": "0", "process.command_line": 'say "hi"\tthere', "auditimds.flag": True,
})

CASES = [
    # comparisons, numbers, booleans, null
    ('process.name == "Chisel"', True), ('process.name == "chisel"', False), ('process.name != "chisel"', True),
    ("process.args_count >= 4", True), ("process.args_count > 4", False), ("process.args_count < 4.5", True),
    ("process.args_count <= 3", False), ("process.pid == 4242", True), ("process.pid == 4242.0", True),
    ('process.pid == "4242"', False), ("auditimds.flag == true", True), ("auditimds.flag == false", False),
    ("process.parent.name == null", True), ("process.name != null", True), ("-1 < process.pid", True),
    # : like like~ regex regex~
    ('process.name : "chi*"', True), ('process.name : "chi?el"', True), ('process.name : ("a", "CH*")', True),
    ('process.name like "chi*"', False), ('process.name like "Chi*"', True), ('process.name like~ "chi*"', True),
    ('process.name regex "C.*l"', True), ('process.name regex "c.*l"', False), ('process.name regex~ "c.*l"', True),
    ('process.name regex ("x", "Ch[a-z]+")', True),
    # in in~ not in, multi-valued fields (any element)
    ('process.name in ("chisel", "x")', False), ('process.name in~ ("chisel", "x")', True),
    ('process.name not in ("chisel", "x")', True), ('process.name not in~ ("chisel", "x")', False),
    ('process.args == "client"', True), ('process.args : "r:*"', True), ('process.args in ("R:socks")', True),
    ('event.type == "start"', True), ('process.args_count in (3, 4)', True),
    # strings: escapes and raw strings
    (r'process.command_line == "say \"hi\"\tthere"', True), ('process.command_line == """say "hi"	there"""', True),
    (r'process.working_directory == "\u{2F}root"', True),
    # boolean structure
    ('not (process.name : "x" or process.pid < 10) and true', True), ("false or not false", True),
    # functions (case-insensitive names, ~ variants)
    ('cidrMatch(destination.ip, "10.0.0.0/8")', True), ('cidrmatch(destination.ip, "127.0.0.1", "::1")', False),
    ('startsWith(process.executable, "/tmp/")', True), ('startswith~(process.name, "chi")', True),
    ('startsWith(process.name, "chi")', False), ('endsWith(process.executable, "/chisel")', True),
    ('stringContains(process.executable, "x/c")', True), ('STRINGCONTAINS~(process.name, "HIS")', True),
    ("length(process.name) == 6", True), ('substring(process.name, 0, 3) == "Chi"', True),
    ('substring(process.name, -2) == "el"', True), ('concat(process.name, "-", process.pid) == "Chisel-4242"', True),
    ("add(process.pid, 8) == 4250", True), ('number("0x10", 16) == 16', True), ('number("42") == 42', True),
    ('between(process.executable, "/tmp/", "/chisel") == "x"', True),
    ('wildcard(process.name, "x*", "chi*")', False), ('wildcard~(process.name, "x*", "chi*")', True),
    ('indexOf(process.executable, "/", 1) == 4', True), ('indexOf(process.executable, "nope") == null', True),
    ("subtract(10, 4) == 6 and multiply(2, 3) == 6 and divide(7, 2) == 3 and modulo(7, 2) == 1", True),
    ('stringContains(process.executable, process.name) == false', True),  # field arguments
    ('string(process.pid) == "4242"', True),
]


@pytest.mark.parametrize("src,want", CASES, ids=[c[0] for c in CASES])
def test_construct(src, want):
    node = parse_expression(src)
    assert compile_expr(node)(EV) is want
    assert evaluate(node, EV) is want


@pytest.mark.parametrize("src", [
    'process where true', 'network where true', 'file where true', 'any where true', '"my category" where true',
    'sequence by host.id, process.entity_id with maxspan=500ms [process where true] [network where true]',
    'sequence with maxspan=2m [process where true] by process.pid [network where true] by process.ppid',
    'sequence by host.id with maxspan=1h [process where true] with runs=3 [network where true] '
    'until [process where event.action == "end"]',
])
def test_query_shapes(src):
    compile_query(parse_query(src))


@pytest.mark.parametrize("src,line,col,fragment", [
    ('process where true\n| head 5', 2, 1, "pipes"),
    ('sample by host.id [process where true] [network where true]', 1, 1, "sample"),
    ('join [process where true] [network where true]', 1, 1, "join"),
    ('sequence [process where true]\n  ![network where true]', 2, 3, "missing-event"),
    ('process where process.pid + 1 > 3', 1, 27, "arithmetic"),
    ('process where\n  nosuch(process.name)', 2, 3, "unknown function 'nosuch'"),
    ('process where process.name = "x"', 1, 28, "'=' is not a valid operator"),
    ("process where process.name == 'x'", 1, 31, "single-quoted"),
    ('process where process.name : ?"x"', 1, 30, "not supported"),
    ('process where process.name == process.executable', 1, 28, "against fields"),
    ('sequence by a with maxspan=3 [process where true] [network where true]', 1, 30, "time unit"),
    ('sequence [process where true] with runs=0 [network where true]', 1, 41, "between 1 and 100"),
    ('process where length(process.name, 2)', 1, 15, "takes 1 arguments"),
    ('process where process.name : "x" and', 1, 37, "expected an expression"),
])
def test_precise_errors(src, line, col, fragment):
    with pytest.raises(EqlSyntaxError) as ei:
        parse_query(src)
    e = ei.value
    assert fragment in e.msg
    assert (e.line, e.col) == (line, col), str(e)
    assert str(e).startswith(f"line {line}, column {col}: ")
