"""Notifications through the real apprise to real receivers on 127.0.0.1: SMTP (aiosmtpd), a JSON webhook
(`json://`), Mattermost's Slack-compatible webhook (`mmost://`) and Slack's own plugin (its HTTPS request
redirected to a loopback receiver: hooks.slack.com is never contacted)."""

from __future__ import annotations

import json
import logging
import time
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any, Dict, List

import pytest

from auditimds.alerts.notify import Notifier, notify_test, parse_notify

from .receivers import HttpReceiver, SmtpReceiver, wait_until
from .test_notify import HOSTILE, Clock, _unescaped, alert

pytest.importorskip("apprise")


def hostile_alert(n: int = 1) -> Dict[str, Any]:
    a = alert(n, cmd=HOSTILE)
    a["process"]["name"] = "curl\r\nBcc: victim@example.com <!channel>"
    return a


def notifier(tmp_path: Path, urls: List[str], clock: Any = None, **section: Any) -> Notifier:
    section["urls"] = urls
    n = Notifier(parse_notify(section, "test.toml"), tmp_path, clock=clock or time.time)
    n.resolve()
    return n


# -- content and escaping ------------------------------------------------------------------------------------

def test_email_through_smtp(tmp_path: Path) -> None:
    with SmtpReceiver() as smtp:
        n = notifier(tmp_path, [smtp.url()])
        n.submit(hostile_alert())
        n.pump()
        assert smtp.count == 1, n.counters()
        m = smtp.messages[0]
        assert m["to"] == ["ops@example.test"] and m["from"] == "auditimds@example.test"
        msg = m["msg"]
        subject = str(make_header(decode_header(msg["Subject"])))
        assert subject.startswith("IMDS access by curl")
        assert "\r" not in subject and "\n" not in subject
        assert msg.get_all("Bcc") is None  # the CR/LF in the process name did not become a header
        raw_headers = m["raw"].split(b"\r\n\r\n", 1)[0].decode()
        assert "\nBcc:" not in raw_headers
        body = msg.get_payload(decode=True).decode()
        assert "Command line: curl <!channel>" in body
        assert "\\x0d\\x0aSubject: x" in body  # control characters shown, not obeyed
        assert "Alert id: id000000000000000000000000000001" in body
        assert "Parent: /usr/sbin/apache2" in body and "Destination: 169.254.169.254:80" in body


def test_json_webhook_content_and_truncation(tmp_path: Path) -> None:
    with HttpReceiver() as http:
        n = notifier(tmp_path, [f"json://127.0.0.1:{http.port}/"], body_max=500)
        long_cmd = "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/ " + "-H X " * 3000
        n.submit(alert(1, cmd=long_cmd))
        n.pump()
        [doc] = http.json_bodies()
        assert doc["title"] == "IMDS access by curl on web-3"
        msg = doc["message"]
        assert len(msg) <= 500
        assert "Command line: curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/" in msg
        assert f"({len(long_cmd)} chars)" in msg
        n.submit(alert(2, exe="/tmp/x", cmd="python3 -c 'print(1)'\x1b]0;pwned\x07"))
        n.pump()
        msg = http.json_bodies()[1]["message"]
        assert "\x1b" not in msg and "\x07" not in msg and "\\x1b]0;pwned\\x07" in msg


def test_mattermost_slack_compatible_webhook_escaping(tmp_path: Path) -> None:
    with HttpReceiver() as http:
        n = notifier(tmp_path, [f"mmost://127.0.0.1:{http.port}/hooktoken1234"])
        n.submit(hostile_alert())
        n.pump()
        assert http.count == 1, n.counters()
        req = http.requests[0]
        assert req["path"] == "/hooks/hooktoken1234"
        full = json.loads(req["body"])["text"]
        title, text = full.split("\r\n", 1)  # apprise puts the title on the first line (Mattermost has none)
        assert title.startswith("IMDS access by curl") and "&lt;!channel&gt;" in title
        text = full
        assert "curl &lt;\\!channel" not in text  # no markdown escaping of "!" needed
        for bad in ("<!channel>", "<!here", "<@U123>", "<http://evil.example|click here>", "@here", "@channel",
                    "@everyone", "\x1b"):
            assert bad not in text, bad
        assert full.count("\r") == 1
        for bad in ("](", "`rm", "*bold", "_it"):
            assert not _unescaped(text, bad), bad
        assert "&lt;!channel&gt;" in text and "&lt;http://evil.example|click here&gt;" not in text  # `|` escaped
        assert "&lt;http://evil.example\\|click here&gt;" in text


def test_slack_plugin_payload_escaping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    real = requests.request
    with HttpReceiver() as http:
        def to_loopback(method: str, url: str, *a: Any, **kw: Any) -> Any:
            assert url.startswith("https://hooks.slack.com/services/"), url  # the only URL we redirect
            return real(method, f"http://127.0.0.1:{http.port}" + url[len("https://hooks.slack.com"):], *a, **kw)

        monkeypatch.setattr(requests, "request", to_loopback)
        n = notifier(tmp_path, ["slack://T1234ABCD/B1234ABCD/abcdefghijklmnopqrstuvwx"])
        n.submit(hostile_alert())
        n.pump()
        assert http.count == 1, n.counters()
        payload = json.loads(http.requests[0]["body"])
        att = payload["attachments"][0]
        title, text = att["title"], att["text"]
        assert payload["mrkdwn"] is False
        for s in (title, text):
            for bad in ("<", ">", "@here", "@channel", "@everyone", "\r", "&amp;lt;", "&amp;amp;"):
                assert bad not in s, (bad, s)
        assert "&lt;!channel&gt;" in text and "&lt;http://evil.example|click here&gt;" in text
        assert "a&amp;b" in text  # escaped exactly once
        assert "*Command line:* `curl" in text
        assert title.startswith("IMDS access by curl")


# -- flood control through a real channel ------------------------------------------------------------------

def test_six_alerts_one_post_then_digest_and_cap(tmp_path: Path) -> None:
    clock = Clock()
    with HttpReceiver() as http:
        n = notifier(tmp_path, [f"json://127.0.0.1:{http.port}/"], clock=clock, hourly_cap=3)
        for i in range(6):
            clock.t += 5
            n.submit(alert(i))
            n.pump()
        assert http.count == 1
        clock.t += 600
        n.pump()
        assert http.count == 2
        assert http.json_bodies()[1]["title"].startswith("5 more like this on web-3")
        for i in range(5):  # cap of 3: alert, digest, alert; then cap message, then silence
            n.submit(alert(10 + i, exe=f"/tmp/x{i}"))
        n.pump()
        titles = [d["title"] for d in http.json_bodies()]
        assert titles[2:] == ["IMDS access by x0 on web-3", "auditimds: hourly cap of 3 notifications reached"]
        clock.t = (int(clock.t // 3600) + 1) * 3600
        n.pump()
        assert http.json_bodies()[-1]["title"].startswith("auditimds: 4 alerts not notified")


# -- outage, spool, restart --------------------------------------------------------------------------------

def test_outage_spooled_then_delivered_in_order_submit_never_blocks(tmp_path: Path) -> None:
    clock = Clock()
    http = HttpReceiver()
    url = f"json://127.0.0.1:{http.port}/"
    n = notifier(tmp_path, [url], clock=clock, hourly_cap=0,
                 retry={"attempts": 2, "backoff": "1s", "max_backoff": "10s"})
    n.start()
    try:
        worst = 0.0
        for i in range(8):  # receiver down (nothing listening)
            t0 = time.perf_counter()
            n.submit(alert(i, exe=f"/tmp/p{i}"))
            worst = max(worst, time.perf_counter() - t0)
            if i == 2:
                wait_until(lambda: n.counters()["failed"] >= 1, what="a first failure")
                clock.t += 1
                n.wake()
                wait_until(lambda: n.counters()["channels"][url]["state"] == "down", what="the channel down")
        assert worst < 0.010, f"submit took {worst * 1000:.1f} ms while the receiver was down"
        c = n.counters()
        assert c["sent"] == 0 and c["queued"] == 8 and c["spooled"] == 8
        http.start()
        clock.t += 10
        n.wake()
        wait_until(lambda: http.count == 8, what="8 deliveries")
        assert [d["title"] for d in http.json_bodies()] == [f"IMDS access by p{i} on web-3" for i in range(8)]
        # the receiver sees the 8th POST before the worker's send returns and dequeues it: wait for that
        wait_until(lambda: n.counters()["queued"] == 0, what="the queue to empty")
        c = n.counters()
        assert c["queued"] == 0 and c["dropped"] == 0 and c["channels"][url]["state"] == "ok"
    finally:
        n.stop(5)
        http.stop()


def test_restart_no_renotify_and_spool_delivered(tmp_path: Path) -> None:
    clock = Clock()
    http = HttpReceiver().start()
    url = f"json://127.0.0.1:{http.port}/"
    n = notifier(tmp_path, [url], clock=clock)
    n.submit(alert(1))
    n.pump()
    assert http.count == 1
    http.stop()
    n.submit(alert(2, exe="/tmp/a"))
    n.submit(alert(3, exe="/tmp/b"))
    n.pump()
    n.stop()
    assert http.count == 1
    http.start()
    try:
        clock.t += 120
        n2 = notifier(tmp_path, [url], clock=clock)
        n2.submit(alert(4))  # same key as alert 1, 2 minutes later: not notified again
        n2.pump()
        assert [d["title"] for d in http.json_bodies()] == ["IMDS access by curl on web-3",
                                                            "IMDS access by a on web-3", "IMDS access by b on web-3"]
        assert n2.counters()["suppressed"] == 1
    finally:
        http.stop()


def test_invalid_url_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="auditimds.notify")
    with HttpReceiver() as http:
        good = f"json://127.0.0.1:{http.port}/"
        n = Notifier(parse_notify({"urls": ["nosuchscheme://x/y", good]}, "t"), tmp_path)
        n.start()
        try:
            n.submit(alert(1))
            wait_until(lambda: http.count == 1, what="delivery to the good channel")
        finally:
            n.stop(5)
        c = n.counters()
        assert c["invalid_channels"] == 1
        assert c["channels"]["nosuchscheme://***"]["state"] == "invalid"
        assert caplog.text.count("notification channel nosuchscheme://*** unusable") == 1


def test_notify_test_real_channels(tmp_path: Path) -> None:
    with HttpReceiver() as http, SmtpReceiver() as smtp:
        dead = HttpReceiver()  # never started: connection refused
        cfg = parse_notify({"urls": [f"json://127.0.0.1:{http.port}/", smtp.url(), f"json://127.0.0.1:{dead.port}/",
                                     "nosuchscheme://x"]}, "t")
        res = notify_test(cfg)
        assert [(ok, name.split("://")[0]) for name, ok, _r in res] == \
            [(True, "json"), (True, "mailtos"), (False, "json"), (False, "nosuchscheme")]
        assert res[3][2].startswith("apprise does not accept this URL")
        assert http.json_bodies()[0]["title"].startswith("[test] IMDS access by curl on")
        assert smtp.count == 1


def test_apprise_config_file_with_tags(tmp_path: Path) -> None:
    with HttpReceiver() as a, HttpReceiver() as b:
        conf = tmp_path / "apprise.yaml"
        conf.write_text(f"urls:\n  - json://127.0.0.1:{a.port}/:\n      tag: ops\n"
                        f"  - json://127.0.0.1:{b.port}/:\n      tag: dev\n")
        n = Notifier(parse_notify({"config": str(conf), "tags": ["ops"]}, "t"), tmp_path)
        n.resolve()
        n.submit(alert(1))
        n.pump()
        assert (a.count, b.count) == (1, 0)
