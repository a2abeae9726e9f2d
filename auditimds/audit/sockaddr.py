"""Decode `saddr=` (hex of the raw struct sockaddr the caller passed) into a small typed value.

The address family is the first two bytes in the *host* byte order of the audited machine, which we take
from the event's `arch` (bit 0x40000000 = little-endian).  Ports and IP addresses are network order.
The hex holds exactly `addrlen` bytes: it may be shorter than the struct (then the address is unknown) or
longer (unix paths leak stack bytes after the NUL, which are ignored).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
AF_NETLINK = 16


@dataclass(frozen=True)
class SockAddr:
    family: int
    ip: Optional[str] = None  # canonical text; IPv4-mapped IPv6 is given as dotted IPv4
    address: Optional[str] = None  # the address as the process wrote it (e.g. "::ffff:169.254.169.254")
    port: Optional[int] = None
    path: Optional[str] = None  # unix: filesystem path, or "@name" for an abstract socket
    netlink_pid: Optional[int] = None
    truncated: bool = False  # shorter than the family's struct


def is_little_endian(arch: Optional[int]) -> bool:
    """arch = EM_* | 0x80000000 (64-bit) | 0x40000000 (little-endian).  Unknown arch: little-endian."""
    if arch is None:
        return True
    return bool(arch & 0x40000000)


def decode_sockaddr(raw: bytes, little_endian: bool = True) -> Optional[SockAddr]:
    """`raw` is the already hex-decoded byte string.  None if it is too short to hold a family."""
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[:2], "little" if little_endian else "big")
    if family == AF_INET:
        if len(raw) < 8:
            return SockAddr(family, truncated=True)
        ip = ipaddress.IPv4Address(raw[4:8]).compressed
        return SockAddr(family, ip=ip, address=ip, port=int.from_bytes(raw[2:4], "big"))
    if family == AF_INET6:
        if len(raw) < 24:
            return SockAddr(family, truncated=True)
        a6 = ipaddress.IPv6Address(raw[8:24])
        mapped = a6.ipv4_mapped
        if mapped is not None:  # written the same way on every Python version
            ip, address = mapped.compressed, "::ffff:" + mapped.compressed
        else:
            ip = address = a6.compressed
        return SockAddr(family, ip=ip, address=address, port=int.from_bytes(raw[2:4], "big"))
    if family == AF_UNIX:
        path_bytes = raw[2:]
        if not path_bytes:
            return SockAddr(family, path=None, truncated=True)
        if path_bytes[0] == 0:
            name = path_bytes[1:].split(b"\x00", 1)[0]
            return SockAddr(family, path="@" + name.decode("utf-8", "backslashreplace"))
        return SockAddr(family, path=path_bytes.split(b"\x00", 1)[0].decode("utf-8", "backslashreplace"))
    if family == AF_NETLINK:
        if len(raw) < 8:
            return SockAddr(family, truncated=True)
        return SockAddr(family, netlink_pid=int.from_bytes(raw[4:8], "little" if little_endian else "big"))
    return SockAddr(family)
