"""What a notification says, and how attacker-controlled text is made inert for each kind of channel.

Everything in an alert that comes from the audited host — argv, paths, process and host names, user
names — is chosen by whoever ran the process, and therefore by an attacker.  It must not be able to ping a
channel (`<!channel>`, `@here`), plant a link with a misleading label (`<http://evil|click here>`,
`[docs](http://evil)`), restyle the message, or add a header to an email (CR/LF in the Subject).

A `Notice` is the structured content (a JSON-serialisable dict: it is what the spool stores); `render()`
turns it into (title, body) for one channel flavour:

* ``slack``    Slack mrkdwn.  `&`, `<`, `>` escaped as entities (Slack parses `<...>` before anything
               else, even in code spans); untrusted values in code spans with backticks removed;
               `@here`/`@channel`/`@everyone` broken with a zero-width space.
* ``markdown`` Mattermost, Rocket.Chat, Teams: Markdown plus Slack-compatible `<...>` and automatic
               @mentions.  Entities for `&<>`, backslash escapes for Markdown punctuation, mentions broken.
* ``discord``  Discord Markdown: backslash escapes (also of `<` and `@`), mentions broken.
* ``email``    plain text; no control character at all in the title (it becomes the Subject header), none
               but the line breaks we put in the body.
* ``text``     JSON/form/XML webhooks and everything else: plain text, control characters shown as
               `\\xNN`.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Sequence, Tuple

_SCHEME_FLAVOUR = {
    "slack": "slack",
    "mmost": "markdown", "mmosts": "markdown", "rocket": "markdown", "rockets": "markdown",
    "msteams": "markdown", "workflow": "markdown", "workflows": "markdown",
    "discord": "discord",
    "mailto": "email", "mailtos": "email", "email": "email",
}


def flavour_of(url: str) -> str:
    scheme = url.split("://", 1)[0].strip().lower() if "://" in url else ""
    if scheme in ("http", "https") and "hooks.slack.com" in url.lower():
        return "slack"
    return _SCHEME_FLAVOUR.get(scheme, "text")


# -- neutralising ------------------------------------------------------------------------------------------

ZWSP = "\u200b"
# C0 and C1 controls, DEL, and Unicode line/paragraph separators, bidi overrides and isolates.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f]")
_MENTION_RE = re.compile(r"@(?=(here|channel|everyone|all|group)\b)", re.IGNORECASE)
_MD_PUNCT_RE = re.compile(r"([\\`*_\[\]|~>])")
_DISCORD_PUNCT_RE = re.compile(r"([\\`*_\[\]|~><@])")


def _visible_controls(s: str) -> str:
    """Control characters as visible `\\xNN` / `\\uNNNN` escapes (so a newline in argv shows as `\\x0a`)."""
    def sub(m: "re.Match[str]") -> str:
        c = ord(m.group())
        return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    return _CONTROL_RE.sub(sub, s)


def _break_mentions(s: str) -> str:
    return _MENTION_RE.sub("@" + ZWSP, s)


def _entities(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inert(value: Any, flavour: str, *, escape_entities: bool = True) -> str:
    """`value` (untrusted) as text that a channel of `flavour` displays literally.

    `escape_entities`: for slack, whether to escape `&<>` here (False when the installed apprise escapes
    Slack plain text itself, so that it is not escaped twice).
    """
    s = _visible_controls("" if value is None else str(value))
    if flavour == "slack":
        s = _break_mentions(s.replace("`", "'"))
        if escape_entities:
            s = _entities(s)
        return f"`{s}`" if s else s
    if flavour == "markdown":
        return _break_mentions(_MD_PUNCT_RE.sub(r"\\\1", _entities(s)))
    if flavour == "discord":
        return _break_mentions(_DISCORD_PUNCT_RE.sub(r"\\\1", s))
    return s  # email, text: plain; controls already visible


def inert_title(title: str) -> str:
    """Control-free, single line (for a Subject header and every title)."""
    return re.sub(r"\s+", " ", _CONTROL_RE.sub(" ", title)).strip()


def truncate(s: str, limit: int, marker: str = "…") -> str:
    if limit <= 0 or len(s) <= limit:
        return s
    return s[: max(0, limit - len(marker))] + marker


# -- alert summary -----------------------------------------------------------------------------------------

def field(doc: Mapping[str, Any], dotted: str) -> Any:
    """`doc["a"]["b"]` for "a.b" (or a flat "a.b" key); None when absent."""
    if dotted in doc:
        return doc[dotted]
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)
    return str(v)


def summarize(alert: Mapping[str, Any], keep: int = 8000) -> Dict[str, str]:
    """The fields of an alert that a notification shows, as strings (bounded: this is what is spooled)."""
    cmd = field(alert, "process.command_line")
    if not cmd:
        cmd = _str(field(alert, "process.args"))
    ip = _str(field(alert, "destination.ip"))
    port = _str(field(alert, "destination.port"))
    dest = ""
    if ip:
        dest = (f"[{ip}]" if ":" in ip else ip) + (f":{port}" if port else "")
    user = _str(field(alert, "user.name"))
    uid = _str(field(alert, "user.id"))
    if uid and user and uid != user:
        user = f"{user} ({uid})"
    elif uid and not user:
        user = uid
    out = {
        "rule_id": _str(field(alert, "rule.id")),
        "rule": _str(field(alert, "rule.name")) or "alert",
        "severity": _str(field(alert, "rule.severity")),
        "time": _str(field(alert, "@timestamp")),
        "host": _str(field(alert, "host.name")) or _str(field(alert, "host.id")),
        "user": user,
        "process": _str(field(alert, "process.name")) or _str(field(alert, "process.executable")).rsplit("/", 1)[-1],
        "pid": _str(field(alert, "process.pid")),
        "executable": _str(field(alert, "process.executable")),
        "command_line": _str(cmd),
        "parent": _str(field(alert, "process.parent.executable")),
        "cwd": _str(field(alert, "process.working_directory")),
        "destination": dest,
        "alert_id": _str(field(alert, "alert.id")),
    }
    res = {k: truncate(v, keep) for k, v in out.items()}
    res["command_line_chars"] = str(len(out["command_line"]))
    return res


def _is_imds(s: Mapping[str, str]) -> bool:
    name = s.get("rule", "").lower()
    return "imds" in name or "instance metadata" in name


def clock_hms(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S")


def event_hms(iso: str, fallback: float) -> str:
    """HH:MM:SS of an ECS @timestamp ("2026-11-29T18:25:46.123Z"), else of the clock."""
    m = re.search(r"T(\d\d:\d\d:\d\d)", iso or "")
    return m.group(1) if m else clock_hms(fallback)


# -- rendering ---------------------------------------------------------------------------------------------

def _label(name: str, flavour: str) -> str:
    if flavour == "slack":
        return f"*{name}:*"
    if flavour in ("markdown", "discord"):
        return f"**{name}:**"
    return f"{name}:"


def _lines(rows: Sequence[Tuple[str, str]], flavour: str, slack_entities: bool) -> List[str]:
    out = []
    for name, value in rows:
        if value:
            out.append(f"{_label(name, flavour)} {inert(value, flavour, escape_entities=slack_entities)}")
    return out


def _title_value(v: str, flavour: str, slack_entities: bool) -> str:
    # No code spans in titles; the title is a single line in every flavour.
    v = inert_title(v)
    if flavour == "slack":
        v = _break_mentions(v.replace("`", "'").replace("*", "").replace("_", " ").replace("~", ""))
        return _entities(v) if slack_entities else v
    return inert(v, flavour)


def render(notice: Mapping[str, Any], flavour: str, *, title_max: int = 120, body_max: int = 2000,
           slack_entities: bool = True) -> Tuple[str, str]:
    """(title, body) of `notice` for a channel of `flavour`; untrusted text made inert."""
    kind = notice.get("kind")
    d: Mapping[str, Any] = notice.get("data", {})
    tv = lambda v: _title_value(str(v), flavour, slack_entities)  # noqa: E731
    if kind in ("alert", "test"):
        s = d
        proc = s.get("process") or "unknown process"
        host = s.get("host") or "unknown host"
        if _is_imds(s):
            title = f"IMDS access by {tv(proc)} on {tv(host)}"
        else:
            title = f"{tv(s.get('rule', 'alert'))}: {tv(proc)} on {tv(host)}"
        if kind == "test":
            title = "[test] " + title
        head = [("Rule", s.get("rule", "")), ("Severity", s.get("severity", "")), ("Time", s.get("time", "")),
                ("Host", s.get("host", "")), ("User", s.get("user", ""))]
        tail = [("Parent", s.get("parent", "")), ("Working directory", s.get("cwd", "")),
                ("Destination", s.get("destination", "")), ("Alert id", s.get("alert_id", ""))]
        head_lines = _lines(head, flavour, slack_entities)
        tail_lines = _lines(tail, flavour, slack_entities)
        if kind == "test":
            tail_lines.append("This is a test notification sent by `auditimds notify-test`."
                              if flavour != "email" and flavour != "text" else
                              "This is a test notification sent by auditimds notify-test.")
        fixed = sum(len(x) + 1 for x in head_lines + tail_lines)
        cmd = s.get("command_line", "") or s.get("executable", "")
        total = int(s.get("command_line_chars") or len(cmd)) if s.get("command_line") else len(cmd)
        label = _label("Command line", flavour) + " "
        budget = max(40, body_max - fixed - len(label) - 1)
        cmd_line = ""
        if cmd:
            # Truncate the raw text first so escaping never gets cut in half.
            raw = cmd if len(cmd) <= budget else cmd[: max(1, budget - 30)] + f"… ({total} chars)"
            cmd_line = label + inert(raw, flavour, escape_entities=slack_entities)
            while len(cmd_line) > budget and len(raw) > 20:  # escaping made it longer
                raw = raw[: int(len(raw) * 0.8)] + f"… ({total} chars)"
                cmd_line = label + inert(raw, flavour, escape_entities=slack_entities)
        body_lines = head_lines + ([cmd_line] if cmd_line else []) + tail_lines
        body = "\n".join(body_lines)
    elif kind == "digest":
        n = int(d.get("count", 0))
        host = d.get("host") or "unknown host"
        title = f"{n} more like this on {tv(host)}: {tv(d.get('rule', 'alert'))}"
        last = d.get("last", {})
        more = f"{n} more alert{'s' if n != 1 else ''} like this on "
        when = f" since {d.get('since', '?')}, last at {d.get('last_at', '?')}"
        if flavour in ("email", "text"):
            body_lines = [more + inert(host, flavour) + when]
        else:
            body_lines = [more + inert(host, flavour, escape_entities=slack_entities) + when]
        body_lines += _lines([("Rule", d.get("rule", "")), ("Last process", last.get("process", "")),
                              ("Last command line", truncate(last.get("command_line", ""), max(80, body_max // 2))),
                              ("Last alert id", last.get("alert_id", ""))], flavour, slack_entities)
        body_lines.append("All of them are in the JSON lines output.")
        body = "\n".join(body_lines)
    elif kind == "cap":
        title = f"auditimds: hourly cap of {d.get('cap')} notifications reached"
        body = (f"Hourly cap of {d.get('cap')} notifications reached at {d.get('at', '?')} UTC: further alerts "
                f"are not notified until {d.get('until', '?')} UTC (all are in the JSON lines output). A summary "
                "of how many were held back follows then.")
    elif kind == "cap_summary":
        n = int(d.get("held", 0))
        title = f"auditimds: {n} alert{'s' if n != 1 else ''} not notified ({d.get('start')}-{d.get('end')} UTC)"
        body = (f"{n} alert{'s' if n != 1 else ''} were not notified between {d.get('start')} and {d.get('end')} UTC "
                f"because the hourly cap of {d.get('cap')} notifications was reached (all are in the JSON lines "
                "output).")
    else:
        title = "auditimds notice"
        body = inert(str(d), flavour)
    return truncate(inert_title(title), title_max), truncate(body, body_max)
