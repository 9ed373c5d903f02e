"""Client JSON is parsed with bounded nesting; too deep is a ValueError like bad JSON."""

from __future__ import annotations

import json

import pytest

from pushhub_server.core.json_documents import MAX_DEPTH, parse_json


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_nesting_up_to_the_limit_parses() -> None:
    assert parse_json(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))
    assert parse_json('{"a": {"b": [1, {"c": 2}]}}') == {"a": {"b": [1, {"c": 2}]}}


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 900, 100_000])
def test_deeper_nesting_is_a_value_error(levels: int) -> None:
    # 100,000 levels overflow json.loads' own recursion (a RecursionError there).
    with pytest.raises(ValueError, match="nested deeper than"):
        parse_json(nested(levels))


def test_objects_count_as_levels_too() -> None:
    text = '{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1)
    with pytest.raises(ValueError, match="nested deeper than"):
        parse_json(text)


def test_invalid_json_is_still_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_json("{not json")


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "\\udc00"}',
        '{"a": "\\ud800x"}',
        '{"\\udfff": 1}',
        '["ok", {"b": ["\\uDC00"]}]',
        '"\\ud83d"',
    ],
)
def test_lone_surrogate_escapes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        parse_json(text)


def test_a_surrogate_pair_is_one_character() -> None:
    assert parse_json('{"smile": "\\ud83d\\ude00"}') == {"smile": "\U0001f600"}


@pytest.mark.parametrize(
    "text",
    ["NaN", '{"a": Infinity}', "[-Infinity]", '{"a": 1e400}', "-1e309", "[1" + "0" * 400 + "]"],
)
def test_numbers_beyond_a_double_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="finite|beyond the range"):
        parse_json(text)


def test_the_largest_doubles_and_long_integers_within_them_parse() -> None:
    assert parse_json("[1.7976931348623157e308, -1e308, 0.0, -0]") == [
        1.7976931348623157e308,
        -1e308,
        0.0,
        0,
    ]
    assert parse_json("1" + "0" * 300) == 10**300
    assert parse_json('{"t": true, "f": false, "n": null}') == {"t": True, "f": False, "n": None}
