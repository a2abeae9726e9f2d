"""Elasticsearch's sequence behaviour (eql-semantics.md §2.1, the shapes of ES `sequences.series-spec`), as
compact timelines: `A1 A2 B3` = stage-A event at t=1 ms, another at 2 ms, a stage-B event at 3 ms; `A1/k2`
puts the event under join key k2 (default k1); `U` events match the `until` stage.  Every case runs with the
eager slot machine and with the lazy first stage the rule loader uses, and, when the optional `eql` package
is installed, against py-eql too (it reproduces the ES spec; see test_eql_differential.py)."""

from __future__ import annotations

from typing import Any, List

import pytest

from auditimds.rules.engine.factory import compile_query

MS = 1_000_000
CATS = {"A": "process", "B": "network", "C": "process", "D": "network", "U": "process"}


def query(stages: str, until: bool = False, maxspan: str = "10s") -> str:
    parts = [f'[{CATS[s]} where event.action == "{s}"]' for s in stages]
    q = f"sequence by host.id with maxspan={maxspan} " + " ".join(parts)
    if until:
        q += ' until [process where event.action == "U"]'
    return q


class Ev(dict):
    def __missing__(self, key: str) -> Any:
        return None


def timeline(spec: str):
    out = []
    for tok in spec.split():
        name, _, key = tok.partition("/")
        out.append((int(name[1:]) * MS, Ev({"event.category": [CATS[name[0]]], "event.action": name[0],
                                             "host.id": key or "k1", "id": name})))
    return out


def ours(q: str, spec: str, lazy: bool) -> List[str]:
    cq = compile_query(q, lazy_first=lazy)
    res = []
    for seq, (ts, e) in enumerate(timeline(spec)):
        for m in cq.process(e, ts, seq):
            res.append(" ".join(x["id"] for x in m))
    return res


def py_eql(q: str, spec: str) -> List[str]:
    eql = pytest.importorskip("eql")
    with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions, eql.parser.skip_optimizations:
        ast = eql.parse_query(q)
    engine = eql.PythonEngine({"time_unit": 1_000_000_000})
    res: List[str] = []
    engine.add_output_hook(lambda r: res.append(" ".join(e.data["id"] for e in r.events)))
    engine.add_query(ast)
    evs = [eql.Event(e["event.category"][0], ts, {"event": {"action": e["event.action"]},
                                                   "host": {"id": e["host.id"]}, "id": e["id"]})
           for ts, e in timeline(spec)]
    engine.stream_events(evs, finalize=True)
    return res


CASES = [
    # (stages, until?, timeline, expected matches)
    ("AB", False, "A1 B2", ["A1 B2"]),
    ("AB", False, "A1 A2 B3", ["A2 B3"]),  # basicSequenceMergingPreviousStage: the newer A overwrites
    ("AB", False, "A1 B2 B3 B4", ["A1 B2"]),  # basicSequenceMergingLastStage: completion consumes
    ("AB", False, "A1 B2 A3 B4", ["A1 B2", "A3 B4"]),
    ("AB", False, "B1 A2 B3", ["A2 B3"]),
    ("AB", False, "A1/k1 A2/k2 B3/k1 B4/k2", ["A1 B3", "A2 B4"]),  # one machine per join key
    ("AB", False, "A1/k1 B2/k2", []),
    ("ABC", False, "A1 B2 C3", ["A1 B2 C3"]),
    ("ABC", False, "A1 A2 B3 B4 C5", ["A2 B3 C5"]),
    ("ABC", False, "A1 B2 A3 B4 C5", ["A3 B4 C5"]),  # the newer partial sequence overwrites stage B's slot
    ("ABC", False, "A1 B2 A3 C4 B5 C6", ["A1 B2 C4", "A3 B5 C6"]),  # a new A does not disturb a waiting AB
    ("ABC", False, "A1 C2 B3 C4", ["A1 B3 C4"]),
    ("ABCD", False, "A1 B2 C3 D4", ["A1 B2 C3 D4"]),
    ("ABCD", False, "A1 B2 A3 C4 B5 D6 C7 D8", ["A1 B2 C4 D6", "A3 B5 C7 D8"]),
    ("AB", True, "A1 U2 B3", []),  # until between the stages expires the sequence
    ("AB", True, "U1 A2 B3", ["A2 B3"]),  # ... but not one that starts after it
    ("AB", True, "A1 U2/k2 B3", ["A1 B3"]),  # ... and only for its own join key
    ("ABC", True, "A1 B2 U3 C4", []),
    ("ABC", True, "A1 B2 U3 A4 B5 C6", ["A4 B5 C6"]),
]


@pytest.mark.parametrize("stages,until,spec,want", CASES, ids=[f"{c[0]}{'-until' if c[1] else ''}: {c[2]}"
                                                              for c in CASES])
@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
def test_spec_case(stages, until, spec, want, lazy):
    assert ours(query(stages, until), spec, lazy) == want


@pytest.mark.parametrize("stages,until,spec,want", CASES, ids=[c[2] for c in CASES])
def test_spec_case_agrees_with_py_eql(stages, until, spec, want):
    assert py_eql(query(stages, until), spec) == want


@pytest.mark.parametrize("lazy", [False, True])
def test_maxspan_inclusive_from_the_first_event(lazy):
    q = query("ABC", maxspan="3ms")
    assert ours(q, "A0 B1 C3", lazy) == ["A0 B1 C3"]  # span exactly 3 ms
    assert ours(q, "A0 B1 C4", lazy) == []  # 3 ms + 1: measured from A, not from B
    assert ours(query("AB", maxspan="3ms"), "A0 A2 B4", lazy) == ["A2 B4"]  # A0 expired, A2 in span


@pytest.mark.parametrize("lazy", [False, True])
def test_same_timestamp_ordered_by_arrival(lazy):
    assert ours(query("AB"), "A5 B5", lazy) == ["A5 B5"]
    assert ours(query("AB"), "B5 A5", lazy) == []
    assert ours(query("ABC"), "A5 B5 C5", lazy) == ["A5 B5 C5"]


@pytest.mark.parametrize("lazy", [False, True])
def test_missing_join_keys(lazy):
    q = ('sequence with maxspan=10s [process where event.action == "A"] by process.entity_id '
         '[network where event.action == "B"] by process.parent.entity_id')
    cq = compile_query(q, lazy_first=lazy)
    a = Ev({"event.category": ["process"], "event.action": "A", "process.entity_id": "e1"})
    b_missing = Ev({"event.category": ["network"], "event.action": "B"})
    b_null = Ev({"event.category": ["network"], "event.action": "B", "process.parent.entity_id": []})
    b = Ev({"event.category": ["network"], "event.action": "B", "process.parent.entity_id": "e1"})
    assert cq.process(a, 1, 1) == []
    assert cq.process(b_missing, 2, 2) == [] and cq.process(b_null, 3, 3) == []
    assert cq.process(b, 4, 4) == [[a, b]]
    a_missing = Ev({"event.category": ["process"], "event.action": "A"})
    assert cq.process(a_missing, 5, 5) == []
    assert cq.process(Ev({"event.category": ["network"], "event.action": "B"}), 6, 6) == []
    # keys compare exactly (case-sensitive)
    cq = compile_query(q, lazy_first=lazy)
    cq.process(Ev(a, **{"process.entity_id": "AbC"}), 1, 1)
    assert cq.process(Ev(b, **{"process.parent.entity_id": "abc"}), 2, 2) == []
