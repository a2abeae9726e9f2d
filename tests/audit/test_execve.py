from __future__ import annotations

from auditimds.audit.execve import rebuild_argv
from auditimds.audit.records import split_header
from tests.conftest import CORPUS_PUBLIC, lines_of


def raws(lines):
    out = []
    for ln in lines:
        h = split_header(ln)
        assert h is not None
        if h.rtype == b"EXECVE":
            out.append((ln, h.body))
    return out


def test_encodings_in_one_record():
    rec = lines_of(
        'type=EXECVE msg=audit(1795976469.444:16776): argc=8 a0="/bin/echo" a1="MARK_ENC" '
        'a2=77697468207370616365 a3=64712278 a4="it\'s" a5=68C3A96C6C6F a6=7461620968657265 a7=""'
    )
    argv, truncated = rebuild_argv(raws(rec))
    assert argv == ["/bin/echo", "MARK_ENC", "with space", 'dq"x', "it's", "héllo", "tab\there", ""]
    assert not truncated


def test_split_argument_with_quoted_chunks_and_next_arg_in_same_record():
    b = "B" * 30
    rec = lines_of(
        f'type=EXECVE msg=audit(1.000:5): argc=6 a0="/bin/echo" a1="MARKSPLITQ" a2="{b}" a3="{b}" '
        f'a4_len=60 a4[0]="{b}"\n'
        f'type=EXECVE msg=audit(1.000:5):  a4[1]="{b}" a5="{b}"'
    )
    argv, truncated = rebuild_argv(raws(rec))
    assert argv == ["/bin/echo", "MARKSPLITQ", b, b, b * 2, b]
    assert not truncated


def test_long_hex_argument_over_three_records_laurel():
    path = CORPUS_PUBLIC / "laurel" / "testdata" / "record-execve-long.txt"
    argv, truncated = rebuild_argv(raws(path.read_bytes().splitlines()))
    assert not truncated
    assert argv[0] == "/bin/echo"
    # a1_len=16384 is the hex length: 8192 bytes
    assert len(argv[1]) == 8192
    assert argv[1].startswith("baaaa")


def test_missing_argument_marks_truncated():
    rec = lines_of('type=EXECVE msg=audit(1.000:5): argc=3 a0="a" a1="b"')
    argv, truncated = rebuild_argv(raws(rec))
    assert argv == ["a", "b"] and truncated


def test_missing_chunk_marks_truncated():
    rec = lines_of('type=EXECVE msg=audit(1.000:5): argc=2 a0="a" a1_len=4 a1[0]="xy"\n'
                   'type=EXECVE msg=audit(1.000:5):  a1[2]="zz"')
    argv, truncated = rebuild_argv(raws(rec))
    assert truncated and argv[0] == "a"


def test_argc_zero_and_unquoted_legacy():
    # linux-audit-parser-rs line-execve.txt: argc=0 a0="whoami" -> the argument present is kept
    argv, truncated = rebuild_argv(raws(lines_of('type=EXECVE msg=audit(1.000:5): argc=0 a0="whoami"')))
    assert argv == ["whoami"] and not truncated
    # beats test.log: a0=top (unquoted, not hex): kept as text
    argv, _ = rebuild_argv(raws(lines_of("type=EXECVE msg=audit(1.000:5): argc=1 a0=top")))
    assert argv == ["top"]


def test_no_argc_uses_the_arguments_present():
    argv, truncated = rebuild_argv(raws(lines_of('type=EXECVE msg=audit(1.000:5): a0="x" a1="y"')))
    assert argv == ["x", "y"] and not truncated


def test_a_null_argument_is_empty_text_on_both_paths():
    # `(null)` decodes to nothing; the one-record fast path once appended b"" (bytes) instead of ""
    one = lines_of('type=EXECVE msg=audit(1795976469.444:16777): argc=3 a0="/bin/x" a1=(null) a2="y"')
    split = lines_of(
        'type=EXECVE msg=audit(1795976469.444:16778): argc=3 a0="/bin/x" a1=(null)\n'
        'type=EXECVE msg=audit(1795976469.444:16778): a2="y"'
    )
    for rec in (one, split):
        argv, truncated = rebuild_argv(raws(rec))
        assert argv == ["/bin/x", "", "y"]
        assert all(type(a) is str for a in argv)
        assert not truncated
