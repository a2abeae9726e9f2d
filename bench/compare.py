#!/usr/bin/env python3
"""Is a change slower?  One benchmark, two revisions, run alternately on the same machine.

    python3 bench/compare.py --against a0a692f --bench scan  [--rounds 5]
    python3 bench/compare.py --against a0a692f --bench rules [--rounds 5]
    python3 bench/compare.py --against a0a692f --bench live  [--rounds 5]   # root and auditd

The other revision is checked out into a temporary git worktree (beside no `../shared`: the log is passed
by path).  Each round runs the working tree's copy of
`bench/bench_<name>.py` once for each side, swapping which side goes first every round, so both see the same
machine conditions (a shared machine's speed drifts by more than the differences looked for).  The same
script runs for both sides (copied into the old checkout, whose code it then measures), with the same
interpreter.  Printed per figure: the median of each side over the rounds and the change in percent.

    scan   bench_scan.py --runs 1: `auditimds scan` wall time (with the compiled core where a side has one, and
           with AUDITIMDS_PURE=1) and peak RSS, the ×4 log's peak RSS
    rules  bench_rules.py --runs 3: the scan loop with and without the built-in rules, in one process
    live   bench_live.py --load-runs 1: CPU per exec and % of a core at 1,000 execs/s, alert latency, RSS

Exit status 0; the figures are for reading, not a pass/fail test (machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
HOST_A = REPO.parent / "shared" / "corpus" / "real" / "host-a.log.gz"

Figure = Tuple[str, Callable[[Dict[str, Any]], float]]  # name, how to read it from the bench's JSON (lower is better)

FIGURES: Dict[str, List[Figure]] = {
    "scan": [
        ("scan wall s", lambda r: r["auditimds_scan"]["median_s"]),
        ("scan wall s, AUDITIMDS_PURE=1", lambda r: r["auditimds_scan_pure"]["median_s"]),
        ("scan peak RSS MB", lambda r: r["auditimds_scan"]["peak_rss_mb"]),
        ("scan x4 peak RSS MB", lambda r: r["auditimds_scan_x4"]["peak_rss_mb"]),
        ("libauparse s (peer, same round)", lambda r: r["auparse_loop"]["median_s"]),
    ],
    "rules": [
        ("loop with rules s", lambda r: r["with_rules_median_s"]),
        ("loop without rules s", lambda r: r["without_rules_median_s"]),
        ("command with rules s", lambda r: r["command_with_rules_median_s"]),
    ],
    "live": [
        ("CPU us per exec", lambda r: r["load"]["median_auditimds_cpu_us_per_exec"]),
        ("CPU % of a core", lambda r: r["load"]["median_auditimds_cpu_percent"]),
        ("auditd CPU % (peer)", lambda r: r["load"]["median_auditd_cpu_percent"]),
        ("peak RSS MB", lambda r: r["load"]["max_auditimds_peak_rss_mb"]),
        ("alert latency p99 ms", lambda r: r["latency"]["p99_ms"]),
    ],
}
ARGS = {
    "scan": ["--runs", "1", "--log", str(HOST_A)],
    "rules": ["--runs", "3", "--log", str(HOST_A)],
    "live": ["--load-runs", "1", "--latency-runs", "50", "--load-seconds", "10"],
}


def interpreter(bench: str) -> List[str]:
    """The same interpreter for both sides; for scan, the venv bench_scan makes from /usr/bin/python3."""
    if bench == "scan":
        venv = REPO / "bench" / "out" / "venv-system" / "bin" / "python"
        if not venv.exists():  # bench_scan makes it on first use
            subprocess.run([sys.executable, str(REPO / "bench" / "bench_scan.py"), "--runs", "1"],
                           stdout=subprocess.DEVNULL, check=True)
        return ["--python", str(venv)]
    return []


def run(checkout: Path, bench: str, extra: List[str], out: Path) -> Dict[str, Any]:
    script = checkout / "bench" / f"bench_{bench}.py"
    cmd = [sys.executable, str(script), *ARGS[bench], *extra, "--json", str(out)]
    env = dict(os.environ, PYTHONPATH=str(checkout))
    subprocess.run(cmd, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
    result: Dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", required=True, help="the other revision (the old one)")
    ap.add_argument("--bench", choices=sorted(FIGURES), required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="also write every round's figures to this file")
    args = ap.parse_args()
    extra = interpreter(args.bench)
    with tempfile.TemporaryDirectory(prefix="auditimds-compare-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), args.against],
                       check=True)
        try:
            shutil.copy2(REPO / "bench" / f"bench_{args.bench}.py", old / "bench" / f"bench_{args.bench}.py")
            sides = {"old": old, "new": REPO}
            rounds: Dict[str, List[Dict[str, float]]] = {"old": [], "new": []}
            for i in range(args.rounds):
                order = ["old", "new"] if i % 2 == 0 else ["new", "old"]
                for side in order:
                    r = run(sides[side], args.bench, extra, Path(tmp) / f"{side}-{i}.json")
                    figs = {name: float(get(r)) for name, get in FIGURES[args.bench]}
                    rounds[side].append(figs)
                    print(f"round {i + 1} {side}: " + ", ".join(f"{k} {v:g}" for k, v in figs.items()),
                          file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    print(f"bench_{args.bench}: {args.against} (old) against the working tree at {rev} (new), "
          f"{args.rounds} alternating rounds, medians")
    print(f"{'figure':<34} {'old':>10} {'new':>10} {'change':>8}")
    summary: Dict[str, Dict[str, float]] = {}
    for name, _ in FIGURES[args.bench]:
        o = statistics.median(x[name] for x in rounds["old"])
        n = statistics.median(x[name] for x in rounds["new"])
        change = (n / o - 1) * 100 if o else 0.0
        summary[name] = {"old": o, "new": n, "change_pct": round(change, 1)}
        print(f"{name:<34} {o:>10.3f} {n:>10.3f} {change:>+7.1f}%")
    if args.json:
        Path(args.json).write_text(json.dumps({"against": args.against, "head": rev, "rounds": rounds,
                                               "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
