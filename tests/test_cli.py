"""The command line as a user runs it: a real subprocess, exit codes, stdout/stderr contracts."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "host-a-dev_curl_creds.log"
SEED = REPO / "config" / "rules" / "unusual_instance_metadata_service_api_request.toml"


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "auditimds", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_scan_writes_only_alerts_to_stdout_and_a_summary_to_stderr():
    r = cli("scan", "--host-id", "h", str(FIXTURE))
    assert r.returncode == 0, r.stderr
    (alert,) = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert alert["rule"]["name"] == "Unusual Instance Metadata Service (IMDS) API Request"
    assert alert["host"]["id"] == "h"
    assert "38 lines" in r.stderr and "1 alerts" in r.stderr and "malformed" in r.stderr
    assert r.stderr.count("\n") == 1  # one summary line, no progress bar when stderr is not a terminal


def test_gzip_and_several_files_in_order(tmp_path):
    lines = FIXTURE.read_bytes().splitlines(keepends=True)
    # the exec part in an older rotated, compressed file; the connect in the current file
    cut = next(i for i, ln in enumerate(lines) if b"syscall=42" in ln)
    (tmp_path / "audit.log.1").write_bytes(gzip.compress(b"".join(lines[:cut])))
    (tmp_path / "audit.log").write_bytes(b"".join(lines[cut:]))
    r = cli("scan", str(tmp_path / "audit.log.1"), str(tmp_path / "audit.log"))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1, r.stderr
    assert "2 file(s)" in r.stderr


def test_events_command_writes_ecs_events():
    r = cli("events", str(FIXTURE))
    assert r.returncode == 0
    evs = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [e["event"]["action"] for e in evs] == ["exec", "exec", "exec", "connection_attempted"]


def test_alert_ids_are_stable_across_runs():
    a = cli("scan", "--host-id", "h", str(FIXTURE)).stdout
    b = cli("scan", "--host-id", "h", str(FIXTURE)).stdout
    assert json.loads(a)["alert"]["id"] == json.loads(b)["alert"]["id"]


def one_line_error(r: subprocess.CompletedProcess, text: str) -> None:
    assert r.returncode == 2
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("auditimds: error:") and text in lines[0], r.stderr


def test_usage_errors(tmp_path):
    one_line_error(cli(), "command is required")
    one_line_error(cli("scan"), "FILE")
    one_line_error(cli("frobnicate"), "invalid choice")
    one_line_error(cli("scan", "--bogus", str(FIXTURE)), "unrecognized arguments")
    one_line_error(cli("scan", str(tmp_path / "nope.log")), "no such file")
    one_line_error(cli("scan", str(FIXTURE), str(tmp_path / "nope.log")), "nope.log: no such file")
    one_line_error(cli("scan", str(tmp_path)), "is a directory")
    one_line_error(cli("scan", "--rules", str(tmp_path / "none.toml"), str(FIXTURE)), "no such file")
    one_line_error(cli("scan", "--no-builtin-rules", "--rules", str(tmp_path / "empty"), str(FIXTURE)),
                   "no such file")
    (tmp_path / "empty").mkdir()
    one_line_error(cli("scan", "--no-builtin-rules", "--rules", str(tmp_path / "empty"), str(FIXTURE)),
                   "no rules loaded")
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"type=SYSCALL x\n" * 5000)[:40])
    one_line_error(cli("scan", str(bad)), "bad.gz")


def test_unreadable_file_names_the_fix(tmp_path):
    if os.geteuid() == 0:
        # root reads anything; use an unprivileged user when there is one
        import pwd

        try:
            pwd.getpwnam("nobody")
        except KeyError:
            return
        secret = tmp_path / "audit.log"
        secret.write_bytes(FIXTURE.read_bytes())
        secret.chmod(0o600)
        tmp_path.chmod(0o755)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            sys.executable, "-m", "auditimds", "scan", str(secret)],
                           capture_output=True, text=True, env=env, cwd="/")
        one_line_error(r, "permission denied")
        assert "log_group" in r.stderr


def test_rules_option_adds_and_replaces_with_a_warning(tmp_path):
    # the same rule id from another file replaces the built-in one, with a warning
    text = SEED.read_text().replace('name = "Unusual Instance Metadata Service (IMDS) API Request"',
                                    'name = "Local copy of the IMDS rule"')
    (tmp_path / "copy.toml").write_text(text)
    r = cli("scan", "--rules", str(tmp_path), str(FIXTURE))
    assert r.returncode == 0, r.stderr
    (alert,) = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert alert["rule"]["name"] == "Local copy of the IMDS rule"
    assert "replace" in r.stderr.lower()


def test_refused_rule_is_skipped_with_one_warning(tmp_path):
    (tmp_path / "broken.toml").write_text("[rule]\nrule_id='x'\nname='x'\ntype='eql'\nlanguage='eql'\n"
                                          "query='''process where process.name = \"x\"'''\n")
    (tmp_path / "kql.toml").write_text("[rule]\nrule_id='y'\nname='y'\ntype='query'\nlanguage='kuery'\n"
                                       "query='process.name: x'\n")
    r = cli("scan", "--rules", str(tmp_path), str(FIXTURE))
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 1  # the built-in rule still runs
    warnings = [ln for ln in r.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 2 and any("broken.toml" in w for w in warnings) and any("kql.toml" in w for w in warnings)


def test_scan_without_any_rule_counts_events_only():
    r = cli("scan", "--no-builtin-rules", str(FIXTURE))
    assert r.returncode == 0 and r.stdout == ""
    assert "no rules: counting events only" in r.stderr and "7 events" in r.stderr


def test_shipped_pack_by_name(tmp_path):
    r = cli("scan", "--rules", "hardened", str(FIXTURE), cwd=tmp_path)  # not in a checkout: found by name
    assert r.returncode == 0, r.stderr
    names = {json.loads(ln)["rule"]["name"] for ln in r.stdout.splitlines()}
    assert "Unusual Instance Metadata Service (IMDS) API Request" in names and len(names) >= 2
    one_line_error(cli("scan", "--rules", "nosuchpack", str(FIXTURE), cwd=tmp_path), "shipped packs: hardened")


def test_version_says_which_core_runs():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("auditimds ")
    env = dict(os.environ, PYTHONPATH=str(REPO), AUDITIMDS_PURE="1")
    pure = subprocess.run([sys.executable, "-m", "auditimds", "--version"], capture_output=True, text=True, env=env)
    assert pure.stdout.strip().endswith("(pure-Python core: AUDITIMDS_PURE=1 is set)"), pure.stdout
    if os.environ.get("AUDITIMDS_PURE", "") in ("", "0") and os.environ.get("AUDITIMDS_REQUIRE_COMPILED") == "1":
        assert r.stdout.strip().endswith("(compiled core)"), r.stdout


def test_scan_of_an_aggregated_log_with_skewed_clocks(tmp_path):
    """node= logs: web1's clock 10 s ahead of web2's; web2's exec, then web1's activity, then web2's connect."""
    import re

    def shift(line: bytes, seconds: int) -> bytes:
        return re.sub(rb"audit\((\d+)\.", lambda m: b"audit(%d." % (int(m.group(1)) + seconds), line)

    web2 = [b"node=web2 " + ln for ln in FIXTURE.read_bytes().splitlines()]
    other = (REPO / "tests" / "fixtures" / "host-a-three-scenarios.log").read_bytes().splitlines()
    base2 = int(re.search(rb"audit\((\d+)\.", web2[0]).group(1))
    base1 = int(re.search(rb"audit\((\d+)\.", other[0]).group(1))
    web1 = [b"node=web1 " + shift(ln, base2 + 10 - base1) for ln in other]
    cut = next(i for i, ln in enumerate(web2) if b"syscall=42" in ln)
    (tmp_path / "agg.log").write_bytes(b"\n".join(web2[:cut] + web1 + web2[cut:]) + b"\n")
    r = cli("scan", str(tmp_path / "agg.log"))
    assert r.returncode == 0, r.stderr
    assert sorted(json.loads(ln)["host"]["id"] for ln in r.stdout.splitlines()) == ["web1", "web1", "web2"]


# -- input from pipes, FIFOs and standard input -------------------------------------------------------------


def cli_stdin(data: bytes, *args: str) -> subprocess.CompletedProcess:
    """The command with `data` written into a real pipe on its standard input."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "auditimds", *args], input=data, capture_output=True,
                          cwd=REPO, env=env, timeout=120)


def test_scan_and_events_read_standard_input_plain_or_gzip():
    for data in (FIXTURE.read_bytes(), gzip.compress(FIXTURE.read_bytes())):
        for name in ("-", "/dev/stdin"):
            r = cli_stdin(data, "scan", "--host-id", "h", name)
            assert r.returncode == 0, r.stderr
            (alert,) = [json.loads(ln) for ln in r.stdout.splitlines()]
            assert alert["host"]["id"] == "h" and b"38 lines" in r.stderr
        r = cli_stdin(data, "events", "-")
        assert r.returncode == 0, r.stderr
        assert len(r.stdout.splitlines()) == 4
    # the standard input once, between files
    r = cli_stdin(FIXTURE.read_bytes(), "scan", str(FIXTURE), "-")
    assert r.returncode == 0 and b"2 file(s)" in r.stderr and b"76 lines" in r.stderr, r.stderr
    r = cli_stdin(b"", "scan", "-", "-")
    assert r.returncode == 2 and r.stderr.decode().startswith("auditimds: error: - (standard input)")


def test_scan_reads_a_fifo(tmp_path):
    import threading

    for data in (FIXTURE.read_bytes(), gzip.compress(FIXTURE.read_bytes())):
        fifo = tmp_path / "audit.fifo"
        if fifo.exists():
            fifo.unlink()
        os.mkfifo(fifo)

        def feed(path=fifo, data=data):
            with open(path, "wb") as w:
                w.write(data)

        t = threading.Thread(target=feed, daemon=True)
        t.start()
        r = cli("scan", str(fifo))
        t.join(10)
        assert r.returncode == 0, r.stderr
        assert len(r.stdout.splitlines()) == 1 and "38 lines" in r.stderr


def test_scan_of_an_aggregated_log_from_a_pipe(tmp_path):
    """node= detection reads the start of the input; on a pipe those bytes are put back, nothing is lost."""
    web2 = b"\n".join(b"node=web2 " + ln for ln in FIXTURE.read_bytes().splitlines()) + b"\n"
    r = cli_stdin(gzip.compress(web2), "scan", "-")
    assert r.returncode == 0, r.stderr
    assert [json.loads(ln)["host"]["id"] for ln in r.stdout.splitlines()] == ["web2"]
    assert b"38 lines" in r.stderr


# -- output errors: one line, or quiet for a closed pipe ----------------------------------------------------


def test_output_write_error_is_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for args in (["scan", str(FIXTURE)], ["events", str(FIXTURE)],
                 ["check-config", str(REPO / "config" / "auditimds.toml")]):
        with open("/dev/full", "w") as full:
            r = subprocess.run([sys.executable, "-m", "auditimds", *args], stdout=full, stderr=subprocess.PIPE,
                               text=True, cwd=REPO, env=env, timeout=120)
        assert r.returncode not in (0, 2), (args, r.stderr)
        assert r.stderr.splitlines() == ["auditimds: error: cannot write output: No space left on device"], args


def _closed_pipe(argv: list, read_first: bool) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=env)
    assert p.stdout is not None and p.stderr is not None
    if read_first:
        p.stdout.readline()  # `| head -1`
    p.stdout.close()
    err = p.stderr.read().decode()
    rc = p.wait(timeout=300)
    return subprocess.CompletedProcess(argv, rc, "", err)


def test_closed_output_pipe_exits_quietly():
    from tests.conftest import shared_path

    big = str(shared_path("corpus", "real", "host-a.log.gz"))
    main_c = "import sys; from auditimds.cli import main; sys.exit(main(sys.argv[1:]))"  # no os._exit at the end
    for argv, read_first in (
        ([sys.executable, "-m", "auditimds", "events", str(FIXTURE)], False),
        ([sys.executable, "-m", "auditimds", "scan", str(FIXTURE)], False),
        ([sys.executable, "-m", "auditimds", "events", big], True),
        ([sys.executable, "-c", main_c, "events", big], True),
        ([sys.executable, "-c", main_c, "scan", str(FIXTURE)], False),
    ):
        r = _closed_pipe(argv, read_first)
        assert r.returncode == 0, (argv, r.stderr)
        assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr and "Error" not in r.stderr, \
            (argv, r.stderr)


# -- rule paths -----------------------------------------------------------------------------------------------


def test_rules_dir_without_rule_files_warns_once(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("no rules here")
    r = cli("scan", "--rules", str(empty), "--rules", str(empty) + "/", str(FIXTURE))
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 1  # the built-in rule still runs
    warnings = [ln for ln in r.stderr.splitlines() if "warning" in ln]
    assert warnings == [f"auditimds: warning: --rules {empty}: no *.toml rule files in this directory"]
    # without built-in rules: the error says why, and does not claim that no --rules was given
    r = cli("scan", "--no-builtin-rules", "--rules", str(empty), str(FIXTURE))
    one_line_error(r, "no rules loaded")
    assert f"--rules {empty}" in r.stderr and "no --rules given" not in r.stderr


def test_same_rules_path_twice_is_loaded_once():
    r = cli("scan", "--rules", "hardened", "--rules", "hardened", "--rules", "config/rules/hardened/",
            "--rules", "config/rules", str(FIXTURE))
    assert r.returncode == 0, r.stderr
    assert "replace" not in r.stderr and "warning" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


# -- options and messages -------------------------------------------------------------------------------------


def test_negative_reorder_ms_is_refused():
    one_line_error(cli("scan", "--reorder-ms", "-5", str(FIXTURE)), "--reorder-ms")
    one_line_error(cli("events", "--reorder-ms", "x", str(FIXTURE)), "--reorder-ms")
    assert cli("scan", "--reorder-ms", "0", str(FIXTURE)).returncode == 0


def test_verbose_on_scan_and_events():
    for cmd in ("scan", "events"):
        for flag in ("-v", "--verbose"):
            r = cli(cmd, flag, str(FIXTURE))
            assert r.returncode == 0, r.stderr
    assert cli("-v", "scan", str(FIXTURE)).returncode == 0


def test_events_summary_has_no_alert_count():
    r = cli("events", str(FIXTURE))
    assert r.returncode == 0
    (summary,) = r.stderr.splitlines()
    assert "alert" not in summary and "7 events" in summary


def test_warnings_from_the_rule_loader_use_the_cli_prefix(tmp_path):
    text = SEED.read_text().replace('name = "Unusual Instance Metadata Service (IMDS) API Request"',
                                    'name = "Local copy"')
    (tmp_path / "copy.toml").write_text(text)
    r = cli("scan", "--rules", str(tmp_path), str(FIXTURE))
    assert r.returncode == 0, r.stderr
    (warning,) = [ln for ln in r.stderr.splitlines() if "replaces" in ln]
    assert warning.startswith("auditimds: warning: rule "), warning
    r = cli("scan", "--no-builtin-rules", str(FIXTURE))
    assert r.stderr.splitlines()[0] == "auditimds: warning: no rules: counting events only"


def test_rules_check_accepts_shipped_pack_names(tmp_path):
    r = cli("rules", "check", "hardened", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": loaded: ") == 4
    one_line_error(cli("rules", "check", "nosuchpack", cwd=tmp_path), "nosuchpack: no such file or directory")


def test_doctor_knows_when_the_log_came_from_log_option(monkeypatch):
    import auditimds.ops.doctor as doctor_mod
    from auditimds.cli import main

    seen = []
    monkeypatch.setattr(doctor_mod, "doctor", lambda cfg, out, **kw: seen.append((cfg.input_path, kw)) or 0)
    assert main(["doctor", "--config", str(REPO / "config" / "auditimds.toml"), "--log", "/x/audit.log"]) == 0
    assert main(["doctor", "--config", str(REPO / "config" / "auditimds.toml")]) == 0
    assert seen[0] == ("/x/audit.log", {"log_from_option": True})
    assert seen[1][1] == {"log_from_option": False}


def test_check_config_refuses_notify_urls_apprise_cannot_use(tmp_path):
    cfg = tmp_path / "auditimds.toml"
    cfg.write_text('[notify]\nurls = ["notascheme://user:s3cretpw@127.0.0.1/x"]\n')
    os.chmod(cfg, 0o600)
    r = cli("check-config", str(cfg))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "[notify] urls" in r.stderr and "s3cretpw" not in r.stderr + r.stdout
    cfg.write_text('[notify]\nurls = ["json://127.0.0.1:9/x"]\n')
    r = cli("check-config", str(cfg))
    assert r.returncode == 0, r.stderr
