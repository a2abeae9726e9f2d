"""Shared fixtures: where the shared corpora are, and small helpers to run lines through the stages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

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


def lines_of(text: str) -> List[bytes]:
    """Test helper: a block of audit lines (\\x1d may be written as ^]) as a list of bytes lines."""
    return [ln.encode("utf-8", "surrogateescape").replace(b"^]", b"\x1d")
            for ln in text.strip("\n").split("\n")]


@pytest.fixture
def seed_rule_path() -> Path:
    return REPO / "config" / "rules" / "unusual_instance_metadata_service_api_request.toml"
