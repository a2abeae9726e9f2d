"""Wildcards are matched in linear time (attacker-controlled text) and exactly as a reference glob."""

from __future__ import annotations

import time
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from auditimds.rules.eql.wildcard import Glob, GlobSet, wildcard_matcher


def reference(pattern: str, s: str) -> bool:
    """Textbook dynamic programming over (pattern index, text index)."""

    @cache
    def m(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(s)
        c = pattern[i]
        if c == "*":
            return m(i + 1, j) or (j < len(s) and m(i, j + 1))
        return j < len(s) and (c == "?" or c == s[j]) and m(i + 1, j + 1)

    return m(0, 0)


alphabet = st.sampled_from("ab*?")
text = st.text(alphabet="abc", max_size=14)


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=alphabet, max_size=8), text)
def test_glob_equals_reference(pattern, s):
    assert Glob(pattern)(s) == reference(pattern, s)
    assert bool(GlobSet([pattern])(s)) == reference(pattern, s)
    assert bool(GlobSet([pattern]).linear(s)) == reference(pattern, s)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(alphabet=alphabet, min_size=1, max_size=6), min_size=1, max_size=5), text)
def test_globset_is_any_of_its_patterns(patterns, s):
    want = any(reference(p, s) for p in patterns)
    assert bool(GlobSet(patterns)(s)) == want and bool(GlobSet(patterns).linear(s)) == want


def test_shapes():
    g = GlobSet(["/tmp/*", "*.sh", "*169.254.169.254/latest/api/token*", "/etc/rc*.d/*", "pyth?n*", "curl"])
    assert g("/tmp/x") and g("run.sh") and g("curl -X PUT http://169.254.169.254/latest/api/token")
    assert g("/etc/rc3.d/S01x") and g("python3") and g("curl")
    assert g("/etc/rc.local") is None and g("pythn") is None and g("curl2") is None


def test_no_catastrophic_backtracking_on_megabyte_arguments():
    """Security regression: with a backtracking regex these took 33 s and 8 s (1 MB, Python re)."""
    m = wildcard_matcher(["*-X PUT*169.254.169.254/latest/api/token*"], True)
    carve = wildcard_matcher(["*-H X-aws-ec2-metadata-token:*169.254.169.254/latest/*"], True)
    many_stars = wildcard_matcher(["*a*b*c*d*e*f*g*h*"], True)
    hostile = ["-X PUT " * 150_000, "-H X-aws-ec2-metadata-token:" * 36_000, "abcdefg" * 150_000,
               # just under the regex limit: the quadratic worst case must stay small there too
               "-X PUT " * 580, "abcdefg" * 580]
    t0 = time.perf_counter()
    for s in hostile:
        assert not m(s) and not carve(s)
        assert not many_stars(s)
    # generous bound (a shared CI machine); the quadratic version needs over 40 s
    assert time.perf_counter() - t0 < 5.0
