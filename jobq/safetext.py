"""Make untrusted text from a queue file safe to show in a terminal.

Payloads, types, queue and worker names, errors, tracebacks and captured output are written by
whoever can enqueue or by the handlers. Shown raw, an ESC or OSC sequence could clear the screen,
retitle the window or write the clipboard (OSC 52), and bidi overrides could reorder what an
operator reads, and invisible characters could hide part of a value. Every such character is
replaced by a visible placeholder instead.

What is made visible (each code point, by `<U+XXXX>`, or a control picture such as `␛` for C0):
- control characters (Unicode category Cc): C0 (tab and newline kept in multi-line text), DEL, C1;
- format characters (Cf), among them every Bidi_Control (U+061C, U+200E-U+200F, U+202A-U+202E,
  U+2066-U+2069), the zero-width U+200B-U+200D, U+2060-U+2064 and U+FEFF, the soft hyphen, and
  the tags U+E0001, U+E0020-U+E007F (which can spell hidden ASCII after visible text);
- line and paragraph separators (Zl, Zp), and lone surrogates (Cs);
- every other Default_Ignorable_Code_Point (Unicode's list of code points a renderer shows as
  nothing): the combining grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian
  variation selectors, variation selectors U+FE00-U+FE0F and U+E0100-U+E01EF (they too can
  carry hidden data; an emoji's U+FE0F shows as a placeholder after it, a price worth paying),
  and the unassigned code points reserved as default-ignorable;
- noncharacters (U+FDD0-U+FDEF and the last two code points of every plane).
Not replaced: spaces other than U+0020 (they show as the blank they are), private-use and
unassigned code points outside those ranges (a terminal draws them as a box or a replacement).
tests/test_safetext.py derives these sets from `unicodedata` and checks every code point.

These functions only neutralise terminal control; UIs must additionally show the result as plain
text (never as Rich/Textual markup).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: CLI start-up
if TYPE_CHECKING:
    import re

_C0_PICTURES = {i: chr(0x2400 + i) for i in range(0x20)}  # ␀ … ␟
_C0_PICTURES[0x7F] = "\u2421"  # ␡

# (first, last) code points; tab (0x09) and newline (0x0A) are handled by `safe_text`
_CONTROL = [(0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F)]
_FORMAT = [(0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD),
           (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
           (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
           (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
           (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
           (0xE0020, 0xE007F)]  # fmt: skip
_SEPARATORS = [(0x2028, 0x2029)]
_SURROGATES = [(0xD800, 0xDFFF)]
# Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 15.1) not already above
_IGNORABLE = [(0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180D),
              (0x180F, 0x180F), (0x2065, 0x2065), (0x3164, 0x3164), (0xFE00, 0xFE0F),
              (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0xE0000, 0xE0FFF)]  # fmt: skip
_NONCHARACTERS = [
    (0xFDD0, 0xFDEF),
    *((p + 0xFFFE, p + 0xFFFF) for p in range(0, 0x110000, 0x10000)),
]
_UNSAFE_RANGES = _CONTROL + _FORMAT + _SEPARATORS + _SURROGATES + _IGNORABLE + _NONCHARACTERS


def _char_class(ranges: list[tuple[int, int]]) -> str:
    return "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


# One class of the unsafe BMP ranges plus every non-BMP code point: `re` tests the BMP part in
# a bitmap, while non-BMP ranges in the class would be compared one by one for every character
# (12x slower on a 1 MB payload). The few non-BMP characters found are sorted in `_placeholder`.
_BMP = [(a, min(b, 0xFFFF)) for a, b in _UNSAFE_RANGES if a <= 0xFFFF]
_ASTRAL: list[tuple[int, int]] = []  # merged, sorted: for bisect
for _a, _b in sorted((max(a, 0x10000), b) for a, b in _UNSAFE_RANGES if b > 0xFFFF):
    if _ASTRAL and _a <= _ASTRAL[-1][1] + 1:
        _ASTRAL[-1] = (_ASTRAL[-1][0], max(_b, _ASTRAL[-1][1]))
    else:
        _ASTRAL.append((_a, _b))
_ASTRAL_FIRST = [a for a, _ in _ASTRAL]
_CANDIDATES = _char_class([*_BMP, (0x10000, 0x10FFFF)])
# (multi-line, one line): compiled on the first text that is not plain printable ASCII. Most
# text is, and compiling these classes is ~1.5 ms of `jobq ls`'s start-up (issue 15).
_PATTERNS: tuple[re.Pattern[str], re.Pattern[str]] | None = None


def _compiled() -> tuple[re.Pattern[str], re.Pattern[str]]:
    global _PATTERNS
    if _PATTERNS is None:
        import re

        _PATTERNS = (re.compile(f"[{_CANDIDATES}]"), re.compile(f"[{_CANDIDATES}\\t\\n]"))
    return _PATTERNS


def _placeholder(m: re.Match[str]) -> str:
    ch = m.group(0)
    code = ord(ch)
    if code in _C0_PICTURES:
        return _C0_PICTURES[code]
    if code > 0xFFFF:
        import bisect  # here: most text has no character past the BMP (start-up)

        i = bisect.bisect_right(_ASTRAL_FIRST, code) - 1
        if i < 0 or code > _ASTRAL[i][1]:
            return ch  # an emoji, a CJK extension, …: safe
    return f"<U+{code:04X}>"


def safe_text(text: str, *, multiline: bool = True) -> str:
    """Replace every terminal-control, bidi and invisible character by a visible placeholder.

    With `multiline`, newlines and tabs are kept; otherwise they become placeholders too.
    """
    if multiline and "\t" in text:
        text = text.expandtabs(4)
    # printable ASCII is safe: isprintable() is False for C0 controls and DEL, the only unsafe
    # characters below U+0080 (newlines, kept in multi-line text, are taken out to check)
    if text.isascii() and (text.replace("\n", "") if multiline else text).isprintable():
        return text
    return _compiled()[0 if multiline else 1].sub(_placeholder, text)


def truncate(text: str, max_chars: int) -> str:
    """Cut `text` to `max_chars` characters, saying how many bytes were left out."""
    head, more = _cut(text, max_chars)
    return head + more


def _cut(text: str, max_chars: int) -> tuple[str, str]:
    """(the first `max_chars` characters, "… [N more bytes]" or "" when nothing was cut)."""
    if len(text) <= max_chars:
        return text, ""
    rest = text[max_chars:].encode("utf-8", "surrogatepass")
    return text[:max_chars], f"… [{len(rest):,} more bytes]"


def safe_line(text: str | None, max_chars: int = 200) -> str:
    """One safe line for a table cell: first line only, controls visible, truncated."""
    if text is None:
        return ""
    first, _, rest = text.partition("\n")
    head, more = _cut(first, max_chars)  # the marker is safe: only the text is checked
    out = safe_text(head, multiline=False) + more
    if rest and len(first) <= max_chars:
        out += " …"
    return out


def safe_block(text: str | None, max_chars: int = 64 * 1024) -> str:
    """A safe multi-line block (tracebacks, output, pretty payloads), truncated."""
    if text is None:
        return ""
    head, more = _cut(text, max_chars)
    return safe_text(head, multiline=True) + more
