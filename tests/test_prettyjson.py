"""jobq.prettyjson.indent: json.dumps(json.loads(text), indent=2) without the json module."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobq.prettyjson import indent
from jobq.values import dump_json

# JSON values as jobq stores them: no NaN/inf, strings with any code point but lone surrogates
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=30,
)


def _reference(text: str) -> str:
    return json.dumps(json.loads(text), ensure_ascii=False, indent=2)


@settings(max_examples=400, deadline=None)
@given(values)
def test_canonical_text_indents_exactly_as_json_does(value: object) -> None:
    text = dump_json(value)  # what jobq stores
    assert indent(text) == _reference(text)


@settings(max_examples=200, deadline=None)
@given(values, st.sampled_from([" ", "\n", "\t", "\r\n  "]))
def test_whitespace_between_tokens_does_not_matter(value: object, ws: str) -> None:
    spaced = json.dumps(value, ensure_ascii=False, separators=(ws + "," + ws, ws + ":" + ws))
    assert indent(ws + spaced + ws) == _reference(dump_json(value))


def _refuse(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


@pytest.mark.parametrize(
    "text",
    [
        "", " ", "{", "}", "[", "[1,]", "[,1]", "{,}", '{"a"}', '{"a":}', '{"a" 1}', '{1:2}',
        '{"a":1,}', "[1 2]", "[1]]", "[[1]", "{]", "[}", "01", "1.", ".5", "-", "+1", "1e",
        "1e+", "--1", "NaN", "Infinity", "-Infinity", "tru", "nul", "nullx", "truefalse",
        '"abc', '"a\\"', '"\\x"', '"\\u12"', '"\\u12g4"', '"a\tb"', '"a\nb"', '"\x00"', "'a'",
        '"a" "b"', "1 2", "[1]x", "{} []", "\u00a0[]",
    ],
)  # fmt: skip
def test_what_is_not_strict_json_is_refused(text: str) -> None:
    assert indent(text) is None
    with pytest.raises(ValueError):
        strict = json.loads(
            text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name))
        )
        if isinstance(strict, str) and any(c < " " for c in strict):
            raise ValueError("control character")  # json.loads(strict=True) refuses these too


@pytest.mark.parametrize(
    "text",
    ["{}", "[]", "[[]]", '{"a":{}}', "0", "-0", "0.5e-3", '"\\u00e9\\n\\"\\\\\\/"', "1E+2", "true"],
)
def test_strict_json_is_kept_token_for_token(text: str) -> None:
    out = indent(text)
    assert out is not None
    assert json.loads(out) == json.loads(text)
    assert "".join(out.split()) == text  # no whitespace inside these strings
