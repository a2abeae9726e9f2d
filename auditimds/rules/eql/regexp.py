"""The ``regex`` and ``regex~`` operators: Lucene regular expressions, anchored, with a time bound.

Elasticsearch evaluates ``field regex "..."`` as a Lucene ``regexp`` query: the pattern must match the whole
value (there are no anchors: ``^`` and ``$`` are ordinary characters), ``.`` matches any character, ``regex~``
folds ASCII case.  :func:`translate` turns the Lucene syntax into the syntax of the ``regex`` package for the
subset below, and refuses anything else with a message naming the construct and its offset:

* literal characters, ``\\c`` (any character ``c`` taken literally) and ``"quoted strings"``;
* ``.``, ``\\d \\D \\s \\S \\w \\W`` (ASCII classes), ``[abc]``, ``[a-z]``, ``[^...]``;
* ``( )`` groups, ``|``, and the repeats ``* + ? {n} {n,} {n,m}`` (a repeat of a repeat repeats the group:
  ``a*?`` is ``(a*)?``, never a lazy or possessive quantifier);
* refused: Lucene's optional operators ``# @ & ~ < >`` (empty language, any string, intersection,
  complement, numeric intervals), class shorthands inside ``[...]``, unbalanced brackets, a trailing ``\\``.

A predicate's patterns are compiled once, as one alternation (:class:`RegexSet`).  The values matched are
attacker-controlled and a pattern may backtrack, so each match runs under a time limit (``regex``'s
``timeout``): a timeout is a non-match, counted (``RegexSet.timeouts``, :data:`TIMEOUTS`) and logged, never an
error.  (Wildcards, ``:`` and ``like``, never get here: they are matched in linear time by
:mod:`auditimds.rules.eql.wildcard`.)
"""

from __future__ import annotations

import logging
import re
from typing import Callable, Iterable, List, Optional

__all__ = ["LuceneRegexError", "RegexSet", "TIMEOUT_S", "TIMEOUTS", "translate"]

log = logging.getLogger("auditimds")

TIMEOUT_S = 0.05  # per value matched: a 1 MB command line with an ordinary pattern takes a few ms

_SHORTHANDS = {
    "d": "[0-9]",
    "D": "[^0-9]",
    "s": "[\\t\\n\\x0b\\f\\r ]",
    "S": "[^\\t\\n\\x0b\\f\\r ]",
    "w": "[0-9A-Za-z_]",
    "W": "[^0-9A-Za-z_]",
}
_OPTIONAL_OPERATORS = {
    "#": "the empty language",
    "@": "any string",
    "&": "intersection",
    "~": "complement",
    "<": "numeric interval",
    ">": "numeric interval",
}


class LuceneRegexError(ValueError):
    """A pattern outside the supported Lucene subset; ``str(e)`` names the construct and its offset."""


def _lit(c: str) -> str:
    return re.escape(c)  # the same escapes in the regex package's syntax


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.n = len(pattern)
        self.i = 0

    def error(self, msg: str, at: Optional[int] = None) -> LuceneRegexError:
        return LuceneRegexError(f"{msg} at offset {self.i if at is None else at}")

    def run(self) -> str:
        out = self.alternation()
        if self.i < self.n:  # only a ')' stops an alternation early
            raise self.error("unbalanced ')'")
        return out

    def alternation(self) -> str:
        parts = [self.concat()]
        while self.i < self.n and self.p[self.i] == "|":
            self.i += 1
            parts.append(self.concat())
        return "|".join(parts)

    def concat(self) -> str:
        out: List[str] = []
        while self.i < self.n and self.p[self.i] not in "|)":
            out.append(self.repeat())
        return "".join(out)

    def repeat(self) -> str:
        atom = self.atom()
        while self.i < self.n and self.p[self.i] in "*+?{":
            if self.p[self.i] == "{":
                q = self.bounds()
            else:
                q = self.p[self.i]
                self.i += 1
            atom = f"(?:{atom}){q}"
        return atom

    def bounds(self) -> str:
        start = self.i
        j = self.p.find("}", start)
        if j < 0:
            raise self.error("unterminated '{'")
        body = self.p[start + 1 : j]
        lo, comma, hi = body.partition(",")
        if not lo.isdigit() or not (hi.isdigit() or not hi) or not lo.isascii() or not hi.isascii():
            raise self.error("expected a repeat {n}, {n,} or {n,m}")
        if hi and int(hi) < int(lo):
            raise self.error(f"the repeat {{{body}}} has its maximum below its minimum")
        self.i = j + 1
        return "{" + lo + comma + hi + "}"

    def atom(self) -> str:
        p, i = self.p, self.i
        c = p[i]
        if c == "(":
            self.i += 1
            inner = self.alternation()
            if self.i >= self.n:
                raise self.error("unbalanced '('", i)
            self.i += 1
            return f"(?:{inner})"
        if c == "[":
            return self.char_class()
        if c == ".":
            self.i += 1
            return "."
        if c == '"':
            j = p.find('"', i + 1)
            if j < 0:
                raise self.error("unterminated quoted string")
            self.i = j + 1
            text = p[i + 1 : j]
            return f"(?:{''.join(_lit(x) for x in text)})"
        if c == "\\":
            if i + 1 >= self.n:
                raise self.error("a trailing '\\' escapes nothing")
            self.i += 2
            return _SHORTHANDS.get(p[i + 1]) or _lit(p[i + 1])
        if c in "*+?{":
            raise self.error(f"'{c}' has nothing to repeat")
        if c in "]}":
            raise self.error(f"unbalanced '{c}' (write '\\{c}' for the character)")
        if c in _OPTIONAL_OPERATORS:
            raise self.error(f"the Lucene operator '{c}' ({_OPTIONAL_OPERATORS[c]}) is not supported "
                             f"(write '\\{c}' for the character)")
        self.i += 1
        return _lit(c)

    def char_class(self) -> str:
        start = self.i
        self.i += 1
        negate = self.i < self.n and self.p[self.i] == "^"
        if negate:
            self.i += 1
        items: List[str] = []
        while True:
            if self.i >= self.n:
                raise self.error("unterminated '['", start)
            if self.p[self.i] == "]":
                if not items:
                    raise self.error("empty character class '[]'", start)
                self.i += 1
                return "[" + ("^" if negate else "") + "".join(items) + "]"
            lo = self.class_char()
            if self.i + 1 < self.n and self.p[self.i] == "-" and self.p[self.i + 1] != "]":
                self.i += 1
                hi = self.class_char()
                if hi < lo:
                    raise self.error(f"invalid range '{lo}-{hi}' in a character class")
                items.append(f"{_lit(lo)}-{_lit(hi)}")
            else:
                items.append(_lit(lo))

    def class_char(self) -> str:
        c = self.p[self.i]
        if c == "\\":
            if self.i + 1 >= self.n:
                raise self.error("a trailing '\\' escapes nothing")
            c = self.p[self.i + 1]
            if c in _SHORTHANDS:
                raise self.error(f"'\\{c}' inside '[...]' is not supported")
            self.i += 2
            return c
        self.i += 1
        return c


def translate(pattern: str) -> str:
    """The Lucene regular expression `pattern` in ``regex`` syntax (to be matched with ``fullmatch``)."""
    return _Translator(pattern).run()


class _Timeouts:
    """Regex matches that ran out of time, over the process (each also counted on its `RegexSet`)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


TIMEOUTS = _Timeouts()


class RegexSet:
    """The patterns of one ``regex``/``regex~`` predicate, compiled once; calling it matches a whole string."""

    __slots__ = ("patterns", "timeouts", "_fullmatch")

    def __init__(self, patterns: Iterable[str], insensitive: bool) -> None:
        import regex  # here, not at import: most rule sets have no regex, and the commands start faster

        self.patterns = list(patterns)
        # ASCII: Lucene's case-insensitive flag folds ASCII letters only (the classes are spelt out above)
        flags = regex.DOTALL | (regex.IGNORECASE | regex.ASCII if insensitive else 0)
        source = "|".join(f"(?:{translate(p)})" for p in self.patterns)
        try:
            compiled = regex.compile(source, flags)
        except regex.error as exc:  # pragma: no cover - translate() emits valid syntax only
            raise LuceneRegexError(str(exc)) from None
        self._fullmatch: Callable[..., object] = compiled.fullmatch
        self.timeouts = 0

    def __call__(self, s: str) -> bool:
        try:
            return self._fullmatch(s, timeout=TIMEOUT_S) is not None
        except TimeoutError:
            self.timeouts += 1
            TIMEOUTS.count += 1
            n = self.timeouts
            if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th... of this predicate: the log stays short
                log.warning("regex %s: a value of %d characters took more than %.2f s to match, taken as no "
                            "match (%d times so far)", self.patterns, len(s), TIMEOUT_S, n)
            return False
