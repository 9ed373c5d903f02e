"""A fake APNs: HTTP/2 over TLS on 127.0.0.1, answering as Apple documents.

It checks what Apple checks, in Apple's words (status code and ``reason``):

- the path ``/3/device/<token>`` (404 ``BadPath``) and the method (405);
- the provider token: present (403 ``MissingProviderToken``), ES256 and signed by
  the key whose public half the fake holds, with the expected ``kid`` and ``iss``
  (403 ``InvalidProviderToken``), ``iat`` at most an hour old by the fake's clock
  (403 ``ExpiredProviderToken``), and not replaced by a newer ``iat`` within
  20 minutes of the previous one (429 ``TooManyProviderTokenUpdates``);
- the headers: ``apns-topic`` present and equal to the app's topic
  (400 ``MissingTopic`` / ``TopicDisallowed``), ``apns-push-type``,
  ``apns-priority``, ``apns-expiration``, ``apns-collapse-id`` and ``apns-id``
  well-formed, no header twice;
- the payload: not empty (400 ``PayloadEmpty``), at most 4,096 bytes
  (413 ``PayloadTooLarge``);
- the device token: those in ``unregistered`` get 410 ``Unregistered`` (with a
  ``timestamp``), those in ``bad_tokens`` 400 ``BadDeviceToken``, those in
  ``other_topic_tokens`` 400 ``DeviceTokenNotForTopic``.

Error bodies are ``{"reason": ...}``, plus ``"timestamp"`` (ms) for 410. Every
answered request is recorded in ``requests``; ``delivered`` lists the accepted ones.

Failure injection: ``fail_next`` answers the next N requests with 429 or 503 and
an optional ``Retry-After``; ``goaway_after`` sends GOAWAY (last-stream-id = the
last answered stream) after N more requests and closes the connection, leaving
whatever else was in flight unanswered; ``drop_after`` closes the TCP connection
after N more requests without a word. Each fires once.

``held``: requests for these device tokens get no answer until ``release_held()``,
so a test can look at the sender while its request is in flight.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushhub_server.core.clock import Clock

from .tls import TlsFiles

PAYLOAD_LIMIT = 4096
TOKEN_MAX_AGE = 3600
TOKEN_MIN_INTERVAL = 20 * 60
PUSH_TYPES = frozenset(
    {
        "alert",
        "background",
        "location",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "pushtotalk",
        "controls",
        "widgets",
    }
)
_PATH = re.compile(r"/3/device/([0-9A-Fa-f]+)")
_APNS_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def new_signing_key() -> tuple[str, str]:
    """An APNs-style signing key: (.p8 PKCS#8 PEM private key, PEM public key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode(), public.decode()


@dataclass(frozen=True)
class ReceivedRequest:
    token: str
    headers: dict[str, str]
    payload: bytes
    status: int
    reason: str | None
    # iat of the provider token that came with it (None when it had none readable).
    iat: int | None


@dataclass
class _Failure:
    remaining: int
    status: int
    retry_after: str | None


@dataclass
class _Stream:
    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)


class _Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class FakeApns:
    """Start with ``await start()``, point the provider at ``url`` and ``tls.ca_file``."""

    def __init__(
        self,
        tls: TlsFiles,
        clock: Clock,
        *,
        topic: str,
        team_id: str,
        key_id: str,
        public_key_pem: str,
        max_concurrent_streams: int = 1000,
    ) -> None:
        self.tls = tls
        self.clock = clock
        self.topic = topic
        self.team_id = team_id
        self.key_id = key_id
        self.public_key = serialization.load_pem_public_key(public_key_pem.encode())
        self.max_concurrent_streams = max_concurrent_streams
        self.unregistered: set[str] = set()
        self.bad_tokens: set[str] = set()
        self.other_topic_tokens: set[str] = set()
        self.held: set[str] = set()
        self._held_streams: list[tuple[_Connection, int]] = []
        self.requests: list[ReceivedRequest] = []
        self.connections = 0
        # The most streams any connection had open at once: proof of multiplexing.
        self.peak_streams = 0
        self._failure: _Failure | None = None
        self._goaway_in: int | None = None
        self._drop_in: int | None = None
        self._current_iat: int | None = None
        self._verified: dict[str, dict[str, object]] = {}
        self._server: asyncio.Server | None = None
        self._open: set[_Connection] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def delivered(self) -> list[ReceivedRequest]:
        return [request for request in self.requests if request.status == 200]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), "127.0.0.1", 0, ssl=self.tls.server_context()
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._open):
                connection.abort()
            await self._server.wait_closed()

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """The next ``count`` requests fail; ``fail_next(0)`` disarms what is left."""
        self._failure = _Failure(count, status, retry_after) if count > 0 else None

    @property
    def open_connections(self) -> int:
        """Connections open now (``connections`` counts every one ever opened)."""
        return len(self._open)

    @property
    def held_requests(self) -> int:
        """How many requests are waiting for release_held()."""
        return len(self._held_streams)

    def release_held(self) -> None:
        """Answers the held requests now, and holds no more."""
        self.held.clear()
        held, self._held_streams = self._held_streams, []
        for connection, stream_id in held:
            connection.answer_held(stream_id)

    def hold(self, connection: _Connection, stream_id: int, path: str) -> bool:
        """True when the request for `path` must wait for release_held()."""
        match = _PATH.fullmatch(path)
        if match is None or match.group(1) not in self.held:
            return False
        self._held_streams.append((connection, stream_id))
        return True

    def goaway_after(self, count: int) -> None:
        self._goaway_in = count

    def drop_after(self, count: int) -> None:
        self._drop_in = count

    # ------------------------------------------------------------ requests

    def answer(self, stream: _Stream) -> tuple[int, dict[str, str], bytes]:
        """Status, response headers and body for one complete request; records it."""
        headers = dict(stream.headers)
        match = _PATH.fullmatch(headers.get(":path", ""))
        token = match.group(1) if match else ""
        iat: int | None = None
        response_headers = {"apns-id": headers.get("apns-id", "")}
        try:
            if headers.get(":method") != "POST":
                raise _Rejected(405, "MethodNotAllowed")
            if match is None:
                raise _Rejected(404, "BadPath")
            self._check_injected_failure(response_headers)
            iat = self._provider_token_iat(headers.get("authorization"))
            self._check_token_age(iat)
            self._check_headers(stream.headers, headers)
            self._check_payload(bytes(stream.body))
            self._check_device_token(token)
        except _Rejected as rejected:
            self._record(token, headers, stream, rejected.status, rejected.reason, iat)
            return rejected.status, response_headers, self._error_body(rejected)
        self._record(token, headers, stream, 200, None, iat)
        return 200, response_headers, b""

    def _record(
        self,
        token: str,
        headers: dict[str, str],
        stream: _Stream,
        status: int,
        reason: str | None,
        iat: int | None,
    ) -> None:
        plain = {k: v for k, v in headers.items() if not k.startswith(":")}
        self.requests.append(ReceivedRequest(token, plain, bytes(stream.body), status, reason, iat))

    def _error_body(self, rejected: _Rejected) -> bytes:
        body: dict[str, object] = {"reason": rejected.reason}
        if rejected.status == 410:
            body["timestamp"] = int(self.clock.now().timestamp() * 1000)
        return json.dumps(body).encode()

    def _check_injected_failure(self, response_headers: dict[str, str]) -> None:
        failure = self._failure
        if failure is None:
            return
        failure.remaining -= 1
        if failure.remaining <= 0:
            self._failure = None
        if failure.retry_after is not None:
            response_headers["retry-after"] = failure.retry_after
        if failure.status == 429:
            raise _Rejected(429, "TooManyRequests")
        if failure.status == 500:
            raise _Rejected(500, "InternalServerError")
        raise _Rejected(failure.status, "ServiceUnavailable")

    def _provider_token_iat(self, authorization: str | None) -> int:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise _Rejected(403, "MissingProviderToken")
        token = authorization[len("bearer ") :]
        claims = self._verified.get(token) or self._verify(token)
        iat = claims["iat"]
        assert isinstance(iat, int)
        return iat

    def _check_token_age(self, iat: int) -> None:
        if self.clock.now().timestamp() - iat > TOKEN_MAX_AGE:
            raise _Rejected(403, "ExpiredProviderToken")
        current = self._current_iat
        if current is None or iat > current:
            # A newer token replaces the current one; too soon, and Apple throttles.
            if current is not None and iat - current < TOKEN_MIN_INTERVAL:
                raise _Rejected(429, "TooManyProviderTokenUpdates")
            self._current_iat = iat

    def _verify(self, token: str) -> dict[str, object]:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self.public_key,  # type: ignore[arg-type]
                algorithms=["ES256"],
                # Age is judged below by the fake's clock, not by the wall clock.
                options={"verify_iat": False, "verify_exp": False, "require": ["iss", "iat"]},
            )
        except jwt.PyJWTError:
            raise _Rejected(403, "InvalidProviderToken") from None
        valid = (
            header.get("kid") == self.key_id
            and claims.get("iss") == self.team_id
            and isinstance(claims.get("iat"), int)
        )
        if not valid:
            raise _Rejected(403, "InvalidProviderToken")
        self._verified[token] = claims
        return claims

    def _check_headers(self, pairs: list[tuple[str, str]], headers: dict[str, str]) -> None:
        if len(pairs) != len(headers):
            raise _Rejected(400, "DuplicateHeaders")
        topic = headers.get("apns-topic")
        if not topic:
            raise _Rejected(400, "MissingTopic")
        if topic != self.topic:
            raise _Rejected(400, "TopicDisallowed")
        if headers.get("apns-push-type") not in PUSH_TYPES:
            raise _Rejected(400, "InvalidPushType")
        if headers.get("apns-priority", "10") not in ("10", "5", "1"):
            raise _Rejected(400, "BadPriority")
        if not headers.get("apns-expiration", "0").isdigit():
            raise _Rejected(400, "BadExpirationDate")
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            raise _Rejected(400, "BadCollapseId")
        if "apns-id" in headers and not _APNS_ID.fullmatch(headers["apns-id"]):
            raise _Rejected(400, "BadMessageId")

    def _check_payload(self, payload: bytes) -> None:
        if not payload:
            raise _Rejected(400, "PayloadEmpty")
        if len(payload) > PAYLOAD_LIMIT:
            raise _Rejected(413, "PayloadTooLarge")

    def _check_device_token(self, token: str) -> None:
        if token in self.unregistered:
            raise _Rejected(410, "Unregistered")
        if token in self.bad_tokens:
            raise _Rejected(400, "BadDeviceToken")
        if token in self.other_topic_tokens:
            raise _Rejected(400, "DeviceTokenNotForTopic")

    # ------------------------------------------------- connection lifecycle

    def connection_opened(self, connection: _Connection) -> None:
        self.connections += 1
        self._open.add(connection)

    def connection_closed(self, connection: _Connection) -> None:
        self._open.discard(connection)

    def after_answer(self) -> str | None:
        """ "goaway" or "drop" when an armed trigger fires after this request."""
        if self._goaway_in is not None:
            self._goaway_in -= 1
            if self._goaway_in <= 0:
                self._goaway_in = None
                return "goaway"
        if self._drop_in is not None:
            self._drop_in -= 1
            if self._drop_in <= 0:
                self._drop_in = None
                return "drop"
        return None

    def note_streams(self, count: int) -> None:
        self.peak_streams = max(self.peak_streams, count)


class _Connection(asyncio.Protocol):
    """One client connection: h2 server state, answering each request when it is complete."""

    def __init__(self, fake: FakeApns) -> None:
        self._fake = fake
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self._h2 = h2.connection.H2Connection(config)
        self._streams: dict[int, _Stream] = {}
        self._transport: asyncio.Transport | None = None
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._fake.connection_opened(self)
        self._h2.initiate_connection()
        self._h2.update_settings(
            {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self._fake.max_concurrent_streams}
        )
        # Room for many small request bodies in flight before any WINDOW_UPDATE.
        self._h2.increment_flow_control_window(16 * 1024 * 1024)
        transport.write(self._h2.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        self._fake.connection_closed(self)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # after GOAWAY: what arrives now is never answered
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.abort()
            return
        for event in events:
            self._handle(event)
            if self._closing:
                return
        self._flush()

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            assert event.headers is not None and event.stream_id is not None
            headers = [(str(k), str(v)) for k, v in event.headers]
            self._streams[event.stream_id] = _Stream(headers)
            self._fake.note_streams(len(self._streams))
        elif isinstance(event, h2.events.DataReceived):
            assert event.stream_id is not None and event.data is not None
            self._streams[event.stream_id].body += event.data
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            assert event.stream_id is not None
            path = dict(self._streams[event.stream_id].headers).get(":path", "")
            if not self._fake.hold(self, event.stream_id, path):
                self._respond(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self._streams.pop(event.stream_id or 0, None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._close()

    def _respond(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id)
        status, headers, body = self._fake.answer(stream)
        response = [(":status", str(status)), *headers.items()]
        if body:
            response.append(("content-type", "application/json"))
        self._h2.send_headers(stream_id, response, end_stream=not body)
        if body:
            self._h2.send_data(stream_id, body, end_stream=True)
        action = self._fake.after_answer()
        if action == "goaway":
            data = b'{"reason":"Shutdown"}'
            self._h2.close_connection(last_stream_id=stream_id, additional_data=data)
            self._close()
        elif action == "drop":
            self._closing = True
            self.abort()

    def answer_held(self, stream_id: int) -> None:
        if self._closing or stream_id not in self._streams:
            return  # the connection or the stream went away meanwhile
        self._respond(stream_id)
        self._flush()

    def _close(self) -> None:
        """Sends what is queued (GOAWAY included), then closes; later frames are ignored."""
        self._closing = True
        self._flush()
        if self._transport is not None:
            self._transport.close()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)
