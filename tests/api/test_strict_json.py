"""strict_json reads RFC 8259 JSON and refuses the rest naming its place; its quick path
(pydantic's parser) answers exactly as its careful one (json.loads with hooks) on any text."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.strict_json import (
    MAX_DEPTH,
    MAX_INTEGER_DIGITS,
    JsonRefusedError,
    loads,
    loads_carefully,
)


def answer(read: Any, text: str | bytes) -> Any:
    try:
        return "value", read(text)
    except JsonRefusedError as refused:
        return "refused", [(p.loc, p.type) for p in refused.problems]


def problems(text: str | bytes) -> list[tuple[tuple[str | int, ...], str]]:
    kind, found = answer(loads, text)
    assert kind == "refused", found
    return list(found)


class TestRefusals:
    @pytest.mark.parametrize(("text", "expected"), [
        ('{"a": 1, "a": 2}', [(("a",), "duplicate_key")]),
        ('{"a": [{"b": 1, "b": 1, "b": 1}]}', [(("a", 0, "b"), "duplicate_key")]),
        ('{"tpp": NaN}', [(("tpp",), "json_not_a_number")]),
        ('[Infinity, -Infinity]', [((0,), "json_not_a_number"), ((1,), "json_not_a_number")]),
        ('{"q": %s}' % ("9" * (MAX_INTEGER_DIGITS + 1)), [(("q",), "json_number_too_long")]),
        ('{"q": -%s}' % ("9" * (MAX_INTEGER_DIGITS + 1)), [(("q",), "json_number_too_long")]),
        ('{"s": "\\ud800"}', [(("s",), "json_lone_surrogate")]),
        ('{"s": "\\udc00\\ud800"}', [(("s",), "json_lone_surrogate")]),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), [((), "json_too_deep")]),
        ("[" * 100_000, [((), "json_too_deep")]),
        (b'{"a": "\xff"}', [((), "json_invalid")]),
        (b'{"a": "\xed\xa0\x80"}', [((), "json_invalid")]),
        ("\ufeff{}", [((), "json_invalid")]),
        ('{"a": 1', [((), "json_invalid")]),
        ('{"a": "\x00"}', [((), "json_invalid")]),  # a raw control character: not JSON at all
    ])
    def test_each_refusal_is_named_where_it_is(self, text, expected):
        assert problems(text) == expected

    def test_a_key_with_a_lone_surrogate_is_named_escaped(self):
        found = problems('{"k\\ud800": 1, "k\\ud800": {"x": NaN}}')
        assert (("k\\ud800",), "duplicate_key") in found
        assert (("k\\ud800", "x"), "json_not_a_number") in found
        for loc, _ in found:
            "".join(map(str, loc)).encode("utf-8")  # every location can be answered

    def test_the_limits_themselves_are_read(self):
        assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
        assert loads('{"q": %s}' % ("9" * MAX_INTEGER_DIGITS)) == {"q": int("9" * 4300)}
        assert loads('{"s": "\\ud83d\\ude00", "t": "a:b", "u": "[[[["}') == \
            {"s": "\U0001f600", "t": "a:b", "u": "[[[["}
        assert loads('{"a": 1e400}') == {"a": float("inf")}  # its field refuses it
        assert loads("1" + "0" * 5000 + ".5") == float("inf")  # any float, of any length

    def test_brackets_inside_strings_are_no_nesting(self):
        text = json.dumps({"a": "[" * 1000, "b": "{" * 1000 + '\\"' + "[" * 10})
        assert loads(text) == json.loads(text)


# The quick path answers as the careful one ----------------------------------------------------

keys = st.text(max_size=4) | st.sampled_from(["a", "a:", ":", "\ud800", '"', "\\"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(st.characters(exclude_categories=()), max_size=8))
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                         st.lists(st.tuples(keys, inner), max_size=4), max_leaves=12)


def written(value: Any) -> str:
    """JSON text of a value whose objects are lists of pairs (so keys may repeat)."""
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        return "{" + ", ".join(f"{json.dumps(k)}: {written(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(written(v) for v in value) + "]"
    return json.dumps(value)


fragments = st.sampled_from(["NaN", "Infinity", "-0", "1e400", "9" * 4301, "[" * 40, "]",
                             '"\\ud800"', "\ufeff", ":", ",", '"a": 1', "\x00", "\u2028"])


@st.composite
def texts(draw: st.DrawFn) -> str:
    text = written(draw(documents))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(fragments) + text[at:]
    return text


@settings(max_examples=500, deadline=None)
@given(text=texts())
def test_the_quick_path_answers_as_the_careful_one(text):
    assert answer(loads, text) == answer(loads_carefully, text)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=40))
def test_any_bytes_are_read_or_refused_never_raised(data):
    assert answer(loads, data) == answer(loads_carefully, data)
