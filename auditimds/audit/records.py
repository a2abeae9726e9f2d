"""Audit record parsing: one audit.log line -> header + lazily parsed fields.

The hot path is `split_header`, called once per line: it finds the record type and the event id with a few
C-level `find` calls and never copies the body.  Callers test the type against the set of record types they
need and skip everything else before any field is parsed (`RELEVANT_TYPES`).

Value decoding follows the kernel/libaudit rule (see docs/design.md and the shared auditd-format spec): a
value is either `"quoted"` (literal bytes, no escapes), unquoted upper-case hex of the raw bytes (only for
fields that the kernel may encode), `(null)`, or a bare token whose base depends on the field.
"""

from __future__ import annotations

import re
from typing import Dict, NamedTuple, Optional

# Record types the detector reads.  Everything else is skipped with one set lookup.
RELEVANT_TYPES = frozenset(
    {
        b"SYSCALL",
        b"EXECVE",
        b"CWD",
        b"SOCKADDR",
        b"SOCKETCALL",
        b"PROCTITLE",
        b"EOE",
    }
)

_HEX_DIGITS = b"0123456789ABCDEFabcdef"

# ENRICHED's 0x1D after the line went through a shipper: rsyslog writes "#035", some collectors the literal
# text "\u001D".  Those forms count only when an upper-case enrichment key follows (ARCH=, UID=...), so a
# value that merely contains the text (a URL with "#035" in it) is never cut.
_MANGLED_SEPARATOR = re.compile(rb"(?:#035|\\u001[dD])(?=[A-Z][A-Z0-9_]*=)")
_BRACES = re.compile(rb"\{[^}]*\}")
_KERNEL_KEY = re.compile(rb"(?:^|\s)[a-z][a-z0-9_-]*=")


class Header(NamedTuple):
    """Where the pieces of one line are; `line` itself is not copied."""

    node: bytes  # b"" when the line has no node= prefix
    rtype: bytes  # e.g. b"SYSCALL", b"UNKNOWN[1334]"
    eid: bytes  # b"1795976294.920:267"
    body: int  # offset of the first byte after "): "


def split_header(line: bytes) -> Optional[Header]:
    """Split `[node=N ]type=T msg=audit(S.MS:SERIAL): body`; None if the line is not an audit record.

    Also accepts lines wrapped by syslog/YAML (anything before `node=`/`type=`), as found in forwarded logs.
    """
    if line.startswith(b"type="):
        node = b""
        start = 0
    elif line.startswith(b"node="):
        sp = line.find(b" ", 5)
        if sp < 0:
            return None
        node = line[5:sp]
        start = sp + 1
        if not line.startswith(b"type=", start):
            return None
    else:
        return _split_wrapped(line)
    m = line.find(b" msg=audit(", start + 5)
    if m < 0:
        return None
    close = line.find(b"):", m + 11)
    if close < 0:
        return None
    return Header(node, line[start + 5 : m], line[m + 11 : close], close + 2)


def _split_wrapped(line: bytes) -> Optional[Header]:
    """Slow path: a record preceded by a syslog prefix or indentation."""
    t = line.find(b"type=")
    if t < 0:
        return None
    n = line.rfind(b"node=", 0, t)
    if n >= 0 and (n == 0 or line[n - 1 : n] in (b" ", b"\t")) and line.find(b" ", n) == t - 1:
        inner = line[n:]
    elif t == 0 or line[t - 1 : t] in (b" ", b"\t"):
        inner = line[t:]
    else:
        return None
    if not (inner.startswith(b"type=") or inner.startswith(b"node=")):
        return None
    h = split_header(inner)
    if h is None:
        return None
    return Header(h.node, h.rtype, h.eid, h.body + (len(line) - len(inner)))


def parse_event_id(eid: bytes) -> Optional[tuple[int, int, int]]:
    """b"1795976294.920:267" -> (1795976294, 920, 267); None when malformed.

    Each part is ASCII digits only, at most 15 for the seconds, 9 for the milliseconds and 18 for the serial
    (so the time in ms fits 64 bits); no sign, space or underscore, which int() would accept.  The compiled
    core (csrc/core.c, parse_event_id) applies the same rule."""
    dot = eid.find(b".")
    colon = eid.find(b":", dot + 1)
    if dot <= 0 or colon < 0:
        return None
    sec, ms, serial = eid[:dot], eid[dot + 1 : colon], eid[colon + 1 :]
    if not (len(sec) <= 15 and len(ms) <= 9 and 0 < len(serial) <= 18
            and sec.isdigit() and ms.isdigit() and serial.isdigit()):
        return None
    return int(sec), int(ms), int(serial)


def _separator(line: bytes, body: int) -> "tuple[int, int]":
    """(start, end) of the ENRICHED separator in `line`, or (-1, -1)."""
    gs = line.find(b"\x1d", body)
    if gs >= 0:
        return gs, gs + 1
    if b"#035" in line or b"\\u001" in line:
        for m in _MANGLED_SEPARATOR.finditer(line, body):
            # a real enrichment tail holds upper-case keys only; text inside a value (comm="#035UID=x")
            # is followed by more kernel fields
            rest = _BRACES.sub(b"", line[m.end():])
            if _KERNEL_KEY.search(rest) is None:
                return m.start(), m.end()
    return -1, -1


def kernel_part(line: bytes, body: int) -> bytes:
    """The raw (authoritative) part of the body: everything before the ENRICHED separator."""
    start, _ = _separator(line, body)
    return line[body:] if start < 0 else line[body:start]


def enrichment(line: bytes, body: int) -> bytes:
    """The ENRICHED tail (interpreted fields) or b"" when there is none."""
    _, end = _separator(line, body)
    return b"" if end < 0 else line[end:]


def parse_fields(raw: bytes) -> Dict[bytes, bytes]:
    """Split a kernel record body into {key: raw value}.  Values keep their quotes (see `decode`).

    Kernel records never contain spaces inside values (a space forces hex), so splitting on runs of
    whitespace is exact for them; tokens without '=' (AVC words, AppArmor "(enforce)") are ignored.
    A repeated key keeps its first value.
    """
    out: Dict[bytes, bytes] = {}
    for tok in raw.split():
        k, eq, v = tok.partition(b"=")
        if eq and k not in out:
            out[k] = v
    return out


def is_hex(value: bytes) -> bool:
    # translate() deletes the hex digits at C speed; a set test walks the bytes as Python ints (an argument
    # of 20 KB cost ~10 M instructions that way)
    return len(value) % 2 == 0 and bool(value) and not value.translate(None, _HEX_DIGITS)


def decode(value: Optional[bytes], encoded: bool = True) -> Optional[bytes]:
    """Decode one raw value to bytes: quoted -> literal, hex (for encoded fields) -> raw bytes.

    `(null)` -> None.  A value that is neither quoted nor valid hex is returned as is (old logs and
    `ausearch -i` output contain bare words such as `a0=top`).
    """
    if value is None:
        return None
    if value[:1] == b'"':
        return value[1:-1] if value.endswith(b'"') and len(value) >= 2 else value[1:]
    if value == b"(null)":
        return None
    if encoded and is_hex(value):
        return bytes.fromhex(value.decode("ascii"))
    return value


def decode_str(value: Optional[bytes], encoded: bool = True) -> Optional[str]:
    """`decode` then UTF-8 text; undecodable bytes become backslash escapes (JSON-safe, deterministic)."""
    b = decode(value, encoded)
    if b is None:
        return None
    return b.decode("utf-8", "backslashreplace")
