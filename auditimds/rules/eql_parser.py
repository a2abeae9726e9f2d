"""Tokenizer and recursive-descent parser for the Elasticsearch dialect of EQL.

``parse_query(text)`` returns a small AST made of the dataclasses below.  The grammar follows
Elasticsearch's ``EqlBase.g4`` (x-pack/plugin/eql) for the subset this project evaluates:

* event queries ``<category> where <expr>`` (``any`` or a bare/quoted category name);
* ``sequence [by k1, k2] [with maxspan=<n><unit>] [stage] [by ...] [with runs=N] ... [until [stage]
  [by ...]]``;
* boolean ``and`` / ``or`` / ``not``, parentheses, comparisons ``== != < <= > >=``;
* predicates ``:``, ``like``, ``like~``, ``regex``, ``regex~`` (single value or list), ``in``, ``in~``,
  ``not in``, ``not in~``;
* literals ``null true false``, integers, decimals, ``"..."`` strings with ES escapes,
  ``\"\"\"raw\"\"\"`` strings;
* field names ``a.b.c``, backtick-quoted segments, ``?optional`` fields;
* function calls (case-insensitive names, optional ``~`` suffix for case-insensitive variants).

Unsupported parts of EQL (pipes, ``sample``, ``join``, missing events ``![...]``, arithmetic operators) are
rejected with an :class:`EqlSyntaxError` that names the construct and its position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple, Union

__all__ = [
    "EqlSyntaxError",
    "Node",
    "Field",
    "Literal",
    "Not",
    "And",
    "Or",
    "Compare",
    "InSet",
    "Match",
    "FuncCall",
    "EventQuery",
    "Stage",
    "Sequence",
    "Query",
    "FUNCTIONS",
    "parse_query",
    "parse_expression",
    "iter_fields",
]


class EqlSyntaxError(ValueError):
    """A query that cannot be parsed or is semantically invalid.  ``str(e)`` is ``line L, column C: msg``."""

    def __init__(self, msg: str, line: int, col: int) -> None:
        self.msg = msg
        self.line = line
        self.col = col
        super().__init__(f"line {line}, column {col}: {msg}")


# --------------------------------------------------------------------------------------------------- AST


@dataclass
class Node:
    pass


@dataclass
class Field(Node):
    name: str
    optional: bool = False
    line: int = 0
    col: int = 0


@dataclass
class Literal(Node):
    value: Union[str, int, float, bool, None]
    line: int = 0
    col: int = 0


@dataclass
class Not(Node):
    expr: Node


@dataclass
class And(Node):
    items: List[Node]


@dataclass
class Or(Node):
    items: List[Node]


@dataclass
class Compare(Node):
    """``left op right`` with op in ``== != < <= > >=``.  The parser normalises literals to the right."""

    op: str
    left: Node
    right: Node
    line: int = 0
    col: int = 0


@dataclass
class InSet(Node):
    """``expr in (v, ...)`` (``insensitive`` for ``in~``).  ``not in`` is parsed as ``Not(InSet)``."""

    expr: Node
    values: List[Literal]
    insensitive: bool = False


@dataclass
class Match(Node):
    """Pattern predicates.  ``kind`` is one of ``:``, ``like``, ``like~``, ``regex``, ``regex~``."""

    kind: str
    expr: Node
    patterns: List[str]
    line: int = 0
    col: int = 0


@dataclass
class FuncCall(Node):
    name: str  # canonical spelling, e.g. "cidrMatch"
    args: List[Node]
    insensitive: bool = False
    line: int = 0
    col: int = 0


@dataclass
class EventQuery(Node):
    category: str | None  # None for ``any``
    where: Node
    line: int = 0
    col: int = 0


@dataclass
class Stage(Node):
    category: str | None  # None for ``any``
    where: Node
    by: List[Field] = field(default_factory=list)
    runs: int = 1
    line: int = 0
    col: int = 0


@dataclass
class Sequence(Node):
    by: List[Field]
    maxspan_ns: int | None
    stages: List[Stage]
    until: Stage | None = None
    line: int = 0
    col: int = 0


Query = Union[EventQuery, Sequence]

# canonical function names (lower-case lookup -> canonical spelling, (min args, max args or None))
FUNCTIONS = {
    "add": ("add", 2, 2),
    "between": ("between", 3, 4),
    "cidrmatch": ("cidrMatch", 2, None),
    "concat": ("concat", 1, None),
    "divide": ("divide", 2, 2),
    "endswith": ("endsWith", 2, 2),
    "indexof": ("indexOf", 2, 3),
    "length": ("length", 1, 1),
    "modulo": ("modulo", 2, 2),
    "multiply": ("multiply", 2, 2),
    "number": ("number", 1, 2),
    "startswith": ("startsWith", 2, 2),
    "string": ("string", 1, 1),
    "stringcontains": ("stringContains", 2, 2),
    "substring": ("substring", 2, 3),
    "subtract": ("subtract", 2, 2),
    "wildcard": ("wildcard", 2, None),
}
# functions that accept the ``~`` (case-insensitive) suffix
_TILDE_FUNCTIONS = {"between", "endswith", "indexof", "startswith", "stringcontains", "wildcard"}

_TIME_UNITS = {
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}

# --------------------------------------------------------------------------------------------------- lexer

_KEYWORDS = {
    "and",
    "or",
    "not",
    "in",
    "like",
    "regex",
    "where",
    "sequence",
    "by",
    "with",
    "until",
    "null",
    "true",
    "false",
    "any",
    "join",
    "sample",
    "of",
}


@dataclass
class Token:
    kind: str  # NAME, KW, STRING, NUMBER, OP, EOF
    value: object
    line: int
    col: int
    pos: int
    end: int
    quoted: bool = False  # NAME contains a backtick segment / STRING was raw


_ID_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_@")
_ID_CHAR = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_DIGITS = set("0123456789")
_HEX = set("0123456789abcdefABCDEF")
_SIMPLE_ESCAPES = {"t": "\t", "b": "\b", "f": "\f", "n": "\n", "r": "\r", '"': '"', "'": "'", "\\": "\\"}


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.i = 0
        # line start offsets for position computation
        self._line_starts = [0]
        for idx, ch in enumerate(text):
            if ch == "\n":
                self._line_starts.append(idx + 1)

    def linecol(self, pos: int) -> Tuple[int, int]:
        import bisect

        li = bisect.bisect_right(self._line_starts, pos) - 1
        return li + 1, pos - self._line_starts[li] + 1

    def error(self, msg: str, pos: int) -> EqlSyntaxError:
        line, col = self.linecol(pos)
        return EqlSyntaxError(msg, line, col)

    def _tok(self, kind: str, value: object, start: int, quoted: bool = False) -> Token:
        line, col = self.linecol(start)
        return Token(kind, value, line, col, start, self.i, quoted)

    def tokens(self) -> List[Token]:
        out: List[Token] = []
        while True:
            t = self.next()
            out.append(t)
            if t.kind == "EOF":
                return out

    def _skip_ws(self) -> None:
        text, n = self.text, self.n
        while self.i < n:
            c = text[self.i]
            if c in " \t\r\n\f\v":
                self.i += 1
            elif text.startswith("//", self.i):
                j = text.find("\n", self.i)
                self.i = n if j < 0 else j + 1
            elif text.startswith("/*", self.i):
                j = text.find("*/", self.i + 2)
                if j < 0:
                    raise self.error("unterminated /* comment", self.i)
                self.i = j + 2
            else:
                return

    def next(self) -> Token:
        self._skip_ws()
        text, n = self.text, self.n
        start = self.i
        if start >= n:
            return self._tok("EOF", None, start)
        c = text[start]
        two = text[start : start + 2]
        if c == '"':
            return self._string(start)
        if c == "'":
            raise self.error("single-quoted strings are not supported, use double quotes", start)
        if c in _DIGITS:
            return self._number(start)
        if c == "?":
            if start + 1 < n and text[start + 1] == '"':
                raise self.error('?"..." strings are not supported, use """raw""" strings', start)
            if start + 1 < n and (text[start + 1] in _ID_START or text[start + 1] == "`"):
                self.i = start + 1
                name, quoted = self._name()
                t = self._tok("NAME", name, start, quoted)
                t.value = name
                t.kind = "OPTNAME"
                return t
            raise self.error("expected a field name after '?'", start)
        if c in _ID_START or c == "`":
            name, quoted = self._name()
            if not quoted and "." not in name:
                if name in _KEYWORDS:
                    # in~ like~ regex~
                    if name in ("in", "like", "regex") and self.i < n and text[self.i] == "~":
                        self.i += 1
                        return self._tok("KW", name + "~", start)
                    return self._tok("KW", name, start)
                if self.i < n and text[self.i] == "~":
                    self.i += 1
                    return self._tok("TILDENAME", name, start)
            return self._tok("NAME", name, start, quoted)
        if two in ("==", "!=", "<=", ">="):
            self.i += 2
            return self._tok("OP", two, start)
        if two == "![":
            raise self.error("missing-event stages ('![ ... ]') are not supported", start)
        if c in "[](),:<>":
            self.i += 1
            return self._tok("OP", c, start)
        if c == "=":
            self.i += 1
            return self._tok("OP", "=", start)
        if c == "|":
            raise self.error("pipes ('|') are not supported", start)
        if c in "+-*/%":
            if c == "-" and start + 1 < n and text[start + 1] in _DIGITS:
                self.i += 1
                t = self._number(self.i)
                t.value = -t.value  # type: ignore[operator]
                t.pos = start
                t.line, t.col = self.linecol(start)
                return t
            raise self.error(f"arithmetic operator '{c}' is not supported", start)
        raise self.error(f"unexpected character {c!r}", start)

    def _name(self) -> Tuple[str, bool]:
        """Read a dotted field name made of identifiers and backtick-quoted segments."""
        text, n = self.text, self.n
        parts: List[str] = []
        quoted = False
        while True:
            if self.i < n and text[self.i] == "`":
                quoted = True
                j = self.i + 1
                buf = []
                while True:
                    if j >= n:
                        raise self.error("unterminated backtick-quoted name", self.i)
                    if text[j] == "`":
                        if j + 1 < n and text[j + 1] == "`":
                            buf.append("`")
                            j += 2
                            continue
                        break
                    buf.append(text[j])
                    j += 1
                if not buf:
                    raise self.error("empty backtick-quoted name", self.i)
                parts.append("".join(buf))
                self.i = j + 1
            elif self.i < n and text[self.i] in _ID_START:
                j = self.i + 1
                while j < n and text[j] in _ID_CHAR:
                    j += 1
                parts.append(text[self.i : j])
                self.i = j
            else:
                raise self.error("expected a field name segment", self.i)
            if (
                self.i + 1 < n
                and text[self.i] == "."
                and (text[self.i + 1] in _ID_START or text[self.i + 1] == "`")
            ):
                self.i += 1
                continue
            return ".".join(parts), quoted

    def _number(self, start: int) -> Token:
        text, n = self.text, self.n
        j = start
        while j < n and text[j] in _DIGITS:
            j += 1
        is_float = False
        if j + 1 < n and text[j] == "." and text[j + 1] in _DIGITS:
            is_float = True
            j += 1
            while j < n and text[j] in _DIGITS:
                j += 1
        if j < n and text[j] in "eE":
            k = j + 1
            if k < n and text[k] in "+-":
                k += 1
            if k < n and text[k] in _DIGITS:
                is_float = True
                j = k
                while j < n and text[j] in _DIGITS:
                    j += 1
        raw = text[start:j]
        self.i = j
        return self._tok("NUMBER", float(raw) if is_float else int(raw), start)

    def _string(self, start: int) -> Token:
        text, n = self.text, self.n
        if text.startswith('"""', start):
            j = text.find('"""', start + 3)
            if j < 0:
                raise self.error('unterminated """raw""" string', start)
            end = j + 3
            # ES lexer allows up to two extra quotes, which belong to the content: """a"""" == 'a"'
            extra = 0
            while extra < 2 and end < n and text[end] == '"':
                extra += 1
                end += 1
            self.i = end
            return self._tok("STRING", text[start + 3 : j] + '"' * extra, start, True)
        j = start + 1
        buf: List[str] = []
        while True:
            if j >= n:
                raise self.error("unterminated string", start)
            c = text[j]
            if c == '"':
                break
            if c == "\\":
                if j + 1 >= n:
                    raise self.error("unterminated string", start)
                e = text[j + 1]
                if e in _SIMPLE_ESCAPES:
                    buf.append(_SIMPLE_ESCAPES[e])
                    j += 2
                    continue
                if e == "u" and j + 2 < n and text[j + 2] == "{":
                    k = j + 3
                    while k < n and text[k] in _HEX:
                        k += 1
                    digits = text[j + 3 : k]
                    if k >= n or text[k] != "}" or not (2 <= len(digits) <= 8):
                        raise self.error("invalid unicode escape, expected \\u{XX} with 2 to 8 hex digits", j)
                    cp = int(digits, 16)
                    if 0xD800 <= cp <= 0xDFFF or cp > 0x10FFFF:
                        raise self.error(f"invalid unicode code point \\u{{{digits}}}", j)
                    buf.append(chr(cp))
                    j = k + 1
                    continue
                # unknown escape: passes through unchanged, backslash included (ES unquoteString)
                buf.append("\\")
                buf.append(e)
                j += 2
                continue
            buf.append(c)
            j += 1
        self.i = j + 1
        return self._tok("STRING", "".join(buf), start)


# --------------------------------------------------------------------------------------------------- parser

_CMP_OPS = {"==", "!=", "<", "<=", ">", ">="}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _describe(t: Token) -> str:
    if t.kind == "EOF":
        return "end of query"
    if t.kind == "STRING":
        return "string " + repr(t.value)
    if t.kind in ("NAME", "OPTNAME"):
        return f"'{t.value}'"
    return f"'{t.value}'"


class _Parser:
    def __init__(self, text: str) -> None:
        self.lexer = _Lexer(text)
        self.toks = self.lexer.tokens()
        self.k = 0
        self.func_depth = 0  # inside function arguments a bare literal is a value, not a condition

    # -- helpers
    @property
    def tok(self) -> Token:
        return self.toks[self.k]

    def peek(self, off: int = 1) -> Token:
        return self.toks[min(self.k + off, len(self.toks) - 1)]

    def advance(self) -> Token:
        t = self.toks[self.k]
        if t.kind != "EOF":
            self.k += 1
        return t

    def err(self, msg: str, t: Token | None = None) -> EqlSyntaxError:
        t = t or self.tok
        return EqlSyntaxError(msg, t.line, t.col)

    def is_op(self, v: str) -> bool:
        t = self.tok
        return t.kind == "OP" and t.value == v

    def is_kw(self, v: str) -> bool:
        t = self.tok
        return t.kind == "KW" and t.value == v

    def expect_op(self, v: str, ctx: str = "") -> Token:
        if not self.is_op(v):
            raise self.err(f"expected '{v}'{ctx}, found {_describe(self.tok)}")
        return self.advance()

    def expect_kw(self, v: str, ctx: str = "") -> Token:
        if not self.is_kw(v):
            raise self.err(f"expected '{v}'{ctx}, found {_describe(self.tok)}")
        return self.advance()

    # -- top level
    def parse_query(self) -> Query:
        t = self.tok
        q: Query
        if self.is_kw("sequence"):
            q = self.parse_sequence()
        elif self.is_kw("sample"):
            raise self.err("'sample' queries are not supported")
        elif self.is_kw("join"):
            raise self.err("'join' queries are not supported")
        else:
            cat = self.parse_category()
            self.expect_kw("where", " after the event category")
            where = self.parse_expr()
            q = EventQuery(cat, where, t.line, t.col)
        if self.tok.kind != "EOF":
            raise self.err(f"unexpected {_describe(self.tok)} after the end of the query")
        return q

    def parse_category(self) -> str | None:
        t = self.tok
        if self.is_kw("any"):
            self.advance()
            return None
        if t.kind == "NAME" and not t.quoted and "." not in str(t.value):
            self.advance()
            return str(t.value)
        if t.kind == "STRING":
            self.advance()
            return str(t.value)
        raise self.err(f"expected an event category (e.g. 'process', 'any'), found {_describe(t)}")

    def parse_join_keys(self) -> List[Field]:
        keys = [self.parse_key_field()]
        while self.is_op(","):
            self.advance()
            keys.append(self.parse_key_field())
        return keys

    def parse_key_field(self) -> Field:
        t = self.tok
        if t.kind in ("NAME", "OPTNAME"):
            self.advance()
            return Field(str(t.value), t.kind == "OPTNAME", t.line, t.col)
        raise self.err(f"expected a join key field name, found {_describe(t)}")

    def parse_maxspan(self) -> int:
        self.expect_kw("with")
        t = self.tok
        if not (t.kind == "NAME" and t.value == "maxspan"):
            raise self.err(f"expected 'maxspan' after 'with', found {_describe(t)}")
        self.advance()
        self.expect_op("=", " after 'maxspan'")
        num = self.tok
        if num.kind != "NUMBER" or not isinstance(num.value, int) or num.value < 0:
            raise self.err(f"expected a non-negative integer duration, found {_describe(num)}")
        self.advance()
        unit = self.tok
        if unit.kind != "NAME":
            raise self.err(f"no time unit specified, did you mean [s] as in [{num.value}s]?", unit)
        if unit.value not in _TIME_UNITS:
            raise self.err(f"unknown time unit '{unit.value}', expected one of ms, s, m, h, d", unit)
        self.advance()
        return int(num.value) * _TIME_UNITS[str(unit.value)]

    def parse_sequence(self) -> Sequence:
        st = self.advance()  # 'sequence'
        by: List[Field] = []
        maxspan: int | None = None
        if self.is_kw("by"):
            self.advance()
            by = self.parse_join_keys()
        if self.is_kw("with") and not (self.peek().kind == "NAME" and self.peek().value == "runs"):
            maxspan = self.parse_maxspan()
            if self.is_kw("by"):
                raise self.err("please specify sequence [by] before [with] not after")
        stages: List[Stage] = []
        until: Stage | None = None
        while self.is_op("["):
            stage = self.parse_stage()
            stages.extend(stage for _ in range(stage.runs))
        if self.is_kw("until"):
            ut = self.advance()
            if not self.is_op("["):
                raise self.err(f"expected '[' after 'until', found {_describe(self.tok)}")
            until = self.parse_stage(allow_runs=False)
            until.line, until.col = ut.line, ut.col
        if len(stages) < 2:
            if self.tok.kind == "EOF" or self.is_kw("until") or until is not None:
                raise EqlSyntaxError("a sequence requires a minimum of 2 queries", st.line, st.col)
            raise self.err(f"expected '[', found {_describe(self.tok)}")
        n = len(stages[0].by)
        for s in stages[1:] + ([until] if until is not None else []):
            if len(s.by) != n:
                raise EqlSyntaxError(
                    f"inconsistent number of join keys: the first stage has {n}, this one has {len(s.by)}",
                    s.line,
                    s.col,
                )
        return Sequence(by, maxspan, stages, until, st.line, st.col)

    def parse_stage(self, allow_runs: bool = True) -> Stage:
        lb = self.expect_op("[")
        cat = self.parse_category()
        self.expect_kw("where", " after the event category")
        where = self.parse_expr()
        self.expect_op("]", " to close the sequence stage")
        by: List[Field] = []
        if self.is_kw("by"):
            self.advance()
            by = self.parse_join_keys()
        runs = 1
        if self.is_kw("with"):
            w = self.tok
            nt = self.peek()
            if not (nt.kind == "NAME" and nt.value == "runs"):
                if nt.kind == "NAME" and nt.value == "maxspan":
                    raise self.err(
                        "maxspan must be given after 'sequence [by ...]', before the first stage", w
                    )
                raise self.err(f"expected 'runs' after 'with', found {_describe(nt)}", nt)
            if not allow_runs:
                raise self.err("'with runs' is not allowed on an until stage", w)
            self.advance()
            self.advance()
            self.expect_op("=", " after 'runs'")
            rt = self.tok
            if rt.kind != "NUMBER" or not isinstance(rt.value, int):
                raise self.err(f"expected an integer number of runs, found {_describe(rt)}")
            if not 1 <= rt.value <= 100:
                raise self.err(f"runs must be between 1 and 100, found {rt.value}")
            self.advance()
            runs = rt.value
        return Stage(cat, where, by, runs, lb.line, lb.col)

    # -- expressions
    def parse_expr(self) -> Node:
        return self.parse_or()

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.is_kw("or"):
            self.advance()
            items.append(self.parse_and())
        if len(items) == 1:
            return items[0]
        flat: List[Node] = []
        for it in items:
            flat.extend(it.items if isinstance(it, Or) else [it])
        return Or(flat)

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.is_kw("and"):
            self.advance()
            items.append(self.parse_not())
        if len(items) == 1:
            return items[0]
        flat: List[Node] = []
        for it in items:
            flat.extend(it.items if isinstance(it, And) else [it])
        return And(flat)

    def parse_not(self) -> Node:
        if self.is_kw("not"):
            self.advance()
            return Not(self.parse_not())
        return self.parse_predicate()

    def parse_predicate(self) -> Node:
        start = self.tok
        left = self.parse_primary()
        t = self.tok
        if t.kind == "OP" and t.value in _CMP_OPS:
            self.advance()
            right = self.parse_primary()
            op = str(t.value)
            if isinstance(left, Literal) and not isinstance(right, Literal):
                left, right, op = right, left, _FLIP[op]
            if isinstance(left, Field) and isinstance(right, Field):
                raise EqlSyntaxError("comparisons against fields are not supported", t.line, t.col)
            if isinstance(right, Literal) and right.value is None and op not in ("==", "!="):
                raise EqlSyntaxError(f"cannot compare null with '{op}'", t.line, t.col)
            return Compare(op, left, right, t.line, t.col)
        if t.kind == "OP" and t.value == "=":
            raise self.err("'=' is not a valid operator, use '==' or ':'")
        if t.kind == "OP" and t.value == ":":
            self.advance()
            return Match(":", left, self.parse_patterns(":"), t.line, t.col)
        if t.kind == "KW" and t.value in ("like", "like~", "regex", "regex~"):
            self.advance()
            pats = self.parse_patterns(str(t.value))
            if t.value.startswith("regex"):
                import re

                for p in pats:
                    try:
                        re.compile(p)
                    except re.error as exc:
                        raise EqlSyntaxError(
                            f"invalid regular expression {p!r}: {exc}", t.line, t.col
                        ) from None
            return Match(str(t.value), left, pats, t.line, t.col)
        if t.kind == "KW" and t.value in ("in", "in~"):
            self.advance()
            return InSet(left, self.parse_in_list(), t.value == "in~")
        if (
            t.kind == "KW"
            and t.value == "not"
            and self.peek().kind == "KW"
            and self.peek().value in ("in", "in~")
        ):
            self.advance()
            kw = self.advance()
            return Not(InSet(left, self.parse_in_list(), kw.value == "in~"))
        if isinstance(left, Literal) and not isinstance(left.value, bool) and not self.func_depth:
            raise EqlSyntaxError(
                f"expected a condition, found the literal {left.value!r}", start.line, start.col
            )
        return left

    def parse_in_list(self) -> List[Literal]:
        self.expect_op("(", " to open the list")
        vals = [self.parse_literal("in")]
        while self.is_op(","):
            self.advance()
            vals.append(self.parse_literal("in"))
        self.expect_op(")", " to close the list")
        return vals

    def parse_literal(self, ctx: str) -> Literal:
        t = self.tok
        if t.kind in ("STRING", "NUMBER"):
            self.advance()
            return Literal(t.value, t.line, t.col)  # type: ignore[arg-type]
        if t.kind == "KW" and t.value in ("null", "true", "false"):
            self.advance()
            return Literal({"null": None, "true": True, "false": False}[str(t.value)], t.line, t.col)
        if t.kind in ("NAME", "OPTNAME"):
            raise self.err(f"'{ctx}' only accepts literal values, found the field {t.value!r}")
        raise self.err(f"expected a literal value, found {_describe(t)}")

    def parse_patterns(self, kind: str) -> List[str]:
        if self.is_op("("):
            self.advance()
            pats = [self.parse_pattern(kind)]
            while self.is_op(","):
                self.advance()
                pats.append(self.parse_pattern(kind))
            self.expect_op(")", " to close the pattern list")
            return pats
        return [self.parse_pattern(kind)]

    def parse_pattern(self, kind: str) -> str:
        t = self.tok
        if t.kind == "STRING":
            self.advance()
            return str(t.value)
        raise self.err(f"'{kind}' expects a string pattern, found {_describe(t)}")

    def parse_primary(self) -> Node:
        t = self.tok
        if self.is_op("("):
            self.advance()
            e = self.parse_expr()
            self.expect_op(")", " to close the parenthesis")
            return e
        if t.kind in ("STRING", "NUMBER"):
            self.advance()
            return Literal(t.value, t.line, t.col)  # type: ignore[arg-type]
        if t.kind == "KW" and t.value in ("null", "true", "false"):
            self.advance()
            return Literal({"null": None, "true": True, "false": False}[str(t.value)], t.line, t.col)
        if t.kind == "TILDENAME" or (
            t.kind == "NAME"
            and self.peek().kind == "OP"
            and self.peek().value == "("
            and not t.quoted
            and "." not in str(t.value)
        ):
            return self.parse_function()
        if t.kind in ("NAME", "OPTNAME"):
            self.advance()
            return Field(str(t.value), t.kind == "OPTNAME", t.line, t.col)
        raise self.err(f"expected an expression, found {_describe(t)}")

    def parse_function(self) -> FuncCall:
        t = self.advance()
        raw = str(t.value)
        low = raw.lower()
        if low not in FUNCTIONS:
            raise self.err(f"unknown function '{raw}'", t)
        insensitive = t.kind == "TILDENAME"
        if insensitive and low not in _TILDE_FUNCTIONS:
            raise self.err(f"function '{raw}' does not have a case-insensitive '~' variant", t)
        canon, lo, hi = FUNCTIONS[low]
        self.expect_op("(", f" after function name '{raw}'")
        args: List[Node] = []
        self.func_depth += 1
        if not self.is_op(")"):
            args.append(self.parse_expr())
            while self.is_op(","):
                self.advance()
                args.append(self.parse_expr())
        self.expect_op(")", f" to close the call to '{raw}'")
        self.func_depth -= 1
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = f"{lo}" if hi == lo else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise self.err(f"function '{canon}' takes {want} arguments, got {len(args)}", t)
        call = FuncCall(canon, args, insensitive, t.line, t.col)
        _check_function(call)
        return call


def _check_function(call: FuncCall) -> None:
    """Static checks the compiler relies on (literal-only arguments where ES requires them)."""
    if call.name == "cidrMatch":
        import ipaddress

        for a in call.args[1:]:
            if not (isinstance(a, Literal) and isinstance(a.value, str)):
                raise EqlSyntaxError(
                    "cidrMatch: the CIDR arguments must be string literals", call.line, call.col
                )
            try:
                ipaddress.ip_network(a.value, strict=False)
            except ValueError:
                raise EqlSyntaxError(f"cidrMatch: invalid CIDR {a.value!r}", a.line, a.col) from None
    elif call.name == "wildcard":
        for a in call.args[1:]:
            if not (isinstance(a, Literal) and isinstance(a.value, str)):
                raise EqlSyntaxError("wildcard: the patterns must be string literals", call.line, call.col)


def parse_query(text: str) -> Query:
    """Parse an EQL query (event query or sequence).  Raises :class:`EqlSyntaxError`."""
    return _Parser(text).parse_query()


def parse_expression(text: str) -> Node:
    """Parse a bare boolean expression (what follows ``where``).  Mostly for tests."""
    p = _Parser(text)
    e = p.parse_expr()
    if p.tok.kind != "EOF":
        raise p.err(f"unexpected {_describe(p.tok)} after the end of the expression")
    return e


def iter_fields(node: Node):
    """Yield every :class:`Field` node under ``node`` (expressions, stages and queries)."""
    if isinstance(node, Field):
        yield node
    elif isinstance(node, (Not,)):
        yield from iter_fields(node.expr)
    elif isinstance(node, (And, Or)):
        for it in node.items:
            yield from iter_fields(it)
    elif isinstance(node, Compare):
        yield from iter_fields(node.left)
        yield from iter_fields(node.right)
    elif isinstance(node, (InSet, Match)):
        yield from iter_fields(node.expr)
    elif isinstance(node, FuncCall):
        for a in node.args:
            yield from iter_fields(a)
    elif isinstance(node, (EventQuery,)):
        yield from iter_fields(node.where)
    elif isinstance(node, Stage):
        yield from iter_fields(node.where)
        yield from node.by
    elif isinstance(node, Sequence):
        yield from node.by
        for s in node.stages:
            yield from iter_fields(s)
        if node.until is not None:
            yield from iter_fields(node.until)
