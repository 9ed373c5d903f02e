"""core.pagination: opaque AIP-158 tokens bound to their filter."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.pagination import decode_cursor, encode_cursor


@given(st.text(), st.text())
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


def test_after_must_be_a_string() -> None:
    token = encode_cursor("x", "[]")
    good = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**good, "after": 5}).encode()).decode()
    _invalid(forged)


@given(st.binary(max_size=200))
def test_random_bytes_never_crash(raw: bytes) -> None:
    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    try:
        decode_cursor(token, "[]")
    except PushHubError as error:
        assert error.reason == "INVALID_PAGE_TOKEN"
