"""Optional differential test against the `eql` package (py-eql, AGPL, test-only; never imported by
auditimds).  Restricted as eql-semantics.md §4 prescribes: scalar fields only, no missing fields under
not/!=, lower-case data, no '?' patterns, non-null keys, strictly increasing timestamps,
whole-second maxspan."""

from __future__ import annotations

import random

import pytest

eql = pytest.importorskip("eql")

from auditimds.rules.eql_compile import compile_query  # noqa: E402

S = 1_000_000_000

QUERY = (
    "sequence by host.id, process.parent.entity_id with maxspan=3s "
    '[process where event.action == "exec" and process.name : ("curl", "py*")] '
    '[network where event.action == "connection_attempted" and destination.ip == "169.254.169.254"]'
)


class Ev(dict):
    def __missing__(self, key):
        return None


def nest(flat):
    out = {}
    for k, v in flat.items():
        cur = out
        parts = k.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = v
    return out


def test_random_streams_agree():
    rng = random.Random(1234)
    with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions:
        ast = eql.parse_query(QUERY)
    total = 0
    for _round in range(20):
        events = []
        t = 0
        for i in range(60):
            t += rng.choice([1, S // 2, S, 2 * S])
            cat = rng.choice(["process", "network"])
            flat = {
                "event.category": cat,
                "host.id": rng.choice(["h1", "h2"]),
                "process.parent.entity_id": rng.choice(["p1", "p2", "p3"]),
                "_id": i,
            }
            if cat == "process":
                flat.update({"event.action": "exec", "process.name": rng.choice(["curl", "python3", "ls"])})
            else:
                flat.update(
                    {
                        "event.action": "connection_attempted",
                        "destination.ip": rng.choice(["169.254.169.254", "10.0.0.1"]),
                    }
                )
            events.append((t, flat))
        engine = eql.PythonEngine({"time_unit": S})
        theirs = []
        engine.add_output_hook(lambda r, _out=theirs: _out.append([e.data["_id"] for e in r.events]))
        engine.add_query(ast)
        engine.stream_events([eql.Event(f["event.category"], ts, nest(f)) for ts, f in events], finalize=True)
        cq = compile_query(QUERY)
        ours = []
        for seq, (ts, f) in enumerate(events):
            for m in cq.process(Ev(f), ts, seq):
                ours.append([e["_id"] for e in m])
        assert ours == theirs
        total += len(ours)
    assert total > 10  # the streams do exercise matches
