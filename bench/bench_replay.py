#!/usr/bin/env python3
"""How much the agent's CPU per exec depends on the machine sleeping between reads.

    python3 bench/bench_replay.py [--execs 20000] [--rate 1000] [--cadence 0.1] [--core both|compiled|pure]

Writes a log of `--execs` exec events (a real `/bin/true` exec recorded by auditd 3.0.9, ENRICHED, with fresh
pids, serials and timestamps: `--rate` a second, all children of one load generator whose own exec comes
first, so the seed rule evaluates each one fully) into a temporary file, chunk by chunk as auditd would over
`--cadence` seconds, and has the live agent (`Daemon.step`, the built-in rules, eager first stages) read each
chunk.  Twice: once with the steps back to back, once sleeping `--cadence` seconds before each step, as the
agent does under load.  Prints the CPU per exec of both.  No root and no auditd needed.

Same work, same code: the difference is what the machine charges for waking up.  On virtual machines whose
host reclaims an idle guest's caches and TLBs it is several times (see README, "The agent").
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from auditimds.config import Config  # noqa: E402
from auditimds.core import PURE_ENV, core_info  # noqa: E402
from auditimds.daemon import Daemon  # noqa: E402
from auditimds.rules.builtin import builtin_rules_dir  # noqa: E402
from auditimds.rules.loader import load_rules  # noqa: E402

G = "\x1d"
TEMPLATE = [
    "type=SYSCALL msg=audit({ts}:{serial}): arch=c000003e syscall=59 success=yes exit=0 a0=5621d8723004 "
    "a1=7fffc297f660 a2=7fffc297f7f8 a3=8 items=2 ppid={ppid} pid={pid} auid=4294967295 uid=0 gid=0 euid=0 "
    "suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"true\" exe=\"/usr/bin/true\" "
    "key=\"auditimds_exec\"" + G + "ARCH=x86_64 SYSCALL=execve AUID=\"unset\" UID=\"root\" GID=\"root\" "
    "EUID=\"root\" SUID=\"root\" FSUID=\"root\" EGID=\"root\" SGID=\"root\" FSGID=\"root\"",
    "type=BPRM_FCAPS msg=audit({ts}:{serial}): fver=0 fp=0 fi=0 fe=0 old_pp=000001fffeffffff old_pi=0 "
    "old_pe=000001fffeffffff old_pa=0 pp=000001fffeffffff pi=0 pe=000001fffeffffff pa=0 frootid=0",
    "type=EXECVE msg=audit({ts}:{serial}): argc=1 a0=\"/bin/true\"",
    "type=CWD msg=audit({ts}:{serial}): cwd=\"/work/main\"",
    "type=PATH msg=audit({ts}:{serial}): item=0 name=\"/bin/true\" inode=260958 dev=fe:00 mode=0100755 ouid=0 "
    "ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0" + G
    + "OUID=\"root\" OGID=\"root\"",
    "type=PATH msg=audit({ts}:{serial}): item=1 name=\"/lib64/ld-linux-x86-64.so.2\" inode=338944 dev=fe:00 "
    "mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0"
    + G + "OUID=\"root\" OGID=\"root\"",
    "type=PROCTITLE msg=audit({ts}:{serial}): proctitle=\"/bin/true\"",
]


PARENT = [  # the load generator's own exec, so the execs' parent is known (as when the agent runs first)
    "type=SYSCALL msg=audit({ts}:{serial}): arch=c000003e syscall=59 success=yes exit=0 a0=55d0c0a1b2c0 "
    "a1=55d0c0a1b300 a2=55d0c0a1b340 a3=0 items=2 ppid=4200 pid=4242 auid=0 uid=0 gid=0 euid=0 suid=0 "
    "fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm=\"loadgen\" exe=\"/tmp/bench/loadgen\" "
    "key=\"auditimds_exec\"",
    "type=EXECVE msg=audit({ts}:{serial}): argc=3 a0=\"/tmp/bench/loadgen\" a1=\"1000\" a2=\"20\"",
    "type=CWD msg=audit({ts}:{serial}): cwd=\"/work/main\"",
    "type=PROCTITLE msg=audit({ts}:{serial}): proctitle=\"/tmp/bench/loadgen\"",
]


def chunks(execs: int, rate: int, cadence: float, t0: float) -> List[bytes]:
    """The log as auditd writes it, cut into what appears in each `cadence` seconds."""
    per_chunk = max(1, round(rate * cadence))
    ms = int(t0 * 1000) - 1
    out, buf = [], ["".join(line.format(ts=f"{ms // 1000}.{ms % 1000:03d}", serial=599999) + "\n"
                            for line in PARENT)]
    for k in range(execs):
        ms = int(t0 * 1000 + k * 1000 / rate)
        fields = {"ts": f"{ms // 1000}.{ms % 1000:03d}", "serial": 600000 + k, "ppid": 4242,
                  "pid": 10000 + k % 30000}
        buf.append("".join(line.format(**fields) + "\n" for line in TEMPLATE))
        if len(buf) >= per_chunk:
            out.append("".join(buf).encode())
            buf = []
    if buf:
        out.append("".join(buf).encode())
    return out


def replay(data: List[bytes], cadence: float, sleep: bool) -> float:
    """CPU seconds the agent spends reading and processing every chunk."""
    with tempfile.TemporaryDirectory(prefix="auditimds-replay-") as t:
        tmp = Path(t)
        log = tmp / "audit.log"
        log.write_bytes(b"")
        cfg = Config(input_path=str(log), state_dir=str(tmp / "state"), start="beginning", output_stdout=False,
                     output_jsonl=None, health_interval=0)
        rules, errors = load_rules([builtin_rules_dir()], lazy_first=False)
        assert not errors, errors
        d = Daemon(cfg, rules, host_id="h", host_name="h", resolver=None, self_pid=1)
        d.start()
        now = time.time()
        cpu = 0.0
        with open(log, "ab", buffering=0) as f:
            for chunk in data:
                f.write(chunk)
                if sleep:
                    time.sleep(cadence)
                now += cadence
                c = time.process_time()
                d.step(now)
                cpu += time.process_time() - c
        d.close(now)
        assert d.pipeline.stats()["exec_events"] == sum(c.count(b"type=EXECVE") for c in data)
        assert d.pipeline.core.process(4242).executable == "/tmp/bench/loadgen"
    return cpu


def main() -> int:
    gc.set_threshold(50_000, 20, 100)  # as `auditimds` itself does (cli.main)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--execs", type=int, default=20000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--cadence", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--core", choices=["both", "compiled", "pure"], default="both")
    args = ap.parse_args()
    data = chunks(args.execs, args.rate, args.cadence, time.time())
    cores = ["compiled", "pure"] if args.core == "both" else [args.core]
    if "compiled" in cores and core_info()[0] != "compiled":
        print(f"bench_replay: no compiled core ({core_info()[1]}): python3 setup.py build_ext --inplace")
        cores.remove("compiled")
    res = {(c, k): [] for c in cores for k in ("back_to_back", "sleeping")}
    for _ in range(args.rounds):  # the cores alternate, so both see the same machine
        for c in cores:
            os.environ.pop(PURE_ENV, None)
            if c == "pure":
                os.environ[PURE_ENV] = "1"  # read when the agent builds its pipeline
            res[(c, "back_to_back")].append(replay(data, args.cadence, sleep=False) / args.execs * 1e6)
            res[(c, "sleeping")].append(replay(data, args.cadence, sleep=True) / args.execs * 1e6)
    os.environ.pop(PURE_ENV, None)
    for (c, k), v in res.items():
        print(f"{c:8s} core, {k:13s}: {statistics.median(v):6.1f} µs of CPU per exec (median of {len(v)}: "
              f"{', '.join(f'{x:.1f}' for x in v)})")
    for c in cores:
        ratio = statistics.median(res[(c, "sleeping")]) / statistics.median(res[(c, "back_to_back")])
        print(f"{c} core: sleeping {args.cadence} s before each read costs {ratio:.1f}x the CPU of the same work "
              "back to back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
