"""`CompiledQuery`: what the pipeline and the agent ask of a compiled rule, with the defaults of a query that
keeps no state; `EventMatcher`: a plain ``<category> where <expr>`` query."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Dict, FrozenSet, List, Mapping, Optional

from ..eql.ast import EventQuery, Query
from ..eql.codegen import Predicate

__all__ = ["CompiledQuery", "EventMatcher", "Matches"]

Matches = List[List[Mapping[str, Any]]]  # each match: the events of its stages, in order


class CompiledQuery(ABC):
    """A compiled rule query.

    * ``process(ev, ts_ns, seq)``: feed one event (callers feed events in nondecreasing ``(ts_ns, seq)``
      order); returns the matches it completes, each the list of the stage events in order.
    * ``fields``: the field names the query reads (``event.category`` included).
    * ``categories``: the event categories the query uses, or ``None`` if it uses ``any`` (every event may
      matter).  Events whose ``event.category`` is not in it can be skipped by the caller.
    * ``maxspan``: the longest time (ns) its matches may span, None for no bound (how far back a restart
      must re-read).
    * ``skew_ns``: the clock skew between hosts its state sweep tolerates (0 for one host's log); the
      pipeline raises it when a log turns out to hold several nodes.
    * state that outlives the process (a new_terms history): ``keeps_state``, ``to_state()``,
      ``load_state(doc)``, and ``changes``, a counter bumped whenever that state changes (saved only then).
    """

    query: Query
    fields: FrozenSet[str]
    categories: Optional[FrozenSet[str]] = None
    maxspan: Optional[int] = None
    skew_ns: int = 0
    keeps_state: ClassVar[bool] = False
    changes: int = 0

    @abstractmethod
    def process(self, ev: Mapping[str, Any], ts_ns: int, seq: int) -> Matches:
        """The matches `ev` completes."""

    def prune(self, now_ts_ns: int) -> None:
        """Drop state that can no longer produce a match at time ``now_ts_ns`` (no-op for event queries)."""
        return None

    @property
    def pending(self) -> int:
        """Number of pending (partial) sequences held."""
        return 0

    def to_state(self) -> Dict[str, Any]:
        """A JSON-serialisable snapshot of the state to keep across restarts (none by default)."""
        return {}

    def load_state(self, state: Any) -> int:
        """Restore a snapshot from `to_state`; returns the number of entries restored."""
        return 0


class EventMatcher(CompiledQuery):
    """A plain ``<category> where <expr>`` query."""

    def __init__(self, query: EventQuery, pred: Predicate, fields: FrozenSet[str]) -> None:
        self.query = query
        self.pred = pred
        self.fields = fields
        self.category = query.category
        self.categories = None if query.category is None else frozenset([query.category])

    def process(self, ev: Mapping[str, Any], ts_ns: int, seq: int) -> Matches:
        want = self.category
        if want is not None:
            cat = ev["event.category"]
            if cat != want and not (cat.__class__ is list and want in cat):
                return []
        if self.pred(ev):
            return [[ev]]
        return []
