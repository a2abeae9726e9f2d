"""How EQL compares values (``docs/specs/eql-semantics.md`` §2.2-2.4): the helpers the generated predicates
and the interpreter share.

A value is missing when it is None, ``[]`` or a list of nulls; a multi-valued field satisfies a predicate if
any element does; strings never equal numbers, numbers compare numerically, booleans only compare to booleans.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Dict, FrozenSet

__all__ = ["any_cmp", "any_in", "any_in_ci", "any_str", "is_missing", "is_num", "scalar_cmp"]


def is_num(x: Any) -> bool:
    t = type(x)
    return t is int or t is float


_CMP: Dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def scalar_cmp(x: Any, op: str, lit: Any) -> bool:
    """Compare one (non-missing, non-list) value with a literal: types must agree (str/str,
    num/num, bool/bool)."""
    if type(lit) is str:
        if type(x) is not str:
            return False
    elif type(lit) is bool:
        if type(x) is not bool or op not in ("==", "!="):
            return False
    elif is_num(lit):
        if not is_num(x):
            return False
    else:
        return False
    return bool(_CMP[op](x, lit))


def any_cmp(v: Any, op: str, lit: Any) -> bool:
    if type(v) is list:
        return any(x is not None and scalar_cmp(x, op, lit) for x in v)
    return v is not None and scalar_cmp(v, op, lit)


def any_in(v: Any, strs: FrozenSet[Any], nums: FrozenSet[Any], bools: FrozenSet[Any]) -> bool:
    vals = v if type(v) is list else (v,)
    for x in vals:
        t = type(x)
        if t is str:
            if x in strs:
                return True
        elif t is bool:
            if x in bools:
                return True
        elif t is int or t is float:
            if x in nums:
                return True
    return False


def any_in_ci(v: Any, strs: FrozenSet[Any], nums: FrozenSet[Any], bools: FrozenSet[Any]) -> bool:
    vals = v if type(v) is list else (v,)
    for x in vals:
        t = type(x)
        if t is str:
            if x.lower() in strs:
                return True
        elif t is bool:
            if x in bools:
                return True
        elif t is int or t is float:
            if x in nums:
                return True
    return False


def is_missing(v: Any) -> bool:
    return v is None or v == [] or (type(v) is list and all(x is None for x in v))


def any_str(v: Any, f: Callable[[str], Any]) -> bool:
    if type(v) is list:
        for x in v:
            if type(x) is str and f(x):
                return True
        return False
    return type(v) is str and bool(f(v))
