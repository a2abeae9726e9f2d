#!/usr/bin/env python3
"""Write the fuzzer's seed corpus: pieces of the real logs, each behind the harness's 4 settings bytes.

    python3 tests/fuzz/seeds.py OUT_DIR

The real corpus (host-a) gives pieces of 4-32 KiB from across the log; every public log and test fixture
gives its first 32 KiB.  Pieces keep whole lines.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SETTINGS = [b"\x03\x04\x08\x02", b"\x07\x07\x0f\x03", b"\x00\x00\x00\x00", b"\x01\x02\x03\x01"]


def read(p: Path) -> bytes:
    data = p.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def pieces(data: bytes, size: int, count: int) -> list:
    out = []
    step = max(1, len(data) // count)
    for start in range(0, len(data), step):
        s = data.rfind(b"\n", 0, start) + 1
        e = data.rfind(b"\n", s, s + size)
        if e > s:
            out.append(data[s:e])
        if len(out) == count:
            break
    return out


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    sources = [(SHARED / "corpus" / "real" / "host-a.log.gz", 24)]
    for root in (SHARED / "corpus" / "public", REPO / "tests" / "fixtures"):
        sources += [(p, 1) for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith((".md", ".toml",
                                                                                                  ".json", ".py"))]
    for path, count in sources:
        for piece in pieces(read(path), 32 * 1024 if count == 1 else 4096 << (n % 4), count):
            (out / f"seed-{n:04d}").write_bytes(SETTINGS[n % len(SETTINGS)] + piece)
            n += 1
    print(f"{n} seeds in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
