"""`type = "new_terms"` rules: the matcher, the loader and the daemon's persistence of the history."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from auditimds.agent.statedir import NEW_TERMS_FILE
from auditimds.config import Config
from auditimds.daemon import Daemon
from auditimds.rules.engine.factory import compile_query
from auditimds.rules.engine.new_terms import NewTermsMatcher, parse_history_window
from auditimds.rules.eql.parser import parse_query
from auditimds.rules.loader import RuleLoadError, load_rule, load_rules
from tests.rules.test_hardened_pack import HARDENED, NEW_TERMS, LogBuilder

MS = 1_000_000
DAY = 86_400_000


class Ev(dict):
    def __missing__(self, key):
        return None


def ev(exe="/usr/bin/curl", host="h1", ip="169.254.169.254", **more):
    d = Ev({"event.category": ["network"], "host.id": host, "process.executable": exe, "destination.ip": ip})
    d.update(more)
    return d


def matcher(window_ms=7 * DAY, fields=("host.id", "process.executable"), max_terms=1000) -> NewTermsMatcher:
    inner = compile_query(parse_query('network where destination.ip == "169.254.169.254"'))
    return NewTermsMatcher(inner, list(fields), window_ms, max_terms=max_terms)


def fires(m: NewTermsMatcher, e, t_ms: int, seq: int = 0) -> bool:
    return bool(m.process(e, t_ms * MS, seq))


def test_first_contact_alerts_second_within_window_not_after_window_again():
    m = matcher()
    assert fires(m, ev(), 0)
    assert not fires(m, ev(), 1000)
    assert not fires(m, ev(), 7 * DAY)  # exactly the window: still seen (last seen at 1000)
    # every sighting refreshes the term: 7 days after the LAST sighting it is new again
    assert fires(m, ev(), 14 * DAY + 2000)
    assert not fires(m, ev(), 14 * DAY + 3000)
    assert (m.matches, m.suppressed) == (2, 3)


def test_terms_are_combinations_of_all_fields():
    m = matcher()
    assert fires(m, ev(), 0)
    assert fires(m, ev(host="h2"), 10)
    assert fires(m, ev(exe="/tmp/x"), 20)
    assert not fires(m, ev(ip="169.254.169.254"), 30)
    # not matching the query: not an alert, not remembered
    assert not fires(m, ev(exe="/usr/bin/wget", ip="10.0.0.1"), 40)
    assert fires(m, ev(exe="/usr/bin/wget"), 50)


def test_missing_field_never_alerts_nor_is_remembered():
    m = matcher()
    assert not fires(m, ev(exe=None), 0)
    assert not fires(m, ev(host=[]), 0)
    assert len(m) == 0


def test_multi_valued_field_gives_one_term_per_value():
    m = matcher(fields=("host.id", "process.args"))
    assert fires(m, ev(**{"process.args": ["curl", "a"]}), 0)
    assert not fires(m, ev(**{"process.args": ["a", "curl"]}), 1)
    assert fires(m, ev(**{"process.args": ["curl", "b"]}), 2)  # ("h1", "b") is new
    assert len(m) == 3


def test_history_is_bounded_oldest_seen_evicted_and_counted():
    m = matcher(max_terms=3)
    for i in range(5):
        assert fires(m, ev(exe=f"/tmp/{i}"), i)
    assert len(m) == 3 and m.evicted == 2
    assert not fires(m, ev(exe="/tmp/4"), 10)
    assert fires(m, ev(exe="/tmp/0"), 11)  # evicted: new again (an extra alert, never a missed one)


def test_terms_older_than_the_window_are_pruned():
    m = matcher(window_ms=1000)
    assert fires(m, ev(exe="/tmp/a"), 0)
    assert fires(m, ev(exe="/tmp/b"), 120_000)
    assert len(m) == 1 and m.expired == 1


def test_state_round_trip_and_foreign_state_ignored():
    m = matcher()
    fires(m, ev(), 5)
    fires(m, ev(exe="/tmp/x"), 6)
    state = json.loads(json.dumps(m.to_state()))
    m2 = matcher()
    assert m2.load_state(state) == 2
    assert not fires(m2, ev(), 100) and not fires(m2, ev(exe="/tmp/x"), 100)
    assert fires(m2, ev(exe="/tmp/y"), 100)
    other = matcher(fields=("host.id",))
    assert other.load_state(state) == 0
    for bad in (None, [], {"version": 99}, {**state, "terms": [["x", 1], [["a"], 2], [["h", {}], 3]]}):
        assert matcher().load_state(bad) == 0


@pytest.mark.parametrize("text,ms", [("now-7d", 7 * DAY), ("now-14d", 14 * DAY), ("now-30m", 1_800_000),
                                     ("now-1w", 7 * DAY), ("now - 2h", 7_200_000), ("now-10s", 10_000)])
def test_history_window(text, ms):
    assert parse_history_window(text) == ms


RULE = """
[rule]
rule_id = "x-1"
name = "nt"
type = "new_terms"
language = "{lang}"
query = '''{query}'''
{nt}
"""
NT = """
[rule.new_terms]
field = "new_terms_fields"
value = ["host.id", "process.executable"]
[[rule.new_terms.history_window_start]]
field = "history_window_start"
value = "now-3d"
"""


def write(tmp: Path, lang="eql", query='network where destination.port == 80', nt=NT) -> Path:
    p = tmp / "r.toml"
    p.write_text(RULE.format(lang=lang, query=query, nt=nt))
    return p


def test_loader_accepts_new_terms_in_both_spellings(tmp_path):
    r = load_rule(write(tmp_path))
    assert (r.type, r.history_window_ms, r.new_terms_fields) == ("new_terms", 3 * DAY, ["host.id", "process.executable"])
    assert isinstance(r.compiled, NewTermsMatcher) and r.compiled.categories == frozenset({"network"})
    short = '[rule.new_terms]\nvalue = ["host.id"]\nhistory_window_start = "now-1h"\n'
    assert load_rule(write(tmp_path, nt=short)).history_window_ms == 3_600_000


@pytest.mark.parametrize("kw,reason", [
    ({"lang": "kuery", "query": "destination.port:80"}, "translated to EQL"),
    ({"query": "sequence [network where true] [network where true]"}, "single-event query"),
    ({"nt": ""}, "[rule.new_terms]"),
    ({"nt": NT.replace("now-3d", "now-1M")}, "now-<N>"),
    ({"nt": NT.replace('"host.id", ', "")[:0] + '[rule.new_terms]\nvalue = []\nhistory_window_start = "now-1d"\n'},
     "non-empty list"),
])
def test_loader_refuses_unusable_new_terms_rules(tmp_path, kw, reason):
    with pytest.raises(RuleLoadError) as e:
        load_rule(write(tmp_path, **kw))
    assert reason in str(e.value)


# -- daemon: the history survives a restart -------------------------------------------------------------

T0 = 1795976400.0


def connect_lines(t: float, serial: int, exe: str = "/tmp/dropper") -> bytes:
    """The IMDS connect, then an unrelated connect 100 s later: the restart then resumes past the IMDS connect
    (the daemon re-reads only a few seconds), so only the saved history can remember it."""
    b = LogBuilder(t)
    b.serial = serial * 10
    b.connect(300, 50, exe, "169.254.169.254")  # ppid 1 would be the daemon itself (self_pid=1)
    b.wait(100).connect(301, 50, "/usr/bin/true", "10.0.0.1")
    return b"".join(ln + b"\n" for ln in b.lines)


def pack_rules() -> list:
    rules, errors = load_rules([HARDENED])
    assert errors == []
    return rules


def daemon(tmp: Path, out: io.StringIO) -> Daemon:
    cfg = Config(input_path=str(tmp / "audit.log"), state_dir=str(tmp / "state"), start="beginning")
    d = Daemon(cfg, pack_rules(), host_id="h", host_name="h", stdout=out, resolver=None, self_pid=1,
               checkpoint_interval=0.0, max_batch_bytes=64)
    d.start()
    return d


def new_terms_alerts(out: io.StringIO) -> list:
    return [a for a in map(json.loads, out.getvalue().splitlines()) if a["rule"]["id"] == NEW_TERMS]


def run_once(tmp: Path, append: bytes, graceful: bool = True) -> list:
    with open(tmp / "audit.log", "ab") as f:
        f.write(append)
    out = io.StringIO()
    d = daemon(tmp, out)
    d.step(0.0)
    if graceful:
        d.close(0.0)
    else:  # kill -9 after the step's checkpoint (the end of the process releases the state dir's lock)
        d.source.close()
        d.source = None
        d.release_lock()
    return new_terms_alerts(out)


@pytest.mark.parametrize("graceful", [True, False])
def test_history_survives_a_restart(tmp_path, graceful):
    (tmp_path / "audit.log").write_bytes(b"")
    assert len(run_once(tmp_path, connect_lines(T0, 1), graceful)) == 1  # first contact
    saved = json.loads((tmp_path / "state" / NEW_TERMS_FILE).read_text())["state"]["rules"][NEW_TERMS]
    assert saved["terms"] == [[["h", "/tmp/dropper"], int(T0 * 1000)]]
    # restart: the same executable an hour later is known (without the saved history it would alert)
    assert run_once(tmp_path, connect_lines(T0 + 3600, 2), graceful) == []
    # restart again: eight days later it is new again
    assert len(run_once(tmp_path, connect_lines(T0 + 8 * 86400, 3), graceful)) == 1


def test_without_the_history_file_the_term_is_new_again(tmp_path):
    (tmp_path / "audit.log").write_bytes(b"")
    assert len(run_once(tmp_path, connect_lines(T0, 1))) == 1
    (tmp_path / "state" / NEW_TERMS_FILE).unlink()
    assert len(run_once(tmp_path, connect_lines(T0 + 3600, 2))) == 1


def test_history_is_carried_over_a_rules_reload(tmp_path):
    (tmp_path / "audit.log").write_bytes(connect_lines(T0, 1))
    out = io.StringIO()
    d = daemon(tmp_path, out)
    d.step(0.0)
    d.apply(d.cfg, pack_rules())
    with open(tmp_path / "audit.log", "ab") as f:
        f.write(connect_lines(T0 + 60, 2))
    d.step(1.0)
    d.close(1.0)
    assert len(new_terms_alerts(out)) == 1


def test_a_corrupt_history_file_does_not_stop_the_agent(tmp_path, caplog):
    """Only history: a corrupt (or attacker-inflated) new_terms.json is logged and the agent starts empty."""
    (tmp_path / "audit.log").write_bytes(b"")
    assert len(run_once(tmp_path, connect_lines(T0, 1))) == 1
    (tmp_path / "state" / NEW_TERMS_FILE).write_text("{not json")
    assert len(run_once(tmp_path, connect_lines(T0 + 3600, 2))) == 1  # started, history empty: new again
    assert "empty history" in caplog.text


def test_long_values_are_kept_as_digests():
    from auditimds.rules.engine.new_terms import _compact

    long_path = "/tmp/" + "a" * 4000
    assert _compact(long_path).startswith("sha256:") and len(_compact(long_path)) == 71
    assert _compact(long_path) == _compact("/tmp/" + "a" * 4000) and _compact("/usr/bin/curl") == "/usr/bin/curl"


def test_a_changed_new_terms_rule_starts_its_history_fresh_after_a_restart(tmp_path, caplog, monkeypatch):
    """The history is saved with the rule's fingerprint: a rule whose query or fields changed since does not
    inherit terms collected under the old definition (logged); a state of an older release (no fingerprints)
    is trusted as is."""
    (tmp_path / "audit.log").write_bytes(b"")
    assert len(run_once(tmp_path, connect_lines(T0, 1))) == 1
    doc = json.loads((tmp_path / "state" / NEW_TERMS_FILE).read_text())["state"]
    assert doc["fingerprints"][NEW_TERMS] == next(r.fingerprint for r in pack_rules() if r.rule_id == NEW_TERMS)
    import auditimds.rules.loader as loader

    real = loader.behaviour_fingerprint
    monkeypatch.setattr(loader, "behaviour_fingerprint", lambda *a: real(*a) + "-changed")
    with caplog.at_level("INFO", logger="auditimds"):
        assert len(run_once(tmp_path, connect_lines(T0 + 3600, 2))) == 1  # new again under the new definition
    assert "changed since its new_terms history was saved: the history starts fresh" in caplog.text
    monkeypatch.undo()
    from auditimds.source.checkpoint import load_state, save_state

    path = tmp_path / "state" / NEW_TERMS_FILE
    old = load_state(path)
    del old["fingerprints"]
    save_state(path, old)
    assert run_once(tmp_path, connect_lines(T0 + 7200, 3)) == []  # no fingerprints: the history is used
