"""A fake Web Push service: RFC 8030 push resources over HTTP/2 and TLS on 127.0.0.1.

For the paths web-push-testing (the real outside implementation, plain HTTP/1.1)
cannot produce: HTTP/2 multiplexing over TLS, 413, 429 with Retry-After, 5xx,
400 and 403. It checks a push message as a push service does:

- ``POST /push/<id>``: an unknown id is 404, an expired one 410 (both with
  Mozilla-style JSON errors);
- ``Content-Encoding: aes128gcm`` (else 415), a ``TTL`` of digits (else 400), an
  ``Urgency`` of RFC 8030's four words and a ``Topic`` of at most 32 base64url
  characters when present (else 400), a body of at most 4,096 bytes (else 413);
- ``Authorization: vapid t=<JWT>, k=<key>``: ``k`` must be the key the
  subscription was made with (403, as FCM answers a VAPID key mismatch); the JWT
  must be ES256 signed by it, with ``aud`` the origin the request was sent to, ``sub`` a
  mailto:/https: URI and ``exp`` in the future by at most 24 hours by the
  fake's clock (401);
- the body is decrypted with ``http_ece`` (pywebpush's aes128gcm implementation,
  not PushHub's) with the subscription's private key and auth secret (400 when
  it does not decrypt).

Accepted messages are recorded in ``received`` (decrypted) and answered 201 with a
``Location``. ``fail_next`` answers the next N messages with a status of the
test's choosing (and ``Retry-After``); ``connections`` counts connections by
negotiated protocol; ``alpn=("http/1.1",)`` makes a service without HTTP/2
(one request per connection, as tests/fakes/fcm.py serves HTTP/1.1).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushhub_server.core.clock import Clock
from tests.fakes.fcm import Response, serve_connection
from tests.fakes.tls import TlsFiles

BODY_LIMIT = 4096
MAX_TOKEN_LIFETIME = timedelta(hours=24)
_PUSH_PATH = re.compile(r"/push/([A-Za-z0-9_-]+)")
_URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
_VAPID = re.compile(r"vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Subscription:
    """What ``pushManager.subscribe()`` gives a page, plus the fake's private half."""

    id: str
    endpoint: str
    p256dh: str
    auth: str
    application_server_key: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    expired: bool = False


@dataclass(frozen=True)
class Received:
    subscription_id: str
    # Lower-case header names, as HTTP/2 carries them.
    headers: dict[str, str]
    plaintext: bytes
    vapid_claims: dict[str, object]


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None


class FakeWebPush:
    """A push service on 127.0.0.1 named ``localhost`` (its certificate's name)."""

    def __init__(
        self, clock: Clock, tls: TlsFiles, alpn: tuple[str, ...] = ("h2", "http/1.1")
    ) -> None:
        self.clock = clock
        self.tls = tls
        # ("http/1.1",): a service that does not speak HTTP/2.
        self.alpn = alpn
        self.received: list[Received] = []
        self.connections: Counter[str] = Counter()
        self.requests = 0
        self._subscriptions: dict[str, Subscription] = {}
        self._failures: deque[_Failure] = deque()
        self._server: asyncio.Server | None = None
        self._handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._port = 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def origin(self) -> str:
        return f"https://localhost:{self._port}"

    async def start(self) -> None:
        context = self.tls.server_context(alpn=self.alpn)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._handlers.values():
                writer.close()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    def subscribe(self, application_server_key: str, host: str = "localhost") -> Subscription:
        """A new subscription; ``host`` names the endpoint's host (it must reach this fake)."""
        key = ec.generate_private_key(ec.SECP256R1())
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        sub_id = secrets.token_urlsafe(16)
        subscription = Subscription(
            sub_id,
            f"https://{host}:{self._port}/push/{sub_id}",
            b64url(public),
            b64url(secrets.token_bytes(16)),
            application_server_key,
            key,
        )
        self._subscriptions[sub_id] = subscription
        return subscription

    def expire(self, subscription: Subscription) -> None:
        subscription.expired = True

    def fail_next(self, count: int, status: int, retry_after: str | None = None) -> None:
        self._failures.extend(_Failure(status, retry_after) for _ in range(count))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        self.connections[ssl_object.selected_alpn_protocol() or "http/1.1"] += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        try:
            await serve_connection(self.handle, reader, writer)
        finally:
            del self._handlers[task]

    # ------------------------------------------------------------- the push resource

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        self.requests += 1
        match = _PUSH_PATH.fullmatch(path)
        subscription = self._subscriptions.get(match.group(1)) if match else None
        if method != "POST" or subscription is None:
            return _error(404, 102, "Not Found", "Request did not validate invalid token")
        if subscription.expired:
            return _error(410, 106, "Gone", "Push subscription has unsubscribed or expired.")
        if self._failures:
            failure = self._failures.popleft()
            extra = {"retry-after": failure.retry_after} if failure.retry_after else {}
            return _error(failure.status, 999, "Injected", "injected failure", **extra)
        problem = _header_problem(headers, len(body))
        if problem is not None:
            return problem
        claims = self._vapid_claims(subscription, headers)
        if isinstance(claims, Response):
            return claims
        try:
            plaintext = http_ece.decrypt(
                body,
                private_key=subscription.private_key,
                auth_secret=b64url_decode(subscription.auth),
                version="aes128gcm",
            )
        except Exception as error:  # http_ece raises several types for bad input
            return _error(400, 110, "Bad Request", f"Could not decrypt: {error}")
        self.received.append(Received(subscription.id, dict(headers), plaintext, claims))
        location = f"{self.origin}/m/{secrets.token_urlsafe(8)}"
        return Response(201, b"", {"location": location})

    def _vapid_claims(
        self, subscription: Subscription, headers: Mapping[str, str]
    ) -> dict[str, object] | Response:
        match = _VAPID.fullmatch(headers.get("authorization", ""))
        if match is None:
            return _error(401, 109, "Unauthorized", "Missing or malformed VAPID header")
        token, key = match.groups()
        if key != subscription.application_server_key:
            return _error(403, 109, "Forbidden", "VAPID key does not match the subscription")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
        try:
            claims = jwt.decode(
                token,
                public,
                algorithms=["ES256"],
                options={"verify_exp": False, "verify_aud": False},
            )
        except jwt.InvalidTokenError:
            return _error(401, 109, "Unauthorized", "VAPID signature does not verify")
        now = self.clock.now().timestamp()
        exp = claims.get("exp")
        sub = str(claims.get("sub", ""))
        if (
            claims.get("aud") != _origin(headers.get(":authority") or headers.get("host", ""))
            or not isinstance(exp, int)
            or not now < exp <= now + MAX_TOKEN_LIFETIME.total_seconds()
            or not sub.startswith(("mailto:", "https:"))
        ):
            return _error(401, 109, "Unauthorized", f"Bad VAPID claims {claims}")
        return claims


def _origin(authority: str) -> str:
    """The origin a request was sent to, as its VAPID ``aud`` must name it."""
    return f"https://{authority.removesuffix(':443')}"


def _header_problem(headers: Mapping[str, str], size: int) -> Response | None:
    if headers.get("content-encoding") != "aes128gcm":
        return _error(415, 110, "Unsupported Media Type", "Content-Encoding must be aes128gcm")
    if not headers.get("ttl", "").isdigit():
        return _error(400, 111, "Bad Request", "Missing or invalid TTL header")
    if "urgency" in headers and headers["urgency"] not in _URGENCIES:
        return _error(400, 112, "Bad Request", "Invalid Urgency header")
    if "topic" in headers and not _TOPIC.fullmatch(headers["topic"]):
        return _error(400, 113, "Bad Request", "Invalid Topic header")
    if size > BODY_LIMIT:
        return _error(413, 104, "Payload Too Large", "Body is too large")
    return None


def _error(status: int, errno: int, error: str, message: str, **headers: str) -> Response:
    """autopush's error shape: {code, errno, error, message}."""
    body = {"code": status, "errno": errno, "error": error, "message": message}
    return Response(
        status, json.dumps(body).encode(), {"content-type": "application/json", **headers}
    )
