"""A fake Firebase Cloud Messaging (HTTP v1) with its Google OAuth2 token endpoint.

One TLS listener on 127.0.0.1 serves both, as Google's front ends do: ALPN ``h2``
gets HTTP/2 (many concurrent streams), anything else gets HTTP/1.1 (urllib's token
exchange). The certificate chains to a CA the tests generate (tests/fakes/tls.py).

- ``POST <token path>``: the RFC 7523 JWT-bearer grant. The RS256 assertion is
  verified against the public half of an account from ``service_account()``, with
  ``iss``, ``aud`` (this token URI), ``scope`` and ``iat``/``exp`` checked against the
  fake's clock. Answers ``{access_token, expires_in, token_type}`` or Google's
  ``{error, error_description}``.
- ``POST /v1/projects/<id>/messages:send``: checks the bearer token (issued here, not
  expired by the fake's clock, same project), the request and message shape, and
  answers ``{"name": ...}`` or FCM's real error JSON (``google.rpc.Status`` with a
  ``google.firebase.fcm.v1.FcmError`` detail). ``validate_only`` requests are checked
  the same way but only recorded in ``validated``.

Knobs: the ``unregistered``, ``invalid`` and ``mismatched`` token sets,
``fail_next()`` (429/500/503 with ``Retry-After``), ``revoke_access_tokens()`` (the
next sends get 401) and ``access_token_lifetime``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import secrets
import ssl
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)

from pushhub_server.core.clock import Clock
from tests.fakes.tls import TlsFiles

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
# What FCM answers for validate_only sends instead of a real message id.
DRY_RUN_MESSAGE_ID = "fake_message_id"
# FCM's limit on a message, as the real service enforces it.
MESSAGE_LIMIT = 4096

_SEND_PATH = re.compile(r"/v1/projects/([^/]+)/messages:send")
_DURATION = re.compile(r"\d+(\.\d{1,9})?s")
_MESSAGE_FIELDS = frozenset(
    {"name", "data", "notification", "android", "webpush", "apns", "fcm_options"}
    | {"token", "topic", "condition"}
)
_NOTIFICATION_FIELDS = frozenset({"title", "body", "image"})
_INVALID_TOKEN_TEXT = "The registration token is not a valid FCM registration token"
_UNAUTHENTICATED_TEXT = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
# status code → (google.rpc status, FcmError errorCode, message), for fail_next().
_TRANSIENT = {
    429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for sending messages."),
    500: ("INTERNAL", "INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
}
_CLOCK_SKEW = dt.timedelta(minutes=5)
_MAX_ASSERTION_LIFETIME = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Account:
    project_id: str
    client_email: str
    public_key: rsa.RSAPublicKey


@dataclass(frozen=True)
class _Grant:
    project_id: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None


class FakeFcm:
    """FCM v1 and its token endpoint on 127.0.0.1; ``start()`` before use."""

    def __init__(self, clock: Clock, tls: TlsFiles, access_token_lifetime: int = 3599) -> None:
        self.clock = clock
        self.tls = tls
        self.access_token_lifetime = access_token_lifetime
        self.unregistered: set[str] = set()
        self.invalid: set[str] = set()
        self.mismatched: set[str] = set()
        # Bodies (the whole request JSON) of accepted sends, in arrival order.
        self.messages: list[dict[str, Any]] = []
        self.validated: list[dict[str, Any]] = []
        self.token_requests = 0
        # Verified JWT assertions: their claims, plus their JOSE header under "header".
        self.assertions: list[dict[str, Any]] = []
        self.send_requests = 0
        # Connections accepted, by negotiated protocol ("h2", "http/1.1").
        self.connections: Counter[str] = Counter()
        self._accounts: dict[str, _Account] = {}
        self._grants: dict[str, _Grant] = {}
        self._failures: deque[_Failure] = deque()
        self._server: asyncio.Server | None = None
        # Each open connection's handler task, so stop() can close and await them.
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._port = 0

    # ------------------------------------------------------------- control

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self._port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self.tls.server_context(alpn=("h2", "http/1.1"))
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Python 3.11 has no Server.close_clients(): close each connection and wait
            # for its handler, so none outlives the fake (or its event loop).
            for writer in self._connections.values():
                writer.close()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        self.connections[ssl_object.selected_alpn_protocol() or "http/1.1"] += 1
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            await serve_connection(self.handle, reader, writer)
        finally:
            del self._connections[task]

    def service_account(self, project_id: str = "pushhub-test") -> dict[str, str]:
        """A new service-account JSON whose token_uri is this fake."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        email = f"firebase-adminsdk-{key_id[:5]}@{project_id}.iam.gserviceaccount.com"
        self._accounts[key_id] = _Account(project_id, email, key.public_key())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": key_id,
            "private_key": pem.decode(),
            "client_email": email,
            "client_id": secrets.token_hex(10),
            "token_uri": self.token_uri,
        }

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = "1") -> None:
        """The next ``count`` authenticated sends get this transient error."""
        if status not in _TRANSIENT:
            raise ValueError(f"fail_next supports {sorted(_TRANSIENT)}, not {status}")
        self._failures.extend(_Failure(status, retry_after) for _ in range(count))

    def revoke_access_tokens(self) -> None:
        self._grants.clear()

    # ------------------------------------------------------------- routing

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        if method == "POST" and path == urllib.parse.urlsplit(self.token_uri).path:
            self.token_requests += 1
            return self._issue_token(headers, body)
        match = _SEND_PATH.fullmatch(path)
        if method == "POST" and match:
            self.send_requests += 1
            return self._send(match.group(1), headers, body)
        return google_error(404, "NOT_FOUND", f"{method} {path} is not a known method.")

    # ------------------------------------------------------------- OAuth2

    def _issue_token(self, headers: Mapping[str, str], body: bytes) -> Response:
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return oauth_error("invalid_request", "Bad Request")
        form = urllib.parse.parse_qs(body.decode())
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != JWT_BEARER_GRANT:
            return oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = form.get("assertion", [""])[0]
        try:
            account, claims = self._verify_assertion(assertion)
        except jwt.InvalidTokenError:
            return oauth_error("invalid_grant", "Invalid JWT Signature.")
        self.assertions.append({"header": jwt.get_unverified_header(assertion), **claims})
        problem = self._claims_problem(account, claims)
        if problem:
            return oauth_error(*problem)
        token = f"ya29.fake-{secrets.token_urlsafe(32)}"
        expires_at = self.clock.now() + dt.timedelta(seconds=self.access_token_lifetime)
        self._grants[token] = _Grant(account.project_id, expires_at)
        answer = {
            "access_token": token,
            "expires_in": self.access_token_lifetime,
            "token_type": "Bearer",
        }
        return json_response(200, answer)

    def _verify_assertion(self, assertion: str) -> tuple[_Account, dict[str, Any]]:
        account = self._accounts.get(jwt.get_unverified_header(assertion).get("kid", ""))
        if account is None:
            raise jwt.InvalidSignatureError("unknown kid")
        # Times are checked against the fake's clock (a ManualClock in tests), not PyJWT's.
        claims = jwt.decode(
            assertion,
            account.public_key,
            algorithms=["RS256"],
            audience=self.token_uri,
            options={
                "verify_exp": False,
                "verify_iat": False,
                "require": ["iss", "aud", "iat", "exp", "scope"],
            },
        )
        return account, claims

    def _claims_problem(self, account: _Account, claims: dict[str, Any]) -> tuple[str, str] | None:
        if claims["iss"] != account.client_email:
            return "invalid_grant", "Invalid email or User ID"
        if FCM_SCOPE not in str(claims["scope"]).split():
            return "invalid_scope", "Invalid OAuth scope or ID token audience provided."
        now = self.clock.now()
        issued = dt.datetime.fromtimestamp(claims["iat"], dt.UTC)
        expires = dt.datetime.fromtimestamp(claims["exp"], dt.UTC)
        if (
            issued > now + _CLOCK_SKEW
            or expires <= now - _CLOCK_SKEW
            or expires - issued > _MAX_ASSERTION_LIFETIME
        ):
            return (
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        return None

    # ------------------------------------------------------------- messages:send

    def _send(self, project_id: str, headers: Mapping[str, str], body: bytes) -> Response:
        refusal = self._authorization_problem(project_id, headers)
        if refusal is not None:
            return refusal
        if self._failures:
            return _transient_error(self._failures.popleft())
        if not headers.get("content-type", "").startswith("application/json"):
            return fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        request, problem = _parse_send_request(body)
        if problem is not None:
            return fcm_error(400, "INVALID_ARGUMENT", problem)
        message = request["message"]
        token_refusal = self._token_problem(message.get("token"))
        if token_refusal is not None:
            return token_refusal
        if request.get("validate_only"):
            self.validated.append(request)
            message_id = DRY_RUN_MESSAGE_ID
        else:
            self.messages.append(request)
            message_id = str(len(self.messages))
        return json_response(200, {"name": f"projects/{project_id}/messages/{message_id}"})

    def _authorization_problem(
        self, project_id: str, headers: Mapping[str, str]
    ) -> Response | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        grant = self._grants.get(token) if scheme == "Bearer" else None
        if grant is None or grant.expires_at <= self.clock.now():
            return google_error(401, "UNAUTHENTICATED", _UNAUTHENTICATED_TEXT)
        if grant.project_id != project_id:
            return google_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'cloudmessaging.messages.create' denied on resource "
                f"'//cloudresourcemanager.googleapis.com/projects/{project_id}' "
                "(or it may not exist).",
            )
        return None

    def _token_problem(self, token: str | None) -> Response | None:
        if token is None:
            return None
        if token in self.invalid:
            violation = {"field": "message.token", "description": _INVALID_TOKEN_TEXT}
            detail = {"@type": BAD_REQUEST_TYPE, "fieldViolations": [violation]}
            return fcm_error(400, "INVALID_ARGUMENT", _INVALID_TOKEN_TEXT, extra=[detail])
        if token in self.unregistered:
            return fcm_error(404, "UNREGISTERED", "Requested entity was not found.")
        if token in self.mismatched:
            return fcm_error(403, "SENDER_ID_MISMATCH", "SenderId mismatch")
        return None


# ----------------------------------------------------------------- request shape


def _parse_send_request(body: bytes) -> tuple[dict[str, Any], str | None]:
    """The request JSON and, when it is malformed, FCM's description of why."""
    try:
        request = json.loads(body)
    except ValueError as error:
        return {}, f"Invalid JSON payload received. {error}"
    if not isinstance(request, dict):
        return {}, "Invalid JSON payload received. Expected an object."
    unknown = sorted(request.keys() - {"message", "validate_only"})
    if unknown:
        return request, f'Invalid JSON payload received. Unknown name "{unknown[0]}".'
    if not isinstance(request.get("validate_only", False), bool):
        return request, "Invalid value at 'validate_only' (TYPE_BOOL)"
    message = request.get("message")
    if not isinstance(message, dict):
        return request, "Invalid value at 'message': a message object is required."
    return request, _message_problem(message)


def _message_problem(message: dict[str, Any]) -> str | None:
    unknown = sorted(message.keys() - _MESSAGE_FIELDS)
    if unknown:
        return f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'message'."
    targets = [name for name in ("token", "topic", "condition") if name in message]
    if not targets:
        return "Recipient of the message is not set."
    if len(targets) > 1:
        return "Invalid value at 'message' (oneof), oneof field 'target' is already set."
    if not isinstance(message[targets[0]], str) or not message[targets[0]]:
        return f"Invalid value at 'message.{targets[0]}' (TYPE_STRING)"
    if len(json.dumps(message, separators=(",", ":")).encode()) > MESSAGE_LIMIT:
        return "Message is too big"
    return (
        _string_map_problem(message, "data")
        or _notification_problem(message.get("notification"))
        or _android_problem(message.get("android"))
        or _string_map_problem(message.get("apns") or {}, "headers", "message.apns")
    )


def _string_map_problem(
    parent: Mapping[str, Any], name: str, prefix: str = "message"
) -> str | None:
    value = parent.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        return f"Invalid value at '{prefix}.{name}' (type.googleapis.com/google.protobuf.Map)"
    for index, item in enumerate(value.values()):
        if not isinstance(item, str):
            return f"Invalid value at '{prefix}.{name}[{index}].value' (TYPE_STRING), {item}"
    return None


def _notification_problem(notification: Any) -> str | None:
    if notification is None:
        return None
    if not isinstance(notification, dict):
        return "Invalid value at 'message.notification'"
    for name, value in notification.items():
        if name not in _NOTIFICATION_FIELDS:
            return (
                f"Invalid JSON payload received. Unknown name \"{name}\" at 'message.notification'"
            )
        if not isinstance(value, str):
            return f"Invalid value at 'message.notification.{name}' (TYPE_STRING)"
    return None


def _android_problem(android: Any) -> str | None:
    if android is None:
        return None
    if not isinstance(android, dict):
        return "Invalid value at 'message.android'"
    if android.get("priority", "HIGH") not in ("HIGH", "NORMAL"):
        return "Invalid value at 'message.android.priority' (AndroidMessagePriority)"
    ttl = android.get("ttl", "0s")
    if not isinstance(ttl, str) or not _DURATION.fullmatch(ttl):
        return (
            "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)"
        )
    return None


# ----------------------------------------------------------------- answers


def json_response(status: int, value: Mapping[str, Any], **headers: str) -> Response:
    body = json.dumps(value).encode()
    return Response(status, body, {"content-type": "application/json; charset=UTF-8", **headers})


def google_error(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response:
    """A google.rpc.Status error body, as every Google API answers."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return json_response(code, {"error": error})


def fcm_error(
    code: int, error_code: str, message: str, extra: list[dict[str, Any]] | None = None
) -> Response:
    """An FCM error: the HTTP code's rpc status plus an FcmError detail naming errorCode."""
    status = {
        400: "INVALID_ARGUMENT",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }[code]
    details = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}, *(extra or [])]
    return google_error(code, status, message, details)


def oauth_error(error: str, description: str) -> Response:
    return json_response(400, {"error": error, "error_description": description})


def _transient_error(failure: _Failure) -> Response:
    _, error_code, message = _TRANSIENT[failure.status]
    response = fcm_error(failure.status, error_code, message)
    if failure.retry_after is None:
        return response
    return Response(
        response.status, response.body, {**response.headers, "retry-after": failure.retry_after}
    )


# ----------------------------------------------------------------- wire protocols


Handler = Callable[[str, str, Mapping[str, str], bytes], Response]


async def serve_connection(
    handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serves one TLS connection in the protocol its ALPN chose."""
    ssl_object = writer.get_extra_info("ssl_object")
    try:
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            await _H2Connection(handler, reader, writer).run()
        else:
            await _serve_http1(handler, reader, writer)
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        pass  # The client went away; nothing to answer.
    finally:
        writer.close()


async def _serve_http1(
    handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One request per connection (Connection: close), enough for a token exchange."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    request_line, *lines = head.rstrip("\r\n").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    response = handler(method, target, headers, body)
    reply_headers = {
        **response.headers,
        "content-length": str(len(response.body)),
        "connection": "close",
    }
    head_lines = [f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}"]
    head_lines += [f"{name}: {value}" for name, value in reply_headers.items()]
    writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode("latin-1") + response.body)
    await writer.drain()


class _H2Connection:
    """Server side of one HTTP/2 connection: streams are answered as they complete."""

    def __init__(
        self, handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._handler = handler
        self._reader = reader
        self._writer = writer
        config = H2Configuration(
            client_side=False,
            header_encoding="utf-8",
            # Header validation is h2's costliest step and checks the client library,
            # not PushHub; without it the fake keeps up with a 5,000-request batch.
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        self._h2 = H2Connection(config)
        self._requests: dict[int, tuple[dict[str, str], bytearray]] = {}
        # Response bytes waiting for flow-control window, per stream.
        self._unsent: dict[int, bytes] = {}

    async def run(self) -> None:
        self._h2.initiate_connection()
        await self._flush()
        while data := await self._reader.read(65536):
            events = self._h2.receive_data(data)
            for event in events:
                self._on_event(event)
            await self._flush()
            if any(isinstance(event, ConnectionTerminated) for event in events):
                return

    async def _flush(self) -> None:
        self._writer.write(self._h2.data_to_send())
        await self._writer.drain()

    def _on_event(self, event: object) -> None:
        if isinstance(event, RequestReceived):
            self._requests[event.stream_id] = (dict(event.headers), bytearray())
        elif isinstance(event, DataReceived):
            self._requests[event.stream_id][1].extend(event.data)
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, StreamEnded):
            headers, body = self._requests.pop(event.stream_id)
            self._respond(event.stream_id, headers, bytes(body))
        elif isinstance(event, WindowUpdated):
            for stream_id in list(self._unsent):
                self._send_body(stream_id)
        elif isinstance(event, StreamReset):
            self._requests.pop(event.stream_id, None)
            self._unsent.pop(event.stream_id, None)

    def _respond(self, stream_id: int, headers: dict[str, str], body: bytes) -> None:
        response = self._handler(headers[":method"], headers[":path"], headers, body)
        reply_headers = [
            (":status", str(response.status)),
            ("content-length", str(len(response.body))),
            *response.headers.items(),
        ]
        self._h2.send_headers(stream_id, reply_headers)
        self._unsent[stream_id] = response.body
        self._send_body(stream_id)

    def _send_body(self, stream_id: int) -> None:
        data = self._unsent[stream_id]
        while data:
            window = min(
                self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size
            )
            if window <= 0:
                self._unsent[stream_id] = data
                return
            self._h2.send_data(stream_id, data[:window])
            data = data[window:]
        self._h2.end_stream(stream_id)
        del self._unsent[stream_id]
