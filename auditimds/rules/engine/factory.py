"""`compile_query`: a parsed query (or its text) to the engine object that matches it."""

from __future__ import annotations

from typing import FrozenSet, Union

from ..eql.ast import EventQuery, Query, Sequence, iter_fields
from ..eql.codegen import compile_expr
from ..eql.parser import parse_query
from .query import CompiledQuery, EventMatcher
from .sequence import SequenceMatcher

__all__ = ["compile_query", "query_fields"]


def query_fields(query: Query) -> FrozenSet[str]:
    """Names of all fields a query reads (including ``event.category`` used for the category dispatch)."""
    names = {f.name for f in iter_fields(query)}
    names.add("event.category")
    return frozenset(names)


def compile_query(query: Union[Query, str], max_keys: int = 100_000, lazy_first: bool = False) -> CompiledQuery:
    """Compile a parsed query (or query text) into an engine object.

    ``lazy_first``: evaluate a sequence's first stage only when a second-stage event needs it (same
    matches; see :class:`~auditimds.rules.engine.sequence.SequenceMatcher`).  The rule loader turns it on."""
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
