"""Join keys: ``key(ev)`` generated for a stage's ``by`` fields, and the category test of a stage."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional
from typing import Sequence as Seq

from ..eql.ast import Field

__all__ = ["NOKEY", "KeyFn", "category_matches", "make_keyfn"]

KeyFn = Callable[[Mapping[str, Any]], Any]


class _NoKey:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOKEY"


NOKEY: Any = _NoKey()  # a mandatory join key is missing: the event takes no part


def make_keyfn(fields: Seq[Field]) -> KeyFn:
    """Generate ``key(ev)`` returning the join-key tuple or :data:`NOKEY` if a mandatory key is missing.

    Multi-valued key values: ``[]`` is missing, ``[x]`` is ``x``, longer lists become a tuple (exact match of
    the whole list; ES has no exact equivalent, documented deviation).
    """
    lines = ["def key(ev, _list=list, _tuple=tuple, NOKEY=NOKEY):"]
    names = []
    for i, f in enumerate(fields):
        v = f"k{i}"
        names.append(v)
        lines.append(f"    {v} = ev[{f.name!r}]")
        lines.append(f"    if {v}.__class__ is _list:")
        lines.append(f"        {v} = None if not {v} else ({v}[0] if len({v}) == 1 else _tuple({v}))")
        if not f.optional:
            lines.append(f"    if {v} is None:")
            lines.append("        return NOKEY")
    lines.append(f"    return ({', '.join(names)}{',' if len(names) == 1 else ''})")
    ns: Dict[str, Any] = {"NOKEY": NOKEY}
    exec(compile("\n".join(lines) + "\n", "<eql:key>", "exec"), ns)  # noqa: S102
    fn: KeyFn = ns["key"]
    return fn


def category_matches(cat: Any, wanted: Optional[str]) -> bool:
    if wanted is None:
        return True
    if cat.__class__ is list:
        return wanted in cat
    return bool(cat == wanted)
