"""FCM HTTP v1 provider: ``POST /v1/projects/<id>/messages:send`` over multiplexed HTTP/2.

Each delivery's payload is already the full request body (``{"message": {..., "token":
...}}``, see delivery/payloads/fcm.py), so a send is: take a cached OAuth2 token, POST,
classify. A batch goes to the shared HTTP/2 client (http2.py, libcurl) in one call, so
its requests are in flight at once as streams of one multiplexed connection.

Classification (FCM answers ``google.rpc.Status`` JSON whose details carry a
``google.firebase.fcm.v1.FcmError`` ``errorCode``; the reason is that errorCode, or
the rpc status when there is none):

==========================================  =========================================
``UNREGISTERED`` (404)                      INVALID_TOKEN
``INVALID_ARGUMENT`` about the token        INVALID_TOKEN (the token is malformed)
``SENDER_ID_MISMATCH`` (403)                INVALID_TOKEN (the token is another app's)
429 / 5xx (``QUOTA_EXCEEDED``,              RETRY, with Retry-After (seconds or an
``UNAVAILABLE``, ``INTERNAL``)              HTTP date) when FCM sent one
401                                         refresh the token once and resend; a second
                                            401 is REJECTED ``UNAUTHENTICATED``
transport failure (after http2.py's own      RETRY ``TRANSPORT_ERROR``
resends on fresh connections)
anything else                               REJECTED under its errorCode / status
==========================================  =========================================

Dry runs: ``send(..., validate_only=True)`` sends each request with FCM's
``validate_only``: FCM checks the message and its token and delivers nothing.

Retries themselves belong to delivery.retry_policy.RetryPolicy, as for every provider.
"""

from __future__ import annotations

import json
import logging
import ssl
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from pushhub_server.core.clock import Clock, SystemClock
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult

from .google_auth import ServiceAccount, ServiceAccountTokens
from .http2 import Http2Client, Http2Request, Http2Response
from .oauth_tokens import TokenError

FCM_ENDPOINT = "https://fcm.googleapis.com"

_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
_INVALID_TOKEN_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
_RETRYABLE_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})
# Requests handed to the HTTP/2 client at once. libcurl counts the time a transfer
# queues for a free stream against its connect timeout, so a huge batch on a slow
# FCM would time out in the queue; 1,000 is ten rounds of FCM's 100 streams.
_WINDOW = 1000
_SENT = DeliveryResult(DeliveryOutcome.SENT)
_TRANSPORT_ERROR = DeliveryResult(DeliveryOutcome.RETRY, "TRANSPORT_ERROR")

logger = logging.getLogger(__name__)


class FcmProvider:
    """core.ports.DeliveryProvider for one app's Firebase project.

    ``endpoint`` overrides Google's host (config: PUSHHUB_FCM_ENDPOINT). ``ca_file``
    replaces the system trust store, for FCM and for the token endpoint alike.
    ``max_connections`` bounds HTTP/2 connections; each carries as many concurrent
    streams as FCM's SETTINGS_MAX_CONCURRENT_STREAMS allows.
    """

    def __init__(
        self,
        service_account: Mapping[str, Any],
        *,
        endpoint: str | None = None,
        ca_file: str | None = None,
        clock: Clock | None = None,
        max_connections: int = 1,
        timeout: float = 30.0,
    ) -> None:
        account = ServiceAccount.from_info(service_account)
        self._tokens = ServiceAccountTokens(
            account, clock or SystemClock(), ssl.create_default_context(cafile=ca_file)
        )
        self._client = Http2Client(
            max_connections=max_connections, ca_file=ca_file, timeout=timeout
        )
        base = (endpoint or FCM_ENDPOINT).rstrip("/")
        project = urllib.parse.quote(account.project_id, safe="")
        self._url = f"{base}/v1/projects/{project}/messages:send"

    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        """One result per delivery, in order; never raises for a single delivery."""
        results: list[DeliveryResult] = []
        for start in range(0, len(deliveries), _WINDOW):
            bodies = [delivery.payload for delivery in deliveries[start : start + _WINDOW]]
            if validate_only:
                bodies = [_validate_only(body) for body in bodies]
            results += await self._send_bodies(bodies)
        return results

    async def close(self) -> None:
        await self._client.close()

    async def _send_bodies(self, bodies: list[bytes]) -> list[DeliveryResult]:
        if not bodies:
            return []
        try:
            token = await self._tokens.token()
        except TokenError as error:
            # Nothing was sent: the whole batch shares the exchange's answer.
            return [error.delivery_result()] * len(bodies)
        responses = await self._post(token, bodies)
        results = self._classify_all(responses)
        unauthorized = [index for index, response in enumerate(responses) if response.status == 401]
        if unauthorized:
            retried = await self._reauthorized(token, [bodies[index] for index in unauthorized])
            for index, result in zip(unauthorized, retried, strict=True):
                results[index] = result
        return results

    async def _reauthorized(self, stale: str, bodies: list[bytes]) -> list[DeliveryResult]:
        """Resends, once, what FCM refused with 401 (token revoked or expired early)."""
        try:
            token = await self._tokens.refresh(stale)
        except TokenError as error:
            return [error.delivery_result()] * len(bodies)
        return self._classify_all(await self._post(token, bodies))

    async def _post(self, token: str, bodies: list[bytes]) -> list[Http2Response]:
        headers = [f"Authorization: Bearer {token}", "Content-Type: application/json"]
        responses = await self._client.post_many(
            [Http2Request(self._url, headers, body) for body in bodies]
        )
        failed = [response for response in responses if response.error is not None]
        if failed:
            logger.warning(
                "FCM: %d of %d requests failed in transport: %s",
                len(failed),
                len(responses),
                failed[0].error,
            )
        return responses

    def _classify_all(self, responses: Sequence[Http2Response]) -> list[DeliveryResult]:
        return [classify(response) for response in responses]


def _validate_only(body: bytes) -> bytes:
    """``{"validate_only": true, <the request's members>}``, spliced as bytes."""
    separator = b"," if body[1:].strip() != b"}" else b""
    return b'{"validate_only":true' + separator + body[1:]


def classify(response: Http2Response) -> DeliveryResult:
    """The DeliveryResult for one FCM response."""
    if 200 <= response.status < 300:
        return _SENT
    if response.error is not None:
        return _TRANSPORT_ERROR
    error = _error_of(response.body)
    reason = _error_code(error) or str(error.get("status") or f"HTTP_{response.status}")
    if reason in _INVALID_TOKEN_CODES or (reason == "INVALID_ARGUMENT" and _about_token(error)):
        return DeliveryResult(DeliveryOutcome.INVALID_TOKEN, reason)
    if response.status == 429 or response.status >= 500 or reason in _RETRYABLE_CODES:
        return DeliveryResult(DeliveryOutcome.RETRY, reason, response.retry_after)
    return DeliveryResult(DeliveryOutcome.REJECTED, reason)


def _error_of(body: bytes) -> dict[str, Any]:
    """The ``error`` object of a google.rpc.Status body; empty when the body is not one
    (a proxy's HTML 502, say)."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _details(error: Mapping[str, Any], type_url: str) -> list[dict[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [item for item in details if isinstance(item, dict) and item.get("@type") == type_url]


def _error_code(error: Mapping[str, Any]) -> str | None:
    for detail in _details(error, _FCM_ERROR_TYPE):
        if isinstance(detail.get("errorCode"), str):
            return detail["errorCode"]
    return None


def _about_token(error: Mapping[str, Any]) -> bool:
    """INVALID_ARGUMENT blames the registration token (rather than the payload)?"""
    for detail in _details(error, _BAD_REQUEST_TYPE):
        violations = detail.get("fieldViolations") or []
        if any(isinstance(v, dict) and v.get("field") == "message.token" for v in violations):
            return True
    return "registration token" in str(error.get("message", "")).lower()
