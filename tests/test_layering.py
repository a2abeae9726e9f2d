"""The one-way flow of docs/design.md's map, checked on the source: no stage imports a later one, and the
agent's loop (`daemon.py`) imports nothing from `audit/` (it reaches records only through the pipeline) or
from the operator tools in `ops/`."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

PKG = Path(__file__).resolve().parents[1] / "auditimds"
STAGES = ["source", "audit", "ecs", "rules", "alerts"]  # data flows left to right
WIRING = {"pipeline", "core", "agent", "daemon", "cli", "cli_support", "config", "ops", "metrics", "builtin_rules"}


def _imports(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, absolute module) for every import of the package in `path`."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    package = parts if path.name == "__init__.py" else parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module and (PKG.parent / mod.replace(".", "/")).is_dir():
                    names = [f"{mod}.{a.name}" for a in node.names]  # `from ..audit import events`
                else:
                    names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
            for n in names:
                if n.startswith("auditimds"):
                    yield node.lineno, n
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("auditimds"):
                    yield node.lineno, a.name


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph() -> Dict[str, List[Tuple[int, str]]]:
    return {str(p.relative_to(PKG.parent)): list(_imports(p)) for p in sorted(PKG.rglob("*.py"))}


def test_the_parser_of_imports_sees_the_package() -> None:
    g = _graph()
    # relative imports are resolved: sinks' `from .ledger import` is auditimds.alerts.ledger
    assert "auditimds.alerts.ledger" in {m for _, m in g["auditimds/alerts/sinks.py"]}
    assert any(_top(m) == "audit" for _, m in g["auditimds/pipeline.py"])
    assert any(_top(m) == "alerts" for _, m in g["auditimds/agent/outputs.py"])


def test_no_stage_imports_a_later_stage_or_the_wiring() -> None:
    bad: List[str] = []
    for path, imports in _graph().items():
        here = _top(path.replace("/", ".")[:-3])
        if here not in STAGES:
            continue
        for line, mod in imports:
            there = _top(mod)
            if there in WIRING or (there in STAGES and STAGES.index(there) > STAGES.index(here)):
                bad.append(f"{path}:{line}: {here}/ imports {mod}")
    assert not bad, "imports against the flow:\n" + "\n".join(bad)


def test_the_core_reaches_only_the_stages_it_replaces() -> None:
    # core.py (the compiled core and its Python reference) is lines -> ECS events: audit/ and ecs/ only
    tops: Set[str] = {_top(m) for _, m in _imports(PKG / "core.py")}
    assert tops and tops <= {"audit", "ecs", "_core"}, tops


def test_daemon_imports_nothing_from_audit_or_ops() -> None:
    tops: Set[str] = {_top(m) for _, m in _imports(PKG / "daemon.py")}
    assert tops and not tops & {"audit", "ops"}, tops


def test_ecs_reaches_audit_only_through_audit_events() -> None:
    # the seam a faster parser (the compiled core) replaces: ecs/ builds ECS from audit.events' Syscall and
    # never parses records itself
    bad = [f"{path}:{line}: {mod}" for path, imports in _graph().items() if path.startswith("auditimds/ecs/")
           for line, mod in imports if _top(mod) == "audit" and mod != "auditimds.audit.events"
           and not mod.startswith("auditimds.audit.events.")]
    assert not bad, "ecs/ importing audit/ other than through audit.events:\n" + "\n".join(bad)
    assert any(m == "auditimds.audit.events" for _, m in _graph()["auditimds/ecs/normalize.py"])


def test_inside_rules_the_language_comes_before_the_engine_and_the_pack() -> None:
    """rules/eql/ (the language) imports nothing from rules/engine/ or the pack (loader, builtin, check), and
    rules/engine/ nothing from the pack."""
    order = ["eql", "engine", "pack"]

    def part(module: str) -> str:
        parts = module.split(".")
        if parts[:2] != ["auditimds", "rules"] or len(parts) < 3:
            return ""
        return parts[2] if parts[2] in ("eql", "engine") else "pack"

    bad: List[str] = []
    for path, imports in _graph().items():
        here = part(path.replace("/", ".")[:-3])
        if here not in ("eql", "engine"):
            continue
        for line, mod in imports:
            there = part(mod)
            if there and order.index(there) > order.index(here):
                bad.append(f"{path}:{line}: rules/{here}/ imports {mod}")
    assert not bad, "imports against the flow:\n" + "\n".join(bad)
