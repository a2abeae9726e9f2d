"""Streaming evaluation of EQL sequences with Elasticsearch's semantics.

``docs/specs/eql-semantics.md`` §2.1 and §5.1.  For each join-key tuple there is one pending slot per
stage (the last stage never waits: completing it emits a match):

* a new stage-0 match overwrites that key's stage-0 slot;
* an event matching stage ``k > 0`` takes the sequence pending in slot ``k-1`` for its key, provided the
  event is strictly later in ``(ts, seq)`` order than that sequence's last event and within ``maxspan`` of
  its FIRST event (inclusive: ``ts - first_ts <= maxspan``), moves it to slot ``k`` (overwriting) and clears
  slot ``k-1``; an expired candidate is dropped;
* stages are tried from the last to the first for every event, so an event moves a given sequence at most
  one step; the same event may still start a new sequence at stage 0;
* join keys = the sequence's ``by`` values + the stage's own ``by`` values; events with a missing key value
  don't take part (unless the key field is written ``?field``); keys compare exactly;
* ``until``: an event matching the until stage drops every pending sequence of its key.

How a sequence is taken from the stage before is one of three ways (the first stage lazy, the first stage
eager with a maxspan, or a plain slot); advancing it (`_advance`) is the same for all.  What the first
stage keeps besides its slot, so that late events pair as in time order, is in :mod:`.first_stage`.

Memory is bounded: pending sequences older than ``maxspan`` are dropped lazily when touched and by a sweep
that runs whenever event time has advanced by half a maxspan (``prune(now)`` can also be called by the
caller), and each slot table holds at most ``max_keys`` keys (least recently written evicted first, counted
in ``evicted``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..eql.ast import Sequence
from ..eql.codegen import Predicate
from .first_stage import CLOCK_STEP_EVENTS, LATE_GRACE_NS, CandidateWindow, Counts, History, TimeMarks
from .keys import NOKEY, category_matches, make_keyfn
from .query import CompiledQuery, Matches
from .records import Pending

__all__ = ["SequenceMatcher"]



class SequenceMatcher(CompiledQuery):
    """The per-key sequence state machine."""

    def __init__(
        self,
        query: Sequence,
        preds: List[Predicate],
        until: Optional[Predicate],
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
        self.last = self.n - 1
        self.maxspan = query.maxspan_ns
        self.max_keys = max_keys
        self.keyfns = [make_keyfn(list(query.by) + list(s.by)) for s in query.stages]
        self.until_pred = until
        self.until_key = make_keyfn(list(query.by) + list(query.until.by)) if query.until is not None else None
        self.until_cat = query.until.category if query.until is not None else None
        # slots[k] = key -> the sequence pending at stage k; k in 0 .. n-2
        self.slots: List["OrderedDict[Any, Pending]"] = [OrderedDict() for _ in range(self.n - 1)]
        self.counts = Counts()
        # category dispatch: category -> stage indexes, last stage first
        cats = [s.category for s in query.stages]
        self._any_stages = tuple(k for k in range(self.n - 1, -1, -1) if cats[k] is None)
        self._dispatch: Dict[Any, Tuple[int, ...]] = {}
        for c in {c for c in cats if c is not None}:
            self._dispatch[c] = tuple(k for k in range(self.n - 1, -1, -1) if cats[k] in (c, None))
        all_cats = set(cats)
        if query.until is not None:
            all_cats.add(query.until.category)
        named = {c for c in all_cats if c is not None}
        self.categories = None if None in all_cats else frozenset(named)
        self._multi_cache: Dict[Tuple[Any, ...], Tuple[int, ...]] = {}
        self._sweep_every = max(self.maxspan // 2, 1_000_000) if self.maxspan is not None else None
        self._next_sweep: Optional[int] = None
        self._sweep_behind = 0  # consecutive events far behind the sweep schedule (clock step detection)
        span = self.maxspan or 0  # the first-stage state below is used only with a maxspan
        self.marks = TimeMarks(span)
        self.history = History(span, max_keys)
        # Lazy first stage (needs a maxspan): same matches as the eager slot (the newest stage-0 match of the
        # key, if within maxspan), but a rule whose second stage is rare (the seed rule: connects to
        # 169.254.169.254) almost never evaluates its first stage.  The window holds about 20 s of 1,000
        # execs/s; each candidate holds a whole event, so this bound is what keeps memory flat.
        self.lazy_first = bool(lazy_first and self.maxspan is not None)
        self.window = CandidateWindow(preds, self.keyfns, span, min(max_keys, 20_000), max_keys,
                                      self.marks, self.counts)
        self._cands = self.window.cands  # the window's deque: is anything held? (read per event)
        self._last_seq = -1  # a seq going backwards is a new stream: the lazy state is reset
        if self.lazy_first and self.n == 2 and until is None:
            self.process = self._process_lazy2  # type: ignore[method-assign]  # the common shape, per instance

    # -- statistics and state inspection
    @property
    def expired(self) -> int:
        return self.counts.expired

    @property
    def evicted(self) -> int:
        return self.counts.evicted

    @property
    def pending(self) -> int:
        """Partial sequences held (with a lazy first stage: plus the unevaluated stage-0 candidates)."""
        return sum(len(d) for d in self.slots) + len(self.window) + self.history.unused()

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
        self.window.prune(limit)
        self.marks.prune(limit - maxspan)
        # Slots hold first-stage *matches* only (few), and maxspan is checked per key when a later stage
        # arrives; so the sweep may keep them longer than maxspan behind the newest event time, which comes
        # from any host: a node whose clock lags (aggregated node= logs) keeps its pending sequences.
        limit = now_ts_ns - maxspan - self.skew_ns - LATE_GRACE_NS
        self.history.prune(limit)
        for d in self.slots:
            # slot tables are ordered by insertion time; once the oldest entry is still alive, everything left
            # was inserted within the last maxspan (so memory stays bounded by the event rate * maxspan)
            while d:
                first_key = next(iter(d))
                if d[first_key].first_ts < limit:
                    del d[first_key]
                    self.counts.expired += 1
                else:
                    break

    def _drop_future_slots(self, ts_ns: int, maxspan: int) -> None:
        """The clock stepped back to about `ts_ns`: pending sequences of the old timeline go."""
        horizon = ts_ns + maxspan + self.skew_ns + LATE_GRACE_NS
        self.history.clear()
        for d in self.slots:
            for k in [k for k, rec in d.items() if rec.first_ts > horizon]:
                del d[k]
                self.counts.expired += 1

    def _put(self, d: "OrderedDict[Any, Pending]", key: Any, rec: Pending) -> None:
        if key in d:
            del d[key]
        d[key] = rec
        if len(d) > self.max_keys:
            d.popitem(last=False)
            self.counts.evicted += 1

    def _reset_lazy(self) -> None:
        self.window.reset()

    # -- taking the sequence a stage-k event advances (three ways), and advancing it (one)
    def _take_eager(self, key: Any, ts_ns: int, seq: int, maxspan: int) -> Optional[Pending]:
        """Eager first stage, second-stage event (ts_ns, seq): the newest stage-0 match of `key` before it in
        time, within maxspan, not consumed and not older than a consumption or `until` before it; consumed.
        None if there is none, or if the one time order gives was already used by another match."""
        floor = self.marks.floor(key, ts_ns, seq) if self.marks.by_key else None
        slot = self.slots[0]
        rec = slot.get(key)
        if rec is not None and (rec.first_ts < ts_ns or (rec.first_ts == ts_ns and rec.last_seq < seq)):
            if ts_ns - rec.first_ts > maxspan:
                return None  # kept: a second stage written late, stamped closer to it, may still come
            if floor is not None and (rec.first_ts, rec.last_seq) < floor:
                return None
            del slot[key]
            self.marks.kill(key, ts_ns, seq, len(self._cands))
            self.history.keep(key, rec.first_ts, rec.last_seq, rec.events[0], True)
            return rec
        e = self.history.take(key, ts_ns, seq, floor)
        if e is None:
            return None
        self.marks.kill(key, ts_ns, seq, len(self._cands))
        return e.start()

    def _take_slot(self, prev: "OrderedDict[Any, Pending]", key: Any, ts_ns: int, seq: int) -> Optional[Pending]:
        """The sequence pending in `prev` for `key`, if (ts_ns, seq) may extend it; removed from `prev`."""
        rec = prev.get(key)
        if rec is None:
            return None
        if self.maxspan is not None and ts_ns - rec.first_ts > self.maxspan:
            del prev[key]
            self.counts.expired += 1
            return None
        lts = rec.last_ts
        if not (lts < ts_ns or (lts == ts_ns and rec.last_seq < seq)):
            return None  # not strictly later than the previous stage's event (same event fed twice)
        del prev[key]
        return rec

    def _advance(self, rec: Pending, k: int, key: Any, ev: Mapping[str, Any], ts_ns: int, seq: int,
                 out: Matches) -> None:
        """`ev` fills stage `k` of `rec`: a match if it was the last stage, else pending at stage k."""
        rec.last_ts = ts_ns
        rec.last_seq = seq
        rec.events.append(ev)
        if k == self.last:
            self.counts.matches += 1
            out.append(rec.events)
        else:
            self._put(self.slots[k], key, rec)

    def _start(self, ev: Mapping[str, Any], ts_ns: int, seq: int) -> None:
        """Eager first stage: a stage-0 match takes its key's slot (a late one goes to the history)."""
        if not self.preds[0](ev):
            return
        key = self.keyfns[0](ev)
        if key is NOKEY:
            return
        slot = self.slots[0]
        maxspan = self.maxspan
        held = slot.get(key) if maxspan is not None else None
        if held is not None and maxspan is not None:
            if (held.first_ts, held.last_seq) > (ts_ns, seq):
                if held.first_ts - ts_ns <= maxspan:
                    # a late event: the newer match stays in the slot; this one can still pair with a second
                    # stage written late, stamped between the two
                    self.history.keep(key, ts_ns, seq, ev, False)
                    return
            else:
                self.history.keep(key, held.first_ts, held.last_seq, held.events[0], False)  # overwritten
        self._put(slot, key, Pending(ts_ns, ts_ns, seq, [ev]))

    # -- the hot path
    def _process_lazy2(self, ev: Mapping[str, Any], ts_ns: int, seq: int) -> Matches:
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
        if stages == (0,):  # the usual case (a first-stage-only event, e.g. an exec): it joins the window
            self.window.add(ev, ts_ns, seq)
            return []
        out: Matches = []
        for k in stages:
            if k:
                if not self._cands or not self.preds[1](ev):
                    continue
                key = self.keyfns[1](ev)
                if key is NOKEY:
                    continue
                rec = self.window.take(key, ts_ns, seq)
                if rec is not None:
                    self._advance(rec, 1, key, ev, ts_ns, seq, out)
            else:
                self.window.add(ev, ts_ns, seq)
        return out

    def _sweep(self, ts_ns: int, every: int, maxspan: int) -> None:
        nxt = self._next_sweep
        if nxt is None:
            self._next_sweep = ts_ns + every
        elif ts_ns >= nxt:
            self._sweep_behind = 0
            self.prune(ts_ns)
            self._next_sweep = ts_ns + every
        elif ts_ns + every + maxspan + LATE_GRACE_NS < nxt:
            # far behind the sweep schedule: a late event, or (after a run of them) a clock step back, whose
            # old-timeline slots no sweep would reach before the new clock catches up
            self._sweep_behind += 1
            if self._sweep_behind >= CLOCK_STEP_EVENTS:
                self._sweep_behind = 0
                self._drop_future_slots(ts_ns, maxspan)
                self._next_sweep = ts_ns + every
        else:
            self._sweep_behind = 0

    def _until(self, ev: Mapping[str, Any], ts_ns: int, seq: int) -> None:
        """`ev` matches the until stage: every pending sequence of its key is dropped."""
        assert self.until_key is not None
        key = self.until_key(ev)
        if key is NOKEY:
            return
        slots = self.slots
        held = slots[0].pop(key, None)
        if held is not None and self.maxspan is not None:
            # a second stage written late, stamped before this event, still pairs with it
            self.history.keep(key, held.first_ts, held.last_seq, held.events[0], False)
        for d in slots[1:]:
            d.pop(key, None)
        if self._cands or self.window.spill or key in self.history.by_key:
            self.marks.kill(key, ts_ns, seq, len(self._cands))

    def process(self, ev: Mapping[str, Any], ts_ns: int, seq: int) -> Matches:
        stages = self._stages_for(ev["event.category"])
        maxspan = self.maxspan
        every = self._sweep_every
        if every is not None and maxspan is not None:
            nxt = self._next_sweep
            if nxt is not None and ts_ns < nxt and ts_ns + every + maxspan + LATE_GRACE_NS >= nxt:
                self._sweep_behind = 0  # the usual case: no sweep due, not far behind the schedule
            else:
                self._sweep(ts_ns, every, maxspan)
        slots = self.slots
        until = self.until_pred
        if until is not None and category_matches(ev["event.category"], self.until_cat):
            if (any(slots) or self._cands) and until(ev):
                self._until(ev, ts_ns, seq)
        if not stages:
            return []
        out: Matches = []
        preds = self.preds
        lazy = self.lazy_first
        if lazy:
            if seq < self._last_seq:
                self._reset_lazy()
            self._last_seq = seq
        for k in stages:
            if not k:
                if lazy:
                    self.window.add(ev, ts_ns, seq)
                else:
                    self._start(ev, ts_ns, seq)
                continue
            # is there a sequence at stage k-1 this event could advance?  (before evaluating its predicate)
            if k == 1 and (lazy or maxspan is not None):
                held = self._cands if lazy else (slots[0] or self.history.by_key)
            else:
                held = slots[k - 1]
            if not held or not preds[k](ev):
                continue
            key = self.keyfns[k](ev)
            if key is NOKEY:
                continue
            if k == 1 and lazy:
                rec = self.window.take(key, ts_ns, seq)
            elif k == 1 and maxspan is not None:
                rec = self._take_eager(key, ts_ns, seq, maxspan)
            else:
                rec = self._take_slot(slots[k - 1], key, ts_ns, seq)
            if rec is not None:
                self._advance(rec, k, key, ev, ts_ns, seq, out)
        return out
