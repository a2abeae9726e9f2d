"""The records a sequence keeps: a first-stage event that may start a sequence (`Candidate`) and a partial
sequence waiting for its next stage (`Pending`).  Slotted and mutable: they are made and updated on the hot
path, where a class with ``__slots__`` costs no more than the lists they replace and reads by name."""

from __future__ import annotations

from typing import Any, List, Mapping

__all__ = ["Candidate", "Pending", "UNK", "USED"]


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


UNK: Any = _Marker("UNK")  # not computed yet
USED: Any = _Marker("USED")  # a candidate already part of a match: never used twice


class Pending:
    """A partial sequence: the time of its first event, the (time, seq) of its last, its events in order."""

    __slots__ = ("first_ts", "last_ts", "last_seq", "events")

    def __init__(self, first_ts: int, last_ts: int, last_seq: int, events: List[Mapping[str, Any]]) -> None:
        self.first_ts = first_ts
        self.last_ts = last_ts
        self.last_seq = last_seq
        self.events = events


class Candidate:
    """A first-stage event that may start a sequence.

    ``key`` is its join key and ``ok`` whether it matches the first stage, both computed at most once, when
    first needed (:data:`UNK` until then; a lazy first stage evaluates them only for the candidates a second
    stage looks at).  ``ok`` is :data:`USED` once the candidate is part of a match."""

    __slots__ = ("ts", "seq", "ev", "key", "ok")

    def __init__(self, ts: int, seq: int, ev: Mapping[str, Any], key: Any = UNK, ok: Any = UNK) -> None:
        self.ts = ts
        self.seq = seq
        self.ev = ev
        self.key = key
        self.ok = ok

    def before(self, ts: int, seq: int) -> bool:
        """Strictly before (ts, seq) in time order."""
        return self.ts < ts or (self.ts == ts and self.seq < seq)

    def start(self) -> Pending:
        """The sequence this candidate starts."""
        return Pending(self.ts, self.ts, self.seq, [self.ev])
