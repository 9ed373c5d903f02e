"""Web Push provider (RFC 8030, 8291, 8292): one encrypted POST per subscription.

A delivery carries the subscription's endpoint as ``device_token``, its keys as
``web_push_keys`` and the plaintext payload (the JSON a service worker reads);
``headers`` holds ``TTL``/``Urgency``/``Topic`` (delivery.payloads.webpush), one
mapping shared by a message's recipients. A ``send``:

1. checks each endpoint against the allow-list (core.web_push_endpoints: the
   rules may have changed since the registration was written) and the payload
   against what one aes128gcm record carries;
2. resolves each distinct host once through the address guard, which refuses
   names resolving into the operator's network unless the operator listed the
   host; the requests are pinned to the checked addresses (CURLOPT_RESOLVE), and
   redirects are never followed (libcurl's default);
3. encrypts each payload to its subscription (payloads.webpush.encrypt: a new
   ECDH key pair per recipient) on ``encryption_threads`` worker threads: the ECDH,
   half of it, releases the GIL and runs beside the event loop (the key pair's
   generation, HKDF and AES-GCM do not); with 0 threads, on the event loop in
   slices of _INLINE_BUDGET (docs/web-push.md, "Encryption: threads or the event
   loop");
4. POSTs them all through one Http2Client: libcurl keeps one connection per
   origin, multiplexed over HTTP/2 where the push service's ALPN offers it and
   HTTP/1.1 otherwise (and for plain ``http`` to a listed host), with the
   origin's VAPID header (vapid.VapidTokens, cached per origin).

Classification:

===============================  ===============================================
200, 201, 202                    SENT
404 ``NotFound``, 410 ``Gone``   INVALID_TOKEN: the subscription is gone
413                              REJECTED ``PayloadRejected``
429, 5xx                         RETRY, with Retry-After when the service sent it
400 ``BadRequest``,              REJECTED under that reason (a 401/403 usually
401, 403 ``Forbidden``           means the subscription belongs to another VAPID
                                 key); the body is logged, it says why
transport failure                RETRY ``Timeout`` / ``TransportError`` (after
                                 http2.py's own resends on fresh connections)
===============================  ===============================================

Refused before sending: an endpoint off the allow-list (REJECTED
``EndpointNotAllowed``), one resolving to a non-public address (REJECTED
``EndpointAddressRefused``) or to nothing (REJECTED ``EndpointUnresolved``; a
resolver failure is RETRY ``DnsTemporaryFailure``), a payload over 3,993 bytes
(REJECTED ``PayloadTooLarge``), and missing or unusable keys (INVALID_TOKEN
``BadSubscriptionKeys``). None of these invalidates a registration on a guess:
only the push service's own 404/410 and keys that can never work do.

Dry runs: push services have no validate-only mode, and a push a service worker
receives must show a notification. A ``validate_only`` send goes through every
step above but the POST: what passes them all is SENT, and nothing is posted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from pushhub_server.core.clock import Clock
from pushhub_server.core.errors import PushHubError
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.outbound import is_ip_literal
from pushhub_server.core.web_push import WebPushCredentials, WebPushKeys, subscription_keys
from pushhub_server.core.web_push_endpoints import Endpoint, EndpointPolicy
from pushhub_server.delivery.address_guard import AddressGuard, AddressRefused, ResolveChecked
from pushhub_server.delivery.payloads.webpush import DEFAULT_TTL, PLAINTEXT_LIMIT, encrypt

from .http2 import Http2Client, Http2Request, Http2Response
from .vapid import VapidTokens

# Requests handed to the HTTP/2 client at once (as for FCM: libcurl counts the time
# a transfer queues for a stream against its connect timeout).
_WINDOW = 1000
# Seconds of encryption on the event loop between two yields to it (docs/web-push.md,
# "Encryption: threads or the event loop").
_INLINE_BUDGET = 0.001
_FIXED_HEADERS = (
    "Content-Encoding: aes128gcm",
    "Content-Type: application/octet-stream",
    "Accept:",  # drops libcurl's "Accept: */*"
    "Expect:",  # no 100-continue round trip on HTTP/1.1
)
_DEFAULT_TTL_LINE = f"TTL: {int(DEFAULT_TTL.total_seconds())}"
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    410: "Gone",
    413: "PayloadRejected",
    429: "TooManyRequests",
}
_SENT = DeliveryResult(DeliveryOutcome.SENT)
_TIMEOUT = DeliveryResult(DeliveryOutcome.RETRY, "Timeout")
_TRANSPORT = DeliveryResult(DeliveryOutcome.RETRY, "TransportError")
_NOT_ALLOWED = DeliveryResult(DeliveryOutcome.REJECTED, "EndpointNotAllowed")
_TOO_LARGE = DeliveryResult(DeliveryOutcome.REJECTED, "PayloadTooLarge")
_BAD_KEYS = DeliveryResult(DeliveryOutcome.INVALID_TOKEN, "BadSubscriptionKeys")
_LOGGED_BODY = 300
# An IP literal's pin: no name to resolve; shared, like every header and pin list.
_NO_LINES: list[str] = []

_log = logging.getLogger(__name__)


class WebPushProvider:
    """core.ports.DeliveryProvider for one app's VAPID credentials.

    ``policy``: the endpoint allow-list with the operator's listed hosts
    (PUSHHUB_WEB_PUSH_ALLOWED_HOSTS). ``resolve``: the address guard
    (address_guard.ResolveChecked). ``ca_file`` replaces the system trust store
    (PUSHHUB_WEB_PUSH_CA_FILE). ``max_connections`` bounds connections per origin;
    one HTTP/2 connection carries up to the service's stream limit at once.
    ``encryption_threads``: threads encrypting a batch's payloads in parallel; 0
    encrypts on the event loop, yielding to it every _INLINE_BUDGET seconds.
    """

    def __init__(
        self,
        credentials: WebPushCredentials,
        clock: Clock,
        *,
        policy: EndpointPolicy | None = None,
        resolve: ResolveChecked | None = None,
        ca_file: str | None = None,
        timeout: float = 30.0,
        max_connections: int = 1,
        encryption_threads: int = 2,
    ) -> None:
        self._tokens = VapidTokens(credentials, clock)
        self._policy = policy or EndpointPolicy()
        self._resolve: ResolveChecked = resolve or AddressGuard()
        self._client = Http2Client(
            max_connections=max_connections, ca_file=ca_file, timeout=timeout
        )
        self._threads = encryption_threads
        self._pool = (
            ThreadPoolExecutor(encryption_threads, thread_name_prefix="pushhub-webpush")
            if encryption_threads
            else None
        )

    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        """One result per delivery, in order; never raises for a single delivery."""
        results: list[DeliveryResult] = []
        for start in range(0, len(deliveries), _WINDOW):
            window = deliveries[start : start + _WINDOW]
            results += await self._send_window(window, validate_only)
        return results

    async def close(self) -> None:
        await self._client.close()
        if self._pool is not None:
            # Slices being encrypted finish on their own; nothing waits for them any more.
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _send_window(
        self, deliveries: Sequence[Delivery], validate_only: bool
    ) -> list[DeliveryResult]:
        # Filled as each step settles a delivery; every slot is filled at the end.
        results: list[DeliveryResult | None] = [None] * len(deliveries)
        endpoints: dict[int, Endpoint] = {}
        for index, delivery in enumerate(deliveries):
            checked = self._precheck(delivery)
            if isinstance(checked, DeliveryResult):
                results[index] = checked
            else:
                endpoints[index] = checked
        pins = await self._pins(endpoints, results)
        pending = list(endpoints)
        bodies = await self._encrypt([deliveries[index] for index in pending])
        requests: list[Http2Request] = []
        sent: list[int] = []
        lines: dict[tuple[str, int], list[str]] = {}
        for index, body in zip(pending, bodies, strict=True):
            if body is None:
                results[index] = _BAD_KEYS
                continue
            endpoint = endpoints[index]
            headers = self._header_lines(lines, endpoint.origin, deliveries[index].headers)
            requests.append(Http2Request(endpoint.url, headers, body, pins[endpoint.host_port]))
            sent.append(index)
        if validate_only:
            for index in sent:
                results[index] = _SENT
            return results  # type: ignore[return-value]  # every slot is filled above
        responses = await self._client.post_many(requests)
        _log_failures(responses)
        for index, response in zip(sent, responses, strict=True):
            results[index] = classify(response)
        return results  # type: ignore[return-value]  # every slot is filled above

    def _precheck(self, delivery: Delivery) -> Endpoint | DeliveryResult:
        try:
            endpoint = self._policy.check(delivery.device_token)
        except PushHubError:
            return _NOT_ALLOWED
        if len(delivery.payload) > PLAINTEXT_LIMIT:
            return _TOO_LARGE
        if delivery.web_push_keys is None:
            return _BAD_KEYS
        return endpoint

    async def _pins(
        self, endpoints: dict[int, Endpoint], results: list[DeliveryResult | None]
    ) -> dict[tuple[str, int], list[str]]:
        """Resolves each distinct host once: its CURLOPT_RESOLVE lines (none for an IP
        literal: nothing to resolve, but the request is still pinned, so no proxy).
        Deliveries to a refused host get its result in ``results`` and leave
        ``endpoints``."""
        destinations = {e.host_port: e.listed for e in endpoints.values()}
        answers = await asyncio.gather(
            *(self._pin(host, port, listed) for (host, port), listed in destinations.items())
        )
        pins = dict(zip(destinations, answers, strict=True))
        for index, endpoint in list(endpoints.items()):
            pin = pins[endpoint.host_port]
            if isinstance(pin, DeliveryResult):
                results[index] = pin
                del endpoints[index]
        return {key: pin for key, pin in pins.items() if not isinstance(pin, DeliveryResult)}

    async def _pin(self, host: str, port: int, listed: bool) -> list[str] | DeliveryResult:
        try:
            addresses = await self._resolve(host, port, any_address=listed)
        except AddressRefused as refused:
            _log.warning("Web Push: %s refused: %s", host, refused)
            outcome = DeliveryOutcome.RETRY if refused.retryable else DeliveryOutcome.REJECTED
            return DeliveryResult(outcome, refused.reason)
        if is_ip_literal(host):
            return _NO_LINES
        return [f"{host}:{port}:{','.join(_bracketed(a) for a in addresses)}"]

    async def _encrypt(self, deliveries: Sequence[Delivery]) -> list[bytes | None]:
        """Each payload encrypted to its subscription (None: its keys are unusable),
        in contiguous slices on the worker threads, or on the event loop in slices of
        _INLINE_SLICE that yield to it in between (no threads)."""
        if not deliveries:
            return []
        if self._pool is None:
            return await _encrypt_inline(deliveries)
        loop = asyncio.get_running_loop()
        size = -(-len(deliveries) // self._threads)  # ceiling division
        slices = [deliveries[start : start + size] for start in range(0, len(deliveries), size)]
        parts = await asyncio.gather(
            *(loop.run_in_executor(self._pool, _encrypt_all, part) for part in slices)
        )
        return [body for part in parts for body in part]

    def _header_lines(
        self, cache: dict[tuple[str, int], list[str]], origin: str, headers: Mapping[str, str]
    ) -> list[str]:
        """One list per origin and headers mapping, shared by its requests, so libcurl
        sets it on a handle only when it changes. Keyed by the mapping's identity:
        the deliveries hold their mappings until this send returns."""
        key = (origin, id(headers) if headers else 0)
        lines = cache.get(key)
        if lines is None:
            lines = [*_FIXED_HEADERS, self._tokens.header(origin)]
            lines.extend(f"{name}: {value}" for name, value in headers.items())
            if "TTL" not in headers:  # RFC 8030 requires one
                lines.append(_DEFAULT_TTL_LINE)
            cache[key] = lines
        return lines


def classify(response: Http2Response) -> DeliveryResult:
    """The DeliveryResult for one push service response."""
    status = response.status
    if status in (200, 201, 202):
        return _SENT
    if response.error is not None:
        return _TIMEOUT if response.timed_out else _TRANSPORT
    reason = _REASONS.get(status, f"HTTP{status}")
    if status in (404, 410):
        return DeliveryResult(DeliveryOutcome.INVALID_TOKEN, reason)
    if status == 429 or status >= 500:
        return DeliveryResult(DeliveryOutcome.RETRY, reason, response.retry_after)
    return DeliveryResult(DeliveryOutcome.REJECTED, reason)


async def _encrypt_inline(deliveries: Sequence[Delivery]) -> list[bytes | None]:
    """_encrypt_all on the event loop, yielding to it every _INLINE_BUDGET seconds."""
    bodies: list[bytes | None] = []
    clock = time.perf_counter
    deadline = clock() + _INLINE_BUDGET
    for delivery in deliveries:
        bodies.append(_encrypt_one(delivery))
        if clock() >= deadline:
            await asyncio.sleep(0)  # RPCs, the transport's callbacks, the other batches
            deadline = clock() + _INLINE_BUDGET
    return bodies


def _encrypt_all(deliveries: Sequence[Delivery]) -> list[bytes | None]:
    """Worker thread: one body per delivery, None where its keys cannot be used."""
    return [_encrypt_one(delivery) for delivery in deliveries]


def _encrypt_one(delivery: Delivery) -> bytes | None:
    keys: WebPushKeys = delivery.web_push_keys  # type: ignore[assignment]  # prechecked
    try:
        return encrypt(delivery.payload, subscription_keys(keys, check_point=False))
    except (PushHubError, ValueError):
        return None


def _log_failures(responses: Sequence[Http2Response]) -> None:
    failed = [response.error for response in responses if response.error is not None]
    if failed:
        _log.warning("Web Push: %d requests failed in transport, e.g. %s", len(failed), failed[0])
    refused = next((r for r in responses if r.status in (400, 401, 403)), None)
    if refused is not None:
        # Why a push service refused (a bad VAPID token, a key mismatch) is only in the body.
        body = refused.body[:_LOGGED_BODY].decode("utf-8", "replace")
        _log.warning("Web Push: HTTP %d, e.g. %s", refused.status, body)


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address
