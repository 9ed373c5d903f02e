"""OAuth2 access tokens for FCM from a Firebase service account (RFC 7523 JWT bearer grant).

The exchange is small enough to write by hand: google-auth's async credentials need
aiohttp, and its sync ones need requests plus a thread, for what is one signed JWT and
one form POST an hour. Caching, the shared refresh and the hold after a failure are
oauth_tokens.CachedTokens'.

The POST goes to the account's own ``token_uri`` (tests point it at a local fake).
"""

from __future__ import annotations

import json
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from pushhub_server.core.clock import Clock
from pushhub_server.core.credentials import service_account_fields

from .oauth_tokens import REFRESH_MARGIN, AccessToken, CachedTokens, TokenError, post_form

__all__ = ["REFRESH_MARGIN", "ServiceAccount", "ServiceAccountTokens", "TokenError"]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google rejects assertions that live longer than an hour.
ASSERTION_LIFETIME = timedelta(hours=1)


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


class ServiceAccountTokens(CachedTokens):
    """Access tokens for one service account."""

    def __init__(
        self,
        account: ServiceAccount,
        clock: Clock,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(clock)
        self._account = account
        self._ssl_context = ssl_context or ssl.create_default_context()

    async def _exchange(self) -> AccessToken:
        issued_at = self._clock.now()
        form = urllib.parse.urlencode(
            {"grant_type": JWT_BEARER_GRANT, "assertion": self._assertion(issued_at)}
        ).encode()
        status, body = await post_form(self._account.token_uri, form, self._ssl_context)
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
