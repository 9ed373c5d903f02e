"""Huawei Push Kit provider: ``POST /v1/<clientId>/messages:send``, up to 1,000 tokens a request.

A delivery's payload is HMS's ``message`` object without its target
(delivery/payloads/hms.py). Deliveries with the same payload are one multicast:
their tokens go in ``message.token``, at most ``MAX_TOKENS`` to a request, so a
broadcast without per-recipient content costs one request per 1,000 devices.
Deliveries whose payloads differ (``{{name}}``, templates) go in requests of their
own, or with the deliveries whose payload they share. A token that appears twice
under one payload is sent once (HMS would show the notification twice) and its
result given to each.

The requests of a batch go to the shared HTTP/2 client (http2.py, libcurl) in one
call; Push Kit accepts HTTP/1.1 too, which libcurl falls back to without ALPN h2.
The OAuth 2.0 token (client credentials, hms_auth.py) is cached until shortly
before it expires.

Classification: Push Kit answers ``{"code", "msg", "requestId"}``; the reason of a
failure is ``HMS_<code>``, or ``HTTP_<status>`` when the body carries no code.

============================================  ======================================
``80000000``                                  every token SENT
``80100000`` (partial)                        ``msg`` is the JSON text
                                              ``{"success", "failure",
                                              "illegal_tokens": [...]}``: those
                                              tokens INVALID_TOKEN, the others SENT
``80300007`` (every token invalid)            INVALID_TOKEN
``80200003`` (access token expired),          refresh the token once and resend; a
``80200001`` (authentication error), 401      second time is REJECTED
HTTP 429, 5xx, ``81000001`` (internal error)  RETRY, with Retry-After when sent
transport failure (after http2.py's own       RETRY ``TRANSPORT_ERROR``
resends on fresh connections)
anything else (``80300002`` no permission,    REJECTED ``HMS_<code>``
``80300008`` too big, ``80100003`` …)
============================================  ======================================

A delivery without a token, or whose payload is no JSON object, is REJECTED
(``EMPTY_DEVICE_TOKEN``, ``PAYLOAD_NOT_AN_OBJECT``) before anything is sent: in a
multicast it would spoil the request of every other token.

Dry runs: ``send(..., validate_only=True)`` sets HMS's ``validate_only``: Push
Kit checks the message and its tokens and delivers nothing.

Retries themselves belong to delivery.retry_policy.RetryPolicy, as for every provider.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pushhub_server.core.clock import Clock, SystemClock
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult

from .hms_auth import ClientCredentialsTokens
from .http2 import Http2Client, Http2Request, Http2Response
from .oauth_tokens import TokenError

HMS_ENDPOINT = "https://push-api.cloud.huawei.com"
# Push Kit's limit on message.token.
MAX_TOKENS = 1000

SUCCESS = "80000000"
PARTIAL_SUCCESS = "80100000"
ALL_TOKENS_INVALID = "80300007"
# Answers that a fresh access token may cure.
_AUTHENTICATION_CODES = frozenset({"80200001", "80200003"})
_INTERNAL_ERROR = "81000001"
_CODE = re.compile(r"\d{8}")
# Requests handed to the HTTP/2 client at once: up to 100,000 recipients.
_WINDOW = 100

_SENT = DeliveryResult(DeliveryOutcome.SENT)
_TRANSPORT_ERROR = DeliveryResult(DeliveryOutcome.RETRY, "TRANSPORT_ERROR")
_ILLEGAL_TOKEN = DeliveryResult(DeliveryOutcome.INVALID_TOKEN, f"HMS_{PARTIAL_SUCCESS}")
_NO_TOKEN = DeliveryResult(DeliveryOutcome.REJECTED, "EMPTY_DEVICE_TOKEN")
_NOT_A_MESSAGE = DeliveryResult(DeliveryOutcome.REJECTED, "PAYLOAD_NOT_AN_OBJECT")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Push Kit's answer to one request: ``result`` for each of its tokens except the
    ``illegal`` ones (INVALID_TOKEN); ``reauthorize`` when a new access token may help."""

    result: DeliveryResult
    illegal: frozenset[str] = frozenset()
    reauthorize: bool = False


@dataclass(frozen=True, slots=True)
class _Multicast:
    """One request: a payload, its distinct tokens, and the delivery each token is for."""

    payload: bytes
    tokens: list[str]
    indexes: list[int]


@dataclass(slots=True)
class _Plan:
    """A batch's requests; ``duplicates`` pairs a delivery with the earlier one of the
    same token and payload, whose result it shares."""

    multicasts: list[_Multicast] = field(default_factory=list)
    duplicates: list[tuple[int, int]] = field(default_factory=list)


class HmsProvider:
    """core.ports.DeliveryProvider for one AppGallery Connect app's OAuth client.

    ``client_id`` is also the app id in the request path: Push Kit's v1 URL names
    the OAuth 2.0 client. ``endpoint`` overrides Huawei's host (PUSHHUB_HMS_ENDPOINT),
    ``token_endpoint`` the OAuth endpoint (PUSHHUB_HMS_TOKEN_ENDPOINT), ``ca_file`` the
    system trust store for both (PUSHHUB_HMS_CA_FILE).
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        endpoint: str | None = None,
        token_endpoint: str | None = None,
        ca_file: str | None = None,
        clock: Clock | None = None,
        max_connections: int = 1,
        timeout: float = 30.0,
    ) -> None:
        self._tokens = ClientCredentialsTokens(
            client_id,
            client_secret,
            clock or SystemClock(),
            token_endpoint=token_endpoint,
            ssl_context=ssl.create_default_context(cafile=ca_file),
        )
        self._client = Http2Client(
            max_connections=max_connections, ca_file=ca_file, timeout=timeout
        )
        base = (endpoint or HMS_ENDPOINT).rstrip("/")
        self._url = f"{base}/v1/{urllib.parse.quote(client_id, safe='')}/messages:send"

    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        """One result per delivery, in order; never raises for a single delivery.

        With ``validate_only``, Push Kit checks the messages and tokens and delivers
        nothing (a dry run).
        """
        results: list[DeliveryResult] = [_SENT] * len(deliveries)
        plan = _plan(deliveries, results)
        multicasts = plan.multicasts
        for start in range(0, len(multicasts), _WINDOW):
            window = multicasts[start : start + _WINDOW]
            verdicts = await self._send_multicasts(window, validate_only)
            for multicast, verdict in zip(window, verdicts, strict=True):
                _apply(multicast, verdict, results)
        for index, first in plan.duplicates:
            results[index] = results[first]
        return results

    async def close(self) -> None:
        await self._client.close()

    async def _send_multicasts(
        self, multicasts: list[_Multicast], validate_only: bool
    ) -> list[Verdict]:
        if not multicasts:
            return []
        bodies = [_request_body(m, validate_only) for m in multicasts]
        try:
            token = await self._tokens.token()
        except TokenError as error:
            # Nothing was sent: every request shares the exchange's answer.
            return [Verdict(error.delivery_result())] * len(bodies)
        verdicts = [classify(r) for r in await self._post(token, bodies)]
        stale = [index for index, verdict in enumerate(verdicts) if verdict.reauthorize]
        if stale:
            retried = await self._reauthorized(token, [bodies[index] for index in stale])
            for index, verdict in zip(stale, retried, strict=True):
                verdicts[index] = verdict
        return verdicts

    async def _reauthorized(self, stale: str, bodies: list[bytes]) -> list[Verdict]:
        """Resends, once, what Push Kit refused for its access token (expired early, or
        revoked); what it refuses again stays REJECTED."""
        try:
            token = await self._tokens.refresh(stale)
        except TokenError as error:
            return [Verdict(error.delivery_result())] * len(bodies)
        return [classify(r) for r in await self._post(token, bodies)]

    async def _post(self, token: str, bodies: list[bytes]) -> list[Http2Response]:
        # One header list for the batch: http2.py reuses it on every handle.
        headers = [f"Authorization: Bearer {token}", "Content-Type: application/json"]
        responses = await self._client.post_many(
            [Http2Request(self._url, headers, body) for body in bodies]
        )
        failed = [response for response in responses if response.error is not None]
        if failed:
            logger.warning(
                "HMS: %d of %d requests failed in transport: %s",
                len(failed),
                len(responses),
                failed[0].error,
            )
        return responses


def _plan(deliveries: Sequence[Delivery], results: list[DeliveryResult]) -> _Plan:
    """The requests for a batch: deliveries grouped by payload, then by token, at most
    MAX_TOKENS distinct tokens a request. Deliveries no request can carry get their
    result in ``results`` here.

    Runs once per delivery, so a token costs one dict entry (its first delivery's
    index), not a list of its own.
    """
    plan = _Plan()
    groups: dict[bytes, dict[str, int]] = {}
    for index, delivery in enumerate(deliveries):
        token = delivery.device_token
        if not token:
            results[index] = _NO_TOKEN  # an empty token would spoil its whole request
            continue
        by_token = groups.get(delivery.payload)
        if by_token is None:
            by_token = groups[delivery.payload] = {}
        first = by_token.setdefault(token, index)
        if first != index:
            plan.duplicates.append((index, first))
    for payload, by_token in groups.items():
        if not _is_object(payload):
            for index in by_token.values():
                results[index] = _NOT_A_MESSAGE
            continue
        tokens, indexes = list(by_token), list(by_token.values())
        for start in range(0, len(tokens), MAX_TOKENS):
            end = start + MAX_TOKENS
            plan.multicasts.append(_Multicast(payload, tokens[start:end], indexes[start:end]))
    return plan


def _is_object(payload: bytes) -> bool:
    return payload[:1] == b"{" and payload[-1:] == b"}"


def _request_body(multicast: _Multicast, validate_only: bool) -> bytes:
    """``{"validate_only": …, "message": {<payload>, "token": [...]}}``, spliced as bytes."""
    payload = multicast.payload
    head = (
        b'{"validate_only":true,"message":'
        if validate_only
        else b'{"validate_only":false,"message":'
    )
    separator = b"," if len(payload) > 2 else b""
    tokens = json.dumps(multicast.tokens, separators=(",", ":")).encode()
    return b"".join((head, payload[:-1], separator, b'"token":', tokens, b"}}"))


def _apply(multicast: _Multicast, verdict: Verdict, results: list[DeliveryResult]) -> None:
    result, illegal = verdict.result, verdict.illegal
    if not illegal:
        for index in multicast.indexes:
            results[index] = result
        return
    for token, index in zip(multicast.tokens, multicast.indexes, strict=True):
        results[index] = _ILLEGAL_TOKEN if token in illegal else result


def classify(response: Http2Response) -> Verdict:
    """Push Kit's answer to one request, for its tokens."""
    if response.error is not None:
        return Verdict(_TRANSPORT_ERROR)
    answer = _answer(response.body)
    code = answer.get("code")
    code = code if isinstance(code, str) and _CODE.fullmatch(code) else None
    if code == SUCCESS:
        return Verdict(_SENT)
    if code == PARTIAL_SUCCESS:
        return Verdict(_SENT, _illegal_tokens(answer.get("msg")))
    reason = f"HMS_{code}" if code else f"HTTP_{response.status}"
    if code in _AUTHENTICATION_CODES or response.status == 401:
        return Verdict(DeliveryResult(DeliveryOutcome.REJECTED, reason), reauthorize=True)
    if response.status == 429 or response.status >= 500 or code == _INTERNAL_ERROR:
        return Verdict(DeliveryResult(DeliveryOutcome.RETRY, reason, response.retry_after))
    if code == ALL_TOKENS_INVALID:
        return Verdict(DeliveryResult(DeliveryOutcome.INVALID_TOKEN, reason))
    if code is None and 200 <= response.status < 300:
        logger.warning("HMS: a %d answer without a result code", response.status)
        reason = "HMS_MALFORMED_RESPONSE"
    return Verdict(DeliveryResult(DeliveryOutcome.REJECTED, reason))


def _answer(body: bytes) -> dict[str, Any]:
    """The JSON object of an answer; empty when it is not one (a gateway's text 503)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _illegal_tokens(msg: Any) -> frozenset[str]:
    """The ``illegal_tokens`` of a partial success, whose ``msg`` is JSON text."""
    try:
        detail = json.loads(msg) if isinstance(msg, str) else None
    except ValueError:
        detail = None
    tokens = detail.get("illegal_tokens") if isinstance(detail, dict) else None
    if not isinstance(tokens, list):
        # Which tokens failed is unknown: they count as sent, and invalidate nothing.
        logger.warning("HMS: a partial success without illegal_tokens: %.200r", msg)
        return frozenset()
    return frozenset(token for token in tokens if isinstance(token, str))
