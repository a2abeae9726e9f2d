"""Optional differential test against the `eql` package (py-eql 1.0.1, AGPL-3: a test-only dependency,
never imported by auditimds).  Skipped when `eql` is not installed.

Restricted to where py-eql agrees with Elasticsearch (eql-semantics.md §4): every event has every field,
scalar values only, lower-case data and literals (py-eql folds case everywhere), no `?` in patterns, non-null
join keys, strictly increasing timestamps fed in order, whole-second maxspan, function names in their
canonical spelling, CIDRs with a prefix length.  Within that, random expressions (comparisons, `:`, `in`,
`not in`, `and`/`or`/`not`, startsWith/endsWith/stringContains/cidrMatch/length) are checked as event queries
and as sequence stages (global and per-stage `by`, maxspan, `until`, 2 and 3 stages).
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Tuple

import pytest

eql = pytest.importorskip("eql")

from auditimds.rules.engine.factory import compile_query  # noqa: E402

S = 1_000_000_000

NAMES = ["curl", "python3", "bash", "sh", "ls", "wget"]
EXES = ["/usr/bin/curl", "/tmp/x/payload", "/usr/bin/python3", "/bin/sh", "/var/tmp/a"]
IPS = ["10.0.0.1", "127.0.0.1", "169.254.169.254", "192.168.1.5"]
ACTIONS = ["exec", "connection_attempted", "fork"]
PIDS = ["p1", "p2", "p3"]


class Ev(dict):
    def __missing__(self, key: str) -> Any:
        return None


def nest(flat: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in flat.items():
        cur = out
        parts = k.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = v
    return out


def q(s: str) -> str:
    return '"' + s + '"'


def atom(rng: random.Random) -> str:
    k = rng.randrange(11)
    if k == 0:
        return f"process.name {rng.choice(['==', '!='])} {q(rng.choice(NAMES))}"
    if k == 1:
        pats = rng.sample(["cu*", "*th*", "b*sh", "*", "s*", "*get", "ls"], rng.randint(1, 3))
        return f"process.name : ({', '.join(map(q, pats))})"
    if k == 2:
        return f"process.executable : {q(rng.choice(['/tmp/*', '/usr/bin/*', '*/sh', '/var/*/a']))}"
    if k == 3:
        vals = rng.sample(NAMES, rng.randint(1, 3))
        return f"process.name {rng.choice(['in', 'not in'])} ({', '.join(map(q, vals))})"
    if k == 4:
        return f"process.args_count {rng.choice(['<', '<=', '>', '>=', '==', '!='])} {rng.randint(0, 6)}"
    if k == 5:
        cidrs = rng.sample(["127.0.0.0/8", "169.254.0.0/16", "10.0.0.0/8", "192.168.1.5/32"], rng.randint(1, 2))
        return f"cidrMatch(destination.ip, {', '.join(map(q, cidrs))})"
    if k == 6:
        fn = rng.choice(["startsWith", "endsWith", "stringContains"])
        arg = {"startsWith": ["/usr", "/tmp", "/v"], "endsWith": ["curl", "sh", "a"],
               "stringContains": ["bin", "tmp", "py"]}[fn]
        return f"{fn}(process.executable, {q(rng.choice(arg))})"
    if k == 7:
        return f"length(process.name) {rng.choice(['<', '>=', '=='])} {rng.randint(2, 7)}"
    if k == 8:
        return f"destination.ip {rng.choice(['==', '!='])} {q(rng.choice(IPS))}"
    if k == 9:
        return f"event.action in ({', '.join(map(q, rng.sample(ACTIONS, 2)))})"
    return f"user.id == {q(rng.choice(['0', '1000']))}"


def expr(rng: random.Random, depth: int = 0) -> str:
    r = rng.random()
    if depth >= 3 or r < 0.4:
        return atom(rng)
    if r < 0.55:
        return f"not ({expr(rng, depth + 1)})"
    op = "and" if r < 0.8 else "or"
    return f"({expr(rng, depth + 1)} {op} {expr(rng, depth + 1)})"


def events(rng: random.Random, n: int, step=(1, S // 2, S, 2 * S)) -> List[Tuple[int, Dict[str, Any]]]:
    out = []
    t = 0
    for i in range(n):
        t += rng.choice(step)
        out.append((t, {
            "event.category": rng.choice(["process", "network"]),
            "event.action": rng.choice(ACTIONS),
            "host.id": rng.choice(["h1", "h2"]),
            "process.name": rng.choice(NAMES),
            "process.executable": rng.choice(EXES),
            "process.args_count": rng.randint(1, 6),
            "destination.ip": rng.choice(IPS),
            "user.id": rng.choice(["0", "1000"]),
            "process.entity_id": rng.choice(PIDS),
            "process.parent.entity_id": rng.choice(PIDS),
            "_id": i,
        }))
    return out


def theirs(query: str, evs) -> List[List[int]]:
    # skip_optimizations as detection-rules does: py-eql's optimizer rewrites
    # `f in ("a", "b") or f != "c"` wrongly (it matches fewer events than `f != "c"` alone)
    with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions, eql.parser.skip_optimizations:
        ast = eql.parse_query(query)
    engine = eql.PythonEngine({"time_unit": S})
    out: List[List[int]] = []
    engine.add_output_hook(lambda r: out.append([e.data["_id"] for e in r.events]))
    engine.add_query(ast)
    engine.stream_events([eql.Event(f["event.category"], ts, nest(f)) for ts, f in evs], finalize=True)
    return out


def ours(query: str, evs, lazy_first: bool = False) -> List[List[int]]:
    cq = compile_query(query, lazy_first=lazy_first)
    out: List[List[int]] = []
    for seq, (ts, f) in enumerate(evs):
        for m in cq.process(Ev(f), ts, seq):
            out.append([e["_id"] for e in m])
    return out


def test_seed_shaped_sequence():
    query = (
        "sequence by host.id, process.parent.entity_id with maxspan=3s "
        '[process where event.action == "exec" and process.name : ("curl", "py*")] '
        '[network where event.action == "connection_attempted" and destination.ip == "169.254.169.254"]'
    )
    rng = random.Random(1234)
    total = 0
    for _ in range(20):
        evs = events(rng, 300, step=(1, S // 4, S // 2, S))
        want = theirs(query, evs)
        assert ours(query, evs) == want
        assert ours(query, evs, lazy_first=True) == want
        total += len(want)
    assert total > 10


def test_random_event_queries():
    rng = random.Random(7)
    evs = events(rng, 300)
    hits = 0
    for _ in range(300):
        query = f"any where {expr(rng)}"
        want = theirs(query, evs)
        assert ours(query, evs) == want, query
        hits += bool(want)
    assert hits > 100


SEQ_SHAPES = [
    "sequence by host.id with maxspan={span}s [process where {a}] [network where {b}]",
    "sequence by host.id, process.parent.entity_id with maxspan={span}s [any where {a}] [any where {b}]",
    "sequence by host.id with maxspan={span}s [network where {a}] by process.entity_id "
    "[process where {b}] by process.parent.entity_id",
    "sequence by host.id with maxspan={span}s [process where {a}] [network where {b}] [process where {c}]",
    "sequence by host.id with maxspan={span}s [process where {a}] [any where {b}] until [network where {c}]",
    "sequence with maxspan={span}s [any where {a}] [any where {b}]",
]


@pytest.mark.parametrize("shape", range(len(SEQ_SHAPES)))
def test_random_sequences(shape):
    rng = random.Random(100 + shape)
    total = 0
    for _ in range(40):
        query = SEQ_SHAPES[shape].format(span=rng.randint(1, 3), a=expr(rng, 1), b=expr(rng, 1), c=expr(rng, 1))
        evs = events(rng, 150 if shape == 3 else 50)  # three stages match more rarely
        want = theirs(query, evs)
        assert ours(query, evs) == want, query
        assert ours(query, evs, lazy_first=True) == want, query
        total += len(want)
    assert total > 5
