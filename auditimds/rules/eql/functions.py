"""The EQL function table: each function's spelling, arity, ``~`` variant, null rule and implementation.

The parser checks calls against the table (:func:`check_call` adds the static checks Elasticsearch makes on
literal arguments); the interpreter calls :func:`call_function` on scalar arguments, one combination of
values at a time.  A function returns None (null) on a null input or an argument of the wrong type, as in
Elasticsearch (``docs/specs/eql-semantics.md`` §2.4-2.5 and §5).
"""

from __future__ import annotations

import ipaddress
import math
import operator
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from .ast import EqlSyntaxError, FuncCall, Literal
from .cidr import CidrSet
from .values import is_num
from .wildcard import PatternSet

__all__ = ["FUNCTIONS", "Function", "call_function", "check_call", "to_string"]

Impl = Callable[[bool, List[Any]], Any]  # (case-insensitive, argument values) -> value, None for null


def to_string(a: Any) -> str:
    if type(a) is bool:
        return "true" if a else "false"
    return str(a)


# -- null rules: which null arguments make the result null before the function runs


def _null_if_any(args: List[Any]) -> bool:
    return any(a is None for a in args)


def _null_if_first(args: List[Any]) -> bool:
    return args[0] is None


def _null_if_first_two(args: List[Any]) -> bool:
    return args[0] is None or (len(args) > 1 and args[1] is None)


# -- string functions (the source must be a string; ``~`` lower-cases source and pattern)


def _source_and_pattern(insensitive: bool, args: List[Any]) -> Optional[Tuple[str, str]]:
    s, p = args[0], args[1]
    if type(s) is not str or type(p) is not str:
        return None
    return (s.lower(), p.lower()) if insensitive else (s, p)


def _starts_with(insensitive: bool, args: List[Any]) -> Any:
    sp = _source_and_pattern(insensitive, args)
    return None if sp is None else sp[0].startswith(sp[1])


def _ends_with(insensitive: bool, args: List[Any]) -> Any:
    sp = _source_and_pattern(insensitive, args)
    return None if sp is None else sp[0].endswith(sp[1])


def _string_contains(insensitive: bool, args: List[Any]) -> Any:
    sp = _source_and_pattern(insensitive, args)
    # an empty substring is not contained (Elasticsearch StringUtils)
    return None if sp is None else bool(sp[1]) and sp[1] in sp[0]


def _index_of(insensitive: bool, args: List[Any]) -> Any:
    sp = _source_and_pattern(insensitive, args)
    if sp is None:
        return None
    start = args[2] if len(args) > 2 else 0
    if start is None or not is_num(start):  # indexOf(f, ".", null) is null (function reference)
        return None
    i = sp[0].find(sp[1], max(int(start), 0))
    return None if i < 0 else i


def _between(insensitive: bool, args: List[Any]) -> Any:
    """between(source, left, right[, greedy]): the text between the two, in the source's own case."""
    sp = _source_and_pattern(insensitive, args)
    if sp is None or type(args[2]) is not str:
        return None
    s, p = sp
    right = args[2].lower() if insensitive else args[2]
    greedy = bool(args[3]) if len(args) > 3 else False
    i = s.find(p)
    if i < 0:
        return ""
    i += len(p)
    j = s.rfind(right) if greedy else s.find(right, i)
    if j < i:
        return ""
    return args[0][i:j]


def _wildcard(insensitive: bool, args: List[Any]) -> Any:
    if type(args[0]) is not str or not all(type(p) is str for p in args[1:]):
        return None
    return PatternSet(args[1:], insensitive).match_str(args[0])


def _cidr_match(insensitive: bool, args: List[Any]) -> Any:
    return CidrSet(args[1:]).contains(args[0])


def _concat(insensitive: bool, args: List[Any]) -> Any:
    return "".join(to_string(a) for a in args)


def _length(insensitive: bool, args: List[Any]) -> Any:
    return len(args[0]) if type(args[0]) is str else None


def _string(insensitive: bool, args: List[Any]) -> Any:
    return to_string(args[0])


def _substring(insensitive: bool, args: List[Any]) -> Any:
    a0 = args[0]
    if type(a0) is not str or not all(type(x) is int for x in args[1:] if x is not None):
        return None
    return a0[args[1] : args[2] if len(args) > 2 else None]


def _number(insensitive: bool, args: List[Any]) -> Any:
    a0 = args[0]
    if type(a0) is not str:
        return a0 if is_num(a0) else None
    base = args[1] if len(args) > 1 else None  # null: detect it
    if "_" in a0:  # Python's int()/float() accept digit separators; Elasticsearch's parsers do not
        return None
    try:
        text = a0.strip()
        hexa = text[1:] if text[:1] in "+-" else text
        if hexa[:2].lower() == "0x" and (base is None or int(base) == 16):
            # "0x" auto-detects base 16 (and is allowed with an explicit 16), as in Elasticsearch
            v = int(hexa[2:], 16)
            return -v if text[:1] == "-" else v
        if base is not None:
            return int(a0, int(base))
        try:
            return int(a0)
        except ValueError:
            return float(a0)
    except (ValueError, TypeError):
        return None


def _arithmetic(op: Callable[[Any, Any], Any]) -> Impl:
    def impl(insensitive: bool, args: List[Any]) -> Any:
        a, b = args[0], args[1]
        return op(a, b) if is_num(a) and is_num(b) else None

    return impl


def _divide(insensitive: bool, args: List[Any]) -> Any:
    a, b = args[0], args[1]
    if not (is_num(a) and is_num(b)) or b == 0:
        return None
    if type(a) is int and type(b) is int:
        q = abs(a) // abs(b)  # Java integer division truncates toward zero
        return q if (a >= 0) == (b >= 0) else -q
    return a / b


def _modulo(insensitive: bool, args: List[Any]) -> Any:
    a, b = args[0], args[1]
    if not (is_num(a) and is_num(b)) or b == 0:
        return None
    r = math.fmod(a, b)  # the sign of the dividend, as Java's %
    return int(r) if type(a) is int and type(b) is int else r


class Function(NamedTuple):
    name: str  # canonical spelling, e.g. "cidrMatch"
    min_args: int
    max_args: Optional[int]  # None: any number
    tilde: bool  # has a case-insensitive ``name~`` variant
    null_if: Callable[[List[Any]], bool]
    impl: Impl


_TABLE = [
    Function("add", 2, 2, False, _null_if_first_two, _arithmetic(operator.add)),
    Function("between", 3, 4, True, _null_if_first_two, _between),
    Function("cidrMatch", 2, None, False, _null_if_first, _cidr_match),
    Function("concat", 1, None, False, _null_if_any, _concat),
    Function("divide", 2, 2, False, _null_if_first_two, _divide),
    Function("endsWith", 2, 2, True, _null_if_first_two, _ends_with),
    Function("indexOf", 2, 3, True, _null_if_first_two, _index_of),
    Function("length", 1, 1, False, _null_if_first_two, _length),
    Function("modulo", 2, 2, False, _null_if_first_two, _modulo),
    Function("multiply", 2, 2, False, _null_if_first_two, _arithmetic(operator.mul)),
    Function("number", 1, 2, False, _null_if_first, _number),  # (number's base may be null: "detect it")
    Function("startsWith", 2, 2, True, _null_if_first_two, _starts_with),
    Function("string", 1, 1, False, _null_if_first_two, _string),
    Function("stringContains", 2, 2, True, _null_if_first_two, _string_contains),
    Function("substring", 2, 3, False, _null_if_first_two, _substring),
    Function("subtract", 2, 2, False, _null_if_first_two, _arithmetic(operator.sub)),
    Function("wildcard", 2, None, True, _null_if_first_two, _wildcard),
]
# lower-case name (function names are case-insensitive) -> function
FUNCTIONS: Dict[str, Function] = {f.name.lower(): f for f in _TABLE}
_BY_NAME: Dict[str, Function] = {f.name: f for f in _TABLE}


def call_function(name: str, insensitive: bool, args: List[Any]) -> Any:
    """Evaluate the function of canonical name `name` on scalar arguments (None = null)."""
    f = _BY_NAME[name]
    if f.null_if(args):
        return None
    return f.impl(insensitive, args)


def check_call(call: FuncCall) -> None:
    """Static checks the compiler relies on (literal-only arguments where Elasticsearch requires them)."""
    if call.name == "cidrMatch":
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
