"""OAuth2 access tokens for Huawei Push Kit: the client-credentials grant (RFC 6749 4.4).

``POST https://oauth-login.cloud.huawei.com/oauth2/v3/token`` with the form
``grant_type=client_credentials&client_id=…&client_secret=…`` (the AppGallery
Connect app's OAuth 2.0 client) answers ``{"access_token", "expires_in": 3600,
"token_type": "Bearer"}``, or Huawei's error object, whose codes are numbers:
``{"error": 1101, "sub_error": 20001, "error_description": "invalid client"}``.
Caching is oauth_tokens.CachedTokens', reading an answer oauth_tokens.parse_token_answer's
(given ``huawei_error``); Huawei asks apps not to fetch tokens more often than their
lifetime requires (the endpoint applies flow control).
"""

from __future__ import annotations

import ssl
import urllib.parse
from datetime import datetime
from typing import Any

from pushhub_server.core.clock import Clock

from .oauth_tokens import AccessToken, CachedTokens, parse_token_answer, post_form

HMS_TOKEN_ENDPOINT = "https://oauth-login.cloud.huawei.com/oauth2/v3/token"


class ClientCredentialsTokens(CachedTokens):
    """Access tokens for one OAuth client (client id and secret)."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        clock: Clock,
        *,
        token_endpoint: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(clock)
        self._endpoint = token_endpoint or HMS_TOKEN_ENDPOINT
        self._form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            }
        ).encode()
        self._ssl_context = ssl_context or ssl.create_default_context()

    async def _exchange(self) -> AccessToken:
        issued_at = self._clock.now()
        status, body = await post_form(self._endpoint, self._form, self._ssl_context)
        return parse_token_response(status, body, issued_at)


def parse_token_response(status: int, body: bytes, issued_at: datetime) -> AccessToken:
    """The token in a token-endpoint answer, or TokenError naming Huawei's error code."""
    return parse_token_answer(status, body, issued_at, huawei_error)


def huawei_error(answer: dict[str, Any]) -> str | None:
    """Huawei names an error with numbers: ``1101_20001`` (error, sub_error)."""
    error, sub_error = answer.get("error"), answer.get("sub_error")
    if not isinstance(error, int | str) or not str(error):
        return None
    return f"{error}_{sub_error}" if isinstance(sub_error, int | str) else str(error)
