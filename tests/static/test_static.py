"""Static checks of the package, run by the README's test command (and so by .ci/run): ruff, mypy and
vulture. Each fails with the tool's own report, so a type error or a piece of dead code breaks CI the way a
failing test does.

The versions are pinned in the `test` extra of pyproject.toml: a new release of a checker must not turn CI
red on a commit that did not change. The whitelists beside this file list what vulture cannot see used
(attributes read by getattr or by a library calling back, fields kept for the JSON output); each entry says
why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

pytestmark = pytest.mark.once

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _run(args: List[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def _need(module: str) -> None:
    try:
        __import__(module)
    except ImportError:  # pragma: no cover - the test extra installs all three
        pytest.fail(f"{module} is not installed: pip install -e '.[test]'")


def test_ruff_is_clean() -> None:
    _need("ruff")
    r = _run(["ruff", "check", "--no-cache", "."])
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_finds_no_error_in_the_package() -> None:
    _need("mypy")
    # the settings (files = the package, python_version, strictness) are in pyproject.toml
    r = _run(["mypy", "--no-incremental", "--cache-dir", "/dev/null"])
    assert r.returncode == 0, r.stdout + r.stderr


def whitelists() -> List[str]:
    return sorted(str(p.relative_to(REPO)) for p in HERE.glob("vulture_whitelist_*.py"))


def test_vulture_finds_no_dead_code() -> None:
    _need("vulture")
    r = _run(["vulture", "auditimds", *whitelists(), "--min-confidence", "60"])
    assert r.returncode == 0, "dead code (remove it, or whitelist it with a reason):\n" + r.stdout + r.stderr


def test_every_whitelist_entry_says_why() -> None:
    for name in whitelists():
        for n, line in enumerate((REPO / name).read_text().splitlines(), 1):
            code = line.split("#", 1)[0].strip()
            if code and "#" not in line:
                pytest.fail(f"{name}:{n}: a whitelist entry without a reason: {line!r}")
