#!/usr/bin/env python3
"""What durability costs the agent: the alerts file's per-line fdatasync and the checkpoint's fsyncs.

    python3 bench/bench_durability.py [--dir /var/lib/auditimds] [--alerts 300] [--checkpoints 100]

* alert line: `FdOutput.write_line` of a real alert line (about 5 KB), durable (write + fdatasync, as the agent
  does) against plain write; median, p99 and max latency;
* checkpoint: `save_state` of a state document the size of the agent's at 1,000 execs/s (temp file, fsync,
  rename, fsync of the directory); median, p99.

At 1,000 execs/s the agent checkpoints every 5 s (an alert checkpoints at once): the cost per second of log is
(checkpoint median / 5 s), printed as a share of one core's time spent waiting — the wait is I/O, not CPU, and
it is taken on the agent's thread only when a checkpoint or an alert happens.  Run it on the file system the
state dir and the alerts file live on (`--dir`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditimds.alerts.sinks import open_alerts_file  # noqa: E402
from auditimds.source.checkpoint import save_state  # noqa: E402

CHECKPOINT_INTERVAL_S = 5.0


def pct(xs: List[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=None, help="directory on the file system to measure (default: a temp dir)")
    ap.add_argument("--alerts", type=int, default=300)
    ap.add_argument("--checkpoints", type=int, default=100)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="auditimds-durability-", dir=a.dir) as tmp:
        line = json.dumps({"alert": {"id": "0" * 32}, "message": "x" * 5000}) + "\n"
        res = {}
        for durable in (False, True):
            out = open_alerts_file(os.path.join(tmp, f"alerts-{durable}.jsonl"), durable=durable)
            lat = []
            for _ in range(a.alerts):
                t = time.perf_counter()
                out.write_line(line)
                lat.append((time.perf_counter() - t) * 1000)
            out.close()
            res["durable" if durable else "plain"] = lat
        state = {"log": "/var/log/audit/audit.log",
                 "alerts": [[f"{i:032x}", 1796400000000 + i] for i in range(200)],
                 "counters": {f"c{i}": i for i in range(60)}, "resume": {"dev": 1, "inode": 2, "offset": 3,
                                                                        "fingerprint": "f" * 64}}
        ck = []
        for _ in range(a.checkpoints):
            t = time.perf_counter()
            save_state(Path(tmp) / "state.json", state)
            ck.append((time.perf_counter() - t) * 1000)
    for name, lat in res.items():
        print(f"alert line, {name:7s}: median {statistics.median(lat):7.3f} ms  p99 {pct(lat, 0.99):7.3f} ms  "
              f"max {max(lat):7.3f} ms  ({len(lat)} lines of {len(line)} bytes)")
    med = statistics.median(ck)
    print(f"checkpoint (save_state): median {med:7.3f} ms  p99 {pct(ck, 0.99):7.3f} ms  ({len(ck)} saves)")
    print(f"at 1,000 execs/s (a checkpoint every {CHECKPOINT_INTERVAL_S:.0f} s): "
          f"{med / (CHECKPOINT_INTERVAL_S * 1000) * 100:.3f} % of the agent thread's time waiting on checkpoints; "
          f"each alert adds {statistics.median(res['durable']) - statistics.median(res['plain']):.3f} ms (fdatasync)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
