"""One pass of the test suite with the compiled core built with -fsanitize=address,undefined.

A copy of the package gets its extension built with the sanitizers (and -Werror: no compiler warning either);
the suite then runs on that copy with libasan preloaded and Python's allocator off (PYTHONMALLOC=malloc), so a
byte read or written out of bounds by the C, or any undefined behaviour, fails the run.  Left out: the static
checks, the .deb and the real-auditd tests (tests/packaging, tests/e2e: they start curl, auditctl and systemd,
which should not run with libasan preloaded), and this directory.

Without gcc's libasan the test skips, unless AUDITIMDS_REQUIRE_COMPILED=1 (as in .ci/run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import SHARED, copy_checkout

pytestmark = pytest.mark.once
INNER = "AUDITIMDS_SANITIZED_RUN"
FLAGS = "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1 -Werror"


def _libasan() -> str:
    r = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True)
    path = r.stdout.strip()
    return path if r.returncode == 0 and os.path.isabs(path) and os.path.exists(path) else ""


def test_the_suite_passes_with_the_core_built_with_asan_and_ubsan(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    if os.environ.get(INNER):
        pytest.skip("this is the sanitized run itself")
    asan = _libasan() if shutil.which("gcc") else ""
    if not asan or not sysconfig.get_paths().get("include"):
        if os.environ.get("AUDITIMDS_REQUIRE_COMPILED") == "1":
            pytest.fail("gcc with libasan and the Python headers are needed for the sanitized pass")
        pytest.skip("no gcc with libasan")
    copy = copy_checkout(tmp_path / "repo")
    env = dict(os.environ, CFLAGS=FLAGS, LDFLAGS="-fsanitize=address,undefined")
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=copy, env=env,
                           capture_output=True, text=True)
    assert build.returncode == 0 and list((copy / "auditimds").glob("_core*.so")), build.stdout + build.stderr
    assert "warning:" not in build.stderr, build.stderr
    env = dict(os.environ, LD_PRELOAD=asan, PYTHONMALLOC="malloc", PYTHONPATH=str(copy), AUDITIMDS_SHARED=str(SHARED),
               ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1", AUDITIMDS_REQUIRE_COMPILED="1",
               AUDITIMDS_DIFF_EXAMPLES="100")  # the sanitizers slow Python ~3x: fewer generated streams here
    env[INNER] = "1"
    env.pop("AUDITIMDS_PURE", None)
    where = subprocess.run([sys.executable, "-c", "import auditimds._core as c; print(c.__file__)"], cwd=copy, env=env,
                           capture_output=True, text=True)
    assert where.stdout.startswith(str(copy)), where.stdout + where.stderr  # the sanitized build, not another
    r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-p", "no:cacheprovider",
                        "--ignore=tests/e2e", "--ignore=tests/packaging", "--ignore=tests/static",
                        "--ignore=tests/fuzz", "tests"], cwd=copy, env=env, capture_output=True, text=True)
    tail = (r.stdout + r.stderr)[-6000:]
    summary = [ln for ln in r.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    with capsys.disabled():
        print("\nsanitized pass: " + (summary[-1] if summary else "(no summary)"))
    assert r.returncode == 0, tail
    assert "ERROR: AddressSanitizer" not in r.stderr and "runtime error:" not in r.stderr, tail
