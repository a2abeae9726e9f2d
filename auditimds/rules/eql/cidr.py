"""``cidrMatch``: a set of IPv4/IPv6 networks tested with integer masks (no ``ipaddress`` object per test).

IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) match IPv4 networks and IPv4 addresses match mapped
networks, as in Lucene, which stores IPv4 that way (``docs/specs/eql-semantics.md`` §2.3).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Iterable, List, Tuple

__all__ = ["CidrSet"]


class CidrSet:
    """A set of IPv4/IPv6 networks (bare addresses mean a single host).  ``contains(ip_string)``."""

    __slots__ = ("v4", "v6")

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.v4: List[Tuple[int, int]] = []
        self.v6: List[Tuple[int, int]] = []
        for c in cidrs:
            net = ipaddress.ip_network(c.strip(), strict=False)
            mask = int(net.netmask)
            (self.v4 if net.version == 4 else self.v6).append((int(net.network_address) & mask, mask))

    def contains(self, ip: Any) -> bool:
        if type(ip) is not str:
            return False
        try:
            if ":" in ip:
                if "%" in ip:  # zone index, e.g. fe80::1%eth0
                    ip = ip.split("%", 1)[0]
                n = int.from_bytes(socket.inet_pton(socket.AF_INET6, ip), "big")
                for net, mask in self.v6:
                    if n & mask == net:
                        return True
                if n >> 32 == 0xFFFF:  # IPv4-mapped IPv6: Lucene stores IPv4 that way
                    n &= 0xFFFFFFFF
                    for net, mask in self.v4:
                        if n & mask == net:
                            return True
                return False
            n = int.from_bytes(socket.inet_aton(ip), "big") if ip.count(".") == 3 else -1
        except (OSError, ValueError):
            return False
        if n < 0:
            return False
        for net, mask in self.v4:
            if n & mask == net:
                return True
        if self.v6:
            n6 = 0xFFFF00000000 | n
            for net, mask in self.v6:
                if n6 & mask == net:
                    return True
        return False
