"""The EQL language: syntax tree (`ast`), tokenizer (`lexer`), parser, the compiler of predicates to Python
(`codegen`) and its reference `interpreter`, the function table (`functions`), value comparisons (`values`),
and the matchers behind the operators: linear-time `wildcard`s, `cidr` sets, Lucene `regexp`s.

Semantics: ``docs/specs/eql-semantics.md`` (Elasticsearch's EQL)."""

from __future__ import annotations

from .ast import EqlSyntaxError, Query, iter_fields
from .codegen import Predicate, compile_expr
from .interpreter import evaluate
from .parser import parse_expression, parse_query

__all__ = ["EqlSyntaxError", "Predicate", "Query", "compile_expr", "evaluate", "iter_fields", "parse_expression",
           "parse_query"]
