"""EQL wildcard patterns (`*` any run, `?` exactly one character) matched in linear time.

Patterns are evaluated against attacker-controlled text (argv can be megabytes).  A backtracking regex for
`*a*b*c*` is polynomial in the text length — with Python's `re`, the seed rule's `*-X PUT*169.254…*`
took 33 s on a 1 MB argument — so a command line could stall the detector.  Here a pattern is split at
`*` into segments that are matched greedily left to right: the first segment at the start, the last at
the end, the others at their leftmost occurrence after the previous one (which is correct for `*`-globs:
taking the leftmost occurrence never prevents a later segment from matching).  Segments without `?` use
`str.startswith`/`find`/`endswith`; a segment with `?` uses a regex of fixed length (no `.*`), whose search
cannot backtrack more than the segment's length at each position.

`PatternSet` is what an EQL pattern list compiles to: exact strings in a set, the rest in one `GlobSet`.
`GlobSet(patterns)` groups the common shapes: `lit*` (one `startswith` with a tuple), `*lit` (`endswith`),
`*lit*` (substring), and general patterns.  Calling it returns True or None (the interface of a regex
`fullmatch`, so compiled rule code can use either).

Ordinary command lines are short, and there one combined regex is about 3x faster than the segment
matcher.  A regex with k `.*` backtracks in O(n^(k+1)) at worst, so only patterns whose regex has at most
one `.*` (quadratic: about 0.5 ms at 4 KB) take the regex path, and only for strings up to `REGEX_MAX_LEN`
characters; every other pattern, and every longer string, uses the linear matcher.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, List, Optional, Tuple, Union


class _Segment:
    __slots__ = ("text", "length", "rx")

    def __init__(self, text: str) -> None:
        self.text = text
        self.length = len(text)
        self.rx: Optional["re.Pattern[str]"] = (
            re.compile("".join("." if c == "?" else re.escape(c) for c in text), re.DOTALL) if "?" in text else None
        )

    def at(self, s: str, i: int) -> bool:
        if self.rx is None:
            return s.startswith(self.text, i)
        return self.rx.match(s, i) is not None

    def find(self, s: str, start: int, end: int) -> int:
        """Leftmost i in [start, end - length] where the segment matches; -1 if none."""
        if self.rx is None:
            return s.find(self.text, start, end)
        m = self.rx.search(s, start, end)
        return -1 if m is None else m.start()


class Glob:
    """One pattern, matched with the whole string (like Elasticsearch's wildcard query)."""

    __slots__ = ("head", "tail", "middle", "single", "min_len")

    def __init__(self, pattern: str) -> None:
        parts = pattern.split("*")
        self.single = _Segment(parts[0]) if len(parts) == 1 else None
        self.head = _Segment(parts[0])
        self.tail = _Segment(parts[-1])
        self.middle = [_Segment(p) for p in parts[1:-1] if p]
        self.min_len = sum(len(p) for p in parts)

    def __call__(self, s: str) -> bool:
        if self.single is not None:
            return len(s) == self.single.length and self.single.at(s, 0)
        if len(s) < self.min_len:
            return False
        head, tail = self.head, self.tail
        if head.length and not head.at(s, 0):
            return False
        end = len(s) - tail.length
        if tail.length and not tail.at(s, end):
            return False
        pos = head.length
        for seg in self.middle:
            i = seg.find(s, pos, end)
            if i < 0:
                return False
            pos = i + seg.length
        return pos <= end


def _shape(p: str) -> Tuple[str, str]:
    """('prefix'|'suffix'|'contains'|'general', literal) for the common shapes without '?'."""
    core = p.strip("*")
    if "?" in p or "*" in core or not core:
        return "general", p
    starts, ends = p.startswith("*"), p.endswith("*")
    if starts and ends:
        return "contains", core
    if ends:
        return "prefix", core
    if starts:
        return "suffix", core
    return "general", p


REGEX_MAX_LEN = 4096


def _to_regex(pattern: str) -> str:
    out: List[str] = []
    for ch in pattern:
        if ch == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _regex_safe(rx: str) -> bool:
    return rx.count(".*") <= 1


def _short_regexes(patterns: List[str]) -> Tuple[Optional[Callable[[str], object]], Optional[Callable[[str], object]]]:
    """(fullmatch for patterns anchored at the start, search for patterns starting with '*'), only for
    patterns whose regex cannot backtrack worse than quadratically (see the module docstring)."""
    anchored = [p for p in patterns if not p.startswith("*") and _regex_safe(_to_regex(p))]
    floating = []
    for p in patterns:
        if p.startswith("*"):
            core = p.lstrip("*")
            rx = _to_regex(core.rstrip("*")) if core.endswith("*") else _to_regex(core) + r"\Z"
            if _regex_safe(rx):
                floating.append(rx)
    fm = re.compile("|".join(f"(?:{_to_regex(p)})" for p in anchored), re.DOTALL).fullmatch if anchored else None
    se = re.compile("|".join(f"(?:{x})" for x in floating), re.DOTALL).search if floating else None
    return fm, se


class GlobSet:
    """Any of several patterns; `__call__` returns True or None."""

    __slots__ = ("prefixes", "suffixes", "contains", "general", "_fm", "_se", "_rest")

    def __init__(self, patterns: Iterable[str]) -> None:
        unique = list(dict.fromkeys(patterns))  # dedupe, keep order
        self._init_linear(unique)
        self._fm, self._se = _short_regexes(unique)
        # patterns the regexes do not cover (more than one '.*'): always matched by the linear matcher
        unsafe = [p for p in unique if not _regex_safe(_to_regex(p.strip("*") if p.startswith("*") else p))]
        self._rest: Optional[GlobSet] = GlobSet.__new__(GlobSet) if unsafe else None
        if self._rest is not None:
            self._rest._init_linear(unsafe)

    def _init_linear(self, patterns: List[str]) -> None:
        prefixes: List[str] = []
        suffixes: List[str] = []
        contains: List[str] = []
        general: List[Glob] = []
        for p in patterns:
            kind, lit = _shape(p)
            if kind == "prefix":
                prefixes.append(lit)
            elif kind == "suffix":
                suffixes.append(lit)
            elif kind == "contains":
                contains.append(lit)
            else:
                general.append(Glob(p))
        self.prefixes, self.suffixes = tuple(prefixes), tuple(suffixes)
        self.contains, self.general = tuple(contains), tuple(general)
        self._fm = self._se = self._rest = None

    def __call__(self, s: str) -> Optional[bool]:
        if len(s) <= REGEX_MAX_LEN:
            fm, se = self._fm, self._se
            if (fm is not None and fm(s) is not None) or (se is not None and se(s) is not None):
                return True
            rest = self._rest
            return rest.linear(s) if rest is not None else None
        return self.linear(s)

    def linear(self, s: str) -> Optional[bool]:
        """The segment matcher alone (any length)."""
        if self.prefixes and s.startswith(self.prefixes):
            return True
        if self.suffixes and s.endswith(self.suffixes):
            return True
        for lit in self.contains:
            if lit in s:
                return True
        for g in self.general:
            if g(s):
                return True
        return None


def _has_wildcard(p: str) -> bool:
    return "*" in p or "?" in p


class PatternSet:
    """A list of wildcard patterns (``:``, ``like``, ``like~``, ``wildcard()``): a set of the exact strings and
    one linear-time `GlobSet` for the rest (`insensitive`: both lower-cased, and so the text)."""

    __slots__ = ("exact", "fullmatch", "insensitive")

    def __init__(self, patterns: Iterable[str], insensitive: bool) -> None:
        pats = [p.lower() if insensitive else p for p in patterns]
        self.insensitive = insensitive
        self.exact = frozenset(p for p in pats if not _has_wildcard(p))
        # never a backtracking regex: the text is attacker-controlled and can be megabytes long
        wild = sorted({p for p in pats if _has_wildcard(p)})
        self.fullmatch: Optional[GlobSet] = GlobSet(wild) if wild else None

    def match_str(self, s: str) -> bool:
        if self.insensitive:
            s = s.lower()
        if s in self.exact:
            return True
        fm = self.fullmatch
        return fm is not None and fm(s) is not None


def wildcard_matcher(patterns: Union[str, Iterable[str]], insensitive: bool = True) -> Callable[[str], bool]:
    """Return ``f(s) -> bool`` implementing ``s : patterns`` (or ``like`` when ``insensitive`` is False)."""
    if isinstance(patterns, str):
        patterns = [patterns]
    return PatternSet(patterns, insensitive).match_str
