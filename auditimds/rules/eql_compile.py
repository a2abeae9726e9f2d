"""Compile EQL expression ASTs into fast Python predicates ``pred(ev) -> bool``.

Semantics (``/work/shared/docs/eql-semantics.md`` §2.2-2.4 and §5, Elasticsearch Query-DSL behaviour):

* events are flat mappings keyed by dotted field names, read with ``ev[name]`` (the event class's
  ``__missing__`` returns None).  ``None``, ``[]`` and absent all mean *missing*;
* an atomic predicate on a missing field is FALSE (except ``== null``); on a list it is TRUE if ANY element
  satisfies it; ``!=`` is exactly ``not ==``; ``not`` is plain two-valued negation;
* ``:`` / ``like~`` = case-insensitive wildcard (``*`` any run, ``?`` exactly one char, no
  escapes), ``like`` is
  the case-sensitive variant; ``==``, ``!=``, ``in`` are exact and case-sensitive; ``in~`` is
  case-insensitive;
* strings never equal numbers; numbers compare numerically; booleans only compare to booleans.

Two implementations are kept in this module:

* :func:`compile_expr` generates Python source for the whole expression (one function, constants bound as
  default arguments so that they are fast locals) and ``compile()``s it.  Field predicates of the
  common shapes
  (field vs literal, field ``:``/``like``/``in`` lists, ``cidrMatch``/``startsWith``/... on a field
  with literal
  arguments) are emitted inline;
* :func:`evaluate` is a straightforward tree interpreter with the same semantics.  The generated
  code falls back
  to it for rare shapes (functions of functions, ``length(f) > 3``, ...) and the tests use it as a reference.
"""

from __future__ import annotations

import ipaddress
import itertools
import operator
import re
import socket
from typing import Any, Callable, Dict, Iterable, List, Mapping, Tuple, Union

from .eql_parser import (
    And,
    Compare,
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
    iter_fields,
    parse_query,
)
from .wildcard import GlobSet

__all__ = [
    "compile_expr",
    "compile_query",
    "evaluate",
    "wildcard_to_regex",
    "wildcard_matcher",
    "CidrSet",
]

Predicate = Callable[[Mapping[str, Any]], bool]
_UNSET = object()

# --------------------------------------------------------------------------------------------------- helpers


def wildcard_to_regex(pattern: str) -> str:
    """Translate an EQL wildcard pattern (``*`` any run, ``?`` one char, nothing else special) to
    regex source."""
    out = []
    for ch in pattern:
        if ch == "*":
            if not out or out[-1] != ".*":  # collapse ** (same language, avoids needless backtracking)
                out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _has_wildcard(p: str) -> bool:
    return "*" in p or "?" in p


class _PatternSet:
    """A list of wildcard patterns: an exact-string set and one linear-time `GlobSet` for the rest."""

    __slots__ = ("exact", "fullmatch", "search", "insensitive")

    def __init__(self, patterns: Iterable[str], insensitive: bool) -> None:
        pats = [p.lower() if insensitive else p for p in patterns]
        self.insensitive = insensitive
        self.exact = frozenset(p for p in pats if not _has_wildcard(p))
        # Wildcard patterns are matched in linear time (rules/wildcard.py), never with a backtracking regex:
        # the text is attacker-controlled and can be megabytes long.
        wild = sorted({p for p in pats if _has_wildcard(p)})
        self.fullmatch: Callable[[str], Any] | None = GlobSet(wild) if wild else None
        self.search: Callable[[str], Any] | None = None

    def match_str(self, s: str) -> bool:
        if self.insensitive:
            s = s.lower()
        if s in self.exact:
            return True
        fm = self.fullmatch
        if fm is not None and fm(s) is not None:
            return True
        se = self.search
        return se is not None and se(s) is not None

    def match_value(self, v: Any) -> bool:
        if type(v) is str:
            return self.match_str(v)
        if type(v) is list:
            for x in v:
                if type(x) is str and self.match_str(x):
                    return True
        return False


def wildcard_matcher(patterns: Union[str, Iterable[str]], insensitive: bool = True) -> Callable[[str], bool]:
    """Return ``f(s) -> bool`` implementing ``s : patterns`` (or ``like`` when ``insensitive`` is False)."""
    if isinstance(patterns, str):
        patterns = [patterns]
    return _PatternSet(patterns, insensitive).match_str


class CidrSet:
    """A set of IPv4/IPv6 networks (bare addresses mean a single host).  ``contains(ip_string)``."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.v4: List[Tuple[int, int]] = []
        self.v6: List[Tuple[int, int]] = []
        for c in cidrs:
            net = ipaddress.ip_network(c.strip(), strict=False)
            mask = int(net.netmask)
            (self.v4 if net.version == 4 else self.v6).append((int(net.network_address) & mask, mask))

    def contains(self, ip: Any) -> bool:
        if type(ip) is not str:
            return False
        try:
            if ":" in ip:
                if "%" in ip:  # zone index, e.g. fe80::1%eth0
                    ip = ip.split("%", 1)[0]
                n = int.from_bytes(socket.inet_pton(socket.AF_INET6, ip), "big")
                for net, mask in self.v6:
                    if n & mask == net:
                        return True
                if n >> 32 == 0xFFFF:  # IPv4-mapped IPv6: Lucene stores IPv4 that way
                    n &= 0xFFFFFFFF
                    for net, mask in self.v4:
                        if n & mask == net:
                            return True
                return False
            n = int.from_bytes(socket.inet_aton(ip), "big") if ip.count(".") == 3 else -1
        except (OSError, ValueError):
            return False
        if n < 0:
            return False
        for net, mask in self.v4:
            if n & mask == net:
                return True
        if self.v6:
            n6 = 0xFFFF00000000 | n
            for net, mask in self.v6:
                if n6 & mask == net:
                    return True
        return False

    def contains_any(self, v: Any) -> bool:
        if type(v) is list:
            return any(self.contains(x) for x in v)
        return self.contains(v)


def _is_num(x: Any) -> bool:
    t = type(x)
    return t is int or t is float


_CMP = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _scalar_cmp(x: Any, op: str, lit: Any) -> bool:
    """Compare one (non-missing, non-list) value with a literal: types must agree (str/str,
    num/num, bool/bool)."""
    if type(lit) is str:
        if type(x) is not str:
            return False
    elif type(lit) is bool:
        if type(x) is not bool or op not in ("==", "!="):
            return False
    elif _is_num(lit):
        if not _is_num(x):
            return False
    else:
        return False
    return bool(_CMP[op](x, lit))


def _any_cmp(v: Any, op: str, lit: Any) -> bool:
    if type(v) is list:
        return any(x is not None and _scalar_cmp(x, op, lit) for x in v)
    return v is not None and _scalar_cmp(v, op, lit)


def _any_in(v: Any, strs: frozenset, nums: frozenset, bools: frozenset) -> bool:
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


def _any_in_ci(v: Any, strs: frozenset, nums: frozenset, bools: frozenset) -> bool:
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


def _is_missing(v: Any) -> bool:
    return v is None or v == [] or (type(v) is list and all(x is None for x in v))


def _any_str(v: Any, f: Callable[[str], bool]) -> bool:
    if type(v) is list:
        for x in v:
            if type(x) is str and f(x):
                return True
        return False
    return type(v) is str and f(v)


# ---------------------------------------------------------------------------------------------- functions

_INT_OPS = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul}


def _f_str(x: Any) -> str | None:
    return x if type(x) is str else None


def _call_function(name: str, insensitive: bool, args: List[Any]) -> Any:
    """Evaluate an EQL function on scalar arguments (None = null).  Returns None on null input or
    type error."""
    if name == "concat":
        if any(a is None for a in args):
            return None
        return "".join(_to_string(a) for a in args)
    if name == "cidrMatch":
        return CidrSet(args[1:]).contains(args[0]) if args[0] is not None else None
    if args[0] is None or (name != "number" and len(args) > 1 and args[1] is None):
        return None  # (number's base may be null: "detect it")
    a0 = args[0]
    if name in ("startsWith", "endsWith", "stringContains", "indexOf", "between", "wildcard"):
        if type(a0) is not str:
            return None
        if name == "wildcard":
            if not all(type(p) is str for p in args[1:]):
                return None
            return _PatternSet(args[1:], insensitive).match_str(a0)
        rest = args[1:]
        if not all(type(p) is str for p in rest[: (2 if name == "between" else 1)]):
            return None
        s, p = a0, rest[0]
        if insensitive:
            s, p = s.lower(), p.lower()
        if name == "startsWith":
            return s.startswith(p)
        if name == "endsWith":
            return s.endswith(p)
        if name == "stringContains":
            return bool(p) and p in s  # an empty substring is not contained (Elasticsearch StringUtils)
        if name == "indexOf":
            start = rest[1] if len(rest) > 1 else 0
            if start is None or not _is_num(start):  # indexOf(f, ".", null) is null (function reference)
                return None
            i = s.find(p, max(int(start), 0))
            return None if i < 0 else i
        # between(source, left, right[, greedy])
        right = rest[1].lower() if insensitive else rest[1]
        greedy = bool(rest[2]) if len(rest) > 2 else False
        i = s.find(p)
        if i < 0:
            return ""
        i += len(p)
        j = s.rfind(right) if greedy else s.find(right, i)
        if j < i:
            return ""
        return a0[i:j]
    if name == "length":
        return len(a0) if type(a0) is str else None
    if name == "string":
        return _to_string(a0)
    if name == "substring":
        if type(a0) is not str or not all(type(x) is int for x in args[1:] if x is not None):
            return None
        start = args[1]
        end = args[2] if len(args) > 2 else None
        return a0[start:end]
    if name == "number":
        if type(a0) is not str:
            return a0 if _is_num(a0) else None
        base = args[1] if len(args) > 1 else None
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
    if name in ("add", "subtract", "multiply", "divide", "modulo"):
        a, b = args[0], args[1]
        if not (_is_num(a) and _is_num(b)):
            return None
        if name in _INT_OPS:
            return _INT_OPS[name](a, b)
        if b == 0:
            return None
        if name == "divide":
            if type(a) is int and type(b) is int:
                q = abs(a) // abs(b)  # Java integer division truncates toward zero
                return q if (a >= 0) == (b >= 0) else -q
            return a / b
        return (
            int(__import__("math").fmod(a, b))
            if type(a) is int and type(b) is int
            else __import__("math").fmod(a, b)
        )
    raise ValueError(f"unsupported function {name}")  # pragma: no cover (parser rejects unknown names)


def _to_string(a: Any) -> str:
    if type(a) is bool:
        return "true" if a else "false"
    return str(a)


# -------------------------------------------------------------------------------------------- interpreter


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
            cs = CidrSet([a.value for a in node.args[1:]])  # type: ignore[union-attr]
            return [cs.contains(x) for x in vals]
        if node.name == "wildcard":
            vals = _values(node.args[0], ev)
            ps = _PatternSet([a.value for a in node.args[1:]], node.insensitive)  # type: ignore[union-attr]
            return [type(x) is str and ps.match_str(x) for x in vals]
        arg_vals = [_values(a, ev) for a in node.args]
        out = []
        for combo in itertools.product(*[av if av else [None] for av in arg_vals]):
            r = _call_function(node.name, node.insensitive, list(combo))
            if r is not None:
                out.append(r)
        return out
    # boolean expression used as a value
    return [evaluate(node, ev)]


def evaluate(node: Node, ev: Mapping[str, Any]) -> bool:
    """Reference interpreter: evaluate a boolean expression on an event."""
    if isinstance(node, And):
        return all(evaluate(i, ev) for i in node.items)
    if isinstance(node, Or):
        return any(evaluate(i, ev) for i in node.items)
    if isinstance(node, Not):
        return not evaluate(node.expr, ev)
    if isinstance(node, Compare):
        lit = node.right.value if isinstance(node.right, Literal) else None
        if not isinstance(node.right, Literal):
            # expression vs expression (only reachable through functions): any pair satisfies
            lv, rv = _values(node.left, ev), _values(node.right, ev)
            if node.op == "!=":
                return not any(_scalar_cmp(a, "==", b) for a in lv for b in rv)
            return any(_scalar_cmp(a, node.op, b) for a in lv for b in rv)
        vals = _values(node.left, ev)
        if lit is None:
            return (not vals) if node.op == "==" else bool(vals)
        if node.op == "!=":
            return not any(_scalar_cmp(x, "==", lit) for x in vals)
        return any(_scalar_cmp(x, node.op, lit) for x in vals)
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
                elif _scalar_cmp(x, "==", lit):
                    return True
        return False
    if isinstance(node, Match):
        vals = _values(node.expr, ev)
        if node.kind.startswith("regex"):
            flags = re.DOTALL | (re.IGNORECASE if node.kind == "regex~" else 0)
            rx = [re.compile(p, flags) for p in node.patterns]
            return any(type(x) is str and any(r.fullmatch(x) for r in rx) for x in vals)
        ps = _PatternSet(node.patterns, node.kind != "like")
        return any(type(x) is str and ps.match_str(x) for x in vals)
    if isinstance(node, FuncCall):
        return any(x is True for x in _values(node, ev))
    if isinstance(node, Field):
        return any(x is True for x in _values(node, ev))
    if isinstance(node, Literal):
        return node.value is True
    raise TypeError(f"cannot evaluate {type(node).__name__}")  # pragma: no cover


# --------------------------------------------------------------------------------------------------- codegen


class _Gen:
    def __init__(self) -> None:
        self.consts: Dict[str, Any] = {
            "_type": type,
            "_list": list,
            "_str": str,
            "_int": int,
            "_float": float,
            "_any_cmp": _any_cmp,
            "_any_in": _any_in,
            "_any_in_ci": _any_in_ci,
            "_any_str": _any_str,
            "_is_missing": _is_missing,
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
            return self.gen_in(node)
        if isinstance(node, Match) and isinstance(node.expr, Field):
            return self.gen_match(node)
        if (
            isinstance(node, FuncCall)
            and node.args
            and isinstance(node.args[0], Field)
            and all(isinstance(a, Literal) and type(a.value) is str for a in node.args[1:])
        ):
            code = self.gen_func_pred(node)
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

    def gen_in(self, node: InSet) -> str:
        field = node.expr.name  # type: ignore[union-attr]
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

    def gen_match(self, node: Match) -> str:
        field = node.expr.name  # type: ignore[union-attr]
        if node.kind.startswith("regex"):
            flags = re.DOTALL | (re.IGNORECASE if node.kind == "regex~" else 0)
            fm = re.compile("|".join(f"(?:{p})" for p in node.patterns), flags).fullmatch
            R = self.const(fm, "_r")
            pred = self.const(lambda s, _fm=fm: _fm(s) is not None, "_p")
            v, rd = self.read(field)
            t = self.tmp()
            return (
                f"((({t} := {rd}.__class__) is _str and {R}({v}) is not None) or "
                f"({t} is _list and _any_str({v}, {pred})))"
            )
        ps = _PatternSet(node.patterns, node.kind != "like")
        return self._gen_patternset(field, ps)

    def _gen_patternset(self, field: str, ps: _PatternSet) -> str:
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
        if ps.search is not None:
            tests.append(f"{self.const(ps.search, '_r')}({s}) is not None")
        if not tests:  # pragma: no cover (a pattern list is never empty)
            return "False"
        body = " or ".join(tests)
        if head is not None:
            first = tests[0].replace(s, head, 1)  # s is a unique local name, its first use computes it
            body = " or ".join([first] + tests[1:])
        return f"((({t} := {rd}.__class__) is _str and ({body})) or ({t} is _list and _any_str({v}, {M})))"

    def gen_func_pred(self, node: FuncCall) -> str | None:
        field = node.args[0].name  # type: ignore[union-attr]
        lits = [a.value for a in node.args[1:]]  # type: ignore[union-attr]
        if node.name == "cidrMatch":
            cs = CidrSet(lits)
            C = self.const(cs.contains, "_cidr")
            v, rd = self.read(field)
            t = self.tmp()
            return (
                f"((({t} := {rd}.__class__) is _str and {C}({v})) or ({t} is _list and _any_str({v}, {C})))"
            )
        if node.name == "wildcard":
            return self._gen_patternset(field, _PatternSet(lits, node.insensitive))
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
    return fn  # type: ignore[no-any-return]


def query_fields(query: Query) -> frozenset:
    """Names of all fields a query reads (including ``event.category`` used for the category dispatch)."""
    names = {f.name for f in iter_fields(query)}
    names.add("event.category")
    return frozenset(names)


def compile_query(query: Union[Query, str], max_keys: int = 100_000, lazy_first: bool = False):
    """Compile a parsed query (or query text) into an engine object (see :mod:`auditimds.rules.sequence`).

    ``lazy_first``: evaluate a sequence's first stage only when a second-stage event needs it (same
    matches; see :class:`~auditimds.rules.sequence.SequenceMatcher`).  The rule loader turns it on."""
    from .sequence import EventMatcher, SequenceMatcher

    if isinstance(query, str):
        query = parse_query(query)
    if isinstance(query, EventQuery):
        return EventMatcher(query, compile_expr(query.where, "event_query"), query_fields(query))
    if isinstance(query, Sequence):
        preds = [compile_expr(s.where, f"stage{i}") for i, s in enumerate(query.stages)]
        until = compile_expr(query.until.where, "until") if query.until is not None else None
        return SequenceMatcher(query, preds, until, query_fields(query), max_keys=max_keys,
                               lazy_first=lazy_first)
    raise TypeError(f"not a query: {type(query).__name__}")
