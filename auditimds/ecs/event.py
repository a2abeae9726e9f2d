"""ECS events as flat dicts keyed by dotted field names, with lazily computed fields.

Rules read fields with `ev["process.name"]`; a missing field reads as None (never KeyError).  Costly
fields (argv, command line, @timestamp) are computed on first read and then stored, so an event that no
rule looks at closely never pays for them.  `to_document` gives the nested ECS JSON object.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Dict, Optional

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def iso_timestamp(ts_ms: int) -> str:
    dt = _EPOCH + datetime.timedelta(milliseconds=ts_ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


class LazyArgs:
    """argv of a process, decoded on first use by `decode(source)` and cached."""

    __slots__ = ("_decode", "_source", "_argv", "_truncated")

    def __init__(self, decode: Optional[Callable[[Any], "tuple[list[str], bool]"]], source: Any = None) -> None:
        self._decode = decode
        self._source = source
        self._argv: list = []
        self._truncated = False

    @classmethod
    def of(cls, argv: "list[str]", truncated: bool = False) -> "LazyArgs":
        la = cls(None)
        la._argv = list(argv)
        la._truncated = truncated
        return la

    def get(self) -> "list[str]":
        if self._decode is not None:
            self._argv, self._truncated = self._decode(self._source)
            self._decode = self._source = None
        return self._argv

    @property
    def truncated(self) -> bool:
        self.get()
        return self._truncated


def _lazy_timestamp(ev: "EcsEvent") -> Any:
    return iso_timestamp(ev.ts_ms)


def _lazy_args(ev: "EcsEvent") -> Any:
    a = ev.args
    return list(a.get()) if a is not None and a.get() else None


def _lazy_args_count(ev: "EcsEvent") -> Any:
    a = ev.args
    return len(a.get()) if a is not None and a.get() else None


def _lazy_command_line(ev: "EcsEvent") -> Any:
    a = ev.args
    return " ".join(a.get()) if a is not None and a.get() else None


def _lazy_truncated(ev: "EcsEvent") -> Any:
    a = ev.args
    return True if a is not None and a.truncated else None


def _lazy_parent_args(ev: "EcsEvent") -> Any:
    a = ev.parent_args
    return list(a.get()) if a is not None and a.get() else None


def _lazy_parent_command_line(ev: "EcsEvent") -> Any:
    a = ev.parent_args
    return " ".join(a.get()) if a is not None and a.get() else None


def _lazy_parent_args_count(ev: "EcsEvent") -> Any:
    a = ev.parent_args
    return len(a.get()) if a is not None and a.get() else None


def _lazy_entity_id(ev: "EcsEvent") -> Any:
    return ev.proc.entity_id if ev.proc is not None else None


def _lazy_parent_entity_id(ev: "EcsEvent") -> Any:
    return ev.parent.entity_id if ev.parent is not None else None


LAZY_FIELDS: Dict[str, Callable[["EcsEvent"], Any]] = {
    "process.entity_id": _lazy_entity_id,
    "process.parent.entity_id": _lazy_parent_entity_id,
    "@timestamp": _lazy_timestamp,
    "process.args": _lazy_args,
    "process.args_count": _lazy_args_count,
    "process.command_line": _lazy_command_line,
    "auditimds.args_truncated": _lazy_truncated,
    "process.parent.args": _lazy_parent_args,
    "process.parent.args_count": _lazy_parent_args_count,
    "process.parent.command_line": _lazy_parent_command_line,
}


class EcsEvent(dict):
    """A flat ECS event.  `ts_ms` and `seq` order events (time, then arrival).

    Two kinds of deferred fields: LAZY_FIELDS, each computed on its own when read, and "output" fields
    (user, group, auditd.* ...) that a `filler` adds all at once, the first time any of the keys listed in
    `output_keys` is read or when the event is materialized for output.
    """

    __slots__ = ("ts_ms", "seq", "args", "parent_args", "filler", "output_keys", "proc", "parent")

    def __init__(self, fields: Dict[str, Any], ts_ms: int = 0, seq: int = 0,
                 args: Optional[LazyArgs] = None, parent_args: Optional[LazyArgs] = None,
                 filler: Optional[Callable[["EcsEvent"], None]] = None,
                 output_keys: "frozenset[str]" = frozenset(), proc: Any = None, parent: Any = None) -> None:
        dict.__init__(self, fields)
        self.ts_ms = ts_ms
        self.seq = seq
        self.args = args
        self.parent_args = parent_args
        self.filler = filler
        self.output_keys = output_keys
        self.proc = proc  # objects with an immutable `entity_id` (process_table.Proc)
        self.parent = parent

    def __missing__(self, key: str) -> Any:
        f = LAZY_FIELDS.get(key)
        if f is None:
            if self.filler is not None and key in self.output_keys:
                self._fill()
                return dict.get(self, key)
            return None
        v = f(self)
        if v is not None:
            self[key] = v
        return v

    def _fill(self) -> None:
        filler, self.filler = self.filler, None
        if filler is not None:
            filler(self)

    def materialize(self) -> "EcsEvent":
        """Compute every deferred field that has a value."""
        self._fill()
        for key in LAZY_FIELDS:
            if key not in self:
                self[key]  # noqa: B018 - computes and stores
        return self

    def to_document(self) -> Dict[str, Any]:
        """Nested ECS object with every field (lazy ones included), keys in a stable order."""
        self.materialize()
        return nest(self)


def nest(flat: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key in sorted(flat):
        value = flat[key]
        if value is None:
            continue
        parts = key.split(".") if key != "@timestamp" else [key]
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = {}
                node[p] = nxt
            node = nxt
        node[parts[-1]] = value
    return out
