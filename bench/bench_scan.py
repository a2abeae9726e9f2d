#!/usr/bin/env python3
"""Benchmark `auditimds scan` side by side with libauparse iterating the same file's events.

    python3 bench/bench_scan.py [--log ../shared/corpus/real/host-a.log.gz] [--runs 5] [--json out.json]

Both commands run as separate processes, alternating, on the same uncompressed copy of the log (libauparse
cannot read .gz).  Reported per command: median and min wall time over the runs (process start to exit),
and peak RSS (ru_maxrss of the child).  The peer is python3-audit's `AuParser` loop (Debian package
`python3-audit`, run with the system /usr/bin/python3); it is skipped with a note when not installed.

Memory must not grow with the log: the same scan also runs on the log concatenated 4 times, and its peak
RSS is reported next to the single-log figure.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
DEFAULT_LOG = REPO.parent / "shared" / "corpus" / "real" / "host-a.log.gz"

AUPARSE_LOOP = """
import sys, auparse
au = auparse.AuParser(auparse.AUSOURCE_FILE, sys.argv[1])
n = 0
while au.parse_next_event():
    n += 1
print(n)
"""


def run_once(cmd: List[str], env: Optional[Dict[str, str]] = None) -> Dict[str, float]:
    with tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fout, stderr=ferr, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read(), ferr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{err.decode(errors='replace')}")
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime,
            "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace")}


def summarise(runs: List[Dict[str, float]]) -> Dict[str, float]:
    walls = [r["wall"] for r in runs]
    return {"median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3),
            "peak_rss_mb": round(max(r["rss_mb"] for r in runs), 1), "runs": len(runs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", default=str(DEFAULT_LOG))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args()

    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ours = [sys.executable, "-m", "auditimds", "scan", "--host-id", "bench", "--host-name", "bench"]
    system_python = "/usr/bin/python3"
    have_auparse = Path(system_python).exists() and subprocess.run(
        [system_python, "-c", "import auparse"], capture_output=True).returncode == 0

    with tempfile.TemporaryDirectory(prefix="auditimds-bench-") as tmp:
        plain = Path(tmp) / "audit.log"
        with gzip.open(args.log, "rb") if args.log.endswith(".gz") else open(args.log, "rb") as src, \
                open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        lines = sum(1 for _ in open(plain, "rb"))
        big = Path(tmp) / "audit-x4.log"
        with open(big, "wb") as dst:
            for _ in range(4):
                with open(plain, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)

        results: Dict[str, object] = {"log": args.log, "lines": lines, "python": sys.version.split()[0],
                                      "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
        ours_runs: List[Dict[str, float]] = []
        peer_runs: List[Dict[str, float]] = []
        for _ in range(args.runs):  # alternate so that both see the same machine conditions
            r = run_once(ours + [str(plain)], env)
            ours_runs.append(r)
            if have_auparse:
                peer_runs.append(run_once([system_python, "-c", AUPARSE_LOOP, str(plain)]))
        results["auditimds_scan"] = summarise(ours_runs)
        results["auditimds_alerts"] = len(ours_runs[-1]["stdout"].splitlines())
        if have_auparse:
            results["auparse_loop"] = summarise(peer_runs)
            results["auparse_events"] = int(peer_runs[-1]["stdout"].strip() or 0)
            results["ratio_median"] = round(results["auditimds_scan"]["median_s"]
                                            / results["auparse_loop"]["median_s"], 2)
        else:
            results["auparse_loop"] = "python3-audit not installed (apt-get install python3-audit)"
        x4 = run_once(ours + [str(big)], env)
        results["auditimds_scan_x4"] = {"wall_s": round(x4["wall"], 3), "peak_rss_mb": round(x4["rss_mb"], 1),
                                        "lines": lines * 4}

    print(f"log: {args.log} ({lines} lines), Python {results['python']}, {results['cpus']} CPUs, "
          f"{args.runs} runs each, alternating")
    print(f"{'command':<40} {'median s':>9} {'min s':>7} {'peak RSS MB':>12}")
    s = results["auditimds_scan"]
    print(f"{'auditimds scan':<40} {s['median_s']:>9} {s['min_s']:>7} {s['peak_rss_mb']:>12}")
    if have_auparse:
        a = results["auparse_loop"]
        print(f"{'libauparse AuParser loop (python3-audit)':<40} {a['median_s']:>9} {a['min_s']:>7} "
              f"{a['peak_rss_mb']:>12}")
        print(f"ratio auditimds / libauparse (median): {results['ratio_median']}")
    x = results["auditimds_scan_x4"]
    print(f"{'auditimds scan, log x4':<40} {x['wall_s']:>9} {'':>7} {x['peak_rss_mb']:>12}")
    print(f"alerts: {results['auditimds_alerts']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
