"""Golden raw-record → ECS fixtures (tests/fixtures/golden/, written by its make.py): for each labelled
scenario of the real corpus, its raw records and the exact `auditimds events` and `auditimds scan` output
they must give; the same for odd logs of the public corpus, read where they are. Any byte of difference
fails, with a diff. A new label without its fixtures fails too."""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from tests.conftest import REPO, shared_path

GOLDEN = REPO / "tests" / "fixtures" / "golden"
sys.path.insert(0, str(GOLDEN))
import make  # noqa: E402  (the generator: its host options and its list of public logs)

sys.path.remove(str(GOLDEN))


def labels() -> Dict[str, str]:
    out = {}
    for line in shared_path("corpus", "real", "host-a.labels").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, want = line.split()
            out[name] = want
    return out


def run(cmd: str, log: Path) -> bytes:
    r = subprocess.run([sys.executable, "-m", "auditimds", cmd, *make.HOST, str(log)], cwd=REPO,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout


def same(got: bytes, golden: Path) -> None:
    want = golden.read_bytes()
    if got != want:
        diff = difflib.unified_diff(want.decode().splitlines(), got.decode().splitlines(), str(golden), "now",
                                    lineterm="", n=1)
        pytest.fail(f"output differs from {golden.name} (if intended: python3 tests/fixtures/golden/make.py, "
                    "then review the diff)\n" + "\n".join(list(diff)[:80]))


CASES: List[str] = sorted(labels()) + sorted(make.PUBLIC)


def source_of(name: str) -> Path:
    if name in make.PUBLIC:
        return shared_path("corpus", "public", *make.PUBLIC[name].split("/"))
    return GOLDEN / f"{name}.log"


@pytest.mark.parametrize("name", CASES)
def test_events_are_the_golden_ecs_documents(name: str) -> None:
    same(run("events", source_of(name)), GOLDEN / f"{name}.events.jsonl")


@pytest.mark.parametrize("name", CASES)
def test_scan_gives_the_golden_alerts(name: str) -> None:
    same(run("scan", source_of(name)), GOLDEN / f"{name}.alerts.jsonl")


def test_every_labelled_scenario_has_its_fixtures_and_they_agree_with_the_label() -> None:
    for name, want in labels().items():
        log = GOLDEN / f"{name}.log"
        assert log.is_file(), f"no golden fixture for scenario {name}: python3 tests/fixtures/golden/make.py"
        assert f"case={name}".encode() in log.read_bytes() or f"case={name}".encode().hex().upper().encode() \
            in log.read_bytes(), name
        alerts = [json.loads(x) for x in (GOLDEN / f"{name}.alerts.jsonl").read_text().splitlines()]
        assert len(alerts) == (1 if want == "alert" else 0), (name, want, len(alerts))
        events = [json.loads(x) for x in (GOLDEN / f"{name}.events.jsonl").read_text().splitlines()]
        actions = {e["event"]["action"] for e in events}
        assert "exec" in actions, name
        if name != "dev_noconnect":  # every other scenario connects: a quiet verdict is the rule's, not a gap
            assert "connection_attempted" in actions, name
