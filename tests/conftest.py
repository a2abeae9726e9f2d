"""Shared fixtures: where the shared corpora are, and small helpers to run lines through the stages."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import List, Sequence

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUDITIMDS_SHARED", REPO.parent / "shared")).resolve()
CORPUS_REAL = SHARED / "corpus" / "real"
CORPUS_PUBLIC = SHARED / "corpus" / "public"
UPSTREAM_RULES = SHARED / "rules" / "upstream"


def shared_path(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.fail(f"shared material missing: {p} (set AUDITIMDS_SHARED to the shared/ folder)")
    return p


_NOT_SOURCE = {".git", "build", "dist", "__pycache__", ".hypothesis", ".pytest_cache", ".ruff_cache", ".mypy_cache"}


def copy_checkout(dst: Path, leave_out: Sequence[str] = ()) -> Path:
    """A copy of the checkout at `dst` without builds, caches and compiled modules (so no build left in the
    checkout is reused) nor the benchmarks' venv; `leave_out`: top-level entries not wanted either."""

    def ignore(directory: str, names: List[str]) -> List[str]:
        out = [n for n in names if n in _NOT_SOURCE or n.endswith((".so", ".egg-info"))]
        if Path(directory) == REPO:
            out += [n for n in names if n in leave_out]
        elif Path(directory) == REPO / "bench":
            out.append("out")  # the benchmarks' venv and results
        return out

    shutil.copytree(REPO, dst, symlinks=True, ignore=ignore)
    return dst


def lines_of(text: str) -> List[bytes]:
    """Test helper: a block of audit lines (\\x1d may be written as ^]) as a list of bytes lines."""
    return [ln.encode("utf-8", "surrogateescape").replace(b"^]", b"\x1d")
            for ln in text.strip("\n").split("\n")]


@pytest.fixture
def seed_rule_path() -> Path:
    return REPO / "config" / "rules" / "unusual_instance_metadata_service_api_request.toml"


# The suite runs twice in CI (README, "Test"): with the compiled core, then with AUDITIMDS_PURE=1.  Tests that
# do not depend on the core in use (static checks, the .deb) or are about the compiled core itself (the
# differential test, the fuzzer, the sanitized pass) are marked `once` and run in the first pass only; so are
# the packaging tests (tests/packaging: the .deb and its unit, which carry the compiled core).
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "once: run in the compiled-core pass only (skipped when AUDITIMDS_PURE=1)")


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    if os.environ.get("AUDITIMDS_PURE", "") in ("", "0"):
        return
    skip = pytest.mark.skip(reason="AUDITIMDS_PURE=1: this test runs in the compiled-core pass")
    packaging = REPO / "tests" / "packaging"
    for item in items:
        if item.get_closest_marker("once") or packaging in Path(str(item.fspath)).parents:
            item.add_marker(skip)
