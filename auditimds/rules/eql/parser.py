"""Tokenizer and recursive-descent parser for the Elasticsearch dialect of EQL.

``parse_query(text)`` returns a small syntax tree (:mod:`.ast`) built from the tokens of :mod:`.lexer`.  The
grammar follows Elasticsearch's ``EqlBase.g4`` (x-pack/plugin/eql) for the subset this project evaluates:

* event queries ``<category> where <expr>`` (``any`` or a bare/quoted category name);
* ``sequence [by k1, k2] [with maxspan=<n><unit>] [stage] [by ...] [with runs=N] ... [until [stage]
  [by ...]]``;
* boolean ``and`` / ``or`` / ``not``, parentheses, comparisons ``== != < <= > >=``;
* predicates ``:``, ``like``, ``like~``, ``regex``, ``regex~`` (single value or list; regular expressions in
  Lucene's syntax, checked here: :mod:`.regexp`), ``in``, ``in~``, ``not in``, ``not in~``;
* literals ``null true false``, integers, decimals, ``"..."`` strings with ES escapes,
  ``\"\"\"raw\"\"\"`` strings;
* field names ``a.b.c``, backtick-quoted segments, ``?optional`` fields;
* function calls (case-insensitive names, optional ``~`` suffix for case-insensitive variants).

Unsupported parts of EQL (pipes, ``sample``, ``join``, missing events ``![...]``, arithmetic operators) are
rejected with an :class:`EqlSyntaxError` that names the construct and its position.
"""

from __future__ import annotations

from typing import List

from .ast import (
    And,
    Compare,
    EqlSyntaxError,
    EventQuery,
    Field,
    FuncCall,
    InSet,
    Literal,
    Match,
    Node,
    Not,
    Or,
    Query,
    Sequence,
    Stage,
)
from .functions import FUNCTIONS, check_call
from .lexer import Lexer, Token
from .regexp import LuceneRegexError, translate

__all__ = ["parse_query", "parse_expression"]

_TIME_UNITS = {
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}

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
        self.lexer = Lexer(text)
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
            if str(t.value).startswith("regex"):
                for p in pats:
                    try:
                        translate(p)  # Lucene syntax; what it cannot translate is refused here
                    except LuceneRegexError as exc:
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
            return Literal(t.value, t.line, t.col)
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
            return Literal(t.value, t.line, t.col)
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
        if insensitive and not FUNCTIONS[low].tilde:
            raise self.err(f"function '{raw}' does not have a case-insensitive '~' variant", t)
        canon, lo, hi = FUNCTIONS[low].name, FUNCTIONS[low].min_args, FUNCTIONS[low].max_args
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
        check_call(call)
        return call


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


