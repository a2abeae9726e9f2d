#!/usr/bin/env python3
"""Instruction counts of `auditimds scan` under callgrind: a figure a shared machine cannot disturb.

    python3 bench/instructions.py [--against REV] [--log ../shared/corpus/real/host-a.log.gz]

Wall time on a shared 2-vCPU machine drifts by ±15 % between minutes; the number of instructions a program
executes does not (valgrind's callgrind counts them: the same binary on the same input gives the same count
within a few 0.01 %).  Measured, each as a whole process on the interpreter bench_scan.py uses (a venv of
/usr/bin/python3): `scan` of an empty file (start-up: imports, rules), `scan` of the log with the compiled
core and with AUDITIMDS_PURE=1, and libauparse's loop over the same file.  With --against, the same for
another revision (a temporary git worktree; its compiled core is built there if it has one).  The sources are
byte-compiled first, as an installed package is.  Needs valgrind.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
DEFAULT_LOG = REPO.parent / "shared" / "corpus" / "real" / "host-a.log.gz"
AUPARSE = """
import sys, auparse
au = auparse.AuParser(auparse.AUSOURCE_FILE, sys.argv[1])
while au.parse_next_event():
    pass
"""


def count(cmd: List[str], env: Optional[Dict[str, str]] = None) -> int:
    # cwd: not a checkout (`python -m` puts the current directory before PYTHONPATH)
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
                       capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    for line in r.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split()[-1])
    raise SystemExit(f"callgrind gave no count for {cmd}: {r.stderr[-2000:]}")


def measure(tree: Path, python: str, log: Path, empty: Path) -> Dict[str, int]:
    subprocess.run([python, "-m", "compileall", "-q", str(tree / "auditimds")], capture_output=True)
    if (tree / "setup.py").exists():
        subprocess.run([python, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree, capture_output=True)
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("AUDITIMDS_PURE", None)
    scan = [python, "-m", "auditimds", "scan", "--host-id", "bench", "--host-name", "bench"]
    version = subprocess.run([python, "-m", "auditimds", "--version"], capture_output=True, text=True,
                             env=env, cwd=tempfile.gettempdir()).stdout.strip()
    print(f"{tree}: {version}", file=sys.stderr)
    return {
        "start-up (scan of an empty file)": count(scan + [str(empty)], env),
        "scan, default core": count(scan + [str(log)], env),
        "scan, AUDITIMDS_PURE=1": count(scan + [str(log)], dict(env, AUDITIMDS_PURE="1")),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", default=str(DEFAULT_LOG))
    ap.add_argument("--against", help="another revision to measure the same way")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    venv = REPO / "bench" / "out" / "venv-system" / "bin" / "python"
    if not venv.exists():  # bench_scan makes it
        subprocess.run([sys.executable, str(REPO / "bench" / "bench_scan.py"), "--runs", "1"],
                       stdout=subprocess.DEVNULL, check=True)
    python = str(venv)
    with tempfile.TemporaryDirectory(prefix="auditimds-instr-") as tmp:
        log, empty = Path(tmp) / "audit.log", Path(tmp) / "empty.log"
        with (gzip.open(args.log, "rb") if args.log.endswith(".gz") else open(args.log, "rb")) as src, \
                open(log, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        empty.write_bytes(b"")
        rows = {"working tree": measure(REPO, python, log, empty)}
        if args.against:
            old = Path(tmp) / "old"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), args.against],
                           check=True)
            try:
                rows[args.against] = measure(old, python, log, empty)
            finally:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)
        peer = count(["/usr/bin/python3", "-c", AUPARSE, str(log)]) if subprocess.run(
            ["/usr/bin/python3", "-c", "import auparse"], capture_output=True).returncode == 0 else 0
    print(f"instructions (callgrind), {args.log}")
    for side, figs in rows.items():
        for name, n in figs.items():
            ratio = f"  {n / peer:.2f}x libauparse" if peer else ""
            print(f"{side:<14} {name:<34} {n / 1e9:7.3f} G{ratio}")
    if peer:
        print(f"{'peer':<14} {'libauparse AuParser loop':<34} {peer / 1e9:7.3f} G")
    return 0


if __name__ == "__main__":
    sys.exit(main())
