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
