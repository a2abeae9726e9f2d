"""What a sequence keeps of its first stage besides its slot, so that matches follow time order even when
events are written late (``docs/design.md``, "Lazy first stage" and "Events written late"):

* `TimeMarks`: per join key, the (time, seq) of the events that consumed (advanced) or dropped (``until``) the
  key's pending first stage.  Elasticsearch walks events in time order, so a second-stage event E can use
  only first stages after the last such event before E in time: earlier ones were used, dropped or
  overwritten by then.
* `CandidateWindow` (lazy first stage): the first-stage events of one maxspan, unevaluated; a second-stage
  event evaluates them newest first, each at most once, and takes the newest that matches.  A late event
  just joins the window; a run of `CLOCK_STEP_EVENTS` events all more than maxspan behind the newest is a
  clock step (reboot, NTP, concatenated logs), which drops what is "in the future".
* `History` (eager first stage): the first-stage matches a key's slot no longer holds (overwritten, consumed,
  or written late), in time order, at most `History.PER_KEY` per key, so a second stage written late pairs
  with the first stage before it in time.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict, deque
from typing import Any, Deque, Dict, List, Mapping, Optional, Tuple

from ..eql.codegen import Predicate
from .keys import NOKEY, KeyFn
from .records import UNK, USED, Candidate, Pending

__all__ = ["CLOCK_STEP_EVENTS", "LATE_GRACE_NS", "CandidateWindow", "Counts", "History", "TimeMarks"]

# Lazy first stage: this many first-stage events in a row, each more than maxspan older than the newest
# candidate, mean the clock stepped back (a single late event does not).
CLOCK_STEP_EVENTS = 256
# Eager slots are swept this long after maxspan, so an event written late (beyond the pipeline's reordering
# window) still finds the first-stage match it belongs with; slots hold matches only, so this costs little.
LATE_GRACE_NS = 10_000_000_000

Mark = Tuple[int, int]  # (ts_ns, seq)


class Counts:
    """A sequence's statistics: state dropped for age (`expired`) or for room (`evicted`), matches."""

    __slots__ = ("expired", "evicted", "matches")

    def __init__(self) -> None:
        self.expired = 0
        self.evicted = 0
        self.matches = 0


class TimeMarks:
    """key -> sorted (ts, seq) of the events that consumed or dropped the key's pending first stage."""

    __slots__ = ("by_key", "maxspan")

    def __init__(self, maxspan: int) -> None:
        self.by_key: Dict[Any, List[Mark]] = {}
        self.maxspan = maxspan

    def __len__(self) -> int:
        return len(self.by_key)

    def floor(self, key: Any, ts_ns: int, seq: int) -> Optional[Mark]:
        """The last mark of `key` up to (ts_ns, seq) in time (itself included: an `until` event that also
        matches the last stage drops first)."""
        marks = self.by_key.get(key)
        if not marks:
            return None
        i = bisect_right(marks, (ts_ns, seq))
        return marks[i - 1] if i else None

    def kill(self, key: Any, ts_ns: int, seq: int, allowance: int) -> None:
        """(ts_ns, seq) consumed or dropped `key`'s pending first stage.  `allowance`: keys that may hold
        marks beyond the usual bound (the candidates held)."""
        by_key = self.by_key
        marks = by_key.get(key)
        if marks is None:
            by_key[key] = [(ts_ns, seq)]
        else:
            insort(marks, (ts_ns, seq))
        # bounded: marks more than two windows before this event kill nothing it or later events could use (by
        # this event's time, not the newest candidate's: after an unconfirmed clock step that would be the
        # old timeline's, and every new mark would look old)
        limit = ts_ns - 2 * self.maxspan
        if marks is not None and len(marks) > 64:  # one key consumed over and over
            del marks[: max(0, bisect_left(marks, (limit, -1)) - 1)]
        if len(by_key) > 4096 + 2 * allowance:
            self.by_key = {k: m for k, m in by_key.items() if m[-1][0] >= limit}

    def prune(self, limit: int) -> None:
        """Forget the keys whose newest mark is before `limit`."""
        if self.by_key:
            self.by_key = {k: m for k, m in self.by_key.items() if m[-1][0] >= limit}

    def clock_step(self, horizon: int) -> None:
        """Marks after `horizon` belong to the old timeline."""
        kept: Dict[Any, List[Mark]] = {}
        for k, marks in self.by_key.items():
            new = [w for w in marks if w[0] <= horizon]
            if new:
                kept[k] = new
        self.by_key = kept

    def clear(self) -> None:
        self.by_key.clear()


class CandidateWindow:
    """Lazy first stage: the unevaluated first-stage events of one maxspan, in arrival order."""

    __slots__ = ("cands", "newest", "behind", "spill", "maxspan", "max_candidates", "max_keys", "preds",
                 "keyfns", "marks", "counts")

    def __init__(self, preds: List[Predicate], keyfns: List[KeyFn], maxspan: int, max_candidates: int,
                 max_keys: int, marks: TimeMarks, counts: Counts) -> None:
        """`preds`, `keyfns`: the sequence's, by stage (the window evaluates stage 0's)."""
        self.cands: Deque[Candidate] = deque()
        self.newest = -(1 << 62)  # newest candidate time seen
        self.behind = 0  # consecutive candidates more than maxspan behind `newest`
        # first-stage matches of candidates pushed out of a full window (a flood): key -> candidate, newest
        # overwrites (Elasticsearch's one pending sequence per stage and key)
        self.spill: "OrderedDict[Any, Candidate]" = OrderedDict()
        self.maxspan = maxspan
        self.max_candidates = max_candidates
        self.max_keys = max_keys
        self.preds = preds
        self.keyfns = keyfns
        self.marks = marks
        self.counts = counts

    def __len__(self) -> int:
        return len(self.cands) + len(self.spill)

    def add(self, ev: Mapping[str, Any], ts_ns: int, seq: int) -> None:
        """`ev` joins the window; older candidates leave it."""
        cands = self.cands
        maxspan = self.maxspan
        if ts_ns + maxspan < self.newest:
            # a late event, or the clock stepped back: only a run of them is a clock step
            self.behind += 1
            if self.behind >= CLOCK_STEP_EVENTS:
                self.clock_step(ts_ns)
        else:
            self.behind = 0
            if ts_ns > self.newest:
                self.newest = ts_ns
            limit = ts_ns - maxspan
            while cands and cands[0].ts < limit:
                cands.popleft()
                self.counts.expired += 1
        cands.append(Candidate(ts_ns, seq, ev))
        if len(cands) > self.max_candidates:
            self._spill_evicted(cands.popleft())

    def take(self, key: Any, ts_ns: int, seq: int) -> Optional[Pending]:
        """The newest (in time) live first-stage match of `key` strictly before (ts_ns, seq) and within
        maxspan, consumed: the sequence it starts."""
        maxspan = self.maxspan
        floor = self.marks.floor(key, ts_ns, seq)
        keyfn = self.keyfns[0]
        eligible = []
        for c in self.cands:
            cts = c.ts
            if ts_ns - cts > maxspan or not (cts < ts_ns or (cts == ts_ns and c.seq < seq)):
                continue
            if floor is not None and (cts, c.seq) < floor:
                continue  # used, dropped or overwritten before this event in time order
            ck = c.key
            if ck is UNK:
                ck = c.key = keyfn(c.ev)
            if ck is NOKEY or ck != key:
                continue
            eligible.append(c)
        s = self.spill.get(key) if self.spill else None
        if s is not None:
            if (ts_ns - s.ts <= maxspan and s.before(ts_ns, seq)
                    and (floor is None or (s.ts, s.seq) > floor)):
                eligible.append(s)
        if not eligible:
            return None
        if len(eligible) > 1:
            eligible.sort(key=lambda c: (c.ts, c.seq), reverse=True)
        pred = self.preds[0]
        for c in eligible:
            ok = c.ok
            if ok is UNK:
                ok = c.ok = bool(pred(c.ev))
            if ok is USED:
                # the first stage this (late) event would pair with in time order was already used by a later
                # one: an event is never part of two matches, and older candidates were overwritten by it
                return None
            if ok:
                c.ok = USED
                self.marks.kill(key, ts_ns, seq, len(self.cands))
                if self.spill.get(key) is c:
                    del self.spill[key]
                return c.start()
        return None

    def _spill_evicted(self, c: Candidate) -> None:
        """A candidate pushed out of the full window is evaluated now, so a flood cannot make it miss."""
        ok = c.ok
        if ok is UNK:
            ok = bool(self.preds[0](c.ev))
        if ok is not True:  # no match, or already used
            return
        key = c.key
        if key is UNK:
            key = self.keyfns[0](c.ev)
        if key is NOKEY:
            return
        spill = self.spill
        old = spill.get(key)
        if old is not None and (old.ts, old.seq) > (c.ts, c.seq):
            return  # a newer (in time) first-stage match of the key is already kept
        spill[key] = c
        spill.move_to_end(key)
        limit = c.ts - self.maxspan - LATE_GRACE_NS
        while spill:  # oldest first: what is too old for any second stage goes
            first = next(iter(spill))
            if spill[first].ts >= limit:
                break
            del spill[first]
            self.counts.expired += 1
        if len(spill) > self.max_keys:
            spill.popitem(last=False)
            self.counts.evicted += 1

    def prune(self, limit: int) -> None:
        cands = self.cands
        while cands and cands[0].ts < limit:
            cands.popleft()
            self.counts.expired += 1

    def reset(self) -> None:
        """A new stream (the matcher fed again from the start)."""
        self.cands.clear()
        self.spill.clear()
        self.marks.clear()
        self.newest = -(1 << 62)
        self.behind = 0

    def clock_step(self, ts_ns: int) -> None:
        """The clock stepped back to about `ts_ns`: candidates, spilled matches and consumption marks "in the
        future" belong to the old timeline and are dropped; those of the new one are kept."""
        horizon = ts_ns + self.maxspan
        keep = [c for c in self.cands if c.ts <= horizon]
        self.counts.expired += len(self.cands) - len(keep)
        self.cands.clear()
        self.cands.extend(keep)
        for k in [k for k, c in self.spill.items() if c.ts > horizon]:
            del self.spill[k]
        self.marks.clock_step(horizon)
        self.newest = max((c.ts for c in keep), default=ts_ns)
        self.behind = 0


class History:
    """Eager first stage: key -> the first-stage matches its slot no longer holds, in time order (each a
    `Candidate` whose ``ok`` is True, or `USED` once consumed)."""

    PER_KEY = 16

    __slots__ = ("by_key", "maxspan", "max_keys")

    def __init__(self, maxspan: int, max_keys: int) -> None:
        self.by_key: "OrderedDict[Any, List[Candidate]]" = OrderedDict()
        self.maxspan = maxspan
        self.max_keys = max_keys

    def unused(self) -> int:
        return sum(1 for v in self.by_key.values() for e in v if e.ok is not USED)

    def keep(self, key: Any, ts_ns: int, seq: int, ev: Mapping[str, Any], used: bool) -> None:
        """Remember a first-stage match of `key`; entries beyond the lateness horizon of the newest go."""
        lst = self.by_key.get(key)
        entry = Candidate(ts_ns, seq, ev, key, USED if used else True)
        if lst is None:
            self.by_key[key] = [entry]
        else:
            last = lst[-1]
            if (last.ts, last.seq) < (ts_ns, seq):
                lst.append(entry)
            else:
                i = len(lst)
                while i and (lst[i - 1].ts, lst[i - 1].seq) > (ts_ns, seq):
                    i -= 1
                lst.insert(i, entry)
            horizon = lst[-1].ts - self.maxspan - LATE_GRACE_NS
            while lst and (lst[0].ts < horizon or len(lst) > self.PER_KEY):
                del lst[0]
            self.by_key.move_to_end(key)
        if len(self.by_key) > self.max_keys:
            self.by_key.popitem(last=False)

    def take(self, key: Any, ts_ns: int, seq: int, floor: Optional[Mark]) -> Optional[Candidate]:
        """The newest entry of `key` before (ts_ns, seq) in time, consumed; None if it is used, out of the
        window, or dead (consumed or dropped before this event in time), or if there is none."""
        lst = self.by_key.get(key)
        if not lst:
            return None
        for i in range(len(lst) - 1, -1, -1):
            e = lst[i]
            if not e.before(ts_ns, seq):
                continue
            if e.ok is USED or ts_ns - e.ts > self.maxspan or (floor is not None and (e.ts, e.seq) < floor):
                return None
            e.ok = USED
            return e
        return None

    def prune(self, limit: int) -> None:
        """Forget the keys whose newest entry is before `limit` (keys are in the order last kept)."""
        by_key = self.by_key
        while by_key:
            first_key = next(iter(by_key))
            if by_key[first_key][-1].ts < limit:
                del by_key[first_key]
            else:
                break

    def clear(self) -> None:
        self.by_key.clear()
