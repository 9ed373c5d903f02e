"""OAuth2 access tokens for FCM from a Firebase service account (RFC 7523 JWT bearer grant).

The exchange is small enough to write by hand: google-auth's async credentials need
aiohttp, and its sync ones need requests plus a thread, for what is one signed JWT and
one form POST an hour. Caching, the shared refresh and the hold after a failure are
oauth_tokens.CachedTokens', reading the answer oauth_tokens.parse_token_answer's.

The POST goes to the account's own ``token_uri`` (tests point it at a local fake).
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from pushhub_server.core.clock import Clock
from pushhub_server.core.credentials import service_account_fields

from .oauth_tokens import AccessToken, CachedTokens, parse_token_answer, post_form

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
        return parse_token_answer(status, body, issued_at)

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
