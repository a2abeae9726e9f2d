"""rules stage: EQL parser, compiler, sequence engine and detection-rules TOML loader."""

from __future__ import annotations

from .eql_compile import compile_expr, compile_query, evaluate
from .eql_parser import EqlSyntaxError, parse_expression, parse_query
from .loader import Rule, RuleLoadError, load_rule, load_rules
from .sequence import CompiledQuery, EventMatcher, SequenceMatcher

__all__ = [
    "CompiledQuery",
    "EqlSyntaxError",
    "EventMatcher",
    "Rule",
    "RuleLoadError",
    "SequenceMatcher",
    "compile_expr",
    "compile_query",
    "evaluate",
    "load_rule",
    "load_rules",
    "parse_expression",
    "parse_query",
]
