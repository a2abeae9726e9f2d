"""Streaming evaluation of compiled EQL queries with Elasticsearch's sequence semantics.

``/work/shared/docs/eql-semantics.md`` §2.1 and §5.1.  For each join-key tuple there is one pending slot per
stage (the last stage never waits: completing it emits a match):

* a new stage-0 match overwrites that key's stage-0 slot;
* an event matching stage ``k > 0`` takes the sequence pending in slot ``k-1`` for its key,
  provided the event is
  strictly later in ``(ts, seq)`` order than that sequence's last event and within ``maxspan`` of its FIRST
  event (inclusive: ``ts - first_ts <= maxspan``), moves it to slot ``k`` (overwriting) and clears
  slot ``k-1``;
  an expired candidate is dropped;
* stages are tried from the last to the first for every event, so an event moves a given sequence at most one
  step; the same event may still start a new sequence at stage 0;
* join keys = the sequence's ``by`` values + the stage's own ``by`` values; events with a missing
  key value don't
  take part (unless the key field is written ``?field``); keys compare exactly;
* ``until``: an event matching the until stage drops every pending sequence of its key.

Memory is bounded: pending sequences older than ``maxspan`` are dropped lazily when touched and by
a sweep that
runs whenever event time has advanced by half a maxspan (``prune(now)`` can also be called by the caller), and
each slot table holds at most ``max_keys`` keys (least recently written evicted first, counted in
``evicted``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict, deque
from typing import Any, Callable, Dict, List, Mapping, Tuple
from typing import Sequence as Seq

from .eql_parser import EventQuery, Field, Query, Sequence

__all__ = ["CompiledQuery", "EventMatcher", "SequenceMatcher", "NOKEY"]

Predicate = Callable[[Mapping[str, Any]], bool]


class _NoKey:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOKEY"


NOKEY: Any = _NoKey()
def _insort_by_time(lst: list, entry: list) -> None:
    """Insert `entry` ([ts, seq, ...]) into `lst`, kept in (ts, seq) order."""
    t = (entry[0], entry[1])
    i = len(lst)
    while i and (lst[i - 1][0], lst[i - 1][1]) > t:
        i -= 1
    lst.insert(i, entry)


_UNK: Any = object()  # not computed yet
_USED: Any = object()  # a candidate already consumed by a match: never used twice

# Lazy first stage: this many first-stage events in a row, each more than maxspan older than the newest
# candidate, mean the clock stepped back (a single late event does not).
CLOCK_STEP_EVENTS = 256
# Eager slots are swept this long after maxspan, so an event written late (beyond the pipeline's reordering
# window) still finds the first-stage match it belongs with; slots hold matches only, so this costs little.
LATE_GRACE_NS = 10_000_000_000


def _make_keyfn(fields: Seq[Field]) -> Callable[[Mapping[str, Any]], Any]:
    """Generate ``key(ev)`` returning the join-key tuple or :data:`NOKEY` if a mandatory key is missing.

    Multi-valued key values: ``[]`` is missing, ``[x]`` is ``x``, longer lists become a tuple (exact match of
    the whole list; ES has no exact equivalent, documented deviation).
    """
    lines = ["def key(ev, _list=list, _tuple=tuple, NOKEY=NOKEY):"]
    names = []
    for i, f in enumerate(fields):
        v = f"k{i}"
        names.append(v)
        lines.append(f"    {v} = ev[{f.name!r}]")
        lines.append(f"    if {v}.__class__ is _list:")
        lines.append(f"        {v} = None if not {v} else ({v}[0] if len({v}) == 1 else _tuple({v}))")
        if not f.optional:
            lines.append(f"    if {v} is None:")
            lines.append("        return NOKEY")
    lines.append(f"    return ({', '.join(names)}{',' if len(names) == 1 else ''})")
    ns: Dict[str, Any] = {"NOKEY": NOKEY}
    exec(compile("\n".join(lines) + "\n", "<eql:key>", "exec"), ns)  # noqa: S102
    return ns["key"]  # type: ignore[no-any-return]


def _category_matches(cat: Any, wanted: str | None) -> bool:
    if wanted is None:
        return True
    if cat.__class__ is list:
        return wanted in cat
    return bool(cat == wanted)


class CompiledQuery:
    """Common interface of compiled queries.

    * ``process(ev, ts_ns, seq) -> list[list[Mapping]]``: feed one event (callers feed events in nondecreasing
      ``(ts_ns, seq)`` order); returns the matches it completes, each the list of the stage events in order.
    * ``fields``: frozenset of field names the query reads (``event.category`` included).
    * ``categories``: frozenset of event categories the query uses, or ``None`` if it uses ``any``
      (every event
      may matter).  Events whose ``event.category`` is not in it can be skipped by the caller.
    """

    query: Query
    fields: frozenset
    categories: frozenset | None

    def process(self, ev: Mapping[str, Any], ts_ns: int, seq: int) -> List[List[Mapping[str, Any]]]:
        raise NotImplementedError

    def prune(self, now_ts_ns: int) -> None:
        """Drop state that can no longer produce a match at time ``now_ts_ns`` (no-op for event queries)."""

    @property
    def pending(self) -> int:
        """Number of pending (partial) sequences held."""
        return 0


class EventMatcher(CompiledQuery):
    """A plain ``<category> where <expr>`` query."""

    def __init__(self, query: EventQuery, pred: Predicate, fields: frozenset) -> None:
        self.query = query
        self.pred = pred
        self.fields = fields
        self.category = query.category
        self.categories = None if query.category is None else frozenset([query.category])

    def process(self, ev: Mapping[str, Any], ts_ns: int, seq: int) -> List[List[Mapping[str, Any]]]:
        want = self.category
        if want is not None:
            cat = ev["event.category"]
            if cat != want and not (cat.__class__ is list and want in cat):
                return []
        if self.pred(ev):
            return [[ev]]
        return []


class SequenceMatcher(CompiledQuery):
    """The per-key sequence state machine."""

    def __init__(
        self,
        query: Sequence,
        preds: List[Predicate],
        until: Predicate | None,
        fields: frozenset,
        max_keys: int = 100_000,
        lazy_first: bool = False,
    ) -> None:
        if len(preds) != len(query.stages) or len(preds) < 2:
            raise ValueError("a sequence needs one predicate per stage and at least two stages")
        self.query = query
        self.fields = fields
        self.preds = preds
        self.n = len(preds)
        self.maxspan: int | None = query.maxspan_ns
        self.max_keys = max_keys
        # clock skew between hosts tolerated by the slot sweep: 0 for one host's log (the bound on memory is
        # then the rate of first-stage matches x maxspan); the pipeline raises it for multi-node logs
        self.skew_ns = 0
        # unevaluated first-stage events held for one maxspan (lazy mode): about 20 s of 1,000 execs/s;
        # each holds a whole event, so this bound is what keeps memory flat
        self.max_candidates = min(max_keys, 20_000)
        self.keyfns = [_make_keyfn(list(query.by) + list(s.by)) for s in query.stages]
        self.until_pred = until
        self.until_key = (
            _make_keyfn(list(query.by) + list(query.until.by)) if query.until is not None else None
        )
        self.until_cat = query.until.category if query.until is not None else None
        # slots[k] = key -> [first_ts, last_ts, last_seq, events]; k in 0 .. n-2
        self.slots: List[OrderedDict[Any, list]] = [OrderedDict() for _ in range(self.n - 1)]
        # stats
        self.evicted = 0
        self.expired = 0
        self.matches = 0
        # category dispatch: category -> stage indexes, last stage first
        cats = [s.category for s in query.stages]
        any_stages = tuple(k for k in range(self.n - 1, -1, -1) if cats[k] is None)
        self._any_stages = any_stages
        self._dispatch: Dict[Any, Tuple[int, ...]] = {}
        for c in {c for c in cats if c is not None}:
            self._dispatch[c] = tuple(k for k in range(self.n - 1, -1, -1) if cats[k] in (c, None))
        all_cats = set(cats)
        if query.until is not None:
            all_cats.add(query.until.category)
        self.categories = None if None in all_cats else frozenset(all_cats)  # type: ignore[arg-type]
        self._multi_cache: Dict[Tuple[Any, ...], Tuple[int, ...]] = {}
        self._sweep_every = max(self.maxspan // 2, 1_000_000) if self.maxspan is not None else None
        self._next_sweep: int | None = None
        self._sweep_behind = 0  # consecutive events far behind the sweep schedule (clock step detection)
        # Lazy first stage (needs a maxspan): stage-0 events are kept as candidates for maxspan, unevaluated;
        # the stage-0 predicate and key of a candidate are computed only when a stage-1 event looks for a
        # sequence to advance (newest candidate of its key first), at most once each.  Same matches as the
        # eager slot (the newest stage-0 match of the key, if within maxspan), but a rule whose second stage
        # is rare (the seed rule: connects to 169.254.169.254) almost never evaluates its first stage.
        # _cands: [ts, seq, ev, key|_UNK, ok|_UNK] in arrival order.  _dead: key -> sorted (ts, seq) of the
        # events that consumed (advanced) or dropped (`until`) the key's pending first stage.  Elasticsearch
        # walks events in time order, so a second-stage event E can use only candidates after the last such
        # event before E (in time): earlier ones were used, dropped or overwritten by then.  Deciding by time
        # (not arrival) keeps the result right when an event is written late (a syscall that blocked) and when
        # the clock steps back.  A late event just joins the window; only a run of CLOCK_STEP_EVENTS
        # first-stage events all more than maxspan behind the newest candidate is taken for a clock step
        # (reboot, NTP, concatenated logs), which drops what is "in the future".  A seq going backwards means a
        # new stream (the matcher fed again from the start): the lazy state is reset.
        self.lazy_first = bool(lazy_first and self.maxspan is not None)
        self._cands: deque = deque()
        self._cand_newest = -(1 << 62)  # newest candidate time seen
        self._behind = 0  # consecutive first-stage events more than maxspan behind _cand_newest
        # first-stage matches of candidates pushed out of a full queue (a flood): key -> candidate record,
        # newest overwrites (Elasticsearch's one pending sequence per stage and key)
        self._spill: "OrderedDict[Any, list]" = OrderedDict()
        self._dead: Dict[Any, List[Tuple[int, int]]] = {}
        self._last_seq = -1
        # Eager first stage: slot 0 holds the newest stage-0 match of a key (Elasticsearch's slot).  The ones it
        # overwrote within the lateness horizon, and the ones consumed (flagged), stay in `_older`
        # (key -> [[ts, seq, event, used], ...] in time order, at most OLDER_PER_KEY), so that a second-stage
        # event written late pairs, as in time order, with the first stage before it; consumptions and
        # `until` events leave marks in `_dead`, as in lazy mode.
        self._older: "OrderedDict[Any, list]" = OrderedDict()
        if self.lazy_first and self.n == 2 and until is None:
            self.process = self._process_lazy2  # type: ignore[method-assign]

    # -- state inspection
    @property
    def pending(self) -> int:
        """Partial sequences held (with a lazy first stage: plus the unevaluated stage-0 candidates)."""
        return (sum(len(d) for d in self.slots) + len(self._cands) + len(self._spill)
                + sum(1 for v in self._older.values() for e in v if not e[3]))

    def _stages_for(self, cat: Any) -> Tuple[int, ...]:
        if cat.__class__ is str:
            return self._dispatch.get(cat, self._any_stages)
        if cat.__class__ is list:
            if len(cat) == 1:
                c0 = cat[0]
                return self._dispatch.get(c0, self._any_stages) if c0.__class__ is str else self._any_stages
            key = tuple(c for c in cat if c.__class__ is str)
            r = self._multi_cache.get(key)
            if r is None:
                ks = set(self._any_stages)
                for c in key:
                    ks.update(self._dispatch.get(c, ()))
                r = tuple(sorted(ks, reverse=True))
                if len(self._multi_cache) < 1024:
                    self._multi_cache[key] = r
            return r
        return self._any_stages

    # -- maintenance
    def prune(self, now_ts_ns: int) -> None:
        maxspan = self.maxspan
        if maxspan is None:
            return
        limit = now_ts_ns - maxspan
        cands = self._cands
        while cands and cands[0][0] < limit:
            cands.popleft()
            self.expired += 1
        if self._dead:
            self._dead = {k: m for k, m in self._dead.items() if m[-1][0] >= limit - maxspan}
        # Slots hold first-stage *matches* only (few), and maxspan is checked per key when a later stage
        # arrives; so the sweep may keep them longer than maxspan behind the newest event time, which comes
        # from any host: a node whose clock lags (aggregated node= logs) keeps its pending sequences.
        limit = now_ts_ns - maxspan - self.skew_ns - LATE_GRACE_NS
        older = self._older
        while older:
            first_key = next(iter(older))
            if older[first_key][-1][0] < limit:
                del older[first_key]
            else:
                break
        for d in self.slots:
            # slot tables are ordered by insertion time; once the oldest entry is still alive, everything left
            # was inserted within the last maxspan (so memory stays bounded by the event rate * maxspan)
            while d:
                first_key = next(iter(d))
                if d[first_key][0] < limit:
                    del d[first_key]
                    self.expired += 1
                else:
                    break

    def _drop_future_slots(self, ts_ns: int) -> None:
        """The clock stepped back to about `ts_ns`: pending sequences of the old timeline go."""
        horizon = ts_ns + self.maxspan + self.skew_ns + LATE_GRACE_NS  # type: ignore[operator]
        self._older.clear()
        for d in self.slots:
            for k in [k for k, rec in d.items() if rec[0] > horizon]:
                del d[k]
                self.expired += 1

    def _put(self, d: OrderedDict[Any, list], key: Any, rec: list) -> None:
        if key in d:
            del d[key]
        d[key] = rec
        if len(d) > self.max_keys:
            d.popitem(last=False)
            self.evicted += 1

    OLDER_PER_KEY = 16

    def _keep_older(self, key: Any, ts_ns: int, seq: int, ev: Any, used: bool) -> None:
        """Eager mode: remember a stage-0 match that the slot no longer holds (overwritten, consumed, or written
        late), in time order; entries beyond the lateness horizon of the newest one go."""
        lst = self._older.get(key)
        entry = [ts_ns, seq, ev, used]
        if lst is None:
            self._older[key] = [entry]
        else:
            if (lst[-1][0], lst[-1][1]) < (ts_ns, seq):
                lst.append(entry)
            else:
                _insort_by_time(lst, entry)
            horizon = lst[-1][0] - self.maxspan - LATE_GRACE_NS  # type: ignore[operator]
            while lst and (lst[0][0] < horizon or len(lst) > self.OLDER_PER_KEY):
                del lst[0]
            self._older.move_to_end(key)
        if len(self._older) > self.max_keys:
            self._older.popitem(last=False)

    def _take_eager(self, key: Any, ts_ns: int, seq: int) -> list | None:
        """Eager mode, second stage (ts_ns, seq): the newest stage-0 match of `key` before it in time, within
        maxspan, not consumed and not older than a consumption or `until` before it; consumed.  None if there
        is none, or if the one time order gives was already used by another match."""
        maxspan: int = self.maxspan  # type: ignore[assignment]
        floor = self._floor(key, ts_ns, seq) if self._dead else None
        slot = self.slots[0]
        rec = slot.get(key)
        if rec is not None and (rec[0] < ts_ns or (rec[0] == ts_ns and rec[2] < seq)):
            if ts_ns - rec[0] > maxspan:
                return None  # kept: a second stage written late, stamped closer to it, may still come
            if floor is not None and (rec[0], rec[2]) < floor:
                return None
            del slot[key]
            self._kill(key, ts_ns, seq)
            if maxspan is not None:
                self._keep_older(key, rec[0], rec[2], rec[3][0], True)
            return rec
        lst = self._older.get(key)
        if not lst:
            return None
        for i in range(len(lst) - 1, -1, -1):
            e = lst[i]
            if not (e[0] < ts_ns or (e[0] == ts_ns and e[1] < seq)):
                continue
            if e[3] or ts_ns - e[0] > maxspan or (floor is not None and (e[0], e[1]) < floor):
                return None  # used, out of the window, or dead (consumed/dropped before this event in time)
            e[3] = True
            self._kill(key, ts_ns, seq)
            return [e[0], e[0], e[1], [e[2]]]
        return None

    def _floor(self, key: Any, ts_ns: int, seq: int) -> Tuple[int, int] | None:
        """The last event up to (ts_ns, seq) in time (itself included: an `until` event that also matches the
        last stage drops first) that consumed or dropped `key`'s first stage."""
        marks = self._dead.get(key)
        if not marks:
            return None
        i = bisect_right(marks, (ts_ns, seq))
        return marks[i - 1] if i else None

    def _take_candidate(self, key: Any, ts_ns: int, seq: int) -> list | None:
        """Lazy first stage: the newest (in time) live stage-0 match of `key` strictly before (ts_ns, seq) and
        within maxspan, consumed."""
        maxspan: int = self.maxspan  # type: ignore[assignment]
        floor = self._floor(key, ts_ns, seq)
        keyfn = self.keyfns[0]
        eligible = []
        for c in self._cands:
            cts = c[0]
            if ts_ns - cts > maxspan or not (cts < ts_ns or (cts == ts_ns and c[1] < seq)):
                continue
            if floor is not None and (cts, c[1]) < floor:
                continue  # used, dropped or overwritten before this event in time order
            ck = c[3]
            if ck is _UNK:
                ck = c[3] = keyfn(c[2])
            if ck is NOKEY or ck != key:
                continue
            eligible.append(c)
        c = self._spill.get(key) if self._spill else None
        if c is not None:
            cts = c[0]
            if (ts_ns - cts <= maxspan and (cts < ts_ns or (cts == ts_ns and c[1] < seq))
                    and (floor is None or (cts, c[1]) > floor)):
                eligible.append(c)
        if not eligible:
            return None
        if len(eligible) > 1:
            eligible.sort(key=lambda c: (c[0], c[1]), reverse=True)
        pred = self.preds[0]
        for c in eligible:
            ok = c[4]
            if ok is _UNK:
                ok = c[4] = bool(pred(c[2]))
            if ok is _USED:
                # the first stage this (late) event would pair with in time order was already used by a later
                # one: an event is never part of two matches, and older candidates were overwritten by it
                return None
            if ok:
                c[4] = _USED
                self._kill(key, ts_ns, seq)
                if self._spill.get(key) is c:
                    del self._spill[key]
                return [c[0], c[0], c[1], [c[2]]]
        return None

    def _kill(self, key: Any, ts_ns: int, seq: int) -> None:
        """(ts_ns, seq) consumed or dropped `key`'s pending first stage."""
        marks = self._dead.get(key)
        if marks is None:
            self._dead[key] = [(ts_ns, seq)]
        else:
            insort(marks, (ts_ns, seq))
        # bounded: marks more than two windows before this event kill nothing it or later events could use (by
        # this event's time, not the newest candidate's: after an unconfirmed clock step that would be the
        # old timeline's, and every new mark would look old)
        limit = ts_ns - 2 * self.maxspan  # type: ignore[operator]
        if marks is not None and len(marks) > 64:  # one key consumed over and over
            del marks[: max(0, bisect_left(marks, (limit, -1)) - 1)]
        if len(self._dead) > 4096 + 2 * len(self._cands):
            self._dead = {k: m for k, m in self._dead.items() if m[-1][0] >= limit}

    def _spill_evicted(self, c: list) -> None:
        """A candidate pushed out of the full queue is evaluated now, so a flood cannot make it miss."""
        ok = c[4]
        if ok is _UNK:
            ok = bool(self.preds[0](c[2]))
        if ok is not True:  # no match, or already used
            return
        key = c[3]
        if key is _UNK:
            key = self.keyfns[0](c[2])
        if key is NOKEY:
            return
        spill = self._spill
        old = spill.get(key)
        if old is not None and (old[0], old[1]) > (c[0], c[1]):
            return  # a newer (in time) first-stage match of the key is already kept
        spill[key] = c
        spill.move_to_end(key)
        limit = c[0] - self.maxspan - LATE_GRACE_NS  # type: ignore[operator]
        while spill:  # oldest first: what is too old for any second stage goes
            first = next(iter(spill))
            if spill[first][0] >= limit:
                break
            del spill[first]
            self.expired += 1
        if len(spill) > self.max_keys:
            spill.popitem(last=False)
            self.evicted += 1

    # -- the hot path
    def _process_lazy2(self, ev: Mapping[str, Any], ts_ns: int, seq: int) -> List[List[Mapping[str, Any]]]:
        """`process` for the common shape (two stages, lazy first stage, no until): same results, less work
        per event (most events only join the candidate window)."""
        cat = ev["event.category"]
        if cat.__class__ is list and len(cat) == 1 and cat[0].__class__ is str:
            stages = self._dispatch.get(cat[0])
            if stages is None:
                stages = self._stages_for(cat)
        else:
            stages = self._stages_for(cat)
        if seq < self._last_seq:
            self._reset_lazy()
        self._last_seq = seq
        cands = self._cands
        if stages == (0,):  # the usual case (a first-stage-only event, e.g. an exec): it joins the window
            # (_add_candidate inlined for the common in-order case)
            maxspan = self.maxspan
            if ts_ns + maxspan >= self._cand_newest:  # type: ignore[operator]
                self._behind = 0
                if ts_ns > self._cand_newest:
                    self._cand_newest = ts_ns
                limit = ts_ns - maxspan  # type: ignore[operator]
                while cands and cands[0][0] < limit:
                    cands.popleft()
                    self.expired += 1
                cands.append([ts_ns, seq, ev, _UNK, _UNK])
                if len(cands) > self.max_candidates:
                    self._spill_evicted(cands.popleft())
            else:
                self._add_candidate(cands, ev, ts_ns, seq)
            return []
        out: List[List[Mapping[str, Any]]] = []
        for k in stages:
            if k:
                if not cands or not self.preds[1](ev):
                    continue
                key = self.keyfns[1](ev)
                if key is NOKEY:
                    continue
                rec = self._take_candidate(key, ts_ns, seq)
                if rec is not None:
                    rec[3].append(ev)
                    self.matches += 1
                    out.append(rec[3])
            else:
                self._add_candidate(cands, ev, ts_ns, seq)
        return out

    def _add_candidate(self, cands: deque, ev: Mapping[str, Any], ts_ns: int, seq: int) -> None:
        """Lazy first stage: `ev` joins the window of unevaluated candidates; older ones leave it."""
        maxspan: int = self.maxspan  # type: ignore[assignment]
        if ts_ns + maxspan < self._cand_newest:
            # a late event, or the clock stepped back: only a run of them is a clock step
            self._behind += 1
            if self._behind >= CLOCK_STEP_EVENTS:
                self._clock_step(ts_ns)
        else:
            self._behind = 0
            if ts_ns > self._cand_newest:
                self._cand_newest = ts_ns
            limit = ts_ns - maxspan
            while cands and cands[0][0] < limit:
                cands.popleft()
                self.expired += 1
        cands.append([ts_ns, seq, ev, _UNK, _UNK])
        if len(cands) > self.max_candidates:
            self._spill_evicted(cands.popleft())

    def _reset_lazy(self) -> None:
        self._cands.clear()
        self._spill.clear()
        self._dead.clear()
        self._cand_newest = -(1 << 62)
        self._behind = 0

    def _clock_step(self, ts_ns: int) -> None:
        """The clock stepped back to about `ts_ns`: candidates, spilled matches and consumption marks "in the
        future" belong to the old timeline and are dropped; those of the new one are kept."""
        horizon = ts_ns + self.maxspan  # type: ignore[operator]
        keep = [c for c in self._cands if c[0] <= horizon]
        self.expired += len(self._cands) - len(keep)
        self._cands.clear()
        self._cands.extend(keep)
        for k in [k for k, c in self._spill.items() if c[0] > horizon]:
            del self._spill[k]
        dead = {}
        for k, marks in self._dead.items():
            kept = [w for w in marks if w[0] <= horizon]
            if kept:
                dead[k] = kept
        self._dead = dead
        self._cand_newest = max((c[0] for c in keep), default=ts_ns)
        self._behind = 0

    def process(self, ev: Mapping[str, Any], ts_ns: int, seq: int) -> List[List[Mapping[str, Any]]]:
        stages = self._stages_for(ev["event.category"])
        if self._sweep_every is not None:
            nxt = self._next_sweep
            if nxt is None:
                self._next_sweep = ts_ns + self._sweep_every
            elif ts_ns >= nxt:
                self._sweep_behind = 0
                self.prune(ts_ns)
                self._next_sweep = ts_ns + self._sweep_every
            elif ts_ns + self._sweep_every + self.maxspan + LATE_GRACE_NS < nxt:  # type: ignore[operator]
                # far behind the sweep schedule: a late event, or (after a run of them) a clock step back,
                # whose old-timeline slots no sweep would reach before the new clock catches up
                self._sweep_behind += 1
                if self._sweep_behind >= CLOCK_STEP_EVENTS:
                    self._sweep_behind = 0
                    self._drop_future_slots(ts_ns)
                    self._next_sweep = ts_ns + self._sweep_every
            else:
                self._sweep_behind = 0
        slots = self.slots
        if self.until_pred is not None and _category_matches(ev["event.category"], self.until_cat):
            if (any(slots) or self._cands) and self.until_pred(ev):
                key = self.until_key(ev)  # type: ignore[misc]
                if key is not NOKEY:
                    held = slots[0].pop(key, None)
                    if held is not None and self.maxspan is not None:
                        # a second stage written late, stamped before this event, still pairs with it
                        self._keep_older(key, held[0], held[2], held[3][0], False)
                    for d in slots[1:]:
                        d.pop(key, None)
                    if self._cands or self._spill or key in self._older:
                        self._kill(key, ts_ns, seq)
        if not stages:
            return []
        out: List[List[Mapping[str, Any]]] = []
        last = self.n - 1
        maxspan = self.maxspan
        preds = self.preds
        lazy = self.lazy_first
        if lazy:
            if seq < self._last_seq:
                self._reset_lazy()
            self._last_seq = seq
        for k in stages:
            if lazy and k <= 1:
                if k == 1:
                    if not self._cands or not preds[1](ev):
                        continue
                    key = self.keyfns[1](ev)
                    if key is NOKEY:
                        continue
                    rec = self._take_candidate(key, ts_ns, seq)
                    if rec is None:
                        continue
                    rec[1] = ts_ns
                    rec[2] = seq
                    rec[3].append(ev)
                    if k == last:
                        self.matches += 1
                        out.append(rec[3])
                    else:
                        self._put(slots[k], key, rec)
                else:
                    self._add_candidate(self._cands, ev, ts_ns, seq)
                continue
            if k == 1 and maxspan is not None:
                if not (slots[0] or self._older) or not preds[1](ev):
                    continue
                key = self.keyfns[1](ev)
                if key is NOKEY:
                    continue
                rec = self._take_eager(key, ts_ns, seq)
                if rec is None:
                    continue
                rec[1] = ts_ns
                rec[2] = seq
                rec[3].append(ev)
                if k == last:
                    self.matches += 1
                    out.append(rec[3])
                else:
                    self._put(slots[k], key, rec)
                continue
            if k:
                prev = slots[k - 1]
                if not prev or not preds[k](ev):
                    continue
                key = self.keyfns[k](ev)
                if key is NOKEY:
                    continue
                rec = prev.get(key)
                if rec is None:
                    continue
                if maxspan is not None and ts_ns - rec[0] > maxspan:
                    del prev[key]
                    self.expired += 1
                    continue
                lts = rec[1]
                if not (lts < ts_ns or (lts == ts_ns and rec[2] < seq)):
                    continue  # not strictly later than the previous stage's event (same event fed twice)
                del prev[key]
                rec[1] = ts_ns
                rec[2] = seq
                rec[3].append(ev)
                if k == last:
                    self.matches += 1
                    out.append(rec[3])
                else:
                    self._put(slots[k], key, rec)
            else:
                if not preds[0](ev):
                    continue
                key = self.keyfns[0](ev)
                if key is NOKEY:
                    continue
                held = slots[0].get(key) if maxspan is not None else None
                if held is not None:
                    if (held[0], held[2]) > (ts_ns, seq):
                        if held[0] - ts_ns <= maxspan:  # type: ignore[operator]
                            # a late event: the newer match stays in the slot; this one can still pair with a
                            # second stage written late, stamped between the two
                            self._keep_older(key, ts_ns, seq, ev, False)
                            continue
                    else:
                        self._keep_older(key, held[0], held[2], held[3][0], False)  # overwritten
                self._put(slots[0], key, [ts_ns, ts_ns, seq, [ev]])
        return out
