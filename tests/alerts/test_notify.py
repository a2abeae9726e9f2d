"""Flood control, spool, retry and persistence with an injected clock and sender (no network)."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from auditimds.alerts.notify import STATE_FILE, Notifier, notify_test, parse_notify
from auditimds.alerts.notify_render import flavour_of, inert, inert_title, render, summarize

T0 = 1_800_000_000.0 - (1_800_000_000 % 3600) + 600  # 10 minutes into a clock hour


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Sender:
    def __init__(self) -> None:
        self.sent: List[Tuple[str, str, str]] = []
        self.up = True

    def __call__(self, title: str, body: str, channel: str) -> bool:
        if not self.up:
            return False
        self.sent.append((title, body, channel))
        return True


def alert(n: int = 0, exe: str = "/usr/bin/curl", host: str = "web-3", cmd: Optional[str] = None,
          rule: str = "Unusual Instance Metadata Service (IMDS) API Request") -> Dict[str, Any]:
    return {
        "@timestamp": f"2026-11-29T18:25:{n % 60:02d}.000Z",
        "alert": {"id": f"id{n:030d}"},
        "rule": {"id": "ecc0cd54", "name": rule, "severity": "medium"},
        "host": {"name": host, "id": "h-" + host},
        "user": {"name": "www-data", "id": "33"},
        "process": {"name": exe.rsplit("/", 1)[-1], "pid": 100 + n, "executable": exe,
                    "command_line": cmd if cmd is not None else f"curl http://169.254.169.254/latest/meta-data/{n}",
                    "working_directory": "/var/www", "parent": {"executable": "/usr/sbin/apache2"}},
        "destination": {"ip": "169.254.169.254", "port": 80},
    }


def make(tmp_path: Path, clock: Clock, sender: Sender, **section: Any) -> Notifier:
    section.setdefault("urls", ["json://127.0.0.1:9/"])
    cfg = parse_notify(section, "test.toml")
    return Notifier(cfg, tmp_path, clock=clock, send=sender)


def test_six_identical_alerts_one_notification_then_digest(tmp_path: Path) -> None:
    clock, sender = Clock(), Sender()
    n = make(tmp_path, clock, sender)
    for i in range(6):
        clock.t += 10
        n.submit(alert(i))
        n.pump()
    assert len(sender.sent) == 1
    title, body, _ = sender.sent[0]
    assert title == "IMDS access by curl on web-3"
    assert "curl http://169.254.169.254/latest/meta-data/0" in body
    c = n.counters()
    assert (c["notified"], c["suppressed"], c["digests"]) == (1, 5, 0)
    clock.t = T0 + 10 + 600 - 1
    n.pump()
    assert len(sender.sent) == 1  # window still open
    clock.t += 1
    n.pump()
    assert len(sender.sent) == 2
    title, body, _ = sender.sent[1]
    assert title.startswith("5 more like this on web-3")
    assert "5 more alerts like this on web-3 since 18:25:01, last at 18:25:05" in body
    assert "meta-data/5" in body  # the last command line
    assert n.counters()["digests"] == 1 and n.counters()["windows_open"] == 0
    # After the window: the same key notifies again.
    n.submit(alert(7))
    n.pump()
    assert len(sender.sent) == 3


def test_key_fields_separate_windows(tmp_path: Path) -> None:
    clock, sender = Clock(), Sender()
    n = make(tmp_path, clock, sender)
    n.submit(alert(1))
    n.submit(alert(2, exe="/usr/bin/wget"))
    n.submit(alert(3, host="web-4"))
    n.submit(alert(4))
    n.pump()
    assert len(sender.sent) == 3
    n2 = make(tmp_path / "b", clock, Sender(), key=["rule.id"])
    n2.submit(alert(1))
    n2.submit(alert(2, exe="/usr/bin/wget"))
    assert n2.counters()["suppressed"] == 1


def test_no_digest_when_disabled(tmp_path: Path) -> None:
    clock, sender = Clock(), Sender()
    n = make(tmp_path, clock, sender, digest=False)
    for i in range(3):
        n.submit(alert(i))
    clock.t += 700
    n.pump()
    assert len(sender.sent) == 1


def test_hourly_cap(tmp_path: Path) -> None:
    clock, sender = Clock(), Sender()
    n = make(tmp_path, clock, sender, hourly_cap=3)
    for i in range(10):
        n.submit(alert(i, exe=f"/tmp/x{i}"))  # all different keys
    n.pump()
    titles = [t for t, _b, _c in sender.sent]
    assert len(titles) == 4
    assert titles[3] == "auditimds: hourly cap of 3 notifications reached"
    assert "(all are in the JSON lines output)" in sender.sent[3][1]
    assert n.counters()["held_this_hour"] == 7
    for i in range(10, 15):  # silence until the hour ends
        n.submit(alert(i, exe=f"/tmp/x{i}"))
    n.pump()
    assert len(sender.sent) == 4
    clock.t = (int(T0 // 3600) + 1) * 3600 + 1
    n.pump()
    assert len(sender.sent) == 5
    title, body, _ = sender.sent[4]
    assert title.startswith("auditimds: 12 alerts not notified (")
    assert "12 alerts were not notified between" in body and "hourly cap of 3" in body
    n.submit(alert(99, exe="/tmp/new"))
    n.pump()
    assert len(sender.sent) == 6 and sender.sent[5][0].startswith("IMDS access by new")


def test_outage_retry_spool_and_recovery_in_order(tmp_path: Path) -> None:
    clock, sender = Clock(), Sender()
    n = make(tmp_path, clock, sender, retry={"attempts": 3, "backoff": "2s", "max_backoff": "1m"})
    sender.up = False
    for i in range(5):
        n.submit(alert(i, exe=f"/tmp/p{i}"))
    n.pump()
    c = n.counters()
    assert c["failed"] == 1 and c["sent"] == 0 and c["queued"] == 5
    clock.t += 2
    n.pump()
    clock.t += 4
    n.pump()  # third failure: spooled
    c = n.counters()
    assert c["failed"] == 3 and c["spooled"] == 5
    ch = c["channels"]["json://127.0.0.1:9/"]
    assert ch["state"] == "down" and ch["queued"] == 5
    n.submit(alert(5, exe="/tmp/p5"))  # arriving while down: spooled at once
    assert n.counters()["spooled"] == 6
    clock.t += 30
    n.pump()
    assert n.counters()["failed"] == 3  # next probe only after max_backoff
    sender.up = True
    clock.t += 30
    n.pump()
    assert [t for t, _b, _c in sender.sent] == [f"IMDS access by p{i} on web-3" for i in range(6)]
    c = n.counters()
    assert c["queued"] == 0 and c["channels"]["json://127.0.0.1:9/"]["state"] == "ok" and c["dropped"] == 0


def test_spool_is_bounded_and_drops_are_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock, sender = Clock(), Sender()
    sender.up = False
    n = make(tmp_path, clock, sender, spool_max=3, hourly_cap=0)
    for i in range(5):
        n.submit(alert(i, exe=f"/tmp/p{i}"))
    c = n.counters()
    assert c["queued"] == 3 and c["dropped"] == 2
    assert "dropped the oldest undelivered message" in caplog.text
    sender.up = True
    n.pump()
    assert [t for t, _b, _c in sender.sent] == [f"IMDS access by p{i} on web-3" for i in (2, 3, 4)]


def test_permanently_failing_channel_is_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock, sender = Clock(), Sender()
    sender.up = False
    n = make(tmp_path, clock, sender, retry={"attempts": 2, "backoff": "1s", "max_backoff": "1m",
                                             "give_up_after": "10m"})
    n.submit(alert(1))
    for _ in range(40):
        n.pump()
        clock.t += 60
    c = n.counters()
    assert c["dead_channels"] == 1
    assert c["channels"]["json://127.0.0.1:9/"]["state"] == "dead"
    tries = c["failed"]
    assert tries <= 13  # not retried forever
    assert caplog.text.count("no longer retried until restart") == 1
    n.save()
    # The message is kept for the next start.
    n2 = make(tmp_path, clock, Sender())
    n2.pump()
    assert len(n2._send_fn.sent) == 1  # type: ignore[union-attr]


def test_restart_keeps_windows_and_delivers_spool(tmp_path: Path) -> None:
    clock, sender = Clock(), Sender()
    n = make(tmp_path, clock, sender)
    n.submit(alert(1))
    n.pump()
    sender.up = False
    n.submit(alert(2, exe="/tmp/other"))
    n.pump()
    n.stop()
    st = tmp_path / STATE_FILE
    assert stat.S_IMODE(os.stat(st).st_mode) == 0o600
    doc = json.loads(st.read_text())
    assert len(doc["windows"]) == 2 and sum(len(q) for q in doc["queues"].values()) == 1
    assert "json://" not in st.read_text()  # channels are hashes: no URL (or secret) in the state file
    # "Reboot": a new notifier on the same state dir.
    clock.t += 60
    s2 = Sender()
    n2 = make(tmp_path, clock, s2)
    n2.submit(alert(3))  # same key as alert 1, within the window: not re-notified
    n2.pump()
    assert [t for t, _b, _c in s2.sent] == ["IMDS access by other on web-3"]
    assert n2.counters()["suppressed"] >= 1
    clock.t += 600
    n2.pump()
    assert s2.sent[-1][0].startswith("1 more like this on web-3")


def test_damaged_state_file_is_reported_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    n = make(tmp_path, Clock(), Sender())
    assert "is damaged" in caplog.text
    n.submit(alert(1))
    n.pump()


def test_submit_never_raises(tmp_path: Path) -> None:
    clock, sender = Clock(), Sender()
    n = make(tmp_path, clock, sender)
    n.submit({})
    n.submit({"process": "not a dict", "rule": None})
    n.submit({"process": {"args": ["a", 1, None]}, "destination": {"ip": "fd00:ec2::254", "port": 80}})
    n.pump()
    assert len(sender.sent) >= 1

    def boom(*_a: Any) -> bool:
        raise RuntimeError("network on fire")

    n3 = Notifier(parse_notify({"urls": ["json://x/"]}, "t"), tmp_path / "c", clock=clock, send=boom)
    n3.submit(alert(1))
    n3.pump()
    assert n3.counters()["channels"]["json://x/"]["last_error"] == "RuntimeError: network on fire"


def test_worker_thread_delivers_and_stops(tmp_path: Path) -> None:
    import time as _t

    sender = Sender()
    n = Notifier(parse_notify({"urls": ["json://x/"]}, "t"), tmp_path, send=sender)
    n.start()
    try:
        n.submit(alert(1))
        deadline = _t.monotonic() + 5
        while not sender.sent and _t.monotonic() < deadline:
            _t.sleep(0.01)
        assert len(sender.sent) == 1
    finally:
        n.stop(5)
    assert (tmp_path / STATE_FILE).exists()


def test_notify_test_with_injected_sender() -> None:
    cfg = parse_notify({"urls": ["json://u:pw@127.0.0.1:9/", "slack://T/B/C"]}, "t")
    seen: List[str] = []

    def send(title: str, body: str, channel: str) -> bool:
        seen.append(title)
        return channel.startswith("json")

    res = notify_test(cfg, send=send)
    assert res == [("json://u:***@127.0.0.1:9/", True, "delivered"), ("slack://***", False, "send reported a failure")]
    assert all(t.startswith("[test] IMDS access by curl on") for t in seen)


# -- rendering ----------------------------------------------------------------------------------------------

HOSTILE = "curl <!channel> <!here|here> <@U123> <http://evil.example|click here> @here @channel @everyone " \
          "[docs](http://evil.example) `rm -rf` *bold* _it_ ~s~ a&b\r\nSubject: x\x1b[31m\u202e"


def test_flavours() -> None:
    assert [flavour_of(u) for u in ("slack://a/b/c", "https://hooks.slack.com/services/a/b/c", "mmost://h/t",
                                    "discord://a/b", "mailto://a@b", "mailtos://a@b", "json://h/", "form://h/",
                                    "xml://h/", "ntfy://t")] == \
        ["slack", "slack", "markdown", "discord", "email", "email", "text", "text", "text", "text"]


def test_slack_inert() -> None:
    s = inert(HOSTILE, "slack")
    assert s.startswith("`") and s.endswith("`") and s.count("`") == 2
    for bad in ("<", ">", "@here", "@channel", "@everyone", "\r", "\n", "\x1b", "\u202e"):
        assert bad not in s, bad
    assert "&lt;!channel&gt;" in s and "&lt;http://evil.example|click here&gt;" in s and "a&amp;b" in s
    # apprise >= 2 escapes &<> itself: then we do not.
    assert "&lt;" not in inert(HOSTILE, "slack", escape_entities=False)


def _unescaped(s: str, token: str) -> bool:
    """`token` occurs in `s` with its first character not backslash-escaped."""
    i = s.find(token)
    while i >= 0:
        if i == 0 or s[i - 1] != "\\":
            return True
        i = s.find(token, i + 1)
    return False


def test_markdown_and_discord_inert() -> None:
    m = inert(HOSTILE, "markdown")
    for bad in ("<", ">", "@here", "@channel", "\r", "\n"):
        assert bad not in m, bad
    for bad in ("](", "`", "*", "_", "~", "["):
        assert not _unescaped(m, bad), bad
    d = inert(HOSTILE, "discord")
    for bad in ("@here", "@everyone", "\n"):
        assert bad not in d, bad
    for bad in ("<", "@", "](", "`", "*", "["):
        assert not _unescaped(d, bad), bad


def test_email_title_has_no_header_injection() -> None:
    a = alert(1, exe="/tmp/cu\r\nBcc: victim@example.com")
    a["process"]["name"] = "cu\r\nBcc: victim@example.com"
    for flavour in ("email", "text", "slack", "markdown", "discord"):
        title, body = render({"kind": "alert", "data": summarize(a)}, flavour)
        assert "\r" not in title and "\n" not in title
        assert "\r" not in body
        assert all(not (0 <= ord(ch) < 32) or ch == "\n" for ch in body)
    assert inert_title("a\r\nb\u2028c\x00d") == "a b c d"


def test_body_truncation_and_generic_title() -> None:
    long_cmd = "python3 -c " + "A" * 10000
    title, body = render({"kind": "alert", "data": summarize(alert(1, cmd=long_cmd, rule="Reverse shell"))}, "text",
                         body_max=600, title_max=40)
    assert len(body) <= 600 and "python3 -c AAAA" in body and "(10011 chars)" in body
    assert "Alert id: id" in body and "Parent: /usr/sbin/apache2" in body
    assert title == "Reverse shell: curl on web-3"
    title, _ = render({"kind": "alert", "data": summarize(alert(1, host="h" * 300))}, "text", title_max=40)
    assert len(title) == 40 and title.endswith("…")


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="auditimds.notify")


# -- check-config: what the agent would find unusable, found before it runs ----------------------------------

def test_notify_config_errors_name_the_key_and_mask_secrets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from auditimds.alerts.notify import notify_config_errors

    caplog.set_level(logging.DEBUG)
    cfg = parse_notify({"urls": ["notascheme://Hunter2pw@foo", "json://user:Hunter2pw@127.0.0.1/"]}, "c.toml")
    assert notify_config_errors(cfg) == [
        "c.toml: [notify] urls: item 1 (notascheme://***): apprise does not accept this URL (unknown scheme or "
        "bad/missing token): Unparseable URL notascheme://***"]
    # apprise logs the URLs it rejects whole: none of that reaches the log
    assert "Hunter2pw" not in caplog.text


@pytest.mark.parametrize("name,text,reason", [
    ("ap.yml", "urls: [\n  - : x\n",
     "no service in the apprise config file (apprise: Invalid Apprise YAML data specified.)"),
    ("ap.txt", "hello world\n", "no service in the apprise config file (apprise: Unparseable tag assignment"),
    ("ap.txt", "json://u:Hunter2pw@h/\nnotascheme://Hunter2pw@x\n",
     "apprise skips an entry: Unparseable URL notascheme://***"),
])
def test_notify_config_errors_for_an_apprise_file(tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str,
                                                  text: str, reason: str) -> None:
    from auditimds.alerts.notify import notify_config_errors

    caplog.set_level(logging.DEBUG)
    ap = tmp_path / name
    ap.write_text(text)
    errors = notify_config_errors(parse_notify({"config": str(ap)}, "c.toml"))
    assert len(errors) == 1 and errors[0].startswith(f"c.toml: [notify] config: {ap}: {reason}"), errors
    assert "Hunter2pw" not in errors[0] and "Hunter2pw" not in caplog.text


def test_notify_config_errors_none_for_a_usable_config(tmp_path: Path) -> None:
    from auditimds.alerts.notify import notify_config_errors

    ap = tmp_path / "ap.yml"
    ap.write_text("urls:\n  - json://user:pw@127.0.0.1/:\n      tag: ops\n")
    assert notify_config_errors(parse_notify({"urls": ["json://127.0.0.1/"], "config": str(ap)}, "c.toml")) == []
    errors = notify_config_errors(parse_notify({"config": str(ap), "tags": ["dev"]}, "c.toml"))
    assert errors == [f"c.toml: [notify] config: {ap}: no service in the apprise config file has a tag of dev"]


# -- each alert once, also across a crash -------------------------------------------------------------------


def test_an_alert_submitted_again_is_dropped_also_after_a_restart(tmp_path: Path) -> None:
    """The agent re-reads its log after a crash and submits the alerts it finds again: an alert id the
    notifier already took (sent, queued or counted in a window) is dropped and counted, never queued again."""
    clock, sender = Clock(), Sender()
    n = make(tmp_path, clock, sender, key=["alert.id"])
    n.submit(alert(1))
    n.submit(alert(1))
    n.pump()
    assert len(sender.sent) == 1 and n.counters()["duplicates"] == 1
    n.submit(alert(2))  # queued, then the process dies before sending it: the worker's save is what survives
    n.save()
    restarted = make(tmp_path, clock, sender, key=["alert.id"])
    for i in (1, 2, 3):
        restarted.submit(alert(i))
    restarted.pump()
    bodies = [b for _, b, _ in sender.sent]
    assert len(bodies) == 3 and [sum(f"meta-data/{i}" in b for b in bodies) for i in (1, 2, 3)] == [1, 1, 1]
    assert restarted.counters()["duplicates"] == 1 + 2  # the totals carry over from the first run


def test_a_message_is_in_the_state_file_before_it_is_sent(tmp_path: Path) -> None:
    """A crash after the send and before the next save must not lose the alert id: the worker writes the
    state (with the message queued and the alert id taken) before every send of unsaved work."""
    clock = Clock()
    seen_on_disk: List[Tuple[List[str], int]] = []

    def send(title: str, body: str, channel: str) -> bool:
        doc = json.loads((tmp_path / STATE_FILE).read_text())
        seen_on_disk.append(([a for a, _ in doc["seen"]], sum(len(q) for q in doc["queues"].values())))
        return True

    n = Notifier(parse_notify({"urls": ["json://127.0.0.1:9/"], "key": ["alert.id"]}, "t.toml"), tmp_path,
                 clock=clock, send=send)
    n.submit(alert(1))
    n.pump()
    n.submit(alert(2))
    n.pump()
    assert seen_on_disk == [([alert(1)["alert"]["id"]], 1),
                            ([alert(1)["alert"]["id"], alert(2)["alert"]["id"]], 1)]


def test_a_suppressed_alert_id_reaches_the_state_file_at_once(tmp_path: Path) -> None:
    """An alert only counted in a window changes no queue; its id is still written at the next pump, not a
    second later (a crash in between would count it twice in the digest)."""
    clock, sender = Clock(), Sender()
    n = make(tmp_path, clock, sender)
    n.submit(alert(1))
    n.pump()
    n.submit(alert(2))  # same key: suppressed
    n.pump()
    doc = json.loads((tmp_path / STATE_FILE).read_text())
    assert alert(2)["alert"]["id"] in [a for a, _ in doc["seen"]]
