"""The engine: compiled queries (`CompiledQuery`, what the pipeline asks of a rule), sequences, new_terms,
and `compile_query`, which makes one from a parsed query."""

from __future__ import annotations

from .factory import compile_query, query_fields
from .new_terms import NewTermsMatcher
from .query import CompiledQuery, EventMatcher, Matches
from .sequence import SequenceMatcher

__all__ = ["CompiledQuery", "EventMatcher", "Matches", "NewTermsMatcher", "SequenceMatcher", "compile_query",
           "query_fields"]
