"""jobq.safetext, code point by code point: every category the README promises to make visible.

The expected sets are derived here, independently of the module's own table: categories from
`unicodedata`, Default_Ignorable_Code_Point from Unicode's DerivedCoreProperties.txt (which
`unicodedata` does not expose), noncharacters from their definition. A Python with a newer
Unicode that adds, say, a format character fails `test_every_*` until the module covers it.
"""

from __future__ import annotations

import unicodedata

import pytest

from jobq.safetext import safe_block, safe_line, safe_text, truncate

ALL = range(0x110000)
KEPT_IN_BLOCKS = {0x09, 0x0A}  # tab (expanded to spaces) and newline, in multi-line text


_BY_CATEGORY: dict[str, list[int]] = {}
for _c in ALL:
    _BY_CATEGORY.setdefault(unicodedata.category(chr(_c)), []).append(_c)


def category(name: str) -> list[int]:
    """Every code point of one general category, in this Python's Unicode version."""
    return _BY_CATEGORY.get(name, [])


def span(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


# DerivedCoreProperties.txt, Unicode 15.1 (unchanged in 16.0): Default_Ignorable_Code_Point
DEFAULT_IGNORABLE = [
    *span(0x00AD, 0x00AD), *span(0x034F, 0x034F), *span(0x061C, 0x061C),
    *span(0x115F, 0x1160), *span(0x17B4, 0x17B5), *span(0x180B, 0x180F),
    *span(0x200B, 0x200F), *span(0x202A, 0x202E), *span(0x2060, 0x206F),
    *span(0x3164, 0x3164), *span(0xFE00, 0xFE0F), *span(0xFEFF, 0xFEFF),
    *span(0xFFA0, 0xFFA0), *span(0xFFF0, 0xFFF8), *span(0x1BCA0, 0x1BCA3),
    *span(0x1D173, 0x1D17A), *span(0xE0000, 0xE0FFF),
]  # fmt: skip
# format characters added after Unicode 14 (Python 3.11): unassigned before, covered already
NEWER_FORMAT = span(0x13439, 0x1343F)  # Egyptian hieroglyph format controls, Unicode 15.0
# PropList.txt: Bidi_Control
BIDI_CONTROL = [0x061C, 0x200E, 0x200F, *span(0x202A, 0x202E), *span(0x2066, 0x2069)]
ZERO_WIDTH = [*span(0x200B, 0x200D), *span(0x2060, 0x2064), 0xFEFF]
TAGS = [0xE0001, *span(0xE0020, 0xE007F)]
VARIATION_SELECTORS = [
    *span(0xFE00, 0xFE0F),
    *span(0xE0100, 0xE01EF),
    *span(0x180B, 0x180D),
    0x180F,
]
NONCHARACTERS = [*span(0xFDD0, 0xFDEF)] + [
    p + o for p in range(0, 0x110000, 0x10000) for o in (0xFFFE, 0xFFFF)
]

GROUPS = {
    "Cc control": [c for c in category("Cc") if c not in KEPT_IN_BLOCKS],
    "Cf format": category("Cf"),
    "Cf format, newer Unicode": NEWER_FORMAT,
    "Zl line separator": category("Zl"),
    "Zp paragraph separator": category("Zp"),
    "Cs surrogate": category("Cs"),
    "Bidi_Control": BIDI_CONTROL,
    "zero-width": ZERO_WIDTH,
    "tags": TAGS,
    "variation selectors": VARIATION_SELECTORS,
    "Default_Ignorable_Code_Point": DEFAULT_IGNORABLE,
    "noncharacters": NONCHARACTERS,
}
UNSAFE = {c for group in GROUPS.values() for c in group}


def placeholder(code: int) -> str:
    if code < 0x20:
        return chr(0x2400 + code)  # the control pictures ␀ … ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"<U+{code:04X}>"


@pytest.mark.parametrize("group", GROUPS)
def test_every_code_point_of_the_group_is_made_visible(group: str) -> None:
    codes = GROUPS[group]
    assert codes, "the group is empty: unicodedata or this table changed"
    wrong = []
    for code in codes:
        ch = chr(code)
        for multiline in (True, False):
            got = safe_text(f"a{ch}b", multiline=multiline)
            if got != f"a{placeholder(code)}b":
                wrong.append(f"U+{code:04X} (multiline={multiline}): {got!r}")
    assert not wrong, f"{len(wrong)} not made visible, e.g. {wrong[:5]}"


def test_every_other_code_point_is_left_alone() -> None:
    # letters, digits, punctuation, symbols, emoji, CJK, non-ASCII spaces, private use, unassigned
    rest = "".join(chr(c) for c in ALL if c not in UNSAFE and c not in KEPT_IN_BLOCKS)
    assert len(rest) > 1_000_000
    for multiline in (True, False):
        out = safe_text(rest, multiline=multiline)
        if out != rest:
            i = next(i for i, (a, b) in enumerate(zip(out, rest, strict=False)) if a != b)
            pytest.fail(f"U+{ord(rest[i]):04X} was changed to {out[i : i + 12]!r}")


def test_the_readme_examples_of_each_kind_are_covered() -> None:
    # the named characters of the issue, spelled out so that a table typo cannot hide them
    named = [0x061C, *span(0x200B, 0x200F), *span(0x2066, 0x2069), *span(0x202A, 0x202E),
             *span(0x2060, 0x2064), 0xFEFF, 0x1B, 0x9B, 0x7F, 0x2028, 0x2029, 0xE0041]  # fmt: skip
    for code in named:
        assert chr(code) not in safe_text(f"x{chr(code)}y"), f"U+{code:04X}"


def test_hidden_ascii_in_tags_is_shown() -> None:
    # "ok" followed by the tag characters spelling "rm -rf": invisible in most terminals
    smuggled = "ok" + "".join(chr(0xE0000 + ord(c)) for c in "rm -rf")
    shown = safe_line(smuggled)
    assert shown == "ok<U+E0072><U+E006D><U+E0020><U+E002D><U+E0072><U+E0066>"


def test_terminal_escapes_become_control_pictures() -> None:
    assert safe_text("\x1b]52;c;ZXZpbA==\x07") == "␛]52;c;ZXZpbA==␇"
    assert safe_text("\x1b[2J\r\x7f\x9b31m") == "␛[2J␍␡<U+009B>31m"


def test_tabs_and_newlines_kept_in_blocks_and_shown_in_lines() -> None:
    assert safe_block("a\tb\nc") == "a   b\nc"
    assert safe_text("a\tb\nc", multiline=False) == "a␉b␊c"
    assert safe_line("a\tb\nc") == "a␉b …"  # a cell shows the first line only


def test_output_is_already_safe() -> None:
    text = "".join(chr(c) for c in sorted(UNSAFE))
    once = safe_text(text, multiline=False)
    assert safe_text(once, multiline=False) == once
    assert not any(ord(ch) in UNSAFE for ch in once)


def test_nothing_shows_as_nothing() -> None:
    assert safe_line(None) == ""
    assert safe_block(None) == ""


def test_safe_text_keeps_lines_unless_told_otherwise() -> None:
    assert safe_text("a\tb\nc") == "a   b\nc"


def test_truncate_counts_the_bytes_left_out() -> None:
    assert truncate("abc", 3) == "abc"  # exactly at the limit: nothing left out, no marker
    assert truncate("abcd", 3) == "abc… [1 more bytes]"
    assert truncate("aé日😀", 1) == "a… [9 more bytes]"  # 2 + 3 + 4 bytes of UTF-8
    assert truncate("a\ud800b", 1) == "a… [4 more bytes]"  # a lone surrogate counts 3 bytes


def test_a_cell_is_200_characters_then_says_what_is_left() -> None:
    assert safe_line("x" * 200) == "x" * 200
    assert safe_line("x" * 201) == "x" * 200 + "… [1 more bytes]"
    # a first line of exactly the width still says that more lines follow
    assert safe_line("x" * 5 + "\nmore", max_chars=5) == "xxxxx …"
