"""What `auditimds doctor` reports (ops/doctor.py): findings, one a line, each with the command that fixes it;
and how its checks run a command."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

OK, WARN, FAIL = "OK", "WARN", "FAIL"

Runner = Callable[..., Any]  # subprocess.run, or a fake host's


@dataclass
class Finding:
    level: str  # OK, WARN or FAIL
    check: str
    message: str
    fix: Optional[str] = None

    def lines(self) -> List[str]:
        out = [f"{self.level:<5} {self.check}: {self.message}"]
        if self.fix and self.level != OK:
            out.append(f"      fix: {self.fix}")
        return out


def call(run: Runner, cmd: Sequence[str]) -> Tuple[Optional[int], str]:
    """(exit code, stdout+stderr), or (None, reason) when the command cannot be started."""
    try:
        r = run(list(cmd), capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        return None, f"{cmd[0]}: command not found"
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"{cmd[0]}: {e}"
    return r.returncode, (r.stdout or "") + (r.stderr or "")


def summarize(findings: Iterable[Finding]) -> Dict[str, int]:
    """How many findings of each level."""
    fs = list(findings)
    return {lvl: sum(1 for f in fs if f.level == lvl) for lvl in (OK, WARN, FAIL)}
