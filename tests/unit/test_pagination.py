"""core.pagination: opaque AIP-158 tokens bound to their filter."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.pagination import decode_cursor, encode_cursor


@given(st.from_regex(r"[0-9A-Za-z-]{1,64}", fullmatch=True), st.text())
def test_round_trip(after: str, filter_key: str) -> None:
    token = encode_cursor(after, filter_key)
    assert token.isascii() and "=" not in token
    assert decode_cursor(token, filter_key) == after


def _invalid(token: str, filter_key: str = "[]") -> None:
    with pytest.raises(PushHubError) as caught:
        decode_cursor(token, filter_key)
    error = caught.value
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_PAGE_TOKEN"
    assert error.metadata["field"] == "page_token"


def test_token_of_another_filter_is_refused() -> None:
    _invalid(encode_cursor("id-1", '["alice", null, null, 0]'), '["bob", null, null, 0]')


@pytest.mark.parametrize(
    "token",
    ["garbage", "%%%", "", "e30", base64.urlsafe_b64encode(b"[1, 2]").decode(), "\u00e9\u00e9"],
)
def test_garbage_is_refused(token: str) -> None:
    _invalid(token)


def _forged(after_json: str) -> str:
    """A token as a client could build one: the filter digest is not secret."""
    token = encode_cursor("x", "[]")
    good = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    text = json.dumps(good).replace('"x"', after_json)
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_after_must_be_a_string() -> None:
    _invalid(_forged("5"))


@pytest.mark.parametrize(
    "after_json",
    ['"a\\u0000b"', '"\\udc00"', '"with space"', '"' + "a" * 65 + '"', '""', "[" * 5000],
)
def test_a_forged_after_is_refused(after_json: str) -> None:
    """It goes into SQL: NUL, a lone surrogate or deep nesting would fail there, or earlier."""
    _invalid(_forged(after_json))


def test_a_token_far_longer_than_any_made_is_refused_unread() -> None:
    _invalid("A" * 1025)


@given(st.binary(max_size=200))
def test_random_bytes_never_crash(raw: bytes) -> None:
    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    try:
        decode_cursor(token, "[]")
    except PushHubError as error:
        assert error.reason == "INVALID_PAGE_TOKEN"
