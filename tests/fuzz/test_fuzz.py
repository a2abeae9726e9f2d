"""The byte-level half of the compiled core (auditimds/csrc/core.c) under libFuzzer, AddressSanitizer and
UndefinedBehaviorSanitizer (tests/fuzz/run.sh, harness tests/fuzz/fuzz_core.c): a bounded run, seeded with the
real logs, must end with no finding.  Its duration and exec count are printed.

The duration is AUDITIMDS_FUZZ_SECONDS (default 20; .ci/run sets more).  Without clang the test skips, unless
AUDITIMDS_REQUIRE_FUZZ=1 (as in .ci/run), where that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.once
HERE = Path(__file__).resolve().parent


def test_a_bounded_fuzz_run_of_the_core_finds_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if shutil.which("clang") is None:
        if os.environ.get("AUDITIMDS_REQUIRE_FUZZ") == "1":
            pytest.fail("clang is needed to fuzz the core (apt-get install clang libclang-rt-14-dev)")
        pytest.skip("no clang: cannot build the fuzzer")
    secs = int(os.environ.get("AUDITIMDS_FUZZ_SECONDS", "20"))
    r = subprocess.run(["bash", str(HERE / "run.sh"), str(secs), str(tmp_path)], capture_output=True, text=True,
                       timeout=secs + 600)
    out = r.stdout + r.stderr
    done = re.search(r"Done (\d+) runs in (\d+) second", out)
    findings = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "leak-", "timeout-", "oom-")))
    with capsys.disabled():
        print(f"\nfuzz: {done.group(1) if done else '?'} execs in {done.group(2) if done else '?'} s "
              f"under ASan+UBSan, {len(findings)} finding(s)")
    assert r.returncode == 0 and not findings and done, out[-4000:]
    assert int(done.group(1)) > 1000  # it really ran
