"""Azure-style registration templates and Kinvey-style {{name}} messages."""

from __future__ import annotations

import json

import pytest

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.templates import (
    TEMPLATE_RENDER_FAILED,
    CompiledTemplate,
    Placeholder,
    PlaceholderKind,
    compile_message,
    compile_template,
    fill_message,
    render_template,
)


def render_json(body: str, properties: dict[str, str]) -> object:
    return json.loads(render_template(body, properties))


# ------------------------------------------------------------------ $(prop)


def test_dollar_substitutes_text_inside_a_string() -> None:
    body = '{"aps":{"alert":"Hello $(name), you have $(count) items"}}'
    assert render_json(body, {"name": "Ann", "count": "3"}) == {
        "aps": {"alert": "Hello Ann, you have 3 items"}
    }


@pytest.mark.parametrize(
    "value",
    ['say "hi"', "back\\slash", "line\nbreak\ttab", "\x00\x1f control", "ünïcødé ✓ 😀", "}]{["],
)
def test_dollar_escapes_values_so_the_result_stays_valid_json(value: str) -> None:
    rendered = render_template('{"a":"<$(v)>","b":"$(v)"}', {"v": value})
    assert json.loads(rendered) == {"a": f"<{value}>", "b": value}


def test_dollar_keeps_non_ascii_unescaped() -> None:
    assert render_template('{"a":"$(v)"}', {"v": "é✓"}) == '{"a":"é✓"}'


def test_missing_property_renders_as_empty() -> None:
    assert render_json('{"a":"[$(missing)]","b":"$(missing)"}', {}) == {"a": "[]", "b": ""}


def test_bare_dollar_outside_a_string_becomes_a_json_string() -> None:
    assert render_json('{"a":$(v),"b":$(missing)}', {"v": 'x"y'}) == {"a": 'x"y', "b": ""}


def test_dollar_with_length_clips_the_value() -> None:
    assert render_json('{"a":"$(v, 5)","b":"$(v,2)"}', {"v": "abcdefgh"}) == {
        "a": "abcde",
        "b": "ab",
    }


def test_percent_uri_encodes() -> None:
    assert render_json('{"url":"https://x/?q=%(q)"}', {"q": 'a b&c/"é'}) == {
        "url": "https://x/?q=a%20b%26c%2F%22%C3%A9"
    }


def test_property_names_match_case_insensitively_exact_first() -> None:
    assert render_json('{"a":"$(Name)"}', {"name": "lower"}) == {"a": "lower"}
    assert render_json('{"a":"$(Name)"}', {"name": "lower", "Name": "exact"}) == {"a": "exact"}


def test_values_are_not_expanded_again() -> None:
    assert render_json('{"a":"$(x)","b":"$(y)"}', {"x": "$(y)", "y": "#(x)"}) == {
        "a": "$(y)",
        "b": "#(x)",
    }


def test_text_that_is_not_a_placeholder_is_kept() -> None:
    body = '{"a":"costs $5 (or #1) at 100%","b":"$()"}'
    assert render_json(body, {}) == {"a": "costs $5 (or #1) at 100%", "b": "$()"}


def test_escaped_quotes_in_the_template_do_not_end_the_string() -> None:
    # "\"$(x)\"" is one JSON string: $(x) is inside it and must be escaped.
    assert render_json('{"a":"\\"$(x)\\""}', {"x": 'q"'}) == {"a": '"q""'}


# ------------------------------------------------------------------ #(prop)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5), ("0", 0), ("-12", -12), ("3.25", 3.25), ("1e3", 1000.0), ("2E-2", 0.02)],
)
def test_quoted_hash_renders_a_number(value: str, expected: float) -> None:
    rendered = render_template('{"aps":{"badge":"#(count)"}}', {"count": value})
    assert rendered == '{"aps":{"badge":' + value + "}}"
    assert json.loads(rendered) == {"aps": {"badge": expected}}


@pytest.mark.parametrize("value", ["five", "01", "1.", "+1", "0x10", " 5", ""])
def test_quoted_hash_with_a_non_number_stays_a_string(value: str) -> None:
    assert render_json('{"badge":"#(count)"}', {"count": value}) == {"badge": value}


def test_quoted_hash_missing_renders_empty_string() -> None:
    assert render_json('{"badge":"#(count)"}', {}) == {"badge": ""}


def test_quoted_hash_in_key_position_is_text() -> None:
    assert render_json('{"#(k)":"#(k)"}', {"k": "7"}) == {"7": 7}


def test_hash_inside_longer_text_is_plain_text() -> None:
    assert render_json('{"a":"n=#(n)"}', {"n": "4"}) == {"a": "n=4"}


def test_bare_hash_renders_a_number() -> None:
    assert render_json('{"badge":#(n),"list":[#(n), #(m)]}', {"n": "2", "m": "-1.5"}) == {
        "badge": 2,
        "list": [2, -1.5],
    }


@pytest.mark.parametrize("properties", [{}, {"n": "two"}, {"n": '1,"x":2'}])
def test_bare_hash_without_a_number_fails_with_a_clear_reason(properties: dict) -> None:
    with pytest.raises(PushHubError) as info:
        render_template('{"badge":#(n)}', properties)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert info.value.reason == TEMPLATE_RENDER_FAILED
    assert "#(n)" in info.value.message


# ------------------------------------------------------------------ compiled form


def test_compile_splits_literals_and_placeholders() -> None:
    compiled = compile_template('{"a":"x$(p)y","b":"#(n)","c":#(m)}')
    assert compiled.parts == (
        '{"a":"x',
        Placeholder(PlaceholderKind.TEXT_IN_STRING, "p"),
        'y","b":',
        Placeholder(PlaceholderKind.NUMBER_QUOTED, "n"),
        ',"c":',
        Placeholder(PlaceholderKind.NUMBER_BARE, "m"),
        "}",
    )
    assert compiled.names == {"p", "n", "m"}
    assert not compiled.is_static


def test_a_compiled_template_renders_many_times() -> None:
    compiled = compile_template('{"alert":"Hi $(name)"}')
    assert compiled.render({"name": "A"}) == '{"alert":"Hi A"}'
    assert compiled.render({"name": "B"}) == '{"alert":"Hi B"}'
    assert compiled.render() == '{"alert":"Hi "}'


def test_template_without_placeholders_is_static() -> None:
    compiled = compile_template('{"aps":{"alert":"fixed"}}')
    assert compiled == CompiledTemplate(('{"aps":{"alert":"fixed"}}',))
    assert compiled.is_static


# ------------------------------------------------------------------ Kinvey {{name}}


def test_mustache_fills_from_metadata() -> None:
    assert fill_message("Hi {{first}} {{ last }}!", {"first": "Ann", "last": "Lee"}) == (
        "Hi Ann Lee!"
    )


def test_mustache_missing_key_renders_empty() -> None:
    assert fill_message("Hi {{first}}!", {}) == "Hi !"
    assert fill_message("Hi {{first}}!", None) == "Hi !"


def test_mustache_repeated_and_adjacent() -> None:
    assert fill_message("{{a}}{{a}}-{{b}}", {"a": "x", "b": "y"}) == "xx-y"


def test_mustache_values_are_not_expanded_again() -> None:
    assert fill_message("{{a}}", {"a": "{{b}}", "b": "no"}) == "{{b}}"


def test_mustache_leaves_other_braces_alone() -> None:
    assert fill_message("{x} {{}} {{ }} {{a b}}", {"a": "1"}) == "{x} {{}} {{ }} {{a b}}"


def test_compiled_message_knows_its_placeholders() -> None:
    plain = compile_message("no placeholders")
    assert not plain.has_placeholders
    assert plain.render({"x": "y"}) == "no placeholders"
    templated = compile_message("Hi {{name}}, {{city}}")
    assert templated.has_placeholders
    assert templated.names == {"name", "city"}
    assert templated.render({"name": "Bo", "city": "Oslo"}) == "Hi Bo, Oslo"
