"""Where the test rule files are (same convention as tests/conftest.py: ``shared/`` beside the repository,
or ``$AUDITIMDS_SHARED``)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("AUDITIMDS_SHARED", REPO.parent / "shared")).resolve()
UPSTREAM = SHARED / "rules" / "upstream"
SEED_NAME = "unusual_instance_metadata_service_api_request.toml"
SEED = UPSTREAM / SEED_NAME
VENDORED_SEED = REPO / "config" / "rules" / SEED_NAME
