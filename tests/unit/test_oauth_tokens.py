"""Token-endpoint answers as RFC 6749 §5 words them (Google's), read by parse_token_answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pushhub_server.delivery.providers.oauth_tokens import TokenError, parse_token_answer

ISSUED = datetime(2030, 1, 1, tzinfo=UTC)


def answer(status: int, value: object) -> tuple[int, bytes, datetime]:
    return status, json.dumps(value).encode(), ISSUED


def test_a_token_lives_for_expires_in_from_when_it_was_asked_for() -> None:
    token = parse_token_answer(*answer(200, {"access_token": "ya29.x", "expires_in": 3599}))

    assert (token.value, token.expires_at) == ("ya29.x", ISSUED + timedelta(seconds=3599))


@pytest.mark.parametrize(
    ("status", "body", "reason", "retryable"),
    [
        (400, {"error": "invalid_grant", "error_description": "Invalid JWT"}, "invalid_grant",
         False),
        (401, {"error": "invalid_client"}, "invalid_client", False),
        (403, {}, "TOKEN_HTTP_403", False),
        (503, {"error": "backend_error"}, "backend_error", True),
        (429, {}, "TOKEN_HTTP_429", True),
        (200, {"access_token": "ya29.x"}, "TOKEN_RESPONSE_MALFORMED", True),
        (200, {"access_token": "ya29.x", "expires_in": True}, "TOKEN_RESPONSE_MALFORMED", True),
        (200, {"expires_in": 3599}, "TOKEN_RESPONSE_MALFORMED", True),
    ],
)  # fmt: skip
def test_refusals_name_the_oauth_error_and_say_whether_to_retry(
    status: int, body: object, reason: str, retryable: bool
) -> None:
    with pytest.raises(TokenError) as raised:
        parse_token_answer(*answer(status, body))

    assert (raised.value.reason, raised.value.retryable) == (reason, retryable)
    outcome = raised.value.delivery_result()
    assert outcome.reason == f"OAUTH2_{reason.upper()}"


def test_a_body_that_is_not_json_is_a_refusal_by_status() -> None:
    with pytest.raises(TokenError) as raised:
        parse_token_answer(502, b"<html>Bad Gateway</html>", ISSUED)

    assert (raised.value.reason, raised.value.retryable) == ("TOKEN_HTTP_502", True)
