#!/usr/bin/env python3
"""What evaluating rules adds to `scan`: the same scan loop with no rule and with the rules, same process.

    python3 bench/bench_rules.py [--log ../shared/corpus/real/host-a.log.gz] [--runs 7] [--rules PATH]...

Each run reads the log with `open_log`/`read_batches` and feeds a fresh `Pipeline` to the end, exactly as
`auditimds scan` does (same GC threshold), once with `Pipeline([])` and once with the rules (default: the
built-in rules, i.e. the seed IMDS rule; `--rules` replaces them, e.g. `--rules ../shared/rules/upstream`).
The two variants alternate; the median and the minimum wall time of each and the overhead (with / without - 1)
of both are printed: on a shared machine the minimum is the run least disturbed by neighbours, the median
shows the spread. The target for the seed rule on host-a is at most +15 %.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from auditimds.pipeline import Pipeline  # noqa: E402
from auditimds.rules.builtin import builtin_rules_dir  # noqa: E402
from auditimds.rules.loader import Rule, load_rules  # noqa: E402
from auditimds.source.reader import open_log, read_batches  # noqa: E402

DEFAULT_LOG = REPO.parent / "shared" / "corpus" / "real" / "host-a.log.gz"


def scan_once(log: str, rules: List[Rule]) -> Dict[str, Any]:
    alerts: List[Dict[str, Any]] = []
    gc.collect()
    t0 = time.perf_counter()
    pipe = Pipeline(rules, "bench", "bench", on_alert=alerts.append)
    with open_log(log) as f:
        for batch in read_batches(f):
            pipe.feed(batch, 0.0)
    pipe.finish()
    wall = time.perf_counter() - t0
    return {"wall": wall, "alerts": len(alerts), "events": pipe.stats()["events"]}


def whole_command(log: str, runs: int) -> Dict[str, Any]:
    """The same comparison for the command as a user runs it (interpreter start, reading, exit included)."""
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(REPO))
    base = [sys.executable, "-m", "auditimds", "scan", "--host-id", "b", "--host-name", "b"]
    times: Dict[bool, List[float]] = {False: [], True: []}
    for i in range(runs):
        for use in ([False, True] if i % 2 == 0 else [True, False]):
            cmd = base + ([] if use else ["--no-builtin-rules"]) + [log]
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
            times[use].append(time.perf_counter() - t0)
    m0, m1 = statistics.median(times[False]), statistics.median(times[True])
    n0, n1 = min(times[False]), min(times[True])
    return {"command_without_rules_median_s": round(m0, 3), "command_with_rules_median_s": round(m1, 3),
            "command_overhead_pct": round((m1 / m0 - 1) * 100, 1),
            "command_without_rules_min_s": round(n0, 3), "command_with_rules_min_s": round(n1, 3),
            "command_overhead_min_pct": round((n1 / n0 - 1) * 100, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", default=str(DEFAULT_LOG))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--rules", action="append", help="rule file or directory (default: the built-in rules)")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args()
    rules, errors = load_rules(args.rules or [builtin_rules_dir()])
    for e in errors:
        print(f"warning: {e}", file=sys.stderr)
    gc.set_threshold(50_000, 20, 100)  # as `auditimds scan`
    scan_once(args.log, [])  # warm-up: imports, page cache
    without: List[float] = []
    with_rules: List[float] = []
    alerts = events = 0
    for i in range(args.runs):
        order = [False, True] if i % 2 == 0 else [True, False]
        for use in order:
            fresh = load_rules(args.rules or [builtin_rules_dir()])[0]  # compiled rules hold sequence state
            r = scan_once(args.log, fresh if use else [])
            (with_rules if use else without).append(r["wall"])
            if use:
                alerts, events = r["alerts"], r["events"]
    m0, m1 = statistics.median(without), statistics.median(with_rules)
    res = {
        "log": args.log,
        "rules": [r.name for r in rules],
        "events": events,
        "alerts": alerts,
        "runs": args.runs,
        "without_rules_median_s": round(m0, 3),
        "with_rules_median_s": round(m1, 3),
        "without_rules_min_s": round(min(without), 3),
        "with_rules_min_s": round(min(with_rules), 3),
        "overhead_pct": round((m1 / m0 - 1) * 100, 1),
        "overhead_min_pct": round((min(with_rules) / min(without) - 1) * 100, 1),
        "python": sys.version.split()[0],
    }
    print(f"log: {args.log} ({events} events)")
    print(f"rules: {', '.join(res['rules'])} -> {alerts} alerts")
    print(f"scan without rules: median {m0:.3f} s (min {min(without):.3f} s) over {args.runs} runs")
    print(f"scan with rules:    median {m1:.3f} s (min {min(with_rules):.3f} s) over {args.runs} runs")
    print(f"overhead: {res['overhead_pct']:+.1f} % of the medians, {res['overhead_min_pct']:+.1f} % of the minimums "
          "(target for the seed rule: <= +15 %)")
    if not args.rules:
        cmd = whole_command(args.log, args.runs)
        res.update(cmd)
        print(f"whole `auditimds scan` command (start to exit, {args.runs} runs each, alternating): "
              f"--no-builtin-rules median {cmd['command_without_rules_median_s']:.3f} s, built-in rules median "
              f"{cmd['command_with_rules_median_s']:.3f} s: {cmd['command_overhead_pct']:+.1f} %; minimums "
              f"{cmd['command_without_rules_min_s']:.3f} s and {cmd['command_with_rules_min_s']:.3f} s: "
              f"{cmd['command_overhead_min_pct']:+.1f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
