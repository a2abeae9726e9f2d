"""The EQL tokenizer: names, keywords, strings (with Elasticsearch's escapes), numbers and operators.

Constructs this project does not evaluate (pipes, missing-event stages, arithmetic, single-quoted strings)
are refused here, with their position.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

from .ast import EqlSyntaxError

__all__ = ["Lexer", "Token", "TokenValue"]

TokenValue = Union[str, int, float, None]  # a name or keyword, a string, a number; None at the end

_KEYWORDS = {
    "and",
    "or",
    "not",
    "in",
    "like",
    "regex",
    "where",
    "sequence",
    "by",
    "with",
    "until",
    "null",
    "true",
    "false",
    "any",
    "join",
    "sample",
    "of",
}


@dataclass
class Token:
    kind: str  # NAME, KW, STRING, NUMBER, OP, EOF
    value: TokenValue
    line: int
    col: int
    pos: int
    end: int
    quoted: bool = False  # NAME contains a backtick segment / STRING was raw


_ID_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_@")
_ID_CHAR = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_DIGITS = set("0123456789")
_HEX = set("0123456789abcdefABCDEF")
_SIMPLE_ESCAPES = {"t": "\t", "b": "\b", "f": "\f", "n": "\n", "r": "\r", '"': '"', "'": "'", "\\": "\\"}


class Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.i = 0
        # line start offsets for position computation
        self._line_starts = [0]
        for idx, ch in enumerate(text):
            if ch == "\n":
                self._line_starts.append(idx + 1)

    def linecol(self, pos: int) -> Tuple[int, int]:
        li = bisect.bisect_right(self._line_starts, pos) - 1
        return li + 1, pos - self._line_starts[li] + 1

    def error(self, msg: str, pos: int) -> EqlSyntaxError:
        line, col = self.linecol(pos)
        return EqlSyntaxError(msg, line, col)

    def _tok(self, kind: str, value: TokenValue, start: int, quoted: bool = False) -> Token:
        line, col = self.linecol(start)
        return Token(kind, value, line, col, start, self.i, quoted)

    def tokens(self) -> List[Token]:
        out: List[Token] = []
        while True:
            t = self.next()
            out.append(t)
            if t.kind == "EOF":
                return out

    def _skip_ws(self) -> None:
        text, n = self.text, self.n
        while self.i < n:
            c = text[self.i]
            if c in " \t\r\n\f\v":
                self.i += 1
            elif text.startswith("//", self.i):
                j = text.find("\n", self.i)
                self.i = n if j < 0 else j + 1
            elif text.startswith("/*", self.i):
                j = text.find("*/", self.i + 2)
                if j < 0:
                    raise self.error("unterminated /* comment", self.i)
                self.i = j + 2
            else:
                return

    def next(self) -> Token:
        self._skip_ws()
        text, n = self.text, self.n
        start = self.i
        if start >= n:
            return self._tok("EOF", None, start)
        c = text[start]
        two = text[start : start + 2]
        if c == '"':
            return self._string(start)
        if c == "'":
            raise self.error("single-quoted strings are not supported, use double quotes", start)
        if c in _DIGITS:
            return self._number(start)
        if c == "?":
            if start + 1 < n and text[start + 1] == '"':
                raise self.error('?"..." strings are not supported, use """raw""" strings', start)
            if start + 1 < n and (text[start + 1] in _ID_START or text[start + 1] == "`"):
                self.i = start + 1
                name, quoted = self._name()
                t = self._tok("NAME", name, start, quoted)
                t.value = name
                t.kind = "OPTNAME"
                return t
            raise self.error("expected a field name after '?'", start)
        if c in _ID_START or c == "`":
            name, quoted = self._name()
            if not quoted and "." not in name:
                if name in _KEYWORDS:
                    # in~ like~ regex~
                    if name in ("in", "like", "regex") and self.i < n and text[self.i] == "~":
                        self.i += 1
                        return self._tok("KW", name + "~", start)
                    return self._tok("KW", name, start)
                if self.i < n and text[self.i] == "~":
                    self.i += 1
                    return self._tok("TILDENAME", name, start)
            return self._tok("NAME", name, start, quoted)
        if two in ("==", "!=", "<=", ">="):
            self.i += 2
            return self._tok("OP", two, start)
        if two == "![":
            raise self.error("missing-event stages ('![ ... ]') are not supported", start)
        if c in "[](),:<>":
            self.i += 1
            return self._tok("OP", c, start)
        if c == "=":
            self.i += 1
            return self._tok("OP", "=", start)
        if c == "|":
            raise self.error("pipes ('|') are not supported", start)
        if c in "+-*/%":
            if c == "-" and start + 1 < n and text[start + 1] in _DIGITS:
                return self._number(start + 1, sign_at=start)
            raise self.error(f"arithmetic operator '{c}' is not supported", start)
        raise self.error(f"unexpected character {c!r}", start)

    def _name(self) -> Tuple[str, bool]:
        """Read a dotted field name made of identifiers and backtick-quoted segments."""
        text, n = self.text, self.n
        parts: List[str] = []
        quoted = False
        while True:
            if self.i < n and text[self.i] == "`":
                quoted = True
                j = self.i + 1
                buf = []
                while True:
                    if j >= n:
                        raise self.error("unterminated backtick-quoted name", self.i)
                    if text[j] == "`":
                        if j + 1 < n and text[j + 1] == "`":
                            buf.append("`")
                            j += 2
                            continue
                        break
                    buf.append(text[j])
                    j += 1
                if not buf:
                    raise self.error("empty backtick-quoted name", self.i)
                parts.append("".join(buf))
                self.i = j + 1
            elif self.i < n and text[self.i] in _ID_START:
                j = self.i + 1
                while j < n and text[j] in _ID_CHAR:
                    j += 1
                parts.append(text[self.i : j])
                self.i = j
            else:
                raise self.error("expected a field name segment", self.i)
            if (
                self.i + 1 < n
                and text[self.i] == "."
                and (text[self.i + 1] in _ID_START or text[self.i + 1] == "`")
            ):
                self.i += 1
                continue
            return ".".join(parts), quoted

    def _number(self, start: int, sign_at: Optional[int] = None) -> Token:
        """The number whose digits begin at `start` (negative, starting there, with a `sign_at`)."""
        text, n = self.text, self.n
        j = start
        while j < n and text[j] in _DIGITS:
            j += 1
        is_float = False
        if j + 1 < n and text[j] == "." and text[j + 1] in _DIGITS:
            is_float = True
            j += 1
            while j < n and text[j] in _DIGITS:
                j += 1
        if j < n and text[j] in "eE":
            k = j + 1
            if k < n and text[k] in "+-":
                k += 1
            if k < n and text[k] in _DIGITS:
                is_float = True
                j = k
                while j < n and text[j] in _DIGITS:
                    j += 1
        raw = text[start:j]
        self.i = j
        value: Union[int, float] = float(raw) if is_float else int(raw)
        if sign_at is not None:
            return self._tok("NUMBER", -value, sign_at)
        return self._tok("NUMBER", value, start)

    def _string(self, start: int) -> Token:
        text, n = self.text, self.n
        if text.startswith('"""', start):
            j = text.find('"""', start + 3)
            if j < 0:
                raise self.error('unterminated """raw""" string', start)
            end = j + 3
            # ES lexer allows up to two extra quotes, which belong to the content: """a"""" == 'a"'
            extra = 0
            while extra < 2 and end < n and text[end] == '"':
                extra += 1
                end += 1
            self.i = end
            return self._tok("STRING", text[start + 3 : j] + '"' * extra, start, True)
        j = start + 1
        buf: List[str] = []
        while True:
            if j >= n:
                raise self.error("unterminated string", start)
            c = text[j]
            if c == '"':
                break
            if c == "\\":
                if j + 1 >= n:
                    raise self.error("unterminated string", start)
                e = text[j + 1]
                if e in _SIMPLE_ESCAPES:
                    buf.append(_SIMPLE_ESCAPES[e])
                    j += 2
                    continue
                if e == "u" and j + 2 < n and text[j + 2] == "{":
                    k = j + 3
                    while k < n and text[k] in _HEX:
                        k += 1
                    digits = text[j + 3 : k]
                    if k >= n or text[k] != "}" or not (2 <= len(digits) <= 8):
                        raise self.error("invalid unicode escape, expected \\u{XX} with 2 to 8 hex digits", j)
                    cp = int(digits, 16)
                    if 0xD800 <= cp <= 0xDFFF or cp > 0x10FFFF:
                        raise self.error(f"invalid unicode code point \\u{{{digits}}}", j)
                    buf.append(chr(cp))
                    j = k + 1
                    continue
                # unknown escape: passes through unchanged, backslash included (ES unquoteString)
                buf.append("\\")
                buf.append(e)
                j += 2
                continue
            buf.append(c)
            j += 1
        self.i = j + 1
        return self._tok("STRING", "".join(buf), start)


