"""The EQL syntax tree: the nodes the parser builds and the compiler and the checks walk.

Positions (``line``, ``col``, 1-based) are kept on the nodes an error message may point at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, Union

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
    "iter_fields",
]


class EqlSyntaxError(ValueError):
    """A query that cannot be parsed or is semantically invalid.  ``str(e)`` is ``line L, column C: msg``."""

    def __init__(self, msg: str, line: int, col: int) -> None:
        self.msg = msg
        self.line = line
        self.col = col
        super().__init__(f"line {line}, column {col}: {msg}")


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


def iter_fields(node: Node) -> Iterator[Field]:
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
