"""What `pip install` gives, with and without a C compiler: the compiled core where it can be built, the
pure-Python core (working, and saying why) where it cannot.  The source tree is copied first, so no build
left in the checkout is reused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_checkout


def source_copy(tmp: Path) -> Path:
    return copy_checkout(tmp / "src", leave_out=("tests", "bench", "docs"))


def install(src: Path, target: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-cache-dir", "--target",
                           str(target), str(src)], capture_output=True, text=True, env=dict(os.environ, **env),
                          timeout=600)


def run(target: Path, *args: str) -> subprocess.CompletedProcess:
    """auditimds from `target` alone: -S keeps site-packages out, where an editable install of the checkout
    (the developer's, or CI's) would otherwise lend its compiled module."""
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("AUDITIMDS_PURE", None)
    return subprocess.run([sys.executable, "-S", "-m", "auditimds", *args], capture_output=True, text=True, env=env,
                          cwd=str(target))


def version(target: Path) -> str:
    r = run(target, "--version")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")
def test_pip_install_builds_the_compiled_core_and_leaves_its_sources_out(tmp_path: Path) -> None:
    r = install(source_copy(tmp_path), tmp_path / "t")
    assert r.returncode == 0, r.stderr[-3000:]
    pkg = tmp_path / "t" / "auditimds"
    assert list(pkg.glob("_core*.so")) and not (pkg / "csrc").exists()
    assert version(tmp_path / "t") == "auditimds 0.1.0 (compiled core)"


def test_without_a_compiler_pip_still_installs_and_runs_the_pure_core(tmp_path: Path) -> None:
    src = source_copy(tmp_path)
    r = install(src, tmp_path / "t", CC="/bin/false", LDSHARED="/bin/false")
    assert r.returncode == 0, r.stderr[-3000:]
    assert not list((tmp_path / "t" / "auditimds").glob("_core*.so"))
    v = version(tmp_path / "t")
    assert v.startswith("auditimds 0.1.0 (pure-Python core: the compiled module is not installed"), v
    # and it works: a scan of a real scenario finds its alert
    scan = run(tmp_path / "t", "scan", "--host-id", "h", str(REPO / "tests" / "fixtures" / "host-a-dev_curl_creds.log"))
    assert scan.returncode == 0 and len(scan.stdout.splitlines()) == 1, scan.stderr
