"""OAuth2 access tokens for FCM from a Firebase service account (RFC 7523 JWT bearer grant).

The exchange is small enough to write by hand: google-auth's async credentials need
aiohttp, and its sync ones need requests plus a thread, for what is one signed JWT and
one form POST an hour. The token is cached until ``REFRESH_MARGIN`` before it expires,
and one asyncio.Lock makes concurrent callers share a single refresh.

The POST goes to the account's own ``token_uri`` (tests point it at a local fake) over
HTTP/1.1 with urllib in a worker thread: it happens about once an hour, so it does not
need the multiplexed delivery transport.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from pushhub_server.core.clock import Clock
from pushhub_server.core.credentials import service_account_fields

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google rejects assertions that live longer than an hour.
ASSERTION_LIFETIME = timedelta(hours=1)
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


@dataclass(frozen=True)
class ServiceAccount:
    """The fields of a Firebase service-account JSON that the exchange uses."""

    project_id: str
    private_key_id: str
    private_key: str
    client_email: str
    token_uri: str

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> ServiceAccount:
        """Raises PushHubError (INVALID_CREDENTIALS) for an account SetFcmCredentials
        would refuse: both apply core.credentials.service_account_fields."""
        return cls(**service_account_fields(dict(info)))


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: datetime


class ServiceAccountTokens:
    """Access tokens for one service account, cached and refreshed one at a time."""

    def __init__(
        self,
        account: ServiceAccount,
        clock: Clock,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._account = account
        self._clock = clock
        self._ssl_context = ssl_context or ssl.create_default_context()
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
        """A token other than ``stale``, which the server refused (HTTP 401).

        Callers that saw the same stale token share the one refresh made for it.
        """
        current = self._current
        if current is not None and current.value != stale:
            return current.value
        return await self._refresh(stale=current)

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

    async def _exchange(self) -> AccessToken:
        issued_at = self._clock.now()
        form = urllib.parse.urlencode(
            {"grant_type": JWT_BEARER_GRANT, "assertion": self._assertion(issued_at)}
        ).encode()
        status, body = await asyncio.to_thread(
            _post_form, self._account.token_uri, form, self._ssl_context
        )
        return _parse_token_response(status, body, issued_at)

    def _assertion(self, issued_at: datetime) -> str:
        account = self._account
        iat = int(issued_at.timestamp())
        claims = {
            "iss": account.client_email,
            "scope": FCM_SCOPE,
            "aud": account.token_uri,
            "iat": iat,
            "exp": iat + int(ASSERTION_LIFETIME.total_seconds()),
        }
        return jwt.encode(
            claims,
            account.private_key,
            algorithm="RS256",
            headers={"kid": account.private_key_id},
        )


def _post_form(url: str, form: bytes, context: ssl.SSLContext) -> tuple[int, bytes]:
    """Blocking POST (run in a thread); HTTP error statuses are answers, not exceptions."""
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


def _parse_token_response(status: int, body: bytes, issued_at: datetime) -> AccessToken:
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        answer = {}
    if status != 200:
        # 4xx means these credentials are refused (invalid_grant, invalid_client…);
        # 429 and 5xx are the endpoint's own trouble and pass.
        retryable = status == 429 or status >= 500
        reason = str(answer.get("error") or f"TOKEN_HTTP_{status}")
        raise TokenError(reason, retryable, str(answer.get("error_description", "")))
    value = answer.get("access_token")
    lifetime = answer.get("expires_in")
    if not isinstance(value, str) or not isinstance(lifetime, int | float):
        raise TokenError("TOKEN_RESPONSE_MALFORMED", True, "no access_token or expires_in")
    return AccessToken(value, issued_at + timedelta(seconds=lifetime))
