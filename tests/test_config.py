"""The configuration file: defaults, overrides, and a table of bad configs with their exact messages."""

from __future__ import annotations

import subprocess
import sys

import pytest

from auditimds.config import Config, ConfigError, describe, load_config, parse_config
from tests.conftest import REPO


def test_shipped_config_is_valid_and_equals_the_defaults():
    cfg = load_config(str(REPO / "config" / "auditimds.toml"))
    defaults = Config()
    for attr in ("input_path", "start", "state_dir", "rule_paths", "builtin_rules", "output_stdout", "output_jsonl",
                 "log_level", "health_interval", "metrics_textfile", "exceptions"):
        assert getattr(cfg, attr) == getattr(defaults, attr), attr
    assert not cfg.notify.enabled


def test_values_and_overrides():
    cfg = parse_config({"input": {"path": "/x/audit.log", "start": "beginning"}, "rules": {"paths": ["/r"]},
                        "output": {"stdout": False, "jsonl": "/o.jsonl"}, "log": {"health_interval": 0}}, "c.toml")
    assert (cfg.input_path, cfg.start, cfg.rule_paths, cfg.output_stdout, cfg.output_jsonl, cfg.health_interval) == (
        "/x/audit.log", "beginning", ("/r",), False, "/o.jsonl", 0)
    over = cfg.with_overrides(input_path="/y.log", state_dir=None)
    assert over.input_path == "/y.log" and over.state_dir == cfg.state_dir


BAD = [
    ("[inptu]\npath = \"x\"\n", "c.toml: unknown section [inptu] (known: [input], [state], [rules], [output], [host], "
                                "[log], [metrics], [notify], [exceptions])"),
    ("[input]\npth = \"x\"\n", "c.toml: [input] unknown key 'pth' (known: path, start)"),
    ("[input]\nstart = \"middle\"\n", 'c.toml: [input] start: must be one of "end", "beginning", not "middle"'),
    ("[input]\npath = 3\n", "c.toml: [input] path: must be a string, not int 3"),
    ("[input]\npath = \"\"\n", "c.toml: [input] path: must not be empty (remove the key to use the default)"),
    ("[output]\nstdout = \"yes\"\n", "c.toml: [output] stdout: must be true or false, not str 'yes'"),
    ("[rules]\npaths = \"/r\"\n", "c.toml: [rules] paths: must be a list of strings, not str '/r'"),
    ("[rules]\npaths = [\"/r\", 2]\n", "c.toml: [rules] paths: item 2 must be a non-empty string, not 2"),
    ("[log]\nlevel = \"loud\"\n", 'c.toml: [log] level: must be one of "debug", "info", "warning", "error", not "loud"'),
    ("[log]\nhealth_interval = -5\n", "c.toml: [log] health_interval: must be 0 (off) or a number of seconds"),
    ("[log]\nhealth_interval = true\n", "c.toml: [log] health_interval: must be an integer, not bool True"),
    ("input = 3\n", "c.toml: input must be a table ([input]), not a value"),
    ("[notify]\nwindow = \"10 minutes\"\n",
     'c.toml: [notify] window: must be a duration like "90s", "10m" or "1h", not "10 minutes"'),
    ("[[exceptions]]\nrule_id = \"x\"\n",
     "c.toml: [[exceptions]] #1: lists no field to match (it would silence every alert of its rule)"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m.split(": ", 1)[1][:40] for _, m in BAD])
def test_bad_configs_have_exact_messages(tmp_path, text, message):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(str(p))
    assert str(e.value) == message.replace("c.toml", str(p))


def test_file_level_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(str(tmp_path))
    (tmp_path / "bad.toml").write_text("[input\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(str(tmp_path / "bad.toml"))
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(str(tmp_path / "bin.toml"))


def test_secrets_in_a_file_other_users_can_read_are_refused(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[notify]\nurls = ["json://user:Hunter2pw@127.0.0.1:9/"]\n')
    p.chmod(0o644)
    with pytest.raises(ConfigError) as e:
        load_config(str(p))
    assert "readable by other users (mode 0644" in str(e.value)
    assert f"chown root:auditimds {p} && chmod 0640 {p}" in str(e.value)
    p.chmod(0o600)
    cfg = load_config(str(p))
    text = "\n".join(describe(cfg))
    assert "Hunter2pw" not in text and "json://user:***@127.0.0.1:9/" in text


def test_check_config_command(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[input]\nstart = "beginning"\n[[exceptions]]\nparent_executable = ["/opt/a/*"]\n')
    r = subprocess.run([sys.executable, "-m", "auditimds", "check-config", str(p)], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 0 and 'start = "beginning"' in r.stdout and 'parent_executable = ["/opt/a/*"]' in r.stdout
    p.write_text("[input]\nstart = 1\n")
    r = subprocess.run([sys.executable, "-m", "auditimds", "check-config", str(p)], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 2 and r.stderr.strip() == f"auditimds: error: {p}: [input] start: must be a string, not int 1"


def test_an_apprise_config_file_other_users_can_read_is_refused(tmp_path):
    ap = tmp_path / "ap.yml"
    ap.write_text("urls:\n  - json://user:pw@127.0.0.1/\n")
    ap.chmod(0o644)
    p = tmp_path / "c.toml"
    p.write_text('[notify]\nconfig = "ap.yml"\n')
    p.chmod(0o600)
    with pytest.raises(ConfigError) as e:
        load_config(str(p))
    msg = str(e.value)
    assert msg.startswith(f"{ap}: holds notification URLs") and "(mode 0644" in msg
    assert f"[notify] config in {p}" in msg and f"chown root:auditimds {ap} && chmod 0640 {ap}" in msg
    assert "pw" not in msg
    ap.chmod(0o640)  # group: the test user's own (root or not), like root:auditimds
    if ap.stat().st_gid == 0:
        assert load_config(str(p)).notify.config == str(ap)
    ap.chmod(0o600)
    assert load_config(str(p)).notify.config == str(ap)


def test_secret_file_problem_accepts_the_service_group_only():
    from auditimds.config import secret_file_problem

    assert secret_file_problem("/f", 0o100600, "root") is None
    assert secret_file_problem("/f", 0o100640, "auditimds") is None
    assert secret_file_problem("/f", 0o100640, "root") is None
    assert "group adm" in (secret_file_problem("/f", 0o100640, "adm") or "")
    assert "mode 0604" in (secret_file_problem("/f", 0o100604, "auditimds") or "")


def test_notifications_doc_gives_a_mode_the_service_user_can_read():
    # the unit runs as User=auditimds: "0600, owned by root" would lock the service out of its own config
    doc = (REPO / "docs" / "notifications.md").read_text()
    section = doc.split("The URLs hold secrets.", 1)[1].split("\n\n", 1)[0]
    assert "root:auditimds" in section and "0640" in section
    assert "0600, owned by root" not in doc.replace("\n", " ")


def test_relative_rule_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    etc = tmp_path / "etc"
    (etc / "myrules").mkdir(parents=True)
    p = etc / "c.toml"
    p.write_text('[rules]\npaths = ["myrules", "./myrules", "hardened", "%s"]\n' % (etc / "myrules"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(str(p))
    assert cfg.rule_paths == (str(etc / "myrules"), str(etc / "myrules"), "hardened", str(etc / "myrules"))
    # the same from a relative spelling of the config file
    monkeypatch.chdir(tmp_path)
    assert load_config("etc/c.toml").rule_paths[0] == str(etc / "myrules")


def test_a_missing_rule_path_names_the_config_file_and_the_key(tmp_path, monkeypatch):
    p = tmp_path / "c.toml"
    p.write_text('[rules]\npaths = ["hardened", "nosuch"]\n')
    (tmp_path / "cwd" / "nosuch").mkdir(parents=True)  # present in the current directory: not the one meant
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(ConfigError) as e:
        load_config(str(p))
    assert str(e.value).startswith(f"{p}: [rules] paths: item 2 ('nosuch'): no such file or directory: "
                                   f"{tmp_path / 'nosuch'} (shipped packs: ")
    assert "--rules" not in str(e.value)


def test_check_config_refuses_a_missing_rule_path_with_the_key(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[rules]\npaths = ["rules.d"]\n')
    r = subprocess.run([sys.executable, "-m", "auditimds", "check-config", str(p)], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 2 and f"{p}: [rules] paths: item 1 ('rules.d')" in r.stderr and "--rules" not in r.stderr
    (tmp_path / "rules.d").mkdir()
    (tmp_path / "rules.d" / "seed.toml").write_bytes(
        (REPO / "config" / "rules" / "unusual_instance_metadata_service_api_request.toml").read_bytes())
    r = subprocess.run([sys.executable, "-m", "auditimds", "check-config", str(p)], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert f'paths = ["{tmp_path / "rules.d"}"]' in r.stdout
