"""APNs provider: token-authenticated HTTP/2 requests to Apple, one per delivery.

Each delivery becomes ``POST /3/device/<token>`` with the rendered ``apns-*``
headers (delivery.payloads.apns), ``apns-topic`` from the credentials and
``authorization: bearer <provider token>``. Requests of one ``send`` go out at
once as concurrent streams (providers.http2), which also reconnects and resends
what was in flight when Apple sends GOAWAY or a connection drops.

The deliveries of one broadcast share one headers mapping (no ``apns-id``: Apple
assigns one when it is absent, see delivery.payloads.apns), so a ``send`` formats the
header lines once per distinct mapping and the requests share that list; the
HTTP/2 client then sets it on an easy handle only when it changes, and HPACK
sends the repeated headers as table indexes.

Classification (Apple's status and ``reason``):

- 200 → SENT;
- 410 (``Unregistered``, ``ExpiredToken``), 400 ``BadDeviceToken`` and 400
  ``DeviceTokenNotForTopic`` → INVALID_TOKEN: the registration is invalidated
  (hidden at once, deleted by the sweep after 7 days unless registered again);
- 429 and 5xx → RETRY, with ``retry_after`` from ``Retry-After`` when present;
- a transport failure that fresh connections did not cure → RETRY;
- anything else → REJECTED under Apple's reason string.

Dry runs: Apple has no validate-only mode, so a ``validate_only`` send sends only
silent background pushes (``apns-push-type: background`` and a body without
alert, badge or sound; delivery.payloads.apns); any other delivery is REJECTED
``BackgroundPushRequired`` unsent, so a dry run never shows anything to anyone.

Provider tokens (ES256 JWTs) are reused for about 50 minutes and never replaced
within 20: Apple rejects tokens older than an hour (``ExpiredProviderToken``) and
throttles clients that mint them more often (``TooManyProviderTokenUpdates``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import jwt

from pushhub_server.core.clock import Clock
from pushhub_server.core.credentials import ApnsCredentials, ApnsEnvironment, apns_signing_key
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.delivery.payloads.apns import is_background

from .http2 import Http2Request, Http2Response, ShardedHttp2Client

PRODUCTION_URL = "https://api.push.apple.com"
SANDBOX_URL = "https://api.sandbox.push.apple.com"
PAYLOAD_LIMIT = 4096

# Apple's reasons that mean the device token will never work for this topic again.
_INVALID_TOKEN_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic"})
_EXPIRED_PROVIDER_TOKEN = "ExpiredProviderToken"
# APNs device tokens are hex; anything else would also corrupt the request path.
_DEVICE_TOKEN = re.compile(r"[0-9A-Fa-f]+")

_SENT = DeliveryResult(DeliveryOutcome.SENT)
_TOO_LARGE = DeliveryResult(DeliveryOutcome.REJECTED, "PayloadTooLarge")
_BAD_TOKEN = DeliveryResult(DeliveryOutcome.INVALID_TOKEN, "BadDeviceToken")
_TIMEOUT = DeliveryResult(DeliveryOutcome.RETRY, "Timeout")
_TRANSPORT = DeliveryResult(DeliveryOutcome.RETRY, "TransportError")
_NOT_SILENT = DeliveryResult(DeliveryOutcome.REJECTED, "BackgroundPushRequired")

_log = logging.getLogger(__name__)


def base_url_for(environment: ApnsEnvironment) -> str:
    return SANDBOX_URL if environment is ApnsEnvironment.SANDBOX else PRODUCTION_URL


class ProviderToken:
    """The ``authorization`` header line, re-signed about every 50 minutes.

    Time comes from the injected clock, so tests can walk through the refresh rules.
    """

    REFRESH_AFTER = timedelta(minutes=50)
    MIN_AGE = timedelta(minutes=20)

    def __init__(self, key_id: str, team_id: str, private_key_pem: str, clock: Clock) -> None:
        # The check SetApnsCredentials made: credentials stored before it may still fail it.
        self._key = apns_signing_key(private_key_pem)
        self._key_id = key_id
        self._team_id = team_id
        self._clock = clock
        self._issued_at: datetime | None = None
        self._header = ""

    def header(self) -> str:
        """``authorization: bearer <jwt>``; a new token once the current one is 50 min old."""
        now = self._clock.now()
        if self._issued_at is None or now - self._issued_at >= self.REFRESH_AFTER:
            self._issue(now)
        return self._header

    def renew(self, rejected: str) -> bool:
        """APNs called the token in header line `rejected` expired: replace it if allowed.

        True when a token other than `rejected` is now current (renewed here, or
        already by an earlier batch), so resending can help; False when the current
        token is younger than 20 minutes and must be kept.
        """
        if rejected != self._header:
            return True
        now = self._clock.now()
        if self._issued_at is not None and now - self._issued_at < self.MIN_AGE:
            return False
        self._issue(now)
        return True

    def _issue(self, now: datetime) -> None:
        token = jwt.encode(
            {"iss": self._team_id, "iat": int(now.timestamp())},
            self._key,
            algorithm="ES256",
            headers={"kid": self._key_id},
        )
        self._issued_at = now
        self._header = f"authorization: bearer {token}"


class ApnsProvider:
    """Implements core.ports.DeliveryProvider for APNs, with one app's credentials.

    ``base_url`` and ``ca_file`` override Apple's host and the system CA bundle
    (PUSHHUB_APNS_ENDPOINT, PUSHHUB_APNS_CA_FILE): a staging relay or a test sink.
    ``connections`` HTTP/2 connections, each with its own libcurl thread, share
    every ``send`` (http2.ShardedHttp2Client); each carries up to Apple's stream
    limit (about 1,000) at once. ``token``: the provider token of an earlier
    provider with the same key (ApnsCredentials.same_signing_key), kept so that
    a change of topic or environment mints no new one.
    """

    def __init__(
        self,
        credentials: ApnsCredentials,
        clock: Clock,
        *,
        base_url: str | None = None,
        ca_file: str | None = None,
        connections: int = 1,
        timeout: float = 30.0,
        token: ProviderToken | None = None,
    ) -> None:
        self.token = token or ProviderToken(
            credentials.key_id, credentials.team_id, credentials.private_key_pem, clock
        )
        base = (base_url or base_url_for(credentials.environment)).rstrip("/")
        self._path = f"{base}/3/device/"
        self._fixed_headers = [
            f"apns-topic: {credentials.topic}",
            "content-type: application/json",
            "accept:",  # drops libcurl's default "Accept: */*"
        ]
        self._client = ShardedHttp2Client(connections, ca_file=ca_file, timeout=timeout)

    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        results = [_precheck(delivery) for delivery in deliveries]
        if validate_only:
            results = [
                result or _unless_silent(delivery)
                for result, delivery in zip(results, deliveries, strict=True)
            ]
        pending = [i for i, result in enumerate(results) if result is None]
        # A second pass only resends what APNs called ExpiredProviderToken, with a new token.
        for _ in range(2):
            if not pending:
                break
            header = self.token.header()
            requests = self._requests([deliveries[i] for i in pending], header)
            responses = await self._client.post_many(requests)
            _log_transport_failures(responses)
            for index, response in zip(pending, responses, strict=True):
                results[index] = self._classify(response)
            pending = [i for i in pending if _expired(results[i])]
            if pending and not self.token.renew(header):
                break
        return results  # type: ignore[return-value]  # every slot is filled above

    async def close(self) -> None:
        await self._client.close()

    def _requests(self, deliveries: Sequence[Delivery], authorization: str) -> list[Http2Request]:
        # Header lines per distinct headers mapping, by identity: the deliveries hold
        # their mappings until this send returns, so no id is reused meanwhile.
        lines: dict[int, list[str]] = {}
        path = self._path
        requests = []
        for delivery in deliveries:
            headers = lines.get(id(delivery.headers))
            if headers is None:
                headers = lines[id(delivery.headers)] = self._header_lines(
                    delivery.headers, authorization
                )
            requests.append(Http2Request(path + delivery.device_token, headers, delivery.payload))
        return requests

    def _header_lines(self, headers: Mapping[str, str], authorization: str) -> list[str]:
        lines = [*self._fixed_headers, authorization]
        lines.extend(f"{k}: {v}" for k, v in headers.items() if k != "apns-topic")
        return lines

    def _classify(self, response: Http2Response) -> DeliveryResult:
        status = response.status
        if status == 200:
            return _SENT
        if response.error is not None:
            return _TIMEOUT if response.timed_out else _TRANSPORT
        reason = _reason(response.body) or f"HTTP{status}"
        if status == 429 or status >= 500:
            return DeliveryResult(DeliveryOutcome.RETRY, reason, response.retry_after)
        if status == 410 or (status == 400 and reason in _INVALID_TOKEN_REASONS):
            return DeliveryResult(DeliveryOutcome.INVALID_TOKEN, reason)
        return DeliveryResult(DeliveryOutcome.REJECTED, reason)


def _precheck(delivery: Delivery) -> DeliveryResult | None:
    """The result of a delivery that must not be sent at all, else None."""
    if len(delivery.payload) > PAYLOAD_LIMIT:
        return _TOO_LARGE
    if not _DEVICE_TOKEN.fullmatch(delivery.device_token):
        return _BAD_TOKEN
    return None


def _unless_silent(delivery: Delivery) -> DeliveryResult | None:
    """None for a background push, which shows nothing; else the refusal (dry runs)."""
    if delivery.headers.get("apns-push-type") != "background":
        return _NOT_SILENT
    try:
        payload = json.loads(delivery.payload)
    except ValueError:
        return _NOT_SILENT
    return None if isinstance(payload, dict) and is_background(payload) else _NOT_SILENT


def _log_transport_failures(responses: Sequence[Http2Response]) -> None:
    failed = [response.error for response in responses if response.error is not None]
    if failed:
        _log.warning("APNs: %d requests failed in transport, e.g. %s", len(failed), failed[0])


def _expired(result: DeliveryResult | None) -> bool:
    return result is not None and result.reason == _EXPIRED_PROVIDER_TOKEN


def _reason(body: bytes) -> str | None:
    """Apple's ``reason`` from an error body ``{"reason": ..., "timestamp": ...}``."""
    try:
        reason = json.loads(body).get("reason")
    except (ValueError, AttributeError):
        return None
    return reason if isinstance(reason, str) and reason else None
