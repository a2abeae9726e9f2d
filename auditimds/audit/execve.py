"""Rebuild argv from an event's EXECVE records.

`argc=N a0=.. a1=..`; an argument that does not fit in a record is split as `aI_len=L aI[0]=.. aI[1]=..`,
possibly across records, and each chunk is quoted or hex by itself (arguments longer than the kernel's
7500-byte buffer are always hex).  Missing pieces (lost records) mark the result truncated instead of
failing.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from .records import decode

Raw = Tuple[bytes, int]


def _decode_arg(value: bytes) -> bytes:
    d = decode(value, True)
    return b"" if d is None else d


def rebuild_argv(records: Sequence[Raw]) -> Tuple[List[str], bool]:
    """Return (argv, truncated).  Records must be in file order."""
    if len(records) == 1:
        fast = _single_record(*records[0])
        if fast is not None:
            return fast, False
    return _general(records)


def _single_record(line: bytes, body: int) -> "List[str] | None":
    """Fast path for the usual case: one EXECVE record, `argc=N a0=.. a(N-1)=..` in order, nothing split.

    EXECVE records carry no ENRICHED tail (auditd only interprets ids, arch, syscall and saddr).
    Returns None whenever the record is anything else, and the general path decides.
    """
    toks = line[body:].split()
    if not toks or not toks[0].startswith(b"argc="):
        return None
    try:
        argc = int(toks[0][5:])
    except ValueError:
        return None
    if argc != len(toks) - 1:
        return None
    argv: List[str] = []
    append = argv.append
    for i, tok in enumerate(toks[1:]):
        eq = tok.find(b"=")
        if eq < 0 or tok[1:eq] != str(i).encode():
            return None
        v = tok[eq + 1 :]
        if v[:1] == b'"' and v[-1:] == b'"' and len(v) >= 2:
            append(v[1:-1].decode("utf-8", "backslashreplace"))
        else:
            d = decode(v, True)
            append("" if d is None else d.decode("utf-8", "backslashreplace"))  # (null): as _general
    return argv


def _general(records: Sequence[Raw]) -> Tuple[List[str], bool]:
    whole: Dict[int, bytes] = {}
    chunks: Dict[int, Dict[int, bytes]] = {}
    argc = -1
    for line, body in records:
        for tok in line[body:].split():  # EXECVE records carry no ENRICHED tail: never cut them
            k, eq, v = tok.partition(b"=")
            if not eq:
                continue
            if k == b"argc":
                try:
                    argc = int(v)
                except ValueError:
                    pass
            elif k[:1] == b"a":
                br = k.find(b"[")
                if br > 0:
                    try:
                        i = int(k[1:br])
                        j = int(k[br + 1 : -1])
                    except ValueError:
                        continue
                    chunks.setdefault(i, {})[j] = v
                    continue
                if k.endswith(b"_len"):
                    continue
                try:
                    whole[int(k[1:])] = v
                except ValueError:
                    continue
    # argc and the arguments present may disagree (lost records, odd producers): keep every argument seen.
    n = max(argc, max(list(whole) + list(chunks), default=-1) + 1)
    argv: List[str] = []
    truncated = False
    for i in range(n):
        one = whole.get(i)
        if one is not None:
            argv.append(_decode_arg(one).decode("utf-8", "backslashreplace"))
            continue
        parts = chunks.get(i)
        if parts is None:
            truncated = True
            break
        if sorted(parts) != list(range(len(parts))):
            truncated = True
        buf = b"".join(_decode_arg(parts[j]) for j in sorted(parts))
        argv.append(buf.decode("utf-8", "backslashreplace"))
    return argv, truncated

