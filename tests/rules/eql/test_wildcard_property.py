"""Property tests: the compiled ':' matcher equals a naive wildcard reference; compiled code equals the
tree interpreter on random events."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from auditimds.rules.eql.codegen import compile_expr
from auditimds.rules.eql.interpreter import evaluate
from auditimds.rules.eql.parser import parse_expression
from auditimds.rules.eql.wildcard import wildcard_matcher

ALPHABET = "aAbB*?.\\/-_ \n(|)[+]^$éİß"


def ref_wildcard(pattern: str, s: str) -> bool:
    """Reference: '*' any run, '?' exactly one char, everything else literal; simple lower-case folding."""
    p, s = pattern.lower(), s.lower()

    @cache
    def m(i: int, j: int) -> bool:
        if i == len(p):
            return j == len(s)
        if p[i] == "*":
            return m(i + 1, j) or (j < len(s) and m(i, j + 1))
        if j < len(s) and (p[i] == "?" or p[i] == s[j]):
            return m(i + 1, j + 1)
        return False

    return m(0, 0)


def eql_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class Ev(dict):
    def __missing__(self, key):
        return None


texts = st.text(alphabet=ALPHABET, max_size=12)
patterns = st.text(alphabet=ALPHABET, max_size=8)


@settings(max_examples=400, deadline=None)
@given(pats=st.lists(patterns, min_size=1, max_size=4), s=texts)
def test_colon_matches_reference(pats, s):
    expected = any(ref_wildcard(p, s) for p in pats)
    assert wildcard_matcher(pats)(s) is expected
    expr = parse_expression(f"f : ({', '.join(eql_str(p) for p in pats)})")
    fn = compile_expr(expr)
    assert fn(Ev({"f": s})) is expected
    # multi-valued: any element
    assert fn(Ev({"f": ["zzz-no", s]})) is (expected or any(ref_wildcard(p, "zzz-no") for p in pats))
    # not: two-valued
    assert compile_expr(parse_expression(f"not f : {eql_str(pats[0])}"))(Ev({"f": s})) is not ref_wildcard(
        pats[0], s
    )


@settings(max_examples=200, deadline=None)
@given(pat=patterns, s=texts)
def test_like_is_case_sensitive_reference(pat, s):
    def ref_cs(p, x):
        return ref_wildcard(p, x) if p == p.lower() and x == x.lower() else None

    r = ref_cs(pat, s)
    if r is not None:
        assert compile_expr(parse_expression(f"f like {eql_str(pat)}"))(Ev({"f": s})) is r


VALUES = st.one_of(
    st.none(),
    st.sampled_from(["curl", "CURL", "/usr/bin/curl", "", "x", "10.0.0.1", "::1", "start"]),
    st.integers(-3, 5),
    st.booleans(),
    st.lists(st.sampled_from(["curl", "x", "start", "-X", None, 3]), max_size=3),
)

EXPRS = [
    'a == "curl"',
    'a != "curl"',
    'a : ("CU*", "x")',
    'not a : "*url"',
    'a in ("x", "start", 3)',
    'a in~ ("CURL", "X")',
    'a not in ("x")',
    "a == null",
    "a != null",
    "a > 1",
    "a <= 0",
    "a == true",
    'a like "c?rl"',
    'cidrMatch(a, "10.0.0.0/8", "::1")',
    'startsWith(a, "/usr")',
    'stringContains~(a, "URL")',
    "a == 3",
    "a != 3",
    "a",
    "length(a) == 4",
    'a regex "c.*"',
    'a < "d"',
    'a : "curl" and not b == "x"',
    '(a == "x" or b : "cu*") and not (a != null and b == null)',
]


@settings(max_examples=300, deadline=None)
@given(a=VALUES, b=VALUES, idx=st.integers(0, len(EXPRS) - 1))
def test_compiled_equals_interpreter(a, b, idx):
    node = parse_expression(EXPRS[idx])
    ev = Ev({k: v for k, v in (("a", a), ("b", b))})
    assert compile_expr(node)(ev) is evaluate(node, ev)
