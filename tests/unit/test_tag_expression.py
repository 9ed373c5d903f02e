"""Tag expressions (Azure grammar): parsing, precedence, errors, limits, round trips."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.tag_expression import (
    MAX_DEPTH,
    And,
    Not,
    Or,
    Tag,
    TagExpr,
    evaluate,
    fold,
    parse_tag_expression,
    tags_of,
    to_text,
)

a, b, c, d = Tag("a"), Tag("b"), Tag("c"), Tag("d")


def parse_error(text: str, **kwargs: object) -> PushHubError:
    with pytest.raises(PushHubError) as caught:
        parse_tag_expression(text, **kwargs)  # type: ignore[arg-type]
    return caught.value


# --- Azure examples ------------------------------------------------------------


def test_azure_example_parses_into_the_expected_tree() -> None:
    expr = parse_tag_expression("(follows_RedSox || follows_Cardinals) && location_Boston")
    assert expr == And(
        (Or((Tag("follows_RedSox"), Tag("follows_Cardinals"))), Tag("location_Boston"))
    )


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"follows_RedSox", "location_Boston"}, True),
        ({"follows_Cardinals", "location_Boston"}, True),
        ({"follows_RedSox", "follows_Cardinals"}, False),
        ({"location_Boston"}, False),
        (set(), False),
    ],
)
def test_azure_example_evaluates(tags: set[str], expected: bool) -> None:
    expr = parse_tag_expression("(follows_RedSox || follows_Cardinals) && location_Boston")
    assert evaluate(expr, frozenset(tags)) is expected


def test_azure_negation_example() -> None:
    expr = parse_tag_expression("follows_RedSox && !location_Boston")
    assert evaluate(expr, frozenset({"follows_RedSox", "location_NYC"}))
    assert not evaluate(expr, frozenset({"follows_RedSox", "location_Boston"}))


def test_tags_use_the_whole_charset() -> None:
    expr = parse_tag_expression("user:alice && #vip || a.b-c@d_e:9")
    assert expr == Or((And((Tag("user:alice"), Tag("#vip"))), Tag("a.b-c@d_e:9")))
    assert tags_of(expr) == {"user:alice", "#vip", "a.b-c@d_e:9"}


def test_tags_are_case_sensitive() -> None:
    expr = parse_tag_expression("Sports")
    assert evaluate(expr, frozenset({"Sports"}))
    assert not evaluate(expr, frozenset({"sports"}))


# --- precedence and shape ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", a),
        ("((a))", a),
        ("a || b && c", Or((a, And((b, c))))),
        ("a && b || c && d", Or((And((a, b)), And((c, d))))),
        ("!a && b", And((Not(a), b))),
        ("!a || b", Or((Not(a), b))),
        ("!(a || b)", Not(Or((a, b)))),
        ("!!a", Not(Not(a))),
        ("(a || b) && c", And((Or((a, b)), c))),
        ("a && (b && c)", And((a, b, c))),
        ("(a || b) || (c || d)", Or((a, b, c, d))),
        ("a&&!b||c", Or((And((a, Not(b))), c))),
        ("  a\t&&\n b  ", And((a, b))),
    ],
)
def test_precedence_and_canonical_shape(text: str, expected: TagExpr) -> None:
    assert parse_tag_expression(text) == expected


@pytest.mark.parametrize(
    "text",
    ["a", "!a", "a && b && c", "(a || b) && !(c && d)", "!(a || b) || c && d", "!!a", "!(!a)"],
)
def test_to_text_uses_minimal_parentheses(text: str) -> None:
    expr = parse_tag_expression(text)
    printed = to_text(expr)
    assert parse_tag_expression(printed) == expr
    assert printed == text.replace("!(!a)", "!!a")


def test_to_text_of_hand_built_trees() -> None:
    assert to_text(And((Or((a, b)), Not(And((c, d)))))) == "(a || b) && !(c && d)"
    assert to_text(Or((And((a,)), Or((b, c))))) == "a || b || c"
    assert to_text(And((Or((a, b)),))) == "(a || b)"


def test_ast_is_immutable_and_hashable() -> None:
    expr = parse_tag_expression("a && !b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        expr.operands = ()  # type: ignore[misc, union-attr]
    assert hash(expr) == hash(parse_tag_expression("a&&!b"))
    assert And([a, b]).operands == (a, b)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Or(())


class _SqlSketch:
    """What the store does: one EXISTS per tag, parameters in order."""

    def __init__(self) -> None:
        self.params: list[str] = []

    def tag(self, name: str) -> str:
        self.params.append(name)
        return "EXISTS (SELECT 1 FROM tags t WHERE t.registration_id = r.id AND t.tag = ?)"

    def not_(self, operand: str) -> str:
        return f"NOT ({operand})"

    def and_(self, operands: Sequence[str]) -> str:
        return "(" + " AND ".join(operands) + ")"

    def or_(self, operands: Sequence[str]) -> str:
        return "(" + " OR ".join(operands) + ")"


def test_fold_compiles_through_a_visitor() -> None:
    sketch = _SqlSketch()
    sql = fold(parse_tag_expression("(x || y) && !z"), sketch)
    assert sketch.params == ["x", "y", "z"]
    assert sql.count("EXISTS") == 3
    assert sql.startswith("((EXISTS") and " OR " in sql and "AND NOT (EXISTS" in sql


# --- errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 1, "expected a tag, '!' or '(' at position 1, found end of expression"),
        ("a &&", 5, "expected a tag, '!' or '(' at position 5"),
        ("a && && b", 6, "found '&&'"),
        ("a || (b && c", 13, "expected '&&', '||' or ')' at position 13"),
        ("a b", 3, "expected '&&', '||' or end of expression at position 3, found 'b'"),
        ("a )", 3, "found ')'"),
        ("a & b", 3, "expected '&&' at position 3"),
        ("a | b", 3, "expected '||' at position 3"),
        ("a || $b", 6, "unexpected character '$' at position 6"),
        ("a b $", 3, "found 'b'"),
        ("()", 2, "found ')'"),
        ("!", 2, "found end of expression"),
        ("follows RedSox", 9, "at position 9"),
        ("a && b,c", 7, "unexpected character ','"),
    ],
)
def test_syntax_errors_name_their_position(text: str, position: int, fragment: str) -> None:
    error = parse_error(text)
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_TAG_EXPRESSION"
    assert error.metadata["position"] == str(position)
    assert error.metadata["field"] == "tag_expression"
    assert error.message.startswith("tag_expression: ")
    assert fragment in error.message
    assert error.violations[0].field == "tag_expression"


def test_error_uses_the_given_field_name() -> None:
    error = parse_error("a &&", field="publish.tag_expression")
    assert error.metadata["field"] == "publish.tag_expression"
    assert error.message.startswith("publish.tag_expression: expected")


def test_tag_longer_than_120_characters_is_rejected_with_its_position() -> None:
    parse_tag_expression("a && " + "t" * 120)
    error = parse_error("a && " + "t" * 121)
    assert error.reason == "VALUE_TOO_LONG"
    assert error.metadata["position"] == "6"


def test_nesting_is_bounded_without_recursion_errors() -> None:
    deep = "(" * (MAX_DEPTH + 50) + "a" + ")" * (MAX_DEPTH + 50)
    assert "nesting deeper" in parse_error(deep).message
    assert "nesting deeper" in parse_error("!" * 5000 + "a").message
    assert parse_tag_expression("(" * 50 + "a" + ")" * 50) == a


# --- tag limit -------------------------------------------------------------------


def _names(count: int) -> list[str]:
    return [f"t{index}" for index in range(count)]


@pytest.mark.parametrize(
    "text",
    [
        " || ".join(_names(64)),
        " && ".join(_names(64)),
        " || ".join(f"({x} && !{y})" for x, y in zip(_names(32), _names(64)[32:], strict=True)),
        "!(" + " && ".join(_names(63)) + ") || t63",
        " || ".join(["same"] * 64),
    ],
)
def test_64_tags_are_allowed_in_any_shape(text: str) -> None:
    expr = parse_tag_expression(text)
    assert evaluate(expr, frozenset()) in (True, False)


@pytest.mark.parametrize(
    "text",
    [" || ".join(_names(65)), " && ".join(_names(65)), "!(" + " && ".join(_names(65)) + ")"],
)
def test_a_65th_tag_is_rejected(text: str) -> None:
    error = parse_error(text)
    assert error.reason == "TOO_MANY_TAGS"
    assert error.metadata["limit"] == "64"
    assert "64" in error.message
    assert error.metadata["position"] == str(text.index("t64") + 1)


def test_tag_limit_is_a_parameter() -> None:
    parse_tag_expression("a && b && c", max_tags=3)
    error = parse_error("a && b && c && d", max_tags=3)
    assert error.reason == "TOO_MANY_TAGS"
    assert error.metadata["limit"] == "3"


# --- properties ------------------------------------------------------------------

POOL = ["a", "b", "c", "user:42", "#vip", "x.y-z", "@home", "_9"]
tag_sets = st.frozensets(st.sampled_from(POOL))
expressions: st.SearchStrategy[TagExpr] = st.recursive(
    st.sampled_from(POOL).map(Tag),
    lambda children: st.one_of(
        children.map(Not),
        st.lists(children, min_size=1, max_size=4).map(lambda parts: And(tuple(parts))),
        st.lists(children, min_size=1, max_size=4).map(lambda parts: Or(tuple(parts))),
    ),
    max_leaves=40,
)


@settings(max_examples=400)
@given(expressions, st.lists(tag_sets, min_size=1, max_size=8))
def test_parse_of_printed_tree_evaluates_like_the_tree(
    expr: TagExpr, samples: list[frozenset[str]]
) -> None:
    parsed = parse_tag_expression(to_text(expr))
    assert tags_of(parsed) == tags_of(expr)
    for tags in samples:
        assert evaluate(parsed, tags) == evaluate(expr, tags)


@given(expressions)
def test_printing_a_parsed_tree_is_a_fixed_point(expr: TagExpr) -> None:
    parsed = parse_tag_expression(to_text(expr))
    assert parse_tag_expression(to_text(parsed)) == parsed


@settings(max_examples=300)
@given(st.text(alphabet="ab!&|() $", max_size=30))
def test_arbitrary_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        parse_tag_expression(text)
    except PushHubError as error:
        assert error.reason == "INVALID_TAG_EXPRESSION"
        assert 1 <= int(error.metadata["position"]) <= len(text) + 1
        assert f"at position {error.metadata['position']}" in error.message
