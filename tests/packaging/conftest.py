"""The .deb, built once per session by packaging/deb/build.sh and shared by test_deb.py and
test_systemd_nspawn.py (about 30 s and PyPI for the dependencies).  Only requested by tests that need root."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

BUILD = REPO / "packaging" / "deb" / "build.sh"


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The path of the built auditimds_VERSION_ARCH.deb (in a session temp dir)."""
    out = tmp_path_factory.mktemp("deb")
    t0 = time.monotonic()
    r = subprocess.run(["bash", str(BUILD), str(out)], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise AssertionError(f"build.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    path = Path(r.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.suffix == ".deb", r.stdout
    print(f"build.sh: {time.monotonic() - t0:.1f} s, {path.stat().st_size} bytes")
    return path
