"""Load Elastic detection-rules TOML files holding EQL rules."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from .engine.factory import compile_query
from .engine.new_terms import DEFAULT_MAX_TERMS, HistoryWindowError, NewTermsMatcher, parse_history_window
from .engine.query import CompiledQuery, EventMatcher
from .eql.ast import EqlSyntaxError, Query
from .eql.parser import parse_query

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

__all__ = ["Rule", "RuleLoadError", "behaviour_fingerprint", "carry_over", "load_rule", "load_rules",
           "query_error_reason", "rule_files"]

log = logging.getLogger("auditimds")


class RuleLoadError(Exception):
    """A rule file that cannot be used.  ``str(e)`` is ``<path>: <one-line reason>``."""

    def __init__(self, path: Union[str, Path], reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())  # keep it on one line
        super().__init__(f"{self.path}: {self.reason}")


@dataclass
class Rule:
    rule_id: str
    name: str
    description: str
    severity: str
    risk_score: Union[int, float] | None
    type: str
    language: str
    query: str
    # what the engine matches with (a reload may hand it, with its state, to the new Rule), and the query parsed
    compiled: CompiledQuery = field(repr=False, compare=False)
    parsed: Query = field(repr=False, compare=False)
    threat: List[Dict[str, Any]] = field(default_factory=list)
    tags: List[str] = field(default_factory=list)
    references: List[str] = field(default_factory=list)
    source_path: Path | None = None
    # type = "new_terms": the fields whose value combination must be new, and the history window (ms)
    new_terms_fields: List[str] = field(default_factory=list)
    history_window_ms: int | None = None
    # what the rule's matching state depends on (see `behaviour_fingerprint`): a reload keeps the open
    # sequences and the history of a rule whose fingerprint did not change
    fingerprint: str = ""


def behaviour_fingerprint(rtype: str, query: str, new_terms_fields: List[str], history_window_ms: Optional[int],
                          lazy_first: bool) -> str:
    """A digest of everything that decides what a rule matches and what state it keeps (not its name,
    severity or threat, which only appear in the alerts)."""
    doc = [rtype, query, new_terms_fields, history_window_ms, lazy_first]
    return hashlib.sha256(json.dumps(doc).encode("utf-8")).hexdigest()[:32]


def carry_over(old: List[Rule], new: List[Rule]) -> Tuple[List[Rule], List[str]]:
    """For a reload: each new rule whose id and fingerprint match an old rule takes over the old one's
    compiled matcher, with its state (open sequences, first stages held, new_terms history).  Returns the
    rules and a line for each rule that starts fresh (changed or added) or was removed."""
    by_id = {r.rule_id: r for r in old}
    notes: List[str] = []
    for r in new:
        prev = by_id.pop(r.rule_id, None)
        if prev is None:
            notes.append(f"rule {r.rule_id} ({r.name}) added")
        elif prev.fingerprint == r.fingerprint:
            r.compiled = prev.compiled
        else:
            notes.append(f"rule {r.rule_id} ({r.name}) changed: its open sequences and history start fresh")
    notes.extend(f"rule {r.rule_id} ({r.name}) removed" for r in by_id.values())
    return new, notes


def _str_list(v: Any) -> List[str]:
    if isinstance(v, list):
        return [str(x) for x in v]
    return [] if v is None else [str(v)]


def load_rule(path: Union[str, Path], lazy_first: bool = True) -> Rule:
    """Load and compile one rule file.  Raises :class:`RuleLoadError`.

    `lazy_first`: evaluate a sequence's first stage only when a later stage needs it (fastest for batch
    scans; the events of one maxspan are held meanwhile).  The live agent, whose memory budget matters more
    than a few microseconds per exec, evaluates eagerly."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RuleLoadError(path, f"cannot read file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        doc = tomllib.loads(text)
    except UnicodeDecodeError:
        raise RuleLoadError(path, "not a TOML file: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleLoadError(path, f"not a TOML file: {exc}") from None
    rule = doc.get("rule")
    if not isinstance(rule, dict):
        raise RuleLoadError(path, "missing [rule] table")
    for key in ("rule_id", "name"):
        value = rule.get(key)
        if not isinstance(value, str) or not value.strip():
            raise RuleLoadError(path, f"missing or empty rule.{key}")
    rtype = rule.get("type")
    lang = rule.get("language")
    if rtype not in ("eql", "new_terms"):
        raise RuleLoadError(path, f"unsupported rule type {rtype!r} (only 'eql' and 'new_terms' rules are supported)")
    if lang != "eql":
        hint = " (a new_terms rule must have its query translated to EQL)" if rtype == "new_terms" else ""
        raise RuleLoadError(path, f"unsupported query language {lang!r} (only 'eql' is supported){hint}")
    query = rule.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RuleLoadError(path, "missing or empty rule.query")
    try:
        parsed = parse_query(query)
        compiled = compile_query(parsed, lazy_first=lazy_first)
    except EqlSyntaxError as exc:
        raise RuleLoadError(path, f"invalid query: {query_error_reason(text, query, exc)}") from None
    nt_fields: List[str] = []
    window_ms: int | None = None
    if rtype == "new_terms":
        nt_fields, window_ms = _new_terms_options(path, rule.get("new_terms"))
        if not isinstance(compiled, EventMatcher):
            raise RuleLoadError(path, "a new_terms rule needs a single-event query (<category> where ...), "
                                      "not a sequence or sample")
        compiled = NewTermsMatcher(compiled, nt_fields, window_ms, max_terms=DEFAULT_MAX_TERMS)
    threat = rule.get("threat") or []
    if not isinstance(threat, list):
        threat = [threat]
    return Rule(
        rule_id=rule["rule_id"].strip(),
        name=rule["name"].strip(),
        description=str(rule.get("description", "")).strip(),
        severity=str(rule.get("severity", "")),
        risk_score=rule.get("risk_score"),
        type=rtype,
        language=lang,
        query=query,
        threat=[t for t in threat if isinstance(t, dict)],
        tags=_str_list(rule.get("tags")),
        references=_str_list(rule.get("references")),
        source_path=path,
        compiled=compiled,
        parsed=parsed,
        new_terms_fields=nt_fields,
        history_window_ms=window_ms,
        fingerprint=behaviour_fingerprint(rtype, query, nt_fields, window_ms, lazy_first),
    )


_QUERY_KEY = re.compile(r"^[ \t]*query[ \t]*=[ \t]*('{3}|\"{3}|'|\")", re.MULTILINE)


def query_offset(text: str, query: str) -> Optional[int]:
    """Where the value of `query` starts in `text` (a rule file, newlines normalised to LF), or None when the
    file does not hold it character for character (a basic string with escapes, a dotted key...)."""
    for m in _QUERY_KEY.finditer(text):
        delim = m.group(1)
        start = m.end()
        if len(delim) == 3 and text.startswith("\n", start):  # TOML trims a newline right after '''
            start += 1
        if text.startswith(query, start) and text.startswith(delim, start + len(query)):
            return start
    return None


def _line_col(text: str, offset: int) -> Tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def query_error_reason(text: str, query: str, exc: EqlSyntaxError) -> str:
    """The syntax error with its position in the rule file, and in the query (line and column are 1-based);
    the query-relative position only when the file position cannot be determined."""
    start = query_offset(text.replace("\r\n", "\n"), query)
    qlines = query.split("\n")
    if start is None or not 1 <= exc.line <= len(qlines) or exc.col < 1:
        return str(exc)
    offset = sum(len(ln) + 1 for ln in qlines[: exc.line - 1]) + exc.col - 1
    line, col = _line_col(text.replace("\r\n", "\n"), start + offset)
    return f"line {line}, column {col} of the file (line {exc.line}, column {exc.col} of the query): {exc.msg}"


def rule_files(path: Path) -> List[Path]:
    """The rule files a path stands for: a file itself, a directory's ``*.toml`` files (sorted, not recursive)."""
    if path.is_dir():
        return sorted(x for x in path.glob("*.toml") if x.is_file())
    return [path] if path.exists() else []


def _new_terms_options(path: Path, nt: Any) -> Tuple[List[str], int]:
    """``[rule.new_terms]`` as detection-rules writes it::

        [rule.new_terms]
        field = "new_terms_fields"
        value = ["host.id", "process.executable"]
        [[rule.new_terms.history_window_start]]
        field = "history_window_start"
        value = "now-7d"

    (``history_window_start = "now-7d"`` directly in ``[rule.new_terms]`` is accepted too)."""
    if not isinstance(nt, dict):
        raise RuleLoadError(path, "a new_terms rule needs a [rule.new_terms] table")
    if nt.get("field", "new_terms_fields") != "new_terms_fields":
        raise RuleLoadError(path, f"rule.new_terms.field must be 'new_terms_fields', not {nt.get('field')!r}")
    fields = nt.get("value")
    if (not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f.strip() for f in fields)
            or len(set(fields)) != len(fields)):
        raise RuleLoadError(path, "rule.new_terms.value must be a non-empty list of distinct field names")
    if len(fields) > 3:
        raise RuleLoadError(path, "rule.new_terms.value: at most 3 fields (as in Elastic)")
    hws = nt.get("history_window_start")
    if isinstance(hws, list):
        found = [h.get("value") for h in hws if isinstance(h, dict) and h.get("field", "history_window_start")
                 == "history_window_start"]
        hws = found[0] if len(found) == 1 else None
    if hws is None:
        raise RuleLoadError(path, "rule.new_terms needs one history_window_start (e.g. 'now-7d')")
    try:
        window_ms = parse_history_window(hws)
    except HistoryWindowError as exc:
        raise RuleLoadError(path, f"rule.new_terms: {exc}") from None
    return [f.strip() for f in fields], window_ms


def load_rules(paths: List[Union[str, Path]], lazy_first: bool = True) -> Tuple[List[Rule], List[RuleLoadError]]:
    """Load rule files and directories (every ``*.toml`` inside, sorted, not recursive).

    Returns ``(rules, errors)``.  A later rule with an already seen ``rule_id`` replaces the
    earlier one (keeping
    its position) and a warning is logged on the ``auditimds`` logger.  A missing path is reported
    as an error.
    """
    files: List[Path] = []
    errors: List[RuleLoadError] = []
    for p in paths:
        p = Path(p)
        if p.exists():
            files.extend(rule_files(p))
        else:
            errors.append(RuleLoadError(p, "no such file or directory"))
    by_id: Dict[str, Rule] = {}
    for f in files:
        try:
            rule = load_rule(f, lazy_first=lazy_first)
        except RuleLoadError as exc:
            errors.append(exc)
            continue
        prev = by_id.get(rule.rule_id)
        if prev is not None:
            log.warning(
                "rule %s (%s) from %s replaces the one from %s", rule.rule_id, rule.name, f, prev.source_path
            )
        by_id[rule.rule_id] = rule
    return list(by_id.values()), errors
