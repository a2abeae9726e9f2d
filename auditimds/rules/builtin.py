"""Where the built-in rules are: `config/rules/`, installed inside the package as `auditimds/builtin_rules`."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def builtin_rules_dir() -> Path:
    spec = importlib.util.find_spec("auditimds.builtin_rules")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if Path(loc).is_dir():
                return Path(loc)
    return Path(__file__).resolve().parent.parent.parent / "config" / "rules"
