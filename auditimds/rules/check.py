"""`auditimds rules check PATH...`: which detection-rules TOML files load, and which are meaningful here.

For each rule file (a directory means every ``*.toml`` in it, sorted, as for ``--rules``; a shipped pack can
be named, e.g. ``hardened``; a file reached twice is checked once) one line:

    <path>: loaded: <rule name> (<rule_id>)
    <path>: refused: <one-line reason>

A query's syntax error gives its line and column in the file (and in the query).  Two files defining the same
``rule_id`` are flagged under the later one (loaded together, the later would replace the earlier):

    duplicate rule_id: also defined in <earlier path>

and, under a loaded rule, what auditd-derived events can never give it (see :mod:`auditimds.ecs.fields`):

    fields not supplied by auditd events: file.path, process.hash.sha256
    event categories never produced: file
    values never produced: event.action == "fork"

A rule with none of these notes only uses what the normalizer supplies (whether a field is present on a given
event still depends on the audit rules and on what the log holds; see docs/design.md).

Exit code: 0 if every file loaded, 1 if any was refused or a rule_id is defined twice, 2 on bad usage (no path,
a missing path, a directory without rule files: `auditimds: error: ...` lines on `err`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Set, TextIO, Tuple, Union
from typing import Sequence as Seq

from ..ecs import fields as ecs_fields
from .builtin import missing_rule_path_message, resolve_rule_path
from .eql.ast import (
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
    Stage,
    iter_fields,
)
from .eql.regexp import RegexSet
from .eql.wildcard import wildcard_matcher
from .loader import RuleLoadError, load_rule
from .loader import rule_files as files_of

__all__ = ["check_rules", "rule_notes", "rule_files"]


def rule_files(paths: List[str]) -> Tuple[List[Path], List[str]]:
    """(rule files in order, each once; usage errors).  A name that is no path may be a shipped pack."""
    files: List[Path] = []
    errors: List[str] = []
    seen: Set[Path] = set()
    for raw in paths:
        p = resolve_rule_path(raw)
        if p is None:
            errors.append(missing_rule_path_message(raw))
            continue
        found = files_of(p)
        if p.is_dir() and not found:
            errors.append(f"{raw}: no *.toml rule files in this directory")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                files.append(f)
    return files, errors


def _stages(q: Query) -> Seq[Union[Stage, EventQuery]]:
    if isinstance(q, Sequence):
        return list(q.stages) + ([q.until] if q.until is not None else [])
    return [q]


def _walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, Not):
        yield from _walk(node.expr)
    elif isinstance(node, (And, Or)):
        for it in node.items:
            yield from _walk(it)
    elif isinstance(node, Compare):
        yield from _walk(node.left)
        yield from _walk(node.right)
    elif isinstance(node, (InSet, Match)):
        yield from _walk(node.expr)
    elif isinstance(node, FuncCall):
        for a in node.args:
            yield from _walk(a)


def _dead_values(where: Node) -> List[str]:
    """Literal tests on enumerated fields (event.action, event.category...) that no produced value passes."""
    out: List[str] = []
    nv = ecs_fields.never_produced_value
    for n in _walk(where):
        if isinstance(n, Compare) and n.op in ("==", "!=") and isinstance(n.left, Field):
            lit = n.right.value if isinstance(n.right, Literal) else None
            if isinstance(lit, str) and nv(n.left.name, lit):
                out.append(f'{n.left.name} {n.op} "{lit}"')
        elif isinstance(n, InSet) and isinstance(n.expr, Field):
            for v in n.values:
                if isinstance(v.value, str) and nv(n.expr.name, v.value, insensitive=n.insensitive):
                    out.append(f'{n.expr.name} in{"~" if n.insensitive else ""} "{v.value}"')
        elif isinstance(n, Match) and isinstance(n.expr, Field):
            for p in n.patterns:
                m: Callable[[str], bool] = (RegexSet([p], n.kind == "regex~") if n.kind.startswith("regex")
                                            else wildcard_matcher(p, n.kind != "like"))
                if nv(n.expr.name, p, matcher=m):
                    out.append(f'{n.expr.name} {n.kind} "{p}"')
    return out


def rule_notes(query: Query) -> List[str]:
    """What auditd-derived events can never give this query (empty: everything it uses can be supplied)."""
    notes: List[str] = []
    names = {f.name for f in iter_fields(query)}
    missing = ecs_fields.unsupplied(names)
    if missing:
        notes.append("fields not supplied by auditd events: " + ", ".join(missing))
    cats = sorted({s.category for s in _stages(query) if s.category is not None} - ecs_fields.CATEGORIES)
    if cats:
        notes.append("event categories never produced: " + ", ".join(cats))
    dead: List[str] = []
    for s in _stages(query):
        for d in _dead_values(s.where):
            if d not in dead:
                dead.append(d)
    if dead:
        notes.append("values never produced: " + ", ".join(dead))
    return notes


def check_rules(paths: List[str], out: TextIO, err: Optional[TextIO] = None) -> int:
    """Check rule files; write one report line per file (plus notes) to `out`, usage errors as
    `auditimds: error: ...` lines to `err` (default `out`).  Returns the exit code."""
    err = out if err is None else err
    if not paths:
        err.write("auditimds: error: rules check: no rule file or directory given\n")
        return 2
    files, errors = rule_files(paths)
    if errors:
        for e in errors:
            err.write(f"auditimds: error: {e}\n")
        return 2
    problems = 0
    first_with_id: Dict[str, Path] = {}
    for f in files:
        try:
            rule = load_rule(f)
        except RuleLoadError as exc:
            problems += 1
            out.write(f"{f}: refused: {exc.reason}\n")
            continue
        out.write(f"{f}: loaded: {rule.name} ({rule.rule_id})\n")
        earlier = first_with_id.setdefault(rule.rule_id, f)
        if earlier != f:
            problems += 1
            out.write(f"    duplicate rule_id: also defined in {earlier}\n")
        for note in rule_notes(rule.parsed):
            out.write(f"    {note}\n")
    return 1 if problems else 0
