"""Selectors (Backendless conditional delivery): operators, NULL logic, LIKE, errors."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.selector import (
    MAX_DEPTH,
    And,
    Comparison,
    Header,
    In,
    IsNull,
    Like,
    Literal,
    Not,
    Or,
    Selector,
    Truth,
    check_selector,
    matches,
    parse_selector,
)


def check(text: str, headers: dict[str, str]) -> bool:
    return matches(parse_selector(text), headers)


def truth(text: str, headers: dict[str, str]) -> Truth:
    return parse_selector(text).evaluate(headers)


def parse_error(text: str, **kwargs: object) -> PushHubError:
    with pytest.raises(PushHubError) as caught:
        parse_selector(text, **kwargs)  # type: ignore[arg-type]
    return caught.value


# --- comparisons -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("city = 'Boston'", True),
        ("city = 'boston'", False),
        ("city <> 'Boston'", False),
        ("city != 'Paris'", True),
        ("city < 'Chicago'", True),
        ("city > 'Chicago'", False),
        ("city <= 'Boston'", True),
        ("city >= 'Boston'", True),
        ("'Boston' = city", True),
        ("age = 30", True),
        ("age <> 30", False),
        ("age != 31", True),
        ("age < 31", True),
        ("age > 29.5", True),
        ("age <= 30", True),
        ("age >= 30.0", True),
        ("age > 30", False),
        ("temp < 0", True),
        ("temp = -4.5", True),
        ("temp > -5", True),
        ("big = 1e3", True),
        ("padded = 7", True),
        ("city = other", True),
        ("1 < 2", True),
        ("'a' = 'b'", False),
    ],
)
def test_comparison_operators(text: str, expected: bool) -> None:
    headers = {
        "city": "Boston",
        "other": "Boston",
        "age": "30",
        "temp": "-4.5",
        "big": "1000",
        "padded": "007",
    }
    assert check(text, headers) is expected


def test_numbers_compare_numerically_and_strings_as_strings() -> None:
    headers = {"n": "10"}
    assert check("n > 9", headers)
    assert not check("n > '9'", headers)  # '10' < '9' as strings
    assert check("n = 10.0", headers)
    assert not check("n = '10.0'", headers)


def test_large_integers_keep_their_precision() -> None:
    assert check("id = 9007199254740993", {"id": "9007199254740993"})
    assert not check("id = 9007199254740992", {"id": "9007199254740993"})


@pytest.mark.parametrize("value", ["abc", "", "1,000", "nan", "inf", "0x10", "1_000", " 5"])
def test_non_numeric_header_against_a_number_is_false_not_unknown(value: str) -> None:
    headers = {"n": value}
    assert truth("n = 5", headers) is False
    assert truth("n <> 5", headers) is False
    assert truth("NOT n > 5", headers) is True


# --- IN, LIKE, IS NULL ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "headers", "expected"),
    [
        ("c IN ('US', 'CA')", {"c": "CA"}, True),
        ("c IN ('US', 'CA')", {"c": "FR"}, False),
        ("c NOT IN ('US', 'CA')", {"c": "FR"}, True),
        ("c NOT IN ('US', 'CA')", {"c": "US"}, False),
        ("c IN ('US')", {}, None),
        ("c NOT IN ('US')", {}, None),
        ("v IN (1, 2, 3)", {"v": "2.0"}, True),
        ("v IN (1, 2, 3)", {"v": "two"}, False),
        ("v IN ('2', 3)", {"v": "2.0"}, False),
        ("v IN ('2', 3)", {"v": "3"}, True),
    ],
)
def test_in(text: str, headers: dict[str, str], expected: Truth) -> None:
    assert truth(text, headers) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("news%", "news-sports", True),
        ("news%", "breaking news", False),
        ("%news%", "breaking news today", True),
        ("n_ws", "news", True),
        ("n_ws", "nws", False),
        ("%", "", True),
        ("_", "", False),
        ("News", "news", False),
        ("a%", "a\nb", True),
        ("a.c", "abc", False),
        ("a.c", "a.c", True),
        ("(x)+", "(x)+", True),
        ("(x)+", "xx", False),
        ("[ab]%", "[ab]z", True),
        ("[ab]%", "az", False),
        ("\\d*", "\\d*", True),
        ("\\d*", "1", False),
        ("^$|", "^$|", True),
        ("a{2}", "aa", False),
        ("it''s%", "it's on", True),
    ],
)
def test_like_wildcards_and_regex_metacharacters(pattern: str, value: str, expected: bool) -> None:
    assert check(f"h LIKE '{pattern}'", {"h": value}) is expected
    assert check(f"h NOT LIKE '{pattern}'", {"h": value}) is not expected


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("h LIKE '100!%' ESCAPE '!'", "100%", True),
        ("h LIKE '100!%' ESCAPE '!'", "1000", False),
        ("h LIKE 'a!_b' ESCAPE '!'", "a_b", True),
        ("h LIKE 'a!_b' ESCAPE '!'", "axb", False),
        ("h LIKE 'a!!%' ESCAPE '!'", "a!xyz", True),
        ("h LIKE 'a\\%' ESCAPE '\\'", "a%", True),
        ("h LIKE 'a.%' ESCAPE '.'", "a%", True),
        ("h LIKE 'a.%' ESCAPE '.'", "a.b", False),
    ],
)
def test_like_escape(text: str, value: str, expected: bool) -> None:
    assert check(text, {"h": value}) is expected


def test_like_on_a_missing_header_is_unknown() -> None:
    assert truth("h LIKE '%'", {}) is None
    assert truth("h NOT LIKE 'x'", {}) is None


def test_is_null() -> None:
    assert check("h IS NULL", {})
    assert not check("h IS NULL", {"h": ""})
    assert check("h IS NOT NULL", {"h": ""})
    assert not check("h IS NOT NULL", {})
    assert truth("NOT h IS NULL", {}) is False


# --- three-valued logic -------------------------------------------------------------

TRUE, FALSE, UNKNOWN = "t = '1'", "t = '0'", "missing = '1'"
OPERANDS = {TRUE: True, FALSE: False, UNKNOWN: None}
AND_TABLE = {
    (True, True): True,
    (True, False): False,
    (True, None): None,
    (False, False): False,
    (False, None): False,
    (None, None): None,
}
OR_TABLE = {
    (True, True): True,
    (True, False): True,
    (True, None): True,
    (False, False): False,
    (False, None): None,
    (None, None): None,
}


def _table(table: dict[tuple[Truth, Truth], Truth], left: Truth, right: Truth) -> Truth:
    return table.get((left, right), table.get((right, left)))


@pytest.mark.parametrize("left", list(OPERANDS))
@pytest.mark.parametrize("right", list(OPERANDS))
def test_and_or_truth_tables(left: str, right: str) -> None:
    headers = {"t": "1"}
    expected_and = _table(AND_TABLE, OPERANDS[left], OPERANDS[right])
    expected_or = _table(OR_TABLE, OPERANDS[left], OPERANDS[right])
    assert truth(f"{left} AND {right}", headers) is expected_and
    assert truth(f"{left} OR {right}", headers) is expected_or
    assert check(f"{left} AND {right}", headers) is (expected_and is True)
    assert check(f"{left} OR {right}", headers) is (expected_or is True)


@pytest.mark.parametrize(("operand", "expected"), [(TRUE, False), (FALSE, True), (UNKNOWN, None)])
def test_not_truth_table(operand: str, expected: Truth) -> None:
    assert truth(f"NOT ({operand})", {"t": "1"}) is expected


@pytest.mark.parametrize(
    "text",
    ["missing = 'a'", "missing <> 'a'", "missing > 1", "NOT missing = 'a'", "NOT missing < 1"],
)
def test_null_comparisons_never_match(text: str) -> None:
    assert truth(text, {}) is None
    assert not check(text, {})


def test_unknown_inside_a_larger_condition() -> None:
    headers = {"x": "yes"}
    assert check("missing = 'a' OR x = 'yes'", headers)
    assert not check("missing = 'a' AND x = 'yes'", headers)
    assert check("NOT (missing = 'a' AND x = 'no')", headers)
    assert not check("NOT (missing = 'a' OR x = 'no')", headers)


# --- syntax ----------------------------------------------------------------------


def test_keywords_are_case_insensitive_and_headers_case_sensitive() -> None:
    text = "region = 'eu' and not Tier in ('free') Or vip is Not null"
    assert parse_selector(text).condition == Or(
        (
            And(
                (
                    Comparison("=", Header("region"), Literal("eu")),
                    Not(In(Header("Tier"), ("free",))),
                )
            ),
            IsNull(Header("vip"), negated=True),
        )
    )
    assert check("Region = 'eu'", {"Region": "eu"})
    assert not check("Region = 'eu'", {"region": "eu"})


def test_precedence_not_and_or() -> None:
    condition = parse_selector("a = 1 OR b = 1 AND NOT c = 1").condition
    assert condition == Or(
        (
            Comparison("=", Header("a"), Literal(1)),
            And(
                (
                    Comparison("=", Header("b"), Literal(1)),
                    Not(Comparison("=", Header("c"), Literal(1))),
                )
            ),
        )
    )
    assert check("(a = 1 OR b = 1) AND c = 1", {"b": "1", "c": "1"})
    assert not check("(a = 1 OR b = 1) AND c = 1", {"b": "1"})


def test_literals_and_identifiers() -> None:
    condition = parse_selector("x-app.version_2 >= -1.5E2 AND n = 'O''Brien'").condition
    assert condition == And(
        (
            Comparison(">=", Header("x-app.version_2"), Literal(-150.0)),
            Comparison("=", Header("n"), Literal("O'Brien")),
        )
    )
    assert check("n = 'O''Brien'", {"n": "O'Brien"})
    assert check("e = ''", {"e": ""})
    assert parse_selector("a != 1").condition == Comparison("<>", Header("a"), Literal(1))
    assert parse_selector("a<>-1").condition == Comparison("<>", Header("a"), Literal(-1))
    like = parse_selector("s not like 'a%' escape '!'").condition
    assert like == Like(Header("s"), "a%", "!", negated=True)


def test_selector_is_immutable_and_compared_by_text() -> None:
    selector = parse_selector("a = 1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        selector.text = "b = 1"  # type: ignore[misc]
    assert parse_selector("a = 1") == selector
    assert selector == dataclasses.replace(selector)
    assert parse_selector("a  =  1").condition == selector.condition
    assert hash(selector) == hash(Selector("a = 1", selector.condition))


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 1, "expected a header name, string, number, NOT or '(' at position 1"),
        ("a = ", 5, "found end of selector"),
        ("a = 'x", 5, "unterminated string starting at position 5"),
        ("a == 1", 4, "found '='"),
        ("a IN ()", 7, "expected a string or number at position 7"),
        ("a IN (1, )", 10, "expected a string or number at position 10"),
        ("a IN (1 2)", 9, "expected ',' or ')' at position 9"),
        ("a IN 1", 6, "expected '(' at position 6"),
        ("(a = 1", 7, "expected AND, OR or ')' at position 7"),
        ("a = 1 b = 2", 7, "expected AND, OR or end of selector at position 7, found 'b'"),
        ("a = 1 AND", 10, "at position 10"),
        ("a", 2, "expected a comparison operator, IN, LIKE or IS at position 2"),
        ("a LIKE 5", 8, "expected a quoted LIKE pattern at position 8"),
        ("a IS 5", 6, "expected NULL or NOT NULL at position 6"),
        ("a IS NOT 'x'", 10, "expected NULL or NOT NULL at position 10"),
        ("a NOT = 1", 7, "expected IN or LIKE at position 7"),
        ("'x' LIKE 'y'", 1, "expected a header name before LIKE at position 1"),
        ("5 IS NULL", 1, "expected a header name before IS at position 1"),
        ("a LIKE 'x!' ESCAPE '!'", 8, "in the LIKE pattern at position 8"),
        ("a LIKE 'x!y' ESCAPE '!'", 8, "must precede '%', '_' or itself"),
        ("a LIKE 'x' ESCAPE '!!'", 19, "the ESCAPE at position 19 must be one character"),
        ("a LIKE 'x' ESCAPE ''", 19, "must be one character"),
        ("a = $", 5, "unexpected character '$' at position 5"),
        ("a = 1 b $", 7, "found 'b'"),
        ("a = NULL", 5, "IS NULL"),
        ("a = 1 AND ()", 12, "found ')'"),
        ("1a = 1", 2, "found 'a'"),
        ('a = "x"', 5, "unexpected character '\"' at position 5"),
    ],
)
def test_syntax_errors_name_their_position(text: str, position: int, fragment: str) -> None:
    error = parse_error(text)
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_SELECTOR"
    assert error.metadata["position"] == str(position)
    assert error.metadata["field"] == "selector"
    assert error.message.startswith("selector: ")
    assert fragment in error.message
    assert f"position {position}" in error.message


def test_check_selector_gives_the_verdict_of_parse_selector_every_time() -> None:
    for _ in range(2):  # the second time from what it remembers
        assert check_selector("a = 1") is None
        with pytest.raises(PushHubError) as caught:
            check_selector("a = ", "registrations[2].selector")
        assert caught.value.reason == "INVALID_SELECTOR"
        assert caught.value.metadata["field"] == "registrations[2].selector"


def test_error_uses_the_given_field_name() -> None:
    error = parse_error("a =", field="registrations[3].selector")
    assert error.metadata["field"] == "registrations[3].selector"
    assert error.message.startswith("registrations[3].selector: ")


def test_length_limit() -> None:
    text = "h = '" + "x" * 1018 + "'"
    assert len(text) == 1024
    parse_selector(text)
    error = parse_error(text + " ")
    assert error.reason == "VALUE_TOO_LONG"
    assert error.metadata["limit"] == "1024"
    assert parse_error("a = 1", max_length=4).metadata["limit"] == "4"


def test_nesting_is_bounded_without_recursion_errors() -> None:
    assert "nesting deeper" in parse_error("(" * 500 + "a = 1" + ")" * 500).message
    assert "nesting deeper" in parse_error("NOT " * 200 + "a = 1").message
    assert check("(" * MAX_DEPTH + "a = 1" + ")" * MAX_DEPTH, {"a": "1"})


# --- properties ------------------------------------------------------------------


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@settings(max_examples=300)
@given(st.text(max_size=20).filter(lambda text: "%" not in text and "_" not in text))
def test_like_without_wildcards_is_equality(value: str) -> None:
    selector = parse_selector(f"h LIKE {_quote(value)}")
    assert matches(selector, {"h": value})
    assert not matches(selector, {"h": value + "x"})
    assert matches(parse_selector(f"h = {_quote(value)}"), {"h": value})


@settings(max_examples=300)
@given(st.text(max_size=20), st.text(max_size=20))
def test_like_with_escaped_text_matches_only_that_text(value: str, other: str) -> None:
    escaped = value.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    selector = parse_selector(f"h LIKE {_quote(escaped)} ESCAPE '!'")
    assert matches(selector, {"h": value})
    assert matches(selector, {"h": other}) is (other == value)


@settings(max_examples=300)
@given(st.text(alphabet="ab1' =<>!(),%NOTANDISLKE$", max_size=30))
def test_arbitrary_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        parse_selector(text)
    except PushHubError as error:
        assert error.reason == "INVALID_SELECTOR"
        assert 1 <= int(error.metadata["position"]) <= len(text) + 1


def _like_reference(pattern: str, value: str, escape: str | None) -> bool:
    """SQL LIKE by dynamic programming over (pattern atom, value prefix): the oracle."""
    atoms: list[str | None] = []  # None: '%'; '' : '_'; else a literal character
    chars = iter(pattern)
    for char in chars:
        if char == escape:
            atoms.append(next(chars))
        else:
            atoms.append(None if char == "%" else "" if char == "_" else char)
    reach = [True] + [False] * len(value)  # value prefixes the atoms so far can match
    for atom in atoms:
        if atom is None:
            reach = [any(reach[: i + 1]) for i in range(len(value) + 1)]
        else:
            reach = [False] + [
                reach[i] and (atom == "" or value[i] == atom) for i in range(len(value))
            ]
    return reach[-1]


@settings(max_examples=1000)
@given(
    st.text(alphabet="ab%_", max_size=12),
    st.text(alphabet="ab\n", max_size=12),
)
def test_like_agrees_with_a_reference_matcher(pattern: str, value: str) -> None:
    expected = _like_reference(pattern, value, None)
    assert check(f"h LIKE '{pattern}'", {"h": value}) is expected
    assert check(f"h NOT LIKE '{pattern}'", {"h": value}) is not expected


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from(["a", "b", "%", "_", "!%", "!_", "!!"]), max_size=10),
    st.text(alphabet="ab%_!", max_size=10),
)
def test_like_with_escapes_agrees_with_a_reference_matcher(parts: list[str], value: str) -> None:
    pattern = "".join(parts)
    assert check(f"h LIKE '{pattern}' ESCAPE '!'", {"h": value}) is _like_reference(
        pattern, value, "!"
    )


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        # The freeze: a backtracking regex took exponential time on these.
        ("%_" * 14 + "%x", "a" * 40, False),
        ("%_" * 14 + "%x", "a" * 39 + "x", True),
        ("%_" * 500 + "%", "a" * 499, False),
        ("%a%a%a%a%a%a%a%a%a%a%a%a%a%a%b", "a" * 1000, False),
        ("%" + "a_" * 400 + "b%", "a" * 1000, False),
        ("%ab%ab%", "abab", True),
        ("%ab%ab%", "aba", False),
        ("a%a", "a", False),
        ("_%_", "ab", True),
    ],
)
def test_like_never_backtracks(pattern: str, value: str, expected: bool) -> None:
    assert check(f"kind LIKE '{pattern}'", {"kind": value}) is expected
