"""Where the built-in rules are: `config/rules/`, installed inside the package as `auditimds/builtin_rules`.

Its subdirectories are rule packs shipped with auditimds (e.g. `hardened`), accepted by name wherever a rule
path is (`scan --rules hardened`, `rules check hardened`, `[rules] paths = ["hardened"]`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import List, Optional


def builtin_rules_dir() -> Path:
    spec = importlib.util.find_spec("auditimds.builtin_rules")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if Path(loc).is_dir():
                return Path(loc)
    return Path(__file__).resolve().parent.parent.parent / "config" / "rules"


def shipped_packs(base: Optional[Path] = None) -> List[str]:
    """Names of the rule packs shipped with auditimds (subdirectories of the built-in rules)."""
    d = builtin_rules_dir() if base is None else base
    if not d.is_dir():
        return []
    return sorted(x.name for x in d.iterdir() if x.is_dir() and not x.name.startswith(("_", ".")))


def resolve_rule_path(raw: str, base: Optional[Path] = None) -> Optional[Path]:
    """`raw` as a file or directory if it exists, else the shipped pack of that name; None when neither.

    A path that exists wins over a pack of the same name (a local directory `hardened` is that directory)."""
    p = Path(raw)
    if p.exists():
        return p
    if not raw or "/" in raw or raw in (".", ".."):
        return None
    if raw not in shipped_packs(base):
        return None
    return (builtin_rules_dir() if base is None else base) / raw


def missing_rule_path_message(raw: str, base: Optional[Path] = None) -> str:
    """The one-line reason for a rule path that is neither a file, a directory nor a shipped pack."""
    if "/" in raw:
        return f"{raw}: no such file or directory"
    packs = ", ".join(shipped_packs(base)) or "none"
    return f"{raw}: no such file or directory (shipped packs: {packs})"
