"""The lazy first stage (used for loaded rules) gives exactly the matches of the eager slot machine."""

from __future__ import annotations

import random

import pytest

from auditimds.rules.engine.factory import compile_query
from auditimds.rules.engine.first_stage import CLOCK_STEP_EVENTS, LATE_GRACE_NS

S = 1_000_000_000


class Ev(dict):
    def __missing__(self, key):
        return None


QUERIES = [
    'sequence by host.id, process.parent.entity_id with maxspan=3s '
    '[process where event.action == "A" and process.name : ("x*", "y")] [network where event.action == "B"]',
    'sequence by host.id with maxspan=2s [process where event.action == "A"] by process.entity_id '
    '[network where event.action == "B"] by process.parent.entity_id',
    'sequence by host.id with maxspan=3s [process where event.action == "A"] '
    '[network where event.action == "B"] [process where event.action == "C"]',
    'sequence by host.id with maxspan=3s [process where event.action == "A"] '
    '[network where event.action == "B"] until [process where event.action == "END"]',
    'sequence by host.id with maxspan=1s [any where event.action in ("A", "B")] [any where event.action == "B"]',
    'sequence by ?process.parent.entity_id with maxspan=2s [process where event.action == "A"] '
    '[process where event.action == "A"]',
]


def stream(rng, n):
    t = 0
    out = []
    for i in range(n):
        t += rng.choice([0, 0, 1, S // 3, S, 2 * S, 3 * S])
        cat = rng.choice(["process", "network"])
        d = Ev({"event.category": [cat], "id": i, "host.id": rng.choice(["h1", "h2"])})
        d["event.action"] = rng.choice(["A", "C", "END"] if cat == "process" else ["B"])
        d["process.name"] = rng.choice(["xa", "y", "z"])
        for f in ("process.entity_id", "process.parent.entity_id"):
            d[f] = rng.choice(["p1", "p2", "p3", None])
        out.append((t, d))
    return out


@pytest.mark.parametrize("query", QUERIES)
def test_lazy_equals_eager(query):
    rng = random.Random(hash(query) & 0xFFFF)
    total = 0
    for _ in range(150):
        evs = stream(rng, 40)
        res = []
        for lazy in (False, True):
            cq = compile_query(query, lazy_first=lazy)
            ms = []
            for seq, (ts, e) in enumerate(evs):
                ms.extend([x["id"] for x in m] for m in cq.process(e, ts, seq))
            res.append(ms)
        assert res[0] == res[1]
        total += len(res[0])
    assert total > 20


def test_lazy_first_skips_stage_zero_without_stage_one():
    calls = []
    cq = compile_query(QUERIES[0], lazy_first=True)
    orig = cq.preds[0]
    cq.preds[0] = lambda e: calls.append(e) or orig(e)
    a = Ev({"event.category": ["process"], "event.action": "A", "process.name": "xa", "host.id": "h",
            "process.parent.entity_id": "p", "id": 1})
    for i in range(100):
        cq.process(a, i, i)
    assert calls == [] and cq.pending == 100
    b = Ev({"event.category": ["network"], "event.action": "B", "host.id": "h", "process.parent.entity_id": "p",
            "id": 2})
    assert [[x["id"] for x in m] for m in cq.process(b, 200, 200)] == [[1, 2]]
    assert len(calls) == 1  # only the newest candidate of the key
    cq.prune(10 * S)
    assert cq.pending == 0


def _a(i, ts_key="p"):
    return Ev({"event.category": ["process"], "event.action": "A", "process.name": "xa", "host.id": "h",
               "process.parent.entity_id": ts_key, "id": i})


def _b(i):
    return Ev({"event.category": ["network"], "event.action": "B", "host.id": "h", "process.parent.entity_id": "p",
               "id": i})


def test_clock_stepping_back_does_not_kill_new_candidates():
    cq = compile_query(QUERIES[0], lazy_first=True)
    assert len(cq.process(_a(1), 100 * S, 1)) == 0
    assert [[x["id"] for x in m] for m in cq.process(_b(2), 101 * S, 2)] == [[1, 2]]
    # the clock steps back 50 s: a new exec then connect of the same parent must still match
    cq.process(_a(3), 51 * S, 3)
    assert [[x["id"] for x in m] for m in cq.process(_b(4), 51 * S + 1, 4)] == [[3, 4]]


def test_feeding_the_same_matcher_again_from_the_start():
    cq = compile_query(QUERIES[0], lazy_first=True)
    for _ in range(2):
        cq.process(_a(1), 10, 0)
        assert [[x["id"] for x in m] for m in cq.process(_b(2), 20, 1)] == [[1, 2]]


def test_lazy_candidates_stay_bounded_when_the_clock_steps_back():
    """Concatenated logs, a reboot or an NTP step: time goes back; the candidate queue must not grow."""
    from auditimds.rules.engine.factory import compile_query

    class Ev(dict):
        def __missing__(self, k):
            return None

    q = compile_query('sequence by host.id with maxspan=3s [process where true] [network where true]',
                      lazy_first=True)
    sizes = []
    for rnd in range(4):  # the same hour of events four times over
        for i in range(3000):
            ts = (1_000_000 + i) * 1_000_000_000 // 100  # 100 events per second
            q.process(Ev({"event.category": ["process"], "host.id": "h"}), ts, rnd * 10_000 + i)
        sizes.append(q.pending)
    assert max(sizes) <= 400  # ~3 s of 100 events/s, not the 12,000 events seen
    assert q.expired > 0


def test_a_flood_that_overflows_the_candidate_queue_cannot_hide_a_match():
    """Security: 20,000 cheap events (execs, failed io_uring_setup calls) used to push the attacker's exec out
    of the lazy queue before its connect.  Evicted candidates are evaluated and kept per key instead."""
    from auditimds.rules.engine.factory import compile_query

    class Ev(dict):
        def __missing__(self, k):
            return None

    q = ('sequence by host.id, process.parent.entity_id with maxspan=3s '
         '[process where process.name == "python3"] [network where destination.ip == "169.254.169.254"]')
    results = {}
    for lazy in (True, False):
        m = compile_query(q, lazy_first=lazy)
        m.max_candidates = 50  # small cap: the same code path as 20,000 real events
        seq = 0
        out = []
        for burst_parent in ("P1", "P2"):  # flood from the same parent, then from another one
            seq += 1
            out += m.process(Ev({"event.category": ["process"], "host.id": "h", "process.parent.entity_id": "P1",
                                 "process.name": "python3"}), 1_000_000_000 + seq * 1000, seq)
            for _ in range(500):
                seq += 1
                out += m.process(Ev({"event.category": ["process"], "host.id": "h",
                                     "process.parent.entity_id": burst_parent, "process.name": "true"}),
                                 1_000_000_000 + seq * 1000, seq)
            seq += 1
            out += m.process(Ev({"event.category": ["network"], "host.id": "h", "process.parent.entity_id": "P1",
                                 "destination.ip": "169.254.169.254"}), 1_000_000_000 + seq * 1000, seq)
        results[lazy] = len(out)
    assert results == {True: 2, False: 2}


# -- events written late (a syscall that blocked) and time order, as Elasticsearch sorts events ------------------

LATE_Q = ('sequence by host.id with maxspan=3s [process where event.action == "A"] '
          '[network where event.action == "B"]')


def _ev(cat: str, action: str, host: str, i: int) -> dict:
    class Ev(dict):
        def __missing__(self, k):
            return None

    return Ev({"event.category": [cat], "event.action": action, "host.id": host, "id": i})


def _run(query: str, stream, lazy: bool):
    cq = compile_query(query, lazy_first=lazy)
    out = []
    for seq, (ts, ev) in enumerate(stream):
        out += [[e["id"] for e in m] for m in cq.process(ev, ts, seq)]
    return out


@pytest.mark.parametrize("lazy", [True, False])
def test_one_late_event_does_not_wipe_pending_first_stages(lazy):
    # an exec of another host stamped 9 s earlier arrives between A and B: Elasticsearch (time order) still
    # pairs A with B; the lazy window used to take it for a clock step and drop every candidate
    stream = [(10 * S, _ev("process", "A", "h1", 1)), (1 * S, _ev("process", "X", "h2", 2)),
              (11 * S, _ev("network", "B", "h1", 3))]
    assert _run(LATE_Q, stream, lazy) == [[1, 3]]


@pytest.mark.parametrize("lazy", [True, False])
def test_a_late_second_stage_uses_the_candidate_before_it_in_time(lazy):
    # A1@10 A2@12 B1@11 (late) B2@13: in time order B1 takes A1 and B2 takes A2 (the live agent's eager slot
    # used to hold only A2, so the late B1 found nothing: a blocking connect hid the IMDS access)
    stream = [(10 * S, _ev("process", "A", "h1", 1)), (12 * S, _ev("process", "A", "h1", 2)),
              (11 * S, _ev("network", "B", "h1", 3)), (13 * S, _ev("network", "B", "h1", 4))]
    assert _run(LATE_Q, stream, lazy) == [[1, 3], [2, 4]]


@pytest.mark.parametrize("lazy", [True, False])
def test_a_late_second_stage_after_the_newer_one_was_consumed(lazy):
    # A1@10 A2@12 B2@13 takes A2; B1@11 written late still takes A1, as in time order
    stream = [(10 * S, _ev("process", "A", "h1", 1)), (12 * S, _ev("process", "A", "h1", 2)),
              (13 * S, _ev("network", "B", "h1", 3)), (11 * S, _ev("network", "B", "h1", 4))]
    assert sorted(_run(LATE_Q, stream, lazy)) == [[1, 4], [2, 3]]


@pytest.mark.parametrize("lazy", [True, False])
def test_a_late_candidate_older_than_a_consumed_one_stays_dead(lazy):
    # A1@10 B1@11 consume; A0@9 arrives late; B2@12: in time order A0 was overwritten by A1, which B1 used
    stream = [(10 * S, _ev("process", "A", "h1", 1)), (11 * S, _ev("network", "B", "h1", 2)),
              (9 * S, _ev("process", "A", "h1", 3)), (12 * S, _ev("network", "B", "h1", 4))]
    assert _run(LATE_Q, stream, lazy) == [[1, 2]]


@pytest.mark.parametrize("lazy", [True, False])
def test_a_late_first_stage_pairs_with_a_late_second_stage_before_the_newer_one(lazy):
    # A2@12 first; A1@10 written late; B@11 written late: in time order A1, B, A2 -> B takes A1
    stream = [(12 * S, _ev("process", "A", "h1", 1)), (10 * S, _ev("process", "A", "h1", 2)),
              (11 * S, _ev("network", "B", "h1", 3))]
    assert _run(LATE_Q, stream, lazy) == [[2, 3]]


def _late_connects(rng, evs, p=0.3, max_shift=6):
    """Arrival order of a time-ordered stream in which some network events are written late (a connect that
    blocked: stamped at syscall entry, written at exit), keeping their stamps; None if one is later than the
    matcher's grace for late events."""
    keyed = [(i + (rng.randint(1, max_shift) if te[1]["event.category"] == ["network"] and rng.random() < p else 0),
              i, te) for i, te in enumerate(evs)]
    out = [te for _, _, te in sorted(keyed, key=lambda x: (x[0], x[1]))]
    newest = -1
    for ts, _e in out:
        if newest - ts > LATE_GRACE_NS:
            return None
        newest = max(newest, ts)
    return out


@pytest.mark.parametrize("query", QUERIES[:2])
def test_eager_with_late_connects_finds_what_time_order_finds(query):
    """The live agent (eager first stage) finds as many sequences as Elasticsearch does on the same events
    sorted by time, when connects are written late, and every match it reports is a valid one."""
    cq0 = compile_query(query, lazy_first=False)
    maxspan = cq0.maxspan
    rng = random.Random(4242)
    total = streams = 0
    while streams < 400:
        evs = _late_connects(rng, stream(rng, 40))
        if evs is None:
            continue
        streams += 1
        got, oracle = [], []
        for out, items in ((got, list(enumerate(evs))),
                           (oracle, sorted(enumerate(evs), key=lambda x: (x[1][0], x[0])))):
            cq = compile_query(query, lazy_first=False)
            for seq, (ts, e) in items:
                out.extend(cq.process(e, ts, seq))
        assert len(got) == len(oracle), evs
        when = {id(e): (ts, seq) for seq, (ts, e) in enumerate(evs)}
        for first, second in got:
            assert cq0.keyfns[0](first) == cq0.keyfns[1](second)
            assert when[id(first)] < when[id(second)] and when[id(second)][0] - when[id(first)][0] <= maxspan
        total += len(got)
    assert total > 100


@pytest.mark.parametrize("lazy", [True, False])
def test_late_second_stage_after_the_sweep(lazy):
    # A@13 ... an event of another host at 16 s + 1 ns triggers the sweep ... B@15 written late
    stream = [(13 * S, _ev("process", "A", "h1", 1)), (16 * S + 1, _ev("network", "B", "h2", 2)),
              (15 * S, _ev("network", "B", "h1", 3))]
    assert _run(LATE_Q, stream, lazy) == [[1, 3]]


@pytest.mark.parametrize("lazy", [True, False])
def test_a_late_first_stage_does_not_replace_a_newer_one(lazy):
    # A1@10, A2@9 written late, B@12.5: in time order A1 is the pending first stage (A2 is also out of maxspan)
    stream = [(10 * S, _ev("process", "A", "h1", 1)), (9 * S, _ev("process", "A", "h1", 2)),
              (12 * S + S // 2, _ev("network", "B", "h1", 3))]
    assert _run(LATE_Q, stream, lazy) == [[1, 3]]


def test_a_real_clock_step_still_resets_the_window():
    # a long run of events all far behind the newest candidate is a clock step: the "future" is dropped
    cq = compile_query(LATE_Q, lazy_first=True)
    seq = 0
    for i in range(100):
        cq.process(_ev("process", "A", "h1", i), 1000 * S + i, seq)
        seq += 1
    for i in range(CLOCK_STEP_EVENTS + 10):
        cq.process(_ev("process", "Z", "h1", 1000 + i), 10 * S + i, seq)
        seq += 1
    assert all(c.ts < 20 * S for c in cq.window.cands)  # only the new timeline's candidates are left
    assert [[e["id"] for e in m] for m in cq.process(_ev("network", "B", "h1", 9), 10 * S + 5000, seq)] == []


def test_consumption_marks_stay_bounded():
    cq = compile_query(LATE_Q, lazy_first=True)
    seq = 0
    for i in range(50_000):  # 50,000 distinct keys, each matched once, 10 ms apart
        host = f"h{i}"
        cq.process(_ev("process", "A", host, 2 * i), i * 10_000_000, seq)
        assert len(cq.process(_ev("network", "B", host, 2 * i + 1), i * 10_000_000 + 1, seq + 1)) == 1
        seq += 2
    assert len(cq.marks) <= 4096 + 2 * len(cq.window.cands) + 1


DUP_Q = ('sequence by host.id with maxspan=2s [process where event.action == "A"] '
         '[network where event.action == "B"]')


@pytest.mark.parametrize("lazy", [True, False])
def test_a_first_stage_is_never_used_twice_by_a_late_second_stage(lazy):
    # A@0, B1@0.5 s takes it; B2 stamped 1 ns (written late) would have taken A in time order: A is used once
    stream = [(0, _ev("process", "A", "h1", 1)), (S // 2, _ev("network", "B", "h1", 2)),
              (1, _ev("network", "B", "h1", 3))]
    assert _run(DUP_Q, stream, lazy) == [[1, 2]]


def test_marks_survive_an_unconfirmed_clock_step():
    # 64 consumptions of one key, then the clock steps back an hour: A, B1, B2 on the new timeline give one
    # match (the trim of consumption marks used the old timeline's time and dropped the new marks)
    cq = compile_query(DUP_Q, lazy_first=True)
    seq, out = 0, []
    for i in range(64):  # the next consumption makes 65 marks: the per-key trim runs
        for cat, act in (("process", "A"), ("network", "B")):
            out += cq.process(_ev(cat, act, "h1", seq), 7200 * S + i * 10 * S + seq, seq)
            seq += 1
    assert len(out) == 64
    new = []
    for ts, cat, act in ((3600 * S, "process", "A"), (3600 * S + S // 10, "network", "B"),
                         (3600 * S + S // 5, "network", "B")):
        new += [[e["id"] for e in m] for m in cq.process(_ev(cat, act, "h1", seq), ts, seq)]
        seq += 1
    assert new == [[128, 129]]


def test_eager_slots_of_an_old_timeline_go_after_a_clock_step():
    cq = compile_query(DUP_Q, lazy_first=False)
    seq = 0
    for i in range(5000):  # pending first stages of 5,000 keys on the old timeline
        cq.process(_ev("process", "A", f"h{i}", seq), 7200 * S + i * 1000, seq)
        seq += 1
    assert cq.pending == 5000
    for i in range(CLOCK_STEP_EVENTS + 10):  # the clock steps back an hour: a run of events on the new timeline
        cq.process(_ev("network", "Z", "x", seq), 3600 * S + i * 1000, seq)
        seq += 1
    assert cq.pending == 0


def test_spilled_first_stages_do_not_pile_up():
    q = ('sequence by host.id with maxspan=2s [process where event.action == "A"] '
         '[network where event.action == "B"]')
    cq = compile_query(q, lazy_first=True)
    cq.max_candidates = 100  # every candidate beyond 100 is evaluated and spilled
    for i in range(50_000):  # 50,000 distinct keys at 1,000 events/s: only recent spills can still match
        cq.process(_ev("process", "A", f"h{i}", i), i * 1_000_000, i)
    assert len(cq.window.spill) <= 1000 * (2 + LATE_GRACE_NS // S) + 1
    assert cq.pending >= len(cq.window.spill)


def test_eager_history_of_first_stages_stays_bounded():
    """The first stages kept for late second stages: at most History.PER_KEY per key, none beyond the grace."""
    cq = compile_query(LATE_Q, lazy_first=False)
    seq = 0
    for i in range(20_000):  # one key matching its first stage 1,000 times a second, and 2,000 other keys
        cq.process(_ev("process", "A", "busy", seq), i * 1_000_000, seq)
        seq += 1
        if i % 10 == 0:
            cq.process(_ev("process", "A", f"h{i}", seq), i * 1_000_000, seq)
            seq += 1
    assert len(cq.history.by_key.get(("busy",), [])) <= cq.history.PER_KEY
    assert all(len(v) <= cq.history.PER_KEY for v in cq.history.by_key.values())
    later = 20 * S + 3 * S + LATE_GRACE_NS + 2 * S  # beyond maxspan + grace: a sweep drops them all
    cq.process(_ev("network", "B", "other", seq), later, seq)
    cq.process(_ev("network", "B", "other", seq + 1), later + 2 * S, seq + 1)
    assert len(cq.history.by_key) == 0 and cq.pending <= 2


UNTIL_Q = ('sequence by host.id with maxspan=3s [process where event.action == "A"] '
           '[network where event.action == "B"] until [process where event.action == "END"]')


@pytest.mark.parametrize("lazy", [True, False])
def test_a_late_second_stage_before_an_until_event_still_matches(lazy):
    # A@10, END@12 (drops the sequence), B@11 written late: in time order A, B, END -> a match; B@13 -> none
    stream = [(10 * S, _ev("process", "A", "h1", 1)), (12 * S, _ev("process", "END", "h1", 2)),
              (11 * S, _ev("network", "B", "h1", 3)), (13 * S, _ev("network", "B", "h1", 4))]
    assert _run(UNTIL_Q, stream, lazy) == [[1, 3]]
