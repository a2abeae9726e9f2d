from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditimds.audit.records import (
    decode,
    decode_str,
    enrichment,
    kernel_part,
    parse_event_id,
    parse_fields,
    split_header,
)

SYSCALL = (
    b'type=SYSCALL msg=audit(1795976294.920:267): arch=c000003e syscall=42 success=no exit=-115 a0=3 '
    b'a1=7ffe9d185f00 a2=10 a3=19 items=0 ppid=2341 pid=2364 auid=4294967295 uid=0 gid=0 euid=0 suid=0 '
    b'fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3" '
    b'exe="/usr/local/bin/python3.11" key="conn"\x1dARCH=x86_64 SYSCALL=connect AUID="unset" UID="root"'
)


def test_header_plain():
    h = split_header(SYSCALL)
    assert h is not None
    assert (h.node, h.rtype, h.eid) == (b"", b"SYSCALL", b"1795976294.920:267")
    assert SYSCALL[h.body:].startswith(b" arch=c000003e")


def test_header_node_prefix():
    line = b'node=work type=PATH msg=audit(1615114232.375:15558): item=0 name="/usr/bin/python3"'
    h = split_header(line)
    assert h is not None and (h.node, h.rtype, h.eid) == (b"work", b"PATH", b"1615114232.375:15558")


def test_header_unknown_type_and_empty_eoe_body():
    h = split_header(b"type=UNKNOWN[1334] msg=audit(1.2:3): prog-id=45 op=UNLOAD")
    assert h is not None and h.rtype == b"UNKNOWN[1334]"
    eoe = b"type=EOE msg=audit(1615225617.302:25836):"
    h = split_header(eoe)
    assert h is not None and h.rtype == b"EOE" and eoe[h.body:] == b""


@pytest.mark.parametrize(
    "line",
    [
        b"<134>Oct 28 09:56:44 centos6 audispd: node=centos6 type=EXECVE msg=audit(1477641404.062:4871): argc=1 a0=\"id\"",
        b"    type=EXECVE msg=audit(1477641404.062:4871): argc=1 a0=\"id\"",
        b"Oct 28 09:56:44 host audispd: type=EXECVE msg=audit(1477641404.062:4871): argc=1 a0=\"id\"",
    ],
)
def test_header_wrapped_by_syslog_or_yaml(line):
    h = split_header(line)
    assert h is not None and h.rtype == b"EXECVE" and h.eid == b"1477641404.062:4871"
    assert line[h.body:].strip() == b'argc=1 a0="id"'
    if b"node=" in line:
        assert h.node == b"centos6"


@pytest.mark.parametrize(
    "line",
    [b"type=UNKNOWN[1329] msg=g", b"", b"garbage", b"node=x", b"type=SYSCALL msg=audit(1.2:3 no close",
     b"nametype=NORMAL and more", b"----", b"time->Mon Mar  8 18:27:12 2021"],
)
def test_header_malformed(line):
    assert split_header(line) is None


def test_event_id():
    assert parse_event_id(b"1795976294.920:267") == (1795976294, 920, 267)
    assert parse_event_id(b"1795976294.920") is None
    assert parse_event_id(b"abc.def:ghi") is None


@pytest.mark.parametrize(
    "sep", [b"\x1d", b"#035", b"\\u001D", b"\\u001d"],
)
def test_enrichment_separator_and_mangled_forms(sep):
    line = b'type=SYSCALL msg=audit(1.000:1): comm="x" key="nginx_conf"' + sep + b"ARCH=x86_64 SYSCALL=execve"
    h = split_header(line)
    assert h is not None
    raw = kernel_part(line, h.body)
    assert parse_fields(raw)[b"key"] == b'"nginx_conf"'
    assert enrichment(line, h.body) == b"ARCH=x86_64 SYSCALL=execve"


def test_enriched_saddr_braces_do_not_leak_into_kernel_fields():
    line = (b"type=SOCKADDR msg=audit(1795976294.960:281): saddr=02000050A9FEA9FE0000000000000000"
            b"\x1dSADDR={ saddr_fam=inet laddr=169.254.169.254 lport=80 }")
    h = split_header(line)
    assert parse_fields(kernel_part(line, h.body)) == {b"saddr": b"02000050A9FEA9FE0000000000000000"}


def test_parse_fields_odd_bodies():
    f = parse_fields(b'  a2[1]="BBB" a5="x"')
    assert f == {b"a2[1]": b'"BBB"', b"a5": b'"x"'}
    f = parse_fields(b"pid=1 subj==/usr/sbin/ntpd (enforce) comm=\"ntpd\"")
    assert f[b"subj"] == b"=/usr/sbin/ntpd" and f[b"comm"] == b'"ntpd"'
    assert parse_fields(b"avc:  denied  { read } for  pid=5") == {b"pid": b"5"}
    # a repeated key keeps its first value
    assert parse_fields(b"a=1 a=2") == {b"a": b"1"}


def test_decode_values_per_spec_examples():
    # /bin/echo MARK_ENC "with space" 'dq"x' "it's" "héllo" $'tab\there' ""
    assert decode(b'"/bin/echo"') == b"/bin/echo"
    assert decode(b"77697468207370616365") == b"with space"
    assert decode(b"64712278") == b'dq"x'
    assert decode(b'"it\'s"') == b"it's"
    assert decode_str(b"68C3A96C6C6F") == "héllo"
    assert decode(b"7461620968657265") == b"tab\there"
    assert decode(b'""') == b""
    assert decode(b"(null)") is None
    assert decode(b"top") == b"top"  # ausearch -i / old unquoted argument: kept as is
    assert decode(b"0A00") == b"\n\x00"  # NUL bytes survive
    assert decode(b"1234", encoded=False) == b"1234"  # numbers of non-encoded fields stay text
    assert decode_str(b"FF") == "\\xff"  # invalid UTF-8 -> deterministic escape


lines = st.binary(max_size=400)


@settings(max_examples=400, deadline=None)
@given(lines)
def test_property_random_bytes_never_raise(line):
    h = split_header(line)
    if h is not None:
        assert 0 <= h.body <= len(line)
        parse_event_id(h.eid)
        parse_fields(kernel_part(line, h.body))
        enrichment(line, h.body)
    for tok in line.split():
        decode(tok)
        decode_str(tok)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(SYSCALL)))
def test_property_truncated_real_line(n):
    line = SYSCALL[:n]
    h = split_header(line)
    if h is not None:
        parse_fields(kernel_part(line, h.body))


def test_one_megabyte_line():
    big = b'type=EXECVE msg=audit(1.000:1): argc=1 a0="' + b"A" * (1 << 20) + b'"'
    h = split_header(big)
    assert h is not None
    assert len(parse_fields(kernel_part(big, h.body))[b"a0"]) == (1 << 20) + 2
    junk = b"x=" * (1 << 19)
    assert split_header(junk) is None
    parse_fields(junk)


def test_text_that_looks_like_a_mangled_separator_inside_a_value_is_not_one():
    """A process named `#035UID=admin` must not cut the record or fake user.name (RAW-format hosts)."""
    line = b'type=SYSCALL msg=audit(1.000:1): comm="#035UID=admin" exe="/tmp/x" key="k"'
    h = split_header(line)
    assert parse_fields(kernel_part(line, h.body))[b"exe"] == b'"/tmp/x"'
    assert enrichment(line, h.body) == b""
    sock = b"type=SOCKADDR msg=audit(1.000:1): saddr=0200#035SADDR={ saddr_fam=inet laddr=1.2.3.4 lport=80 }"
    h = split_header(sock)
    assert kernel_part(sock, h.body) == b" saddr=0200"
