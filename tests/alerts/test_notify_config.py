from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from auditimds.alerts.notify import (
    DEFAULT_KEY,
    NotifyConfig,
    NotifyConfigError,
    RetryConfig,
    mask_secrets,
    parse_notify,
)

SRC = "/etc/auditimds/auditimds.toml"


def test_defaults() -> None:
    cfg = parse_notify({}, SRC)
    assert cfg == NotifyConfig(source=SRC)
    assert not cfg.enabled
    assert cfg.window == 600 and cfg.hourly_cap == 30 and cfg.digest is True
    assert cfg.key == DEFAULT_KEY == ("rule.id", "host.id", "process.executable", "process.parent.executable")
    assert cfg.retry == RetryConfig()


def test_full_section(tmp_path: Path) -> None:
    conf = tmp_path / "apprise.yaml"
    conf.write_text("urls:\n  - json://127.0.0.1:1/:\n      tag: ops\n")
    cfg = parse_notify({
        "urls": ["json://127.0.0.1:8080/"], "config": "apprise.yaml", "tags": ["ops"], "window": "90s",
        "key": ["rule.id", "host.id"], "hourly_cap": 0, "digest": False, "title_max": 80, "body_max": 500,
        "spool_max": 10,
        "retry": {"attempts": 3, "backoff": "1s", "max_backoff": "1m", "give_up_after": "1h"},
    }, str(tmp_path / "auditimds.toml"))
    assert cfg.enabled
    assert cfg.config == str(conf)  # relative to the config file
    assert cfg.window == 90 and cfg.key == ("rule.id", "host.id") and cfg.hourly_cap == 0
    assert cfg.retry == RetryConfig(attempts=3, backoff=1, max_backoff=60, give_up_after=3600)
    assert parse_notify({"window": "1h"}, SRC).window == 3600
    lines = cfg.describe()
    assert 'window = "90s"' in lines and 'max_backoff = "1m"' in lines


BAD = [
    ({"url": ["json://x/"]}, f"{SRC}: [notify] unknown key 'url' (known: urls, config, tags, window, key, hourly_cap, "
                             "digest, retry, title_max, body_max, spool_max)"),
    ({"urls": "json://x/"}, f"{SRC}: [notify] urls: must be a list of strings, not str 'json://x/'"),
    ({"urls": [""]}, f"{SRC}: [notify] urls: item 1 must be a non-empty string, not ''"),
    ({"urls": ["json://a/", 3]}, f"{SRC}: [notify] urls: item 2 must be a non-empty string, not 3"),
    ({"urls": ["hooks.slack.com/services/x"]}, f"{SRC}: [notify] urls: item 1 is not an apprise URL (scheme://...): "
                                               "'***'"),
    ({"config": 1}, f"{SRC}: [notify] config: must be a non-empty string (the path of an apprise YAML or TEXT config "
                    "file), not int 1"),
    ({"config": "/nonexistent/apprise.yaml"}, f"{SRC}: [notify] config: no such file: /nonexistent/apprise.yaml"),
    ({"config": "/"}, f"{SRC}: [notify] config: not a regular file: /"),
    ({"tags": ["ops"]}, f"{SRC}: [notify] tags: only selects services of the apprise file named by [notify] config, "
                        "which is not set"),
    ({"window": 600}, f'{SRC}: [notify] window: must be a duration string like "90s", "10m" or "1h", not int 600'),
    ({"window": "10 minutes"}, f'{SRC}: [notify] window: must be a duration like "90s", "10m" or "1h", not '
                               '"10 minutes"'),
    ({"window": "0s"}, f'{SRC}: [notify] window: must be at least 1s, not "0s"'),
    ({"key": []}, f'{SRC}: [notify] key: must name at least one field (e.g. "rule.id")'),
    ({"key": ["rule id"]}, f'{SRC}: [notify] key: "rule id" is not a field name like "process.executable"'),
    ({"hourly_cap": "30"}, f"{SRC}: [notify] hourly_cap (0 = no cap): must be an integer, not str '30'"),
    ({"hourly_cap": -1}, f"{SRC}: [notify] hourly_cap (0 = no cap): must be between 0 and 100000, not -1"),
    ({"hourly_cap": True}, f"{SRC}: [notify] hourly_cap (0 = no cap): must be an integer, not bool True"),
    ({"digest": "yes"}, f"{SRC}: [notify] digest: must be true or false, not str 'yes'"),
    ({"title_max": 5}, f"{SRC}: [notify] title_max: must be between 20 and 250, not 5"),
    ({"body_max": 1.5}, f"{SRC}: [notify] body_max: must be an integer, not float 1.5"),
    ({"spool_max": 0}, f"{SRC}: [notify] spool_max: must be between 1 and 1000000, not 0"),
    ({"retry": 3}, f"{SRC}: [notify] retry: must be a table ([notify.retry]), not int 3"),
    ({"retry": {"tries": 3}}, f"{SRC}: [notify.retry] unknown key 'tries' (known: attempts, backoff, max_backoff, "
                              "give_up_after)"),
    ({"retry": {"attempts": 0}}, f"{SRC}: [notify.retry] attempts: must be between 1 and 100, not 0"),
    ({"retry": {"backoff": "5"}}, f'{SRC}: [notify.retry] backoff: must be a duration like "90s", "10m" or "1h", '
                                  'not "5"'),
    ({"retry": {"backoff": "10m", "max_backoff": "1m"}}, f"{SRC}: [notify.retry] max_backoff: must not be shorter "
                                                         "than backoff (10m)"),
    ({"retry": {"max_backoff": "2h", "give_up_after": "1h"}}, f"{SRC}: [notify.retry] give_up_after: must not be "
                                                              "shorter than max_backoff (2h)"),
]


@pytest.mark.parametrize("section,message", BAD, ids=[m.split(": ", 1)[1][:40] for _s, m in BAD])
def test_bad_configs(section: dict, message: str) -> None:
    with pytest.raises(NotifyConfigError) as ei:
        parse_notify(section, SRC)
    assert str(ei.value) == message
    assert "\n" not in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_not_a_table() -> None:
    with pytest.raises(NotifyConfigError, match=r"notify must be a table \(\[notify\]\)"):
        parse_notify(["x"], SRC)  # type: ignore[arg-type]


@pytest.mark.parametrize("url,masked", [
    ("json://user:s3cret@host:8080/", "json://user:***@host:8080/"),
    ("json://user:s3cret@host/hooks/abc?token=t0k&x=1", "json://user:***@host/***?token=***&x=1"),
    ("slack://T1234/B5678/abcdefXYZ/#alerts", "slack://***"),
    ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", "discord://***"),
    ("mailto://user:pa55@example.com?to=ops@example.com", "mailto://user:***@example.com?to=ops@example.com"),
    ("mailtos://user:pa55@smtp.example.com:587?pass=x&from=a@b", "mailtos://user:***@smtp.example.com:587?pass=***"
                                                                  "&from=a@b"),
    ("mmost://chat.example.com:8065/hooktoken123", "mmost://chat.example.com:8065/***"),
    ("no url at all", "***"),
])
def test_mask_secrets(url: str, masked: str) -> None:
    assert mask_secrets(url) == masked
    for secret in ("s3cret", "pa55", "t0k", "abcdefXYZ", "hooktoken123", "JHMHI8"):
        assert secret not in mask_secrets(url)


def test_importing_notify_does_not_import_apprise() -> None:
    code = ("import sys, auditimds.alerts.notify as n; n.parse_notify({'urls': ['json://x/']}, 'f');"
            "n.mask_secrets('slack://a/b/c'); assert 'apprise' not in sys.modules, 'apprise imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_alerts_stage_imports_no_later_stage() -> None:
    for name in ("notify.py", "notify_api.py", "notify_channels.py", "notify_config.py", "notify_policy.py",
                 "notify_render.py", "notify_state.py"):
        text = (Path(__file__).parents[2] / "auditimds" / "alerts" / name).read_text()
        for bad in ("auditimds.config", "..config", ".cli", "daemon", "pipeline"):
            assert f"import {bad}" not in text and f"from {bad}" not in text, (name, bad)
