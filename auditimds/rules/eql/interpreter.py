"""The reference interpreter: evaluates an expression tree on an event, with the same semantics as the
generated predicates (``docs/specs/eql-semantics.md`` §2.2-2.4).

:mod:`.codegen` falls back to it for the rare shapes it does not emit inline (functions of functions,
``length(f) > 3``...), and the tests check the generated code against it.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Any, List, Mapping, Tuple

from .ast import And, Compare, Field, FuncCall, InSet, Literal, Match, Node, Not, Or
from .cidr import CidrSet
from .functions import call_function
from .regexp import RegexSet
from .values import scalar_cmp
from .wildcard import PatternSet

__all__ = ["evaluate", "regex_set"]


@lru_cache(maxsize=256)
def regex_set(patterns: Tuple[str, ...], insensitive: bool) -> RegexSet:
    """The compiled patterns of a ``regex`` predicate (compiled once, not at each evaluation)."""
    return RegexSet(patterns, insensitive)


def _literal_strs(args: List[Node]) -> List[str]:
    # the parser admits only string literals here (cidrMatch's networks, wildcard's patterns)
    return [a.value for a in args if isinstance(a, Literal) and isinstance(a.value, str)]


def _values(node: Node, ev: Mapping[str, Any]) -> List[Any]:
    """All candidate scalar values of a value expression (multi-valued fields expand; missing -> [])."""
    if isinstance(node, Field):
        v = ev[node.name]
        if v is None:
            return []
        if type(v) is list:
            return [x for x in v if x is not None]
        return [v]
    if isinstance(node, Literal):
        return [] if node.value is None else [node.value]
    if isinstance(node, FuncCall):
        if node.name == "cidrMatch":
            vals = _values(node.args[0], ev)
            cs = CidrSet(_literal_strs(node.args[1:]))
            return [cs.contains(x) for x in vals]
        if node.name == "wildcard":
            vals = _values(node.args[0], ev)
            ps = PatternSet(_literal_strs(node.args[1:]), node.insensitive)
            return [type(x) is str and ps.match_str(x) for x in vals]
        arg_vals = [_values(a, ev) for a in node.args]
        out = []
        for combo in itertools.product(*[av if av else [None] for av in arg_vals]):
            r = call_function(node.name, node.insensitive, list(combo))
            if r is not None:
                out.append(r)
        return out
    # boolean expression used as a value
    return [evaluate(node, ev)]


def evaluate(node: Node, ev: Mapping[str, Any]) -> bool:
    """Evaluate a boolean expression on an event."""
    if isinstance(node, And):
        return all(evaluate(i, ev) for i in node.items)
    if isinstance(node, Or):
        return any(evaluate(i, ev) for i in node.items)
    if isinstance(node, Not):
        return not evaluate(node.expr, ev)
    if isinstance(node, Compare):
        if not isinstance(node.right, Literal):
            # expression vs expression (only reachable through functions): any pair satisfies
            lv, rv = _values(node.left, ev), _values(node.right, ev)
            if node.op == "!=":
                return not any(scalar_cmp(a, "==", b) for a in lv for b in rv)
            return any(scalar_cmp(a, node.op, b) for a in lv for b in rv)
        lit = node.right.value
        vals = _values(node.left, ev)
        if lit is None:
            return (not vals) if node.op == "==" else bool(vals)
        if node.op == "!=":
            return not any(scalar_cmp(x, "==", lit) for x in vals)
        return any(scalar_cmp(x, node.op, lit) for x in vals)
    if isinstance(node, InSet):
        vals = _values(node.expr, ev)
        lits = [lv.value for lv in node.values]
        if None in lits and not vals:
            return True
        for x in vals:
            for lit in lits:
                if lit is None:
                    continue
                if node.insensitive and type(x) is str and type(lit) is str:
                    if x.lower() == lit.lower():
                        return True
                elif scalar_cmp(x, "==", lit):
                    return True
        return False
    if isinstance(node, Match):
        vals = _values(node.expr, ev)
        if node.kind.startswith("regex"):
            rx = regex_set(tuple(node.patterns), node.kind == "regex~")
            return any(type(x) is str and rx(x) for x in vals)
        ps = PatternSet(node.patterns, node.kind != "like")
        return any(type(x) is str and ps.match_str(x) for x in vals)
    if isinstance(node, FuncCall):
        return any(x is True for x in _values(node, ev))
    if isinstance(node, Field):
        return any(x is True for x in _values(node, ev))
    if isinstance(node, Literal):
        return node.value is True
    raise TypeError(f"cannot evaluate {type(node).__name__}")  # pragma: no cover
