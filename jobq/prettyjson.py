"""Indent JSON text for reading without importing `json` (and `re`): `jobq show` start-up.

`indent(text)` is `json.dumps(json.loads(text), ensure_ascii=False, indent=2)` for the compact
canonical text jobq stores (tests/test_prettyjson.py checks it on generated values), and keeps
every token as written otherwise. It validates the whole text against JSON's grammar as it goes
and returns None for anything that is not strict JSON (NaN, a bare control character, a bad
escape, trailing commas, …): callers then fall back to the `json` module.
"""

from __future__ import annotations

_LITERALS = ("true", "false", "null")
_ESCAPES = frozenset('"\\/bfnrtu')
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_WHITESPACE = " \t\n\r"


def _string_end(text: str, i: int) -> int:
    """The index after the string that starts at `text[i]` (a quote), or -1 if it is not one."""
    n = len(text)
    j = i + 1
    while True:
        q = text.find('"', j)
        b = text.find("\\", j, q if q >= 0 else n)
        if q < 0:
            return -1
        if b < 0:
            end = q
            break
        # an escape before the next quote: check it, then go on after it
        if not _plain(text, j, b):
            return -1
        k = b + 1
        if k >= n or text[k] not in _ESCAPES:
            return -1
        if text[k] == "u":
            if k + 4 >= n or not all(c in _HEX for c in text[k + 1 : k + 5]):
                return -1
            k += 4
        j = k + 1
    if not _plain(text, j, end):
        return -1
    return end + 1


def _plain(text: str, a: int, b: int) -> bool:
    """No control character (U+0000-U+001F) in text[a:b], as JSON strings require."""
    part = text[a:b]
    return part.isprintable() or not any(c < " " for c in part)


def _digits(tok: str, i: int) -> int:
    """The index after the run of digits that starts at `i` (`i` itself when there is none)."""
    while i < len(tok) and tok[i] in _DIGITS:
        i += 1
    return i


def _number_ok(tok: str) -> bool:
    """JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?"""
    start = 1 if tok[:1] == "-" else 0
    i = _digits(tok, start)
    if i == start or (tok[start] == "0" and i - start > 1):
        return False
    if tok[i : i + 1] == ".":
        start = i + 1
        i = _digits(tok, start)
        if i == start:
            return False
    if tok[i : i + 1] in ("e", "E"):
        start = i + 2 if tok[i + 1 : i + 2] in ("+", "-") else i + 1
        i = _digits(tok, start)
        if i == start:
            return False
    return i == len(tok)


def indent(text: str, width: int = 2) -> str | None:
    """`text` indented by `width` per level, or None if it is not strict JSON."""
    out: list[str] = []
    stack: list[str] = []  # "{" or "["
    # what may come next: "value", "key" (or "}" right after "{"), ":", "," (or a close)
    expect = "value"
    first = False  # right after an opening bracket: a close makes "{}" / "[]"
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            break
        c = text[i]
        pad = "\n" + " " * (width * len(stack))
        if expect in ("value", "key"):
            if first and c in "]}" and c == ("}" if stack[-1] == "{" else "]"):
                stack.pop()
                out.append(c)
                i += 1
                first, expect = False, ("," if stack else "end")
                continue
            if first:
                out.append(pad)
            first = False
            if c == '"':
                end = _string_end(text, i)
                if end < 0:
                    return None
                out.append(text[i:end])
                i = end
                expect = ":" if expect == "key" else ","
            elif expect == "key":
                return None
            elif c in "{[":
                stack.append(c)
                out.append(c)
                i += 1
                first, expect = True, ("key" if c == "{" else "value")
            elif c in "tfn":
                word = next((w for w in _LITERALS if text.startswith(w, i)), None)
                if word is None:
                    return None
                out.append(word)
                i += len(word)
                expect = ","
            elif c in _NUMBER_CHARS:
                j = i
                while j < n and text[j] in _NUMBER_CHARS:
                    j += 1
                if not _number_ok(text[i:j]):
                    return None
                out.append(text[i:j])
                i = j
                expect = ","
            else:
                return None
            if not stack and expect == ",":
                expect = "end"
        elif expect == ":":
            if c != ":":
                return None
            out.append(": ")
            i += 1
            expect = "value"
        elif expect == ",":
            if c == ",":
                out.append("," + pad)
                i += 1
                expect = "key" if stack[-1] == "{" else "value"
            elif c == ("}" if stack[-1] == "{" else "]"):
                stack.pop()
                out.append("\n" + " " * (width * len(stack)) + c)
                i += 1
                expect = "," if stack else "end"
            else:
                return None
        else:  # "end": only whitespace may follow the value
            return None
    return "".join(out) if expect == "end" else None
