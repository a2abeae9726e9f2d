"""`type = "new_terms"` rules: alert the first time a combination of field values is seen within a history window.

Elastic's new_terms rule type runs a query and alerts on an event whose values of the ``new_terms`` fields (all of
them, as one combination) did not occur in any event matching the query during the history window (e.g.
``now-7d``) before it.  Streaming equivalent implemented here:

* the rule's query (a single-event EQL query: ``<category> where <expr>``) selects the events;
* for a matching event, the term is the tuple of the new_terms fields' values; an event where any of them is
  missing (absent, null or ``[]``) never alerts and is not remembered (as in Elasticsearch, where a document
  without one of the fields produces no term);
* the event alerts if the term was never seen, or was last seen more than ``window_ms`` before the event's
  time; either way the term's last-seen time becomes ``max(last seen, event time)``.  So a term seen again and
  again at intervals shorter than the window alerts once; after a quiet window it alerts again;
* a multi-valued field contributes each of its values: every combination is a term (at most
  ``MAX_COMBINATIONS`` per event), and the event alerts if any of them is new;
* history is bounded: at most ``max_terms`` terms; beyond that the term seen least recently is evicted
  (counted in ``evicted``) -- an evicted term alerts again when it next occurs (an extra alert, never a missed
  one).  Terms older than the window are dropped as event time advances (they can no longer suppress).

Deviation from Elasticsearch, documented: an event re-read after a restart (the daemon re-reads a few seconds of
log) finds its own term in the restored history and does not alert again -- the alert it produced the first time
was already emitted (and the alert ledger would suppress a duplicate anyway).

``to_state()``/``load_state()`` give a JSON-serialisable snapshot so the daemon can persist the history.
"""

from __future__ import annotations

import itertools
import re
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from .query import CompiledQuery, EventMatcher, Matches

__all__ = ["NewTermsMatcher", "parse_history_window", "HistoryWindowError", "STATE_VERSION"]

STATE_VERSION = 1
MAX_COMBINATIONS = 64
DEFAULT_MAX_TERMS = 100_000

_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_WINDOW_RE = re.compile(r"^\s*now\s*-\s*(\d+)\s*([smhdw])\s*$")


class HistoryWindowError(ValueError):
    pass


def parse_history_window(text: Any) -> int:
    """``"now-7d"`` -> 604800000 (ms).  Units: s, m, h, d, w (Elastic date math; months/years are refused)."""
    if not isinstance(text, str):
        raise HistoryWindowError(f"history window must be a string like 'now-7d', not {text!r}")
    m = _WINDOW_RE.match(text)
    if m is None:
        raise HistoryWindowError(f"history window {text!r} is not of the form now-<N><s|m|h|d|w>")
    ms = int(m.group(1)) * _UNITS_MS[m.group(2)]
    if ms <= 0:
        raise HistoryWindowError(f"history window {text!r} is empty")
    return ms


def _values(v: Any) -> List[Any] | None:
    """The values of one field as a list of hashable scalars, or None when missing."""
    if v is None:
        return None
    if isinstance(v, list):
        vals = [x for x in v if x is not None and not isinstance(x, (list, dict))]
        return sorted(set(vals), key=repr) or None
    if isinstance(v, dict):
        return None
    return [v]


_MAX_TERM_CHARS = 512


def _compact(v: Any) -> Any:
    """A value as kept in the history (in memory and saved): long strings become a digest, so an attacker's
    4 KB paths cannot bloat it (equal values stay equal)."""
    if isinstance(v, str) and len(v) > _MAX_TERM_CHARS:
        import hashlib

        return "sha256:" + hashlib.sha256(v.encode("utf-8", "surrogatepass")).hexdigest()
    return v


class NewTermsMatcher(CompiledQuery):
    """Wraps the rule's event query; ``process`` returns ``[[ev]]`` when ``ev`` carries a new term."""

    keeps_state = True  # the history, saved by the agent across restarts

    def __init__(self, inner: EventMatcher, fields: Sequence[str], window_ms: int,
                 max_terms: int = DEFAULT_MAX_TERMS) -> None:
        if not fields:
            raise ValueError("new_terms needs at least one field")
        if window_ms <= 0:
            raise ValueError("new_terms needs a positive history window")
        self.inner = inner
        self.query = inner.query
        self.new_terms_fields: Tuple[str, ...] = tuple(fields)
        self.fields = frozenset(inner.fields) | frozenset(fields)
        self.categories = inner.categories
        self.window_ms = int(window_ms)
        self.max_terms = max(1, int(max_terms))
        # term tuple -> last seen (ms); ordered oldest-seen first
        self._seen: "OrderedDict[Tuple[Any, ...], int]" = OrderedDict()
        self._next_prune = 0
        self.evicted = 0
        self.expired = 0
        self.matches = 0
        self.suppressed = 0
        self.changes = 0  # bumped whenever the history changes (the daemon saves it only then)

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def pending(self) -> int:
        return 0

    def terms(self, ev: Mapping[str, Any]) -> List[Tuple[Any, ...]]:
        per_field = []
        for f in self.new_terms_fields:
            vals = _values(ev[f])
            if vals is None:
                return []
            per_field.append([_compact(v) for v in vals])
        return list(itertools.islice(itertools.product(*per_field), MAX_COMBINATIONS))

    def process(self, ev: Mapping[str, Any], ts_ns: int, seq: int) -> Matches:
        if not self.inner.process(ev, ts_ns, seq):
            return []
        terms = self.terms(ev)
        if not terms:
            return []
        ts_ms = ts_ns // 1_000_000
        self.prune(ts_ns)
        new = False
        seen = self._seen
        for t in terms:
            last = seen.get(t)
            if last is None or ts_ms - last > self.window_ms:
                new = True
            if last is None or ts_ms > last:
                seen[t] = ts_ms
                seen.move_to_end(t)
                self.changes += 1
        while len(seen) > self.max_terms:
            seen.popitem(last=False)
            self.evicted += 1
        if new:
            self.matches += 1
            return [[ev]]
        self.suppressed += 1
        return []

    def prune(self, now_ts_ns: int) -> None:
        """Forget terms last seen more than the window before ``now`` (checked at most once per minute)."""
        now_ms = now_ts_ns // 1_000_000
        if now_ms < self._next_prune:
            return
        self._next_prune = now_ms + 60_000
        limit = now_ms - self.window_ms
        seen = self._seen
        # mostly ordered by last seen (out-of-order events are rare): pop from the old end while expired
        while seen:
            t, last = next(iter(seen.items()))
            if last >= limit:
                break
            seen.popitem(last=False)
            self.expired += 1
            self.changes += 1

    # -- persistence ------------------------------------------------------------------------------------

    def to_state(self) -> Dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "fields": list(self.new_terms_fields),
            "window_ms": self.window_ms,
            # terms are attacker-influenced (executable paths up to 4 KB): long values are saved as a digest
            "terms": [[list(t), last] for t, last in self._seen.items()],
        }

    def load_state(self, state: Any) -> int:
        """Restore a snapshot from ``to_state``.  A snapshot for other fields is ignored (the rule changed).
        Entries that cannot be used are skipped.  Returns the number of terms restored."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            return 0
        if state.get("fields") != list(self.new_terms_fields):
            return 0
        items = state.get("terms")
        if not isinstance(items, list):
            return 0
        n = 0
        for item in items:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], list)
                    and isinstance(item[1], int) and not isinstance(item[1], bool)
                    and len(item[0]) == len(self.new_terms_fields)):
                continue
            try:
                t = tuple(item[0])
                hash(t)
            except TypeError:
                continue
            last = self._seen.get(t)
            if last is None or item[1] > last:
                self._seen[t] = item[1]
                self.changes += 1
                n += 1
        # keep oldest-seen first, then bound
        self._seen = OrderedDict(sorted(self._seen.items(), key=lambda kv: kv[1]))
        while len(self._seen) > self.max_terms:
            self._seen.popitem(last=False)
            self.evicted += 1
        return n
