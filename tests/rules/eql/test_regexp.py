"""`regex`/`regex~`: Lucene syntax (translated, or refused with a parse error), anchored, ASCII case folding
for `~`, compiled once per predicate, and a time bound whose expiry is a counted non-match."""

from __future__ import annotations

import logging

import pytest

from auditimds.rules.eql import regexp
from auditimds.rules.eql.ast import EqlSyntaxError
from auditimds.rules.eql.codegen import compile_expr
from auditimds.rules.eql.interpreter import evaluate
from auditimds.rules.eql.parser import parse_expression
from auditimds.rules.eql.regexp import LuceneRegexError, RegexSet, translate


class Ev(dict):
    def __missing__(self, key):
        return None


def both(expr: str, ev: dict) -> bool:
    node = parse_expression(expr)
    got = compile_expr(node)(Ev(ev))
    assert got == evaluate(node, Ev(ev)), expr
    return got


@pytest.mark.parametrize("pattern, text, want", [
    ("cu.l", "curl", True),
    ("cu.l", "curly", False),  # anchored at both ends
    ("cu.l", "xcurl", False),
    (".*curl.*", "/usr/bin/curl -s", True),
    ("a.b", "a\nb", True),  # . is any character, newline included
    ("^curl$", "curl", False),  # no anchors in Lucene: ^ and $ are characters
    ("^curl$", "^curl$", True),
    ("x+", "xxx", True),
    ("x+", "", False),
    ("ab?c", "ac", True),
    ("a{2}", "aa", True),
    ("a{2}", "aaa", False),
    ("a{2,}", "aaaa", True),
    ("a{1,2}", "aaa", False),
    ("(ab)+", "ababab", True),
    ("(ab)+", "aba", False),
    ("curl|wget", "wget", True),
    ("[a-c]+", "abcabc", True),
    ("[a-c]+", "abcd", False),
    ("[^a-c]+", "xyz", True),
    ("[^a-c]+", "xaz", False),
    ("\\d+\\.\\d+", "10.25", True),
    ("\\w+", "a_Z9", True),
    ("\\w+", "a-b", False),
    ("\\s", " ", True),
    ("\\D\\S\\W", "x.!", True),
    ('"a.b"', "a.b", True),  # a quoted string is literal
    ('"a.b"', "axb", False),
    ('a""b', "ab", True),
    ("\\.\\*", ".*", True),  # an escaped character is literal
    ("\\#\\@\\~\\&\\<\\>", "#@~&<>", True),
    ("a*?", "aaa", True),  # a repeat of a repeat repeats the group: never lazy ...
    ("a*+a", "aaa", True),  # ... nor possessive
    ("", "", True),
    ("()", "", True),
    ("[.]", ".", True),
    ("[.]", "x", False),
    ("[\\]]", "]", True),
    ("[a\\-z]", "-", True),
    ("[a\\-z]", "b", False),
    ("[-a]", "-", True),
    ("[a-]", "-", True),
])
def test_lucene_syntax(pattern, text, want):
    assert RegexSet([pattern], False)(text) is want
    q = pattern.replace("\\", "\\\\").replace('"', '\\"')
    assert both(f'f regex "{q}"', {"f": text}) is want


@pytest.mark.parametrize("pattern, message", [
    ("a(", "unbalanced '('"),
    ("a)", "unbalanced ')'"),
    ("a]", "unbalanced ']'"),
    ("a}", "unbalanced '}'"),
    ("[]", "empty character class"),
    ("[abc", "unterminated '['"),
    ('"abc', "unterminated quoted string"),
    ("a{3,1}", "maximum below its minimum"),
    ("a{x}", "expected a repeat"),
    ("a{,3}", "expected a repeat"),
    ("a{2", "unterminated '{'"),
    ("*a", "nothing to repeat"),
    ("a|+", "nothing to repeat"),
    ("a\\", "trailing '\\'"),
    ("[a\\", "trailing '\\'"),
    ("[\\d]", "inside '[...]' is not supported"),
    ("[z-a]", "invalid range"),
    ("#", "'#' (the empty language) is not supported"),
    ("a@", "'@' (any string) is not supported"),
    ("a&b", "'&' (intersection) is not supported"),
    ("~a", "'~' (complement) is not supported"),
    ("<1-10>", "'<' (numeric interval) is not supported"),
])
def test_what_cannot_be_translated_is_refused(pattern, message):
    with pytest.raises(LuceneRegexError, match="at offset"):
        translate(pattern)
    q = pattern.replace("\\", "\\\\").replace('"', '\\"')
    with pytest.raises(EqlSyntaxError) as e:
        parse_expression(f'process.name regex "{q}"')
    assert message in str(e.value) and "invalid regular expression" in str(e.value)
    assert str(e.value).startswith("line 1, column 14: ")


def test_tilde_folds_ascii_case_only():
    assert both('f regex~ "CU.L"', {"f": "curl"})
    assert not both('f regex "CU.L"', {"f": "curl"})
    assert both('f regex~ "[A-C]+"', {"f": "abc"})
    assert not both('f regex~ "é"', {"f": "É"})  # Lucene's case-insensitive flag folds ASCII only


def test_lists_and_multi_valued_fields():
    assert both('f regex ("x+", "[0-9]+")', {"f": ["zz", "123"]})
    assert not both('f regex ("x+", "[0-9]+")', {"f": ["zz", "12a"]})
    assert not both('f regex ".*"', {})  # missing: false
    assert both('not f regex "a"', {})
    assert not both('f regex ".*"', {"f": 12})  # strings only


def test_compiled_once_per_predicate(monkeypatch):
    made = []
    real = regexp.RegexSet.__init__

    def counting(self, patterns, insensitive):
        made.append(tuple(patterns))
        real(self, patterns, insensitive)

    monkeypatch.setattr(regexp.RegexSet, "__init__", counting)
    from auditimds.rules.eql import interpreter
    interpreter.regex_set.cache_clear()
    pred = compile_expr(parse_expression('f regex ("ab+", "c") or g regex~ "d.*"'))
    n = len(made)
    assert n == 2
    for i in range(50):
        pred(Ev({"f": "abbb" if i % 2 else "x", "g": ["D1", "e"]}))
    assert len(made) == n


def test_a_timeout_is_a_counted_non_match(monkeypatch, caplog):
    rs = RegexSet(["x+y"], False)

    def slow(s, timeout=None):
        raise TimeoutError("regex timed out")

    rs._fullmatch = slow
    before = regexp.TIMEOUTS.count
    with caplog.at_level(logging.WARNING, logger="auditimds"):
        for _ in range(5):
            assert rs("x" * 30) is False
    assert rs.timeouts == 5 and regexp.TIMEOUTS.count == before + 5
    warned = [r for r in caplog.records if "took more than" in r.getMessage()]
    assert 1 <= len(warned) <= 3  # the 1st, 2nd and 4th: the log stays short


def test_the_time_bound_is_real(monkeypatch):
    monkeypatch.setattr(regexp, "TIMEOUT_S", 0.01)
    rs = RegexSet(["(a|aa)+b"], False)  # exponential backtracking on a run of a's without the b
    assert rs("a" * 40) is False
    assert rs.timeouts == 1
    assert rs("a" * 40 + "b") is True  # an ordinary match is unaffected
    pred = compile_expr(parse_expression('f regex "(a|aa)+b"'))
    assert pred(Ev({"f": ["a" * 40, "ab"]}))  # a timeout on one value, a match on the next
