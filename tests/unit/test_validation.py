"""core.validation: one rule per function, each with its limit and reason."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.validation import (
    check_count,
    check_future,
    check_http_headers,
    check_map,
    check_name,
    check_printable,
    check_tag,
    check_tags,
    check_text,
    is_reserved_tag,
)

TAG_ALPHABET = string.ascii_letters + string.digits + "_@#.:-"


def _error(call, *args) -> PushHubError:
    with pytest.raises(PushHubError) as caught:
        call(*args)
    error = caught.value
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert error.reason.isupper() and " " not in error.reason
    assert [v.field for v in error.violations] == [error.metadata["field"]]
    return error


def test_check_length_boundary() -> None:
    assert check_text("device_token", "x" * 4096, 4096) == "x" * 4096
    error = _error(check_text, "device_token", "x" * 4097, 4096)
    assert error.reason == "VALUE_TOO_LONG"
    assert error.metadata == {"field": "device_token", "legacy_code": "8000", "limit": "4096"}
    assert "device_token" in error.message and "4096" in error.message


def test_check_length_counts_characters_not_bytes() -> None:
    assert check_text("channel", "é" * 255, 255)
    assert check_text("channel", "😀" * 255, 255)


def test_check_count() -> None:
    check_count("tags", range(60), 60)
    error = _error(check_count, "tags", range(61), 60)
    assert error.reason == "TOO_MANY_VALUES"
    assert error.metadata == {"field": "tags", "legacy_code": "8000", "limit": "60"}


@given(st.text(alphabet=TAG_ALPHABET, min_size=1, max_size=120))
def test_every_tag_of_the_charset_is_accepted(tag: str) -> None:
    assert check_tag("tags[0]", tag, 120) == tag


@given(
    st.text(min_size=1, max_size=120).filter(lambda tag: any(c not in TAG_ALPHABET for c in tag))
)
def test_any_other_character_is_refused(tag: str) -> None:
    error = _error(check_tag, "tags[0]", tag, 120)
    assert error.reason == "INVALID_TAG"


def test_tag_limits() -> None:
    assert _error(check_tag, "tags[0]", "", 120).reason == "INVALID_TAG"
    assert _error(check_tag, "tags[0]", "t" * 121, 120).reason == "VALUE_TOO_LONG"


def test_check_tags_deduplicates_then_counts_and_names_the_index() -> None:
    assert check_tags("tags", ["a", "b", "a"], 120, 2) == ("a", "b")
    assert _error(check_tags, "tags", ["a", "b", "c"], 120, 2).reason == "TOO_MANY_VALUES"
    error = _error(check_tags, "tags", ["a", "a", "bad tag"], 120, 60)
    assert error.metadata["field"] == "tags[1]"


def test_check_name() -> None:
    assert check_name("channels[0]", "météo 🌦", 255)
    assert _error(check_name, "channels[0]", "", 255).reason == "INVALID_NAME"
    assert _error(check_name, "channels[0]", "a\x00b", 255).reason == "INVALID_NAME"
    assert _error(check_name, "channels[0]", "a\nb", 255).reason == "INVALID_NAME"
    assert _error(check_name, "channels[0]", "c" * 256, 255).reason == "VALUE_TOO_LONG"


def test_check_future_is_strict() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    check_future("expires_at", now + timedelta(microseconds=1), now, "5004", "INVALID_EXPIRATION")
    for moment in (now, now - timedelta(days=1)):
        error = _error(check_future, "expires_at", moment, now, "5004", "INVALID_EXPIRATION")
        assert error.reason == "INVALID_EXPIRATION"
        assert error.metadata == {"field": "expires_at", "legacy_code": "5004"}


def test_check_map() -> None:
    assert check_map("metadata", {"k": "v"}, 64, 255, 4096) == {"k": "v"}
    assert _error(
        check_map, "metadata", {f"k{i}": "" for i in range(65)}, 64, 255, 4096
    ).reason == ("TOO_MANY_VALUES")
    assert _error(check_map, "metadata", {"": "v"}, 64, 255, 4096).metadata["field"] == (
        "metadata.key"
    )
    error = _error(check_map, "metadata", {"k": "v" * 4097}, 64, 255, 4096)
    assert (error.reason, error.metadata["field"]) == ("VALUE_TOO_LONG", "metadata[k]")


def test_reserved_tags() -> None:
    assert is_reserved_tag("user:alice")
    assert is_reserved_tag("user:")
    assert not is_reserved_tag("users:alice")
    assert not is_reserved_tag("User:alice")
    assert not is_reserved_tag("alice")


def test_check_http_headers_accepts_rfc_7230_names_and_values() -> None:
    headers = {"X-Api-Key": "abc 123\t=/+", "!#$%&'*+-.^_`|~09Az": "", "Authorization": "Bearer x"}
    assert check_http_headers("callback_headers", headers, 32, 1024) == headers


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X-A": "v\r\nX-Injected: 1"}, "callback_headers[X-A]"),
        ({"X-A": "v\n"}, "callback_headers[X-A]"),
        ({"X-A": "nul\x00"}, "callback_headers[X-A]"),
        ({"X-A": "del\x7f"}, "callback_headers[X-A]"),
        ({"X-A": " leading space"}, "callback_headers[X-A]"),
        ({"X-A": "trailing\t"}, "callback_headers[X-A]"),
        ({"X-A": "caf\u00e9"}, "callback_headers[X-A]"),
        ({"X A": "v"}, "callback_headers.key"),
        ({"X:A": "v"}, "callback_headers.key"),
        ({"": "v"}, "callback_headers.key"),
        ({"X-\u00e9": "v"}, "callback_headers.key"),
        ({"Host": "10.0.0.1"}, "callback_headers.key"),
        ({"content-length": "0"}, "callback_headers.key"),
        ({"Transfer-Encoding": "chunked"}, "callback_headers.key"),
    ],
)
def test_check_http_headers_refuses(headers: dict[str, str], field: str) -> None:
    error = _error(check_http_headers, "callback_headers", headers, 32, 1024)
    assert (error.reason, error.metadata["field"]) == ("INVALID_HEADER", field)


def test_check_http_headers_limits() -> None:
    many = {f"h{i}": "v" for i in range(33)}
    assert _error(check_http_headers, "callback_headers", many, 32, 1024).reason == (
        "TOO_MANY_VALUES"
    )
    long_value = {"h": "v" * 1025}
    assert _error(check_http_headers, "callback_headers", long_value, 32, 1024).reason == (
        "VALUE_TOO_LONG"
    )


def test_check_printable() -> None:
    assert check_printable("collapse_key", "any text, é ok") == "any text, é ok"
    for bad in ("a\rb", "a\nb", "\x00", "\x7f", "\t"):
        assert _error(check_printable, "collapse_key", bad).reason == "INVALID_CHARACTER"
