"""OAuth2 access tokens cached until shortly before they expire, for any grant.

Providers that authenticate with a bearer token (FCM: a JWT-bearer grant, see
google_auth.py; Huawei Push Kit: client credentials, see hms_auth.py) subclass
``CachedTokens`` with their own ``_exchange``. The cache is shared: a token is
kept until ``REFRESH_MARGIN`` before it expires, one asyncio.Lock makes
concurrent callers share a single exchange, and a failed exchange is held for
``FAILURE_HOLD`` so a batch of refusals does not become a storm of exchanges.
Both endpoints answer as RFC 6749 §5 says, except for how an error is named:
``parse_token_answer`` reads either, given that one difference.

The exchange is a form POST over HTTP/1.1 with urllib in a worker thread: it
happens about once an hour, so it does not need the multiplexed delivery transport.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pushhub_server.core.clock import Clock
from pushhub_server.core.messages import DeliveryOutcome, DeliveryResult

# Refresh this long before expiry, so no request carries a token that dies in flight.
REFRESH_MARGIN = timedelta(minutes=5)
# After a failed exchange, callers get the same error for this long instead of each
# hitting the token endpoint again (a batch of 401s must not become a storm).
FAILURE_HOLD = timedelta(seconds=5)
EXCHANGE_TIMEOUT = 30.0


class TokenError(Exception):
    """The token endpoint refused or could not be reached.

    ``reason`` is the OAuth2 ``error`` code (``invalid_grant``) or a transport
    description; ``retryable`` is False when only new credentials can help.
    """

    def __init__(self, reason: str, retryable: bool, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.retryable = retryable

    def delivery_result(self) -> DeliveryResult:
        """What each delivery of a batch gets when no token could be had for it."""
        outcome = DeliveryOutcome.RETRY if self.retryable else DeliveryOutcome.REJECTED
        return DeliveryResult(outcome, f"OAUTH2_{self.reason.upper()}")


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: datetime


class CachedTokens:
    """Access tokens for one set of credentials, cached and refreshed one at a time.

    Subclasses implement ``_exchange``: one request to the token endpoint.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = asyncio.Lock()
        self._current: AccessToken | None = None
        self._failure: tuple[datetime, TokenError] | None = None

    async def token(self) -> str:
        """A token valid for at least REFRESH_MARGIN; fetches one when needed."""
        current = self._current
        if current is not None and self._fresh(current):
            return current.value
        return await self._refresh(stale=current)

    async def refresh(self, stale: str) -> str:
        """A token other than ``stale``, which the server refused (expired or revoked).

        Callers that saw the same stale token share the one refresh made for it.
        """
        current = self._current
        if current is not None and current.value != stale:
            return current.value
        return await self._refresh(stale=current)

    async def _exchange(self) -> AccessToken:
        raise NotImplementedError

    async def _refresh(self, stale: AccessToken | None) -> str:
        async with self._lock:
            current = self._current
            # Another caller refreshed while this one waited for the lock.
            if current is not None and current is not stale and self._fresh(current):
                return current.value
            self._raise_recent_failure()
            try:
                self._current = await self._exchange()
            except TokenError as error:
                self._current = None
                self._failure = (self._clock.now(), error)
                raise
            self._failure = None
            return self._current.value

    def _fresh(self, token: AccessToken) -> bool:
        return self._clock.now() < token.expires_at - REFRESH_MARGIN

    def _raise_recent_failure(self) -> None:
        if self._failure is None:
            return
        failed_at, error = self._failure
        if self._clock.now() < failed_at + FAILURE_HOLD:
            raise error


def oauth_error(answer: dict[str, Any]) -> str | None:
    """An RFC 6749 §5.2 error answer's ``error`` code (``invalid_grant``)."""
    error = answer.get("error")
    return str(error) if error else None


def parse_token_answer(
    status: int,
    body: bytes,
    issued_at: datetime,
    error_name: Callable[[dict[str, Any]], str | None] = oauth_error,
) -> AccessToken:
    """The token in a token endpoint's answer, or TokenError.

    A status other than 200, or an error object without a token, is a refusal named
    by ``error_name`` (else ``TOKEN_HTTP_<status>``): 4xx means these credentials
    are refused, while 429 and 5xx are the endpoint's own trouble and pass. A 200
    without a token or a numeric lifetime is ``TOKEN_RESPONSE_MALFORMED``.
    """
    answer = _json_object(body)
    value = answer.get("access_token")
    if status != 200 or (not isinstance(value, str) and "error" in answer):
        retryable = status == 429 or status >= 500
        reason = error_name(answer) or f"TOKEN_HTTP_{status}"
        raise TokenError(reason, retryable, str(answer.get("error_description", "")))
    lifetime = answer.get("expires_in")
    if (
        not isinstance(value, str)
        or not isinstance(lifetime, int | float)
        or isinstance(lifetime, bool)
    ):
        raise TokenError("TOKEN_RESPONSE_MALFORMED", True, "no access_token or expires_in")
    return AccessToken(value, issued_at + timedelta(seconds=lifetime))


def _json_object(body: bytes) -> dict[str, Any]:
    """The JSON object of an answer; empty when it is not one (a gateway's HTML 502)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


async def post_form(url: str, form: bytes, context: ssl.SSLContext) -> tuple[int, bytes]:
    """POSTs an urlencoded form in a worker thread; HTTP error statuses are answers.

    Raises TokenError (retryable) when the endpoint cannot be reached.
    """
    return await asyncio.to_thread(_post_form, url, form, context)


def _post_form(url: str, form: bytes, context: ssl.SSLContext) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=form,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=EXCHANGE_TIMEOUT, context=context) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        raise TokenError("TOKEN_ENDPOINT_UNREACHABLE", True, str(error)) from None
