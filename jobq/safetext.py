"""Make untrusted text from a queue file safe to show in a terminal.

Payloads, types, queue and worker names, errors, tracebacks and captured output are written by
whoever can enqueue or by the handlers. Shown raw, an ESC or OSC sequence could clear the screen,
retitle the window or write the clipboard (OSC 52), and bidi overrides could reorder what an
operator reads. Every such character is replaced by a visible placeholder instead.

These functions only neutralise terminal control; UIs must additionally show the result as plain
text (never as Rich/Textual markup).
"""

from __future__ import annotations

import re

_C0_PICTURES = {i: chr(0x2400 + i) for i in range(0x20)}  # ␀ … ␟
_C0_PICTURES[0x7F] = "\u2421"  # ␡

# C0 and DEL, C1, bidi embeddings/overrides/isolates and marks, line/paragraph separators,
# zero-width and invisible formatting characters, lone surrogates, BOM, and noncharacters.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\ufff0-\ufffb\ud800-\udfff]"
)
_UNSAFE_LINE = re.compile(_UNSAFE.pattern[:-1] + "\n\t]")


def _placeholder(m: re.Match[str]) -> str:
    ch = m.group(0)
    code = ord(ch)
    if code in _C0_PICTURES:
        return _C0_PICTURES[code]
    return f"<U+{code:04X}>"


def safe_text(text: str, *, multiline: bool = True) -> str:
    """Replace every terminal-control, bidi and invisible character by a visible placeholder.

    With `multiline`, newlines and tabs are kept; otherwise they become placeholders too.
    """
    pattern = _UNSAFE if multiline else _UNSAFE_LINE
    if multiline and "\t" in text:
        text = text.expandtabs(4)
    return pattern.sub(_placeholder, text)


def truncate(text: str, max_chars: int) -> str:
    """Cut `text` to `max_chars` characters, saying how many bytes were left out."""
    if len(text) <= max_chars:
        return text
    rest = text[max_chars:].encode("utf-8", "surrogatepass")
    return f"{text[:max_chars]}… [{len(rest):,} more bytes]"


def safe_line(text: str | None, max_chars: int = 200) -> str:
    """One safe line for a table cell: first line only, controls visible, truncated."""
    if text is None:
        return ""
    first, _, rest = text.partition("\n")
    out = safe_text(truncate(first, max_chars), multiline=False)
    if rest and len(first) <= max_chars:
        out += " …"
    return out


def safe_block(text: str | None, max_chars: int = 64 * 1024) -> str:
    """A safe multi-line block (tracebacks, output, pretty payloads), truncated."""
    if text is None:
        return ""
    return safe_text(truncate(text, max_chars), multiline=True)
