#!/usr/bin/env python3
"""Show that a change left `auditimds events` and `auditimds scan` byte-identical.

Runs both commands on every log under ../shared/corpus (real and public) and tests/fixtures, once with the
working tree and once with another revision (default: HEAD), checked out into a temporary git worktree, and
compares stdout, stderr's statistics (`scan --stats-json`) and the exit status byte for byte. `scan` runs with
the built-in rules and with every upstream rule in ../shared/rules/upstream, so the whole engine is exercised.

    python3 bench/same_output.py                 # working tree against HEAD
    python3 bench/same_output.py --against a0a692f
    python3 bench/same_output.py --save DIR      # write the working tree's outputs to DIR (no comparison)
    python3 bench/same_output.py --cores         # the working tree's two cores: compiled against AUDITIMDS_PURE=1

Exit status 0 when every output is identical, 1 otherwise (the first differing lines are printed).
Host identity is fixed (--host-id/--host-name) so the outputs do not depend on the machine.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
LOG_SUFFIXES = (".log", ".log.gz", ".txt")
HOST = ["--host-id", "0123456789abcdef0123456789abcdef", "--host-name", "bench-host"]


def logs() -> List[Path]:
    found: List[Path] = []
    for root in (SHARED / "corpus" / "real", SHARED / "corpus" / "public", REPO / "tests" / "fixtures"):
        for p in sorted(root.rglob("*")):
            if p.is_file() and (p.name.endswith(LOG_SUFFIXES) or p.name.startswith("audit.log")):
                found.append(p)
    return found


def commands(log: Path) -> Dict[str, List[str]]:
    upstream = [a for t in sorted((SHARED / "rules" / "upstream").glob("*.toml")) for a in ("--rules", str(t))]
    return {
        "events": ["events", *HOST, str(log)],
        "scan": ["scan", *HOST, "--stats-json", str(log)],
        "scan-upstream": ["scan", *HOST, "--stats-json", "--no-builtin-rules", *upstream, str(log)],
    }


def run(tree: Path, args: List[str], pure: bool = False) -> bytes:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0", TZ="UTC", LC_ALL="C.UTF-8")
    env.pop("AUDITIMDS_PURE", None)
    if pure:
        env["AUDITIMDS_PURE"] = "1"
    r = subprocess.run([sys.executable, "-m", "auditimds", *args], cwd=str(tree), env=env,
                       capture_output=True, timeout=900)
    # stderr: keep only the statistics JSON line (log messages may name temp paths)
    # and without its wall-clock "seconds"
    stats = []
    for ln in r.stderr.splitlines():
        if ln.startswith(b"{"):
            doc = json.loads(ln)
            doc.pop("seconds", None)
            stats.append(json.dumps(doc, sort_keys=True).encode())
    return b"rc=%d\n" % r.returncode + r.stdout + b"\n--stats--\n" + b"\n".join(stats)


def outputs(tree: Path, pure: bool = False) -> Dict[Tuple[str, str], bytes]:
    jobs = [(str(log.relative_to(log.anchor)), name, args) for log in logs() for name, args in commands(log).items()]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(lambda j: run(tree, j[2], pure), jobs))
    return {(j[0], j[1]): out for j, out in zip(jobs, results)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default="HEAD", help="git revision to compare with (default HEAD)")
    ap.add_argument("--save", metavar="DIR", help="only write the working tree's outputs into DIR")
    ap.add_argument("--cores", action="store_true",
                    help="compare the working tree's compiled core (new) with its pure-Python core (old)")
    a = ap.parse_args()
    new = outputs(REPO)
    if a.save:
        out = Path(a.save)
        out.mkdir(parents=True, exist_ok=True)
        for (log, name), data in new.items():
            (out / (log.replace("/", "__") + "." + name)).write_bytes(data)
        print(f"{len(new)} outputs written to {out}")
        return 0
    if a.cores:
        a.against = "AUDITIMDS_PURE=1"
        old = outputs(REPO, pure=True)
    else:
        with tempfile.TemporaryDirectory(prefix="auditimds-same-") as tmp:
            old_tree = Path(tmp) / "tree"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(old_tree), a.against],
                           check=True)
            try:
                old = outputs(old_tree)
            finally:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_tree)], check=True)
    differ = 0
    total = 0
    for key in sorted(new):
        total += len(new[key])
        if new[key] != old.get(key):
            differ += 1
            print(f"DIFFERENT: {key[1]} {key[0]}")
            diff = difflib.unified_diff(old.get(key, b"").decode(errors="replace").splitlines(),
                                        new[key].decode(errors="replace").splitlines(), "old", "new", lineterm="", n=1)
            for line in list(diff)[:20]:
                print("   ", line[:300])
    digest = hashlib.sha256(b"".join(new[k] for k in sorted(new))).hexdigest()[:16]
    print(f"{len(new)} outputs ({len(logs())} logs x {len(commands(Path('x')))} commands, {total} bytes, "
          f"sha256 {digest}) against {a.against}: {len(new) - differ} identical, {differ} different")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
