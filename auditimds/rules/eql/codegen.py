"""Compile EQL expression trees into fast Python predicates ``pred(ev) -> bool``.

Semantics: ``docs/specs/eql-semantics.md`` §2.2-2.4 and §5 (Elasticsearch Query-DSL behaviour):

* events are flat mappings keyed by dotted field names, read with ``ev[name]`` (the event class's
  ``__missing__`` returns None).  ``None``, ``[]`` and absent all mean *missing*;
* an atomic predicate on a missing field is FALSE (except ``== null``); on a list it is TRUE if ANY element
  satisfies it; ``!=`` is exactly ``not ==``; ``not`` is plain two-valued negation;
* ``:`` / ``like~`` = case-insensitive wildcard (``*`` any run, ``?`` exactly one char, no escapes), ``like``
  is the case-sensitive variant; ``==``, ``!=``, ``in`` are exact and case-sensitive; ``in~`` is
  case-insensitive; ``regex``/``regex~`` are Lucene regular expressions (:mod:`.regexp`);
* strings never equal numbers; numbers compare numerically; booleans only compare to booleans.

:func:`compile_expr` generates Python source for the whole expression (one function, constants bound as
default arguments so that they are fast locals) and ``compile()``s it.  Field predicates of the common shapes
(field vs literal, field ``:``/``like``/``in``/``regex`` lists, ``cidrMatch``/``startsWith``/... on a field
with literal arguments) are emitted inline; the rest calls the interpreter (:mod:`.interpreter`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .ast import And, Compare, Field, FuncCall, InSet, Literal, Match, Node, Not, Or
from .cidr import CidrSet
from .interpreter import evaluate, regex_set
from .values import any_cmp, any_in, any_in_ci, any_str, is_missing
from .wildcard import PatternSet

__all__ = ["Predicate", "compile_expr"]

Predicate = Callable[[Mapping[str, Any]], bool]
_UNSET = object()


class _Gen:
    def __init__(self) -> None:
        self.consts: Dict[str, Any] = {
            "_type": type,
            "_list": list,
            "_str": str,
            "_int": int,
            "_float": float,
            "_any_cmp": any_cmp,
            "_any_in": any_in,
            "_any_in_ci": any_in_ci,
            "_any_str": any_str,
            "_is_missing": is_missing,
        }
        self.consts["_U"] = _UNSET
        self.n = 0
        self._const_ids: Dict[Any, str] = {}
        # field -> local holding its lower-cased string value, computed at most once per call
        self.lower_vars: Dict[str, str] = {}

    def lowered(self, field: str, v: str) -> Tuple[str, str]:
        """(expression computing/caching ``v.lower()``, variable to use afterwards) for a str value ``v``."""
        lv = self.lower_vars.get(field)
        if lv is None:
            self.n += 1
            lv = self.lower_vars[field] = f"_l{self.n}"
        return f"({lv} if {lv} is not _U else ({lv} := {v}.lower()))", lv

    def tmp(self) -> str:
        self.n += 1
        return f"_v{self.n}"

    def const(self, value: Any, prefix: str = "_c") -> str:
        try:
            key: Any = (type(value), value)
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in self._const_ids:
            return self._const_ids[key]
        self.n += 1
        name = f"{prefix}{self.n}"
        self.consts[name] = value
        if key is not None:
            self._const_ids[key] = name
        return name

    def fallback(self, node: Node) -> str:
        name = self.const(lambda ev, _n=node: evaluate(_n, ev), "_g")
        return f"{name}(ev)"

    # ---- entry
    def gen(self, node: Node) -> str:
        if isinstance(node, And):
            return "(" + " and ".join(self.gen(i) for i in node.items) + ")"
        if isinstance(node, Or):
            return "(" + " or ".join(self.gen(i) for i in node.items) + ")"
        if isinstance(node, Not):
            return f"(not {self.gen(node.expr)})"
        if isinstance(node, Literal):
            return "True" if node.value is True else "False"
        if isinstance(node, Compare) and isinstance(node.left, Field) and isinstance(node.right, Literal):
            return self.gen_compare(node.op, node.left.name, node.right.value)
        if isinstance(node, InSet) and isinstance(node.expr, Field):
            return self.gen_in(node, node.expr.name)
        if isinstance(node, Match) and isinstance(node.expr, Field):
            return self.gen_match(node, node.expr.name)
        if isinstance(node, FuncCall) and node.args and isinstance(node.args[0], Field):
            lits = [a.value for a in node.args[1:] if isinstance(a, Literal) and type(a.value) is str]
            if len(lits) == len(node.args) - 1:  # a field, then string literals only
                code = self.gen_func_pred(node, node.args[0].name, lits)
                if code is not None:
                    return code
        if isinstance(node, Field):
            return self.gen_compare("==", node.name, True)
        return self.fallback(node)

    def read(self, field: str) -> Tuple[str, str]:
        v = self.tmp()
        return v, f"({v} := ev[{field!r}])"

    def gen_compare(self, op: str, field: str, lit: Any) -> str:
        v, rd = self.read(field)
        if lit is None:
            # missing = None, [] (or a list of nulls)
            code = f"({rd} is None or ({v}.__class__ is _list and _is_missing({v})))"
            return code if op == "==" else f"(not {code})"
        if op == "!=":
            return f"(not {self.gen_compare('==', field, lit)})"
        c = self.const(lit)
        if type(lit) is str:
            if op == "==":
                return f"({rd} == {c} or ({v}.__class__ is _list and {c} in {v}))"
            return (
                f"((({v} := ev[{field!r}]).__class__ is _str and {v} {op} {c}) or "
                f"({v}.__class__ is _list and _any_cmp({v}, {op!r}, {c})))"
            )
        if type(lit) is bool:
            if op != "==":
                return "False"
            return f"({rd} is {c} or ({v}.__class__ is _list and _any_cmp({v}, '==', {c})))"
        # number
        t = self.tmp()
        return (
            f"((({t} := {rd}.__class__) is _int or {t} is _float) and {v} {op} {c} or "
            f"({t} is _list and _any_cmp({v}, {op!r}, {c})))"
        )

    def gen_in(self, node: InSet, field: str) -> str:
        lits = [lv.value for lv in node.values]
        ci = node.insensitive
        strs = frozenset((x.lower() if ci else x) for x in lits if type(x) is str)
        nums = frozenset(x for x in lits if type(x) in (int, float))
        bools = frozenset(x for x in lits if type(x) is bool)
        v, rd = self.read(field)
        t = self.tmp()
        S = self.const(strs)
        helper = "_any_in_ci" if ci else "_any_in"
        sv = self.lowered(field, v)[0] if ci else v
        parts = [f"(({t} := {rd}.__class__) is _str and {sv} in {S})"]
        if nums or bools:
            parts.append(
                f"({t} is not _str and {t} is not _list and {v} is not None and "
                f"_any_in({v}, {S}, {self.const(nums)}, {self.const(bools)}))"
            )
        parts.append(f"({t} is _list and {helper}({v}, {S}, {self.const(nums)}, {self.const(bools)}))")
        if None in lits:
            parts.append(f"({v} is None or ({t} is _list and _is_missing({v})))")
        return "(" + " or ".join(parts) + ")"

    def gen_match(self, node: Match, field: str) -> str:
        if node.kind.startswith("regex"):
            R = self.const(regex_set(tuple(node.patterns), node.kind == "regex~"), "_r")
            v, rd = self.read(field)
            t = self.tmp()
            return f"((({t} := {rd}.__class__) is _str and {R}({v})) or ({t} is _list and _any_str({v}, {R})))"
        ps = PatternSet(node.patterns, node.kind != "like")
        return self._gen_patternset(field, ps)

    def _gen_patternset(self, field: str, ps: PatternSet) -> str:
        v, rd = self.read(field)
        t = self.tmp()
        M = self.const(ps.match_str, "_m")
        if ps.insensitive:
            head, s = self.lowered(field, v)
        else:
            s = v
            head = None
        tests = []
        if ps.exact:
            tests.append(f"{s} in {self.const(ps.exact, '_e')}")
        if ps.fullmatch is not None:
            tests.append(f"{self.const(ps.fullmatch, '_r')}({s}) is not None")
        if not tests:  # pragma: no cover (a pattern list is never empty)
            return "False"
        body = " or ".join(tests)
        if head is not None:
            first = tests[0].replace(s, head, 1)  # s is a unique local name, its first use computes it
            body = " or ".join([first] + tests[1:])
        return f"((({t} := {rd}.__class__) is _str and ({body})) or ({t} is _list and _any_str({v}, {M})))"

    def gen_func_pred(self, node: FuncCall, field: str, lits: List[str]) -> Optional[str]:
        if node.name == "cidrMatch":
            cs = CidrSet(lits)
            C = self.const(cs.contains, "_cidr")
            v, rd = self.read(field)
            t = self.tmp()
            return (
                f"((({t} := {rd}.__class__) is _str and {C}({v})) or ({t} is _list and _any_str({v}, {C})))"
            )
        if node.name == "wildcard":
            return self._gen_patternset(field, PatternSet(lits, node.insensitive))
        if node.name in ("startsWith", "endsWith", "stringContains"):
            (p,) = lits
            if node.name == "stringContains" and p == "":
                return "False"  # an empty substring is never contained (as in _call_function)
            ci = node.insensitive
            if ci:
                p = p.lower()
            P = self.const(p)
            v, rd = self.read(field)
            t = self.tmp()
            s = f"{v}.lower()" if ci else v
            if node.name == "startsWith":
                test = f"{s}.startswith({P})"
                fn = (lambda x, _p=p: x.lower().startswith(_p)) if ci else (lambda x, _p=p: x.startswith(_p))
            elif node.name == "endsWith":
                test = f"{s}.endswith({P})"
                fn = (lambda x, _p=p: x.lower().endswith(_p)) if ci else (lambda x, _p=p: x.endswith(_p))
            else:
                test = f"{P} in {s}"
                fn = (lambda x, _p=p: _p in x.lower()) if ci else (lambda x, _p=p: _p in x)
            F = self.const(fn, "_p")
            return f"((({t} := {rd}.__class__) is _str and {test}) or ({t} is _list and _any_str({v}, {F})))"
        return None


def compile_expr(node: Node, name: str = "pred") -> Predicate:
    """Compile a boolean expression AST into ``pred(ev) -> bool`` (generated Python source)."""
    g = _Gen()
    body = g.gen(node)
    params = ", ".join(f"{k}={k}" for k in g.consts)
    prelude = ""
    if g.lower_vars:
        prelude = "    " + " = ".join(g.lower_vars.values()) + " = _U\n"
    src = f"def {name}(ev, {params}):\n{prelude}    return {body}\n"
    ns: Dict[str, Any] = dict(g.consts)
    code = compile(src, f"<eql:{name}>", "exec")
    exec(code, ns)  # noqa: S102 - source generated from our own AST, literals are bound as constants
    fn = ns[name]
    fn.__eql_source__ = src  # for debugging / tests
    return fn

