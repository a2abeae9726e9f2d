"""Where alerts go: JSON lines on a stream or in a file."""

from __future__ import annotations

import json
from typing import Any, Dict, TextIO


def dumps(doc: Dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


class JsonLinesSink:
    def __init__(self, stream: TextIO, flush: bool = True) -> None:
        self.stream = stream
        self.flush = flush
        self.count = 0

    def __call__(self, doc: Dict[str, Any]) -> None:
        self.stream.write(dumps(doc) + "\n")
        if self.flush:
            self.stream.flush()
        self.count += 1
