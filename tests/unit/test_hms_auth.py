"""Huawei's token-endpoint answers, as the client-credentials exchange reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pushhub_server.delivery.providers.hms_auth import parse_token_response
from pushhub_server.delivery.providers.oauth_tokens import TokenError

ISSUED = datetime(2030, 1, 1, tzinfo=UTC)


def answer(status: int, value: object) -> tuple[int, bytes, datetime]:
    return status, json.dumps(value).encode(), ISSUED


def test_a_token_lives_for_expires_in_from_when_it_was_asked_for() -> None:
    token = parse_token_response(
        *answer(200, {"access_token": "CF3X", "expires_in": 3600, "token_type": "Bearer"})
    )

    assert (token.value, token.expires_at) == ("CF3X", ISSUED + timedelta(seconds=3600))


@pytest.mark.parametrize(
    ("status", "body", "reason", "retryable"),
    [
        (400, {"error": 1101, "sub_error": 20001, "error_description": "invalid client"},
         "1101_20001", False),
        (400, {"error": 1101, "error_description": "invalid request"}, "1101", False),
        # An error object is a refusal whatever the status says.
        (200, {"error": 1101, "sub_error": 12304}, "1101_12304", False),
        (503, {}, "TOKEN_HTTP_503", True),
        (429, {"error": 1203}, "1203", True),
        (200, {"expires_in": 3600}, "TOKEN_RESPONSE_MALFORMED", True),
        (200, {"access_token": "CF3X", "expires_in": "3600"}, "TOKEN_RESPONSE_MALFORMED", True),
    ],
)  # fmt: skip
def test_refusals_name_huaweis_error_and_say_whether_to_retry(
    status: int, body: object, reason: str, retryable: bool
) -> None:
    with pytest.raises(TokenError) as raised:
        parse_token_response(*answer(status, body))

    assert (raised.value.reason, raised.value.retryable) == (reason, retryable)


def test_a_body_that_is_not_json_is_a_refusal_by_status() -> None:
    with pytest.raises(TokenError) as raised:
        parse_token_response(502, b"<html>Bad Gateway</html>", ISSUED)

    assert (raised.value.reason, raised.value.retryable) == ("TOKEN_HTTP_502", True)
