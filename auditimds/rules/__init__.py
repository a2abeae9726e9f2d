"""rules stage: the EQL language (`eql/`), the matching engine (`engine/`) and the rule pack (detection-rules
TOML `loader`, the `builtin` packs, `rules check`)."""

from __future__ import annotations

from .engine import CompiledQuery, EventMatcher, SequenceMatcher, compile_query
from .eql import EqlSyntaxError, compile_expr, evaluate, parse_expression, parse_query
from .loader import Rule, RuleLoadError, load_rule, load_rules

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
