"""Fill unknown processes from /proc, for the live log of this host (the process table's resolver).

A parent whose exec happened before the log (or before auditimds started) is unknown to the process table;
when reading this host's own live log it is usually still running, so /proc tells its executable, parent,
argv, cwd and start time.  The start time (clock ticks since boot, field 22 of /proc/PID/stat) goes into the
entity id, so a pid reused later gets another id.
"""

from __future__ import annotations

import os
from typing import Optional


class ProcResolver:
    def __init__(self, root: str = "/proc") -> None:
        self.root = root
        self.lookups = 0
        self.found = 0

    def __call__(self, pid: int) -> Optional[dict]:
        self.lookups += 1
        base = f"{self.root}/{pid}"
        try:
            with open(f"{base}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            return None
        # comm may contain spaces and parentheses: the fields start after the last ')'
        close = stat.rfind(b")")
        fields = stat[close + 2 :].split()
        try:
            ppid = int(fields[1])
            start = int(fields[19])
        except (IndexError, ValueError):
            return None
        info: dict = {"ppid": ppid, "start_key": f"proc:{start}"}
        try:
            info["executable"] = os.readlink(f"{base}/exe")
        except OSError:
            info["executable"] = None  # kernel thread, or no permission
        try:
            with open(f"{base}/cmdline", "rb") as f:
                raw = f.read()
            if raw:
                info["args"] = [a.decode("utf-8", "backslashreplace") for a in raw.rstrip(b"\x00").split(b"\x00")]
        except OSError:
            pass
        try:
            info["cwd"] = os.readlink(f"{base}/cwd")
        except OSError:
            pass
        self.found += 1
        return info
