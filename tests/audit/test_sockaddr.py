from __future__ import annotations

import pytest

from auditimds.audit.records import decode
from auditimds.audit.sockaddr import (
    AF_INET,
    AF_INET6,
    AF_NETLINK,
    AF_UNIX,
    decode_sockaddr,
    is_little_endian,
)


def sa(hexstr: str, le: bool = True):
    return decode_sockaddr(bytes.fromhex(hexstr), le)


def test_inet_imds():
    s = sa("02000050A9FEA9FE0000000000000000")
    assert (s.family, s.ip, s.port, s.address) == (AF_INET, "169.254.169.254", 80, "169.254.169.254")


def test_inet6_mapped_is_normalised_to_ipv4_but_keeps_the_written_form():
    s = sa("0A0000500000000000000000000000000000FFFFA9FEA9FE00000000")
    assert s.family == AF_INET6 and s.port == 80
    assert s.ip == "169.254.169.254"
    assert s.address == "::ffff:169.254.169.254"


def test_inet6_aws_imds_v6():
    s = sa("0A00005000000000FD000EC200000000000000000000025400000000")
    assert (s.ip, s.port) == ("fd00:ec2::254", 80)


def test_inet6_lowercase_hex_from_hand_edited_fixture():
    raw = decode(b"0A00DE9900000000000000000000000000002a02cf40000000000000")
    # 28 bytes hex with the address at offset 8
    s = decode_sockaddr(raw)
    assert s.family == AF_INET6 and s.port == 0xDE99


def test_unix_path_with_stack_garbage_after_nul():
    s = sa("01002F7661722F72756E2F6E7363642F736F636B65740000E0A5B94F4C7F")
    assert (s.family, s.path) == (AF_UNIX, "/var/run/nscd/socket")


def test_unix_abstract():
    s = sa("0100006D61726B5F61627374726163745F736F636B00")
    assert s.path == "@mark_abstract_sock"


def test_unix_too_short():
    s = sa("0100")
    assert s.family == AF_UNIX and s.truncated and s.path is None


def test_netlink():
    s = sa("100000000000000000000000")
    assert s.family == AF_NETLINK and s.netlink_pid == 0


def test_big_endian_family_from_arch():
    # ppc64 bind, laurel record-bind-ipv4-bigendian.txt: 0.0.0.0:55555
    assert not is_little_endian(0x80000015)
    assert is_little_endian(0xC000003E) and is_little_endian(0x40000003)
    s = sa("0002D903000000000000000000000000", le=False)
    assert (s.family, s.ip, s.port) == (AF_INET, "0.0.0.0", 55555)
    # read little-endian, the same bytes are not an inet address
    assert sa("0002D903000000000000000000000000", le=True).family != AF_INET


@pytest.mark.parametrize("hexstr", ["", "02", "0200", "02000050A9FE", "0A000050000000"])
def test_short_inputs(hexstr):
    s = sa(hexstr)
    if len(hexstr) < 4:
        assert s is None
    else:
        assert s.ip is None and s.truncated


def test_unspec_and_unknown_family():
    assert sa("00000000000000000000000000000000").ip is None
    assert sa("2A00000000").family == 42
