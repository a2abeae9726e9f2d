#!/usr/bin/env python3
"""Benchmark `auditimds scan` side by side with libauparse iterating the same file's events.

    python3 bench/bench_scan.py [--log ../shared/corpus/real/host-a.log.gz] [--runs 5] [--json out.json]

Both commands run as separate processes, alternating, on the same uncompressed copy of the log (libauparse
cannot read .gz).  Reported per command: median and min wall time over the runs (process start to exit),
and peak RSS (ru_maxrss of the child).  The peer is python3-audit's `AuParser` loop (Debian package
`python3-audit`, run with the system /usr/bin/python3); it is skipped with a note when not installed.

Memory must not grow with the log: the same scan also runs on the log concatenated 4 times, and its peak
RSS is reported next to the single-log figure.

Same interpreter for both: by default auditimds runs in a venv made from the peer's /usr/bin/python3 (as the
.deb installs it), created once under bench/out/venv-system with `pip install .` for the dependencies (the
code run is always this checkout's, through PYTHONPATH); `--python PATH` picks
another interpreter (one that can import auditimds' dependencies).  A development interpreter can start much
slower (here pyenv's, whose site-packages run a .pth hook: +50 ms per start), which is not auditimds' time.

Both cores are timed (core.py): the compiled one (`auditimds._core`, built in this checkout by
`python3 setup.py build_ext --inplace`; the script says when it is missing) and the pure-Python reference
(AUDITIMDS_PURE=1).  The checkout is byte-compiled first (`compileall`), as an installed package is: without it
every run would compile the sources again (and PYTHONDONTWRITEBYTECODE, set in some shells, keeps it so).

Floor rows: the same interpreter running only the first steps any Python design must take, each a complete
process: start; read and split the lines; group the relevant records per event (the "bare loop"); and that
plus reading the SYSCALL fields and keeping the process table, with no ECS events and no rules.  They show
how much of the budget is spent before detection logic starts.
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


FLOOR_STEPS = {
    "start only": "pass",
    "read + split lines": """
import sys
lines = open(sys.argv[1], "rb").read().split(b"\\n")
print(len(lines))
""",
    "+ group relevant records per event": """
import sys
lines = open(sys.argv[1], "rb").read().split(b"\\n")
wanted = (b"SY", b"EX", b"CW", b"PR", b"SO", b"EO")
events = {}
for line in lines:
    if line[5:7] in wanted:
        i = line.find(b"(", 20)
        j = line.find(b")", i)
        k = line[i + 1:j]
        e = events.get(k)
        if e is None:
            events[k] = [line]
        else:
            e.append(line)
            if line[5:7] == b"PR":
                del events[k]
print(len(events))
""",
    "+ SYSCALL fields + process table": """
import sys
try:  # the seam of audit/ and ecs/ (the older layout kept these in the normalizer)
    from auditimds.audit.events import SYSCALL_RE as _SYSCALL_RE, decode_path as _decode_path
except ImportError:
    from auditimds.ecs.normalize import _SYSCALL_RE, _decode_path
from auditimds.ecs.process_table import ProcessTable
lines = open(sys.argv[1], "rb").read().split(b"\\n")
table = ProcessTable("h")
match = _SYSCALL_RE.match
execs = (b"59", b"322")
cur = None
for line in lines:
    t = line[5:8]
    if t == b"SYS":
        m = match(line, line.find(b"):", 20) + 2)
        if m is None:
            continue
        cur = m.groups()
    elif t == b"PRO" and cur is not None:
        a, num, succ, ex, a0, ppid, pid, uid, tty, ses, exe = cur
        cur = None
        pid, ppid = int(pid), int(ppid)
        if succ == b"yes" and num in execs:
            parent = table.parent(ppid, 0)
            table.exec(pid, ppid, _decode_path(exe), None, None, 0, int(uid), int(ses), None, parent)
        else:
            table.observe(pid, ppid, _decode_path(exe), 0, int(uid), int(ses))
print(len(table))
""",
}


def system_venv(python: str) -> Optional[str]:
    """bench/out/venv-system: a venv of the peer's interpreter with auditimds installed; None if impossible."""
    venv = REPO / "bench" / "out" / "venv-system"
    exe = venv / "bin" / "python"
    if exe.exists() and subprocess.run([str(exe), "-c", "import auditimds, regex"], capture_output=True,
                                       cwd="/").returncode == 0:
        return str(exe)
    print(f"bench: making {venv} from {python} (pip install {REPO}) ...", file=sys.stderr)
    r = subprocess.run([python, "-m", "venv", str(venv)], capture_output=True, text=True)
    if r.returncode == 0:
        r = subprocess.run([str(exe), "-m", "pip", "install", "-q", str(REPO)], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"bench: cannot make the venv ({r.stderr.strip()[-300:]}); using {sys.executable}", file=sys.stderr)
        return None
    return str(exe)


def run_once(cmd: List[str], env: Optional[Dict[str, str]] = None) -> Dict[str, float]:
    with tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
        t0 = time.perf_counter()
        # cwd "/": `python -m` puts the current directory before PYTHONPATH, which names the code measured
        p = subprocess.Popen(cmd, stdout=fout, stderr=ferr, env=env, cwd="/")
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
    ap.add_argument("--python", help="interpreter for auditimds (default: a venv of /usr/bin/python3, made once)")
    args = ap.parse_args()

    system_python = "/usr/bin/python3"
    have_auparse = Path(system_python).exists() and subprocess.run(
        [system_python, "-c", "import auparse"], capture_output=True).returncode == 0
    python = args.python or (system_venv(system_python) if Path(system_python).exists() else None) or sys.executable
    # always this checkout's code (PYTHONPATH comes before the venv's installed copy, which may be older)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("AUDITIMDS_PURE", None)
    pure_env = dict(env, AUDITIMDS_PURE="1")
    ours = [python, "-m", "auditimds", "scan", "--host-id", "bench", "--host-name", "bench"]
    subprocess.run([python, "-m", "compileall", "-q", str(REPO / "auditimds")], capture_output=True, env=env)
    core = subprocess.run([python, "-m", "auditimds", "--version"], capture_output=True, text=True, env=env,
                          cwd="/").stdout.strip()

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

        version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                                 text=True).stdout.strip()
        results: Dict[str, object] = {"log": args.log, "lines": lines, "python": f"{python} ({version})",
                                      "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
        ours_runs: List[Dict[str, float]] = []
        pure_runs: List[Dict[str, float]] = []
        peer_runs: List[Dict[str, float]] = []
        floor_runs: Dict[str, List[Dict[str, float]]] = {k: [] for k in FLOOR_STEPS}
        for _ in range(args.runs):  # alternate so that both see the same machine conditions
            r = run_once(ours + [str(plain)], env)
            ours_runs.append(r)
            pure_runs.append(run_once(ours + [str(plain)], pure_env))
            if have_auparse:
                peer_runs.append(run_once([system_python, "-c", AUPARSE_LOOP, str(plain)]))
            for name, code in FLOOR_STEPS.items():
                floor_runs[name].append(run_once([python, "-c", code, str(plain)], env))
        results["floor"] = {k: summarise(v) for k, v in floor_runs.items()}
        results["core"] = core
        results["auditimds_scan"] = summarise(ours_runs)
        results["auditimds_scan_pure"] = summarise(pure_runs)
        assert ours_runs[-1]["stdout"] == pure_runs[-1]["stdout"], "the two cores gave different alerts"
        results["auditimds_alerts"] = len(ours_runs[-1]["stdout"].splitlines())
        if have_auparse:
            results["auparse_loop"] = summarise(peer_runs)
            results["auparse_events"] = int(peer_runs[-1]["stdout"].strip() or 0)
            results["ratio_median"] = round(results["auditimds_scan"]["median_s"]
                                            / results["auparse_loop"]["median_s"], 2)
            results["ratio_median_pure"] = round(results["auditimds_scan_pure"]["median_s"]
                                                 / results["auparse_loop"]["median_s"], 2)
        else:
            results["auparse_loop"] = "python3-audit not installed (apt-get install python3-audit)"
        x4 = run_once(ours + [str(big)], env)
        results["auditimds_scan_x4"] = {"wall_s": round(x4["wall"], 3), "peak_rss_mb": round(x4["rss_mb"], 1),
                                        "lines": lines * 4}
        x4 = run_once(ours + [str(big)], pure_env)
        results["auditimds_scan_x4_pure"] = {"wall_s": round(x4["wall"], 3), "peak_rss_mb": round(x4["rss_mb"], 1),
                                             "lines": lines * 4}

    print(f"log: {args.log} ({lines} lines), auditimds on {results['python']}, {results['cpus']} CPUs, "
          f"{args.runs} runs each, alternating; {core}")
    print(f"{'command':<40} {'median s':>9} {'min s':>7} {'peak RSS MB':>12}")
    s = results["auditimds_scan"]
    print(f"{'auditimds scan':<40} {s['median_s']:>9} {s['min_s']:>7} {s['peak_rss_mb']:>12}")
    s = results["auditimds_scan_pure"]
    print(f"{'auditimds scan, AUDITIMDS_PURE=1':<40} {s['median_s']:>9} {s['min_s']:>7} {s['peak_rss_mb']:>12}")
    if have_auparse:
        a = results["auparse_loop"]
        print(f"{'libauparse AuParser loop (python3-audit)':<40} {a['median_s']:>9} {a['min_s']:>7} "
              f"{a['peak_rss_mb']:>12}")
        print(f"ratio auditimds / libauparse (median): {results['ratio_median']} "
              f"(pure-Python core: {results['ratio_median_pure']})")
    print(f"floor (interpreter: {results['python']}):")
    for name, f in results["floor"].items():  # type: ignore[union-attr]
        ratio = f" ({f['median_s'] / a['median_s']:.2f}x libauparse)" if have_auparse else ""
        print(f"  {name:<38} {f['median_s']:>9} {f['min_s']:>7} {f['peak_rss_mb']:>12}{ratio}")
    x = results["auditimds_scan_x4"]
    print(f"{'auditimds scan, log x4':<40} {x['wall_s']:>9} {'':>7} {x['peak_rss_mb']:>12}")
    x = results["auditimds_scan_x4_pure"]
    print(f"{'auditimds scan, log x4, pure-Python':<40} {x['wall_s']:>9} {'':>7} {x['peak_rss_mb']:>12}")
    print(f"alerts: {results['auditimds_alerts']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
