"""Sequence state machine (eql-semantics.md §2.1, §2.6, §5.1)."""

from __future__ import annotations

import pytest

from auditimds.rules.engine.factory import compile_query
from auditimds.rules.engine.first_stage import LATE_GRACE_NS

S = 1_000_000_000


class Ev(dict):
    def __missing__(self, key):
        return None


def ev(cat, action, host="h1", key="k1", **extra):
    d = {"event.category": [cat], "event.action": action, "host.id": host, "process.parent.entity_id": key}
    d.update({k.replace("__", "."): v for k, v in extra.items()})
    return Ev(d)


AB = (
    "sequence by host.id, process.parent.entity_id with maxspan=3s "
    '[process where event.action == "A"] [network where event.action == "B"]'
)


def run(query, timeline):
    """timeline: list of (ts_ns, event).  seq = position.  Returns matches as lists of event ids."""
    cq = compile_query(query) if isinstance(query, str) else query
    out = []
    for seq, (ts, e) in enumerate(timeline):
        for m in cq.process(e, ts, seq):
            out.append([x["id"] for x in m])
    return out


def tag(e, ident):
    e["id"] = ident
    return e


def A(i, **kw):
    return tag(ev("process", "A", **kw), i)


def B(i, **kw):
    return tag(ev("network", "B", **kw), i)


def test_basic_match():
    assert run(AB, [(0, A("a")), (1 * S, B("b"))]) == [["a", "b"]]


def test_slot_overwrite_previous_stage():
    # [A1, A2, B] -> one alert [A2, B]
    assert run(AB, [(0, A("a1")), (1 * S, A("a2")), (2 * S, B("b"))]) == [["a2", "b"]]


def test_last_stage_consumes():
    # [A, B1, B2] -> one alert [A, B1]
    assert run(AB, [(0, A("a")), (1 * S, B("b1")), (2 * S, B("b2"))]) == [["a", "b1"]]


def test_two_sequences_interleaved():
    assert run(AB, [(0, A("a1")), (1, B("b1")), (2, A("a2")), (3, B("b2"))]) == [["a1", "b1"], ["a2", "b2"]]


def test_maxspan_inclusive():
    assert run(AB, [(0, A("a")), (3 * S, B("b"))]) == [["a", "b"]]
    assert run(AB, [(0, A("a")), (3 * S + 1, B("b"))]) == []
    assert run(AB, [(10, A("a")), (10 + 3 * S + 1, B("b"))]) == []


def test_expired_sequence_is_not_reused_and_is_swept():
    cq = compile_query(AB)
    assert run(cq, [(0, A("a")), (4 * S, B("b1")), (5 * S, B("b2"))]) == []  # beyond maxspan: no match
    # kept until the sweep, for a second stage written late (stamped within maxspan of the first stage)
    assert run(cq, [(2 * S, B("late"))]) == [["a", "late"]]
    cq = compile_query(AB)
    run(cq, [(0, A("a")), (4 * S, B("b1"))])
    assert cq.pending == 1
    run(cq, [(3 * S + LATE_GRACE_NS + 2 * S, B("much later"))])  # the sweep passes maxspan + the grace
    assert cq.pending == 0 and cq.expired == 1


def test_same_timestamp_ordered_by_seq():
    assert run(AB, [(5 * S, A("a")), (5 * S, B("b"))]) == [["a", "b"]]


def test_b_before_a_no_match():
    assert run(AB, [(0, B("b")), (1, A("a"))]) == []
    # and B at the same ts but earlier seq
    assert run(AB, [(5, B("b")), (5, A("a"))]) == []


def test_missing_join_key_never_joins():
    assert run(AB, [(0, A("a", key=None)), (1, B("b", key=None))]) == []
    assert run(AB, [(0, A("a", key=[])), (1, B("b", key=[]))]) == []
    assert run(AB, [(0, A("a", host=None)), (1, B("b", host=None))]) == []
    assert run(AB, [(0, A("a")), (1, B("b", key=None))]) == []


def test_different_key_no_join():
    assert run(AB, [(0, A("a", key="k1")), (1, B("b", key="k2"))]) == []
    assert run(AB, [(0, A("a", host="h1")), (1, B("b", host="h2"))]) == []
    # keys compare exactly (case-sensitive)
    assert run(AB, [(0, A("a", key="AbC")), (1, B("b", key="abc"))]) == []


def test_single_element_list_key_equals_scalar():
    assert run(AB, [(0, A("a", key=["k"])), (1, B("b", key="k"))]) == [["a", "b"]]


def test_optional_join_key_allows_null():
    q = (
        "sequence by host.id, ?process.parent.entity_id with maxspan=3s "
        '[process where event.action == "A"] [network where event.action == "B"]'
    )
    assert run(q, [(0, A("a", key=None)), (1, B("b", key=None))]) == [["a", "b"]]
    assert run(q, [(0, A("a", key=None)), (1, B("b", key="x"))]) == []


def test_category_must_match():
    assert run(AB, [(0, tag(ev("network", "A"), "a")), (1, B("b"))]) == []
    assert run(AB, [(0, A("a")), (1, tag(ev("process", "B"), "b"))]) == []
    # event.category given as a plain string and as a multi-valued list
    a = A("a")
    a["event.category"] = "process"
    b = B("b")
    b["event.category"] = ["network", "host"]
    assert run(AB, [(0, a), (1, b)]) == [["a", "b"]]


def test_one_event_cannot_fill_two_stages():
    q = 'sequence by host.id with maxspan=3s [any where event.action == "X"] [any where event.action == "X"]'
    X = lambda i: tag(ev("process", "X"), i)  # noqa: E731
    assert run(q, [(0, X("x1"))]) == []
    assert run(q, [(0, X("x1")), (1, X("x2"))]) == [["x1", "x2"]]
    # x2 completed the first sequence and also started a new one, which x3 completes
    assert run(q, [(0, X("x1")), (1, X("x2")), (2, X("x3"))]) == [["x1", "x2"], ["x2", "x3"]]


def test_same_event_fed_twice_is_not_strictly_later():
    q = 'sequence by host.id [any where event.action == "X"] [any where event.action == "X"]'
    cq = compile_query(q)
    x = tag(ev("process", "X"), "x")
    assert cq.process(x, 5, 1) == []
    assert cq.process(x, 5, 1) == []


def test_until_drops_pending():
    q = (
        "sequence by host.id, process.parent.entity_id with maxspan=3s "
        '[process where event.action == "A"] [network where event.action == "B"] '
        'until [process where event.action == "END"]'
    )
    end = lambda i, **kw: tag(ev("process", "END", **kw), i)  # noqa: E731
    assert run(q, [(0, A("a")), (1, end("e")), (2, B("b"))]) == []
    assert run(q, [(0, A("a")), (1, end("e", key="other")), (2, B("b"))]) == [["a", "b"]]
    assert run(q, [(0, A("a")), (1, end("e")), (2, A("a2")), (3, B("b"))]) == [["a2", "b"]]


THREE = (
    'sequence by host.id with maxspan=3s [process where event.action == "A"] '
    '[network where event.action == "B"] [process where event.action == "C"]'
)


def C(i, **kw):
    return tag(ev("process", "C", **kw), i)


def test_three_stages():
    assert run(THREE, [(0, A("a")), (1 * S, B("b")), (2 * S, C("c"))]) == [["a", "b", "c"]]
    # maxspan measured from the FIRST event at every stage
    assert run(THREE, [(0, A("a")), (2 * S, B("b")), (3 * S, C("c"))]) == [["a", "b", "c"]]
    assert run(THREE, [(0, A("a")), (2 * S, B("b")), (3 * S + 1, C("c"))]) == []
    # C without B
    assert run(THREE, [(0, A("a")), (1, C("c"))]) == []
    # a stage-0 event arriving while a sequence waits at stage 1 does not disturb it
    assert run(THREE, [(0, A("a1")), (1, B("b")), (2, A("a2")), (3, C("c"))]) == [["a1", "b", "c"]]
    # newer sequence reaching stage 1 overwrites the older one there
    assert run(THREE, [(0, A("a1")), (1, B("b1")), (2, A("a2")), (3, B("b2")), (4, C("c"))]) == [
        ["a2", "b2", "c"]
    ]


def test_runs_expand_stages():
    q = (
        'sequence by host.id [process where event.action == "A"] with runs=2 '
        '[network where event.action == "B"]'
    )
    assert run(q, [(0, A("a1")), (1, A("a2")), (2, B("b"))]) == [["a1", "a2", "b"]]
    assert run(q, [(0, A("a1")), (2, B("b"))]) == []


def test_per_stage_by_reverse_shell_style():
    q = (
        "sequence by host.id with maxspan=5s "
        '[network where event.action == "connection_attempted"] by process.entity_id '
        '[process where event.action == "exec"] by process.parent.entity_id'
    )
    net = tag(
        Ev(
            {
                "event.category": ["network"],
                "event.action": "connection_attempted",
                "host.id": "h",
                "process.entity_id": "shell-1",
            }
        ),
        "n",
    )
    child = tag(
        Ev(
            {
                "event.category": ["process"],
                "event.action": "exec",
                "host.id": "h",
                "process.entity_id": "child-9",
                "process.parent.entity_id": "shell-1",
            }
        ),
        "p",
    )
    other = tag(
        Ev(
            {
                "event.category": ["process"],
                "event.action": "exec",
                "host.id": "h",
                "process.entity_id": "shell-1",
                "process.parent.entity_id": "init",
            }
        ),
        "o",
    )
    assert run(q, [(0, net), (1 * S, child)]) == [["n", "p"]]
    assert run(q, [(0, net), (1 * S, other)]) == []
    assert run(q, [(0, net), (5 * S + 1, child)]) == []


def test_sequence_without_by():
    q = 'sequence with maxspan=1s [process where event.action == "A"] [network where event.action == "B"]'
    assert run(q, [(0, A("a", host="x")), (1, B("b", host="y"))]) == [["a", "b"]]


def test_sequence_without_maxspan_never_expires():
    q = 'sequence by host.id [process where event.action == "A"] [network where event.action == "B"]'
    assert run(q, [(0, A("a")), (10**15, B("b"))]) == [["a", "b"]]


def test_pruning_bounds_memory():
    cq = compile_query(AB)
    for i in range(10_000):
        cq.process(A(f"a{i}", key=f"k{i}"), i * 10_000_000, i)  # 100 events/s, 3s maxspan
    # alive window (maxspan + the grace for late events) + one sweep period, at 100 events/s
    assert cq.pending <= 100 * (3 + LATE_GRACE_NS // S) + 1 + 150
    assert cq.expired + cq.pending == 10_000 and cq.expired > 8000
    cq.prune(10**15)
    assert cq.pending == 0


def test_prune_after_quiet_period_keeps_recent():
    cq = compile_query(AB)
    cq.process(A("a"), 0, 0)
    cq.prune(2 * S)
    assert cq.pending == 1
    cq.prune(3 * S)
    assert cq.pending == 1  # exactly maxspan is still usable (inclusive)
    cq.prune(3 * S + LATE_GRACE_NS)
    assert cq.pending == 1  # kept a little longer for an event written late
    cq.prune(3 * S + LATE_GRACE_NS + 1)
    assert cq.pending == 0


def test_lru_cap_on_keys():
    cq = compile_query(
        'sequence by host.id [process where event.action == "A"] [network where event.action == "B"]',
        max_keys=100,
    )
    for i in range(250):
        cq.process(A(f"a{i}", host=f"h{i}"), i, i)
    assert cq.pending == 100 and cq.evicted == 150
    assert cq.process(B("b", host="h0"), 1000, 1000) == []  # evicted
    assert [[x["id"] for x in m] for m in cq.process(B("b", host="h249"), 1001, 1001)] == [["a249", "b"]]


def test_stage_predicate_skipped_without_pending():
    calls = []
    cq = compile_query(AB)
    orig = cq.preds[1]

    def spy(e):
        calls.append(e)
        return orig(e)

    cq.preds[1] = spy
    cq.process(B("b"), 0, 0)
    assert calls == []
    cq.process(A("a"), 1, 1)
    cq.process(B("b"), 2, 2)
    assert len(calls) == 1


def test_event_query_returns_single_event_matches():
    cq = compile_query('process where process.name : "curl"')
    e = Ev({"event.category": ["process"], "process.name": "CURL"})
    assert cq.process(e, 0, 0) == [[e]]
    assert cq.process(Ev({"event.category": "network", "process.name": "curl"}), 0, 0) == []
    assert cq.categories == frozenset({"process"})
    assert cq.fields == frozenset({"process.name", "event.category"})
    cq = compile_query('any where process.name : "curl"')
    assert cq.process(Ev({"process.name": "curl"}), 0, 0) == [[Ev({"process.name": "curl"})]]
    assert cq.categories is None


def test_fields_and_categories():
    cq = compile_query(AB)
    assert cq.categories == frozenset({"process", "network"})
    assert cq.fields == frozenset({"event.category", "event.action", "host.id", "process.parent.entity_id"})


@pytest.mark.parametrize("n", [2, 3, 4])
def test_chain_of_n_stages(n):
    stages = " ".join(f'[any where event.action == "S{i}"]' for i in range(n))
    q = f"sequence by host.id with maxspan=10s {stages}"
    timeline = [(i, tag(ev("process", f"S{i}"), f"s{i}")) for i in range(n)]
    assert run(q, timeline) == [[f"s{i}" for i in range(n)]]
